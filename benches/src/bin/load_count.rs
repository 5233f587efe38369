//! What the shim's first intercepted call does, phase by phase, without the
//! shim: read and check a profiles file, resolve one profile, compile it.
//!
//!     load_count FILE PROFILE [REPEATS]
//!
//! prints the median wall time of each phase over REPEATS runs (default 1).
//! Under callgrind (`--toggle-collect='*load_once*'`), it shows where the
//! instructions of a first connect go.

use std::hint::black_box;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use bindto_core::{Config, Layer, Source, Table};

#[inline(never)]
fn load_once(path: &PathBuf, name: &str) -> Result<[f64; 3], String> {
    let start = Instant::now();
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let layer = Layer {
        source: Source::Environment,
        path: path.clone(),
        text,
        stamp: None,
    };
    let config = Config::from_layers(vec![layer]).map_err(|e| e.to_string())?;
    let parsed = start.elapsed().as_secs_f64();
    let profile = config.profile(name).map_err(|e| e.to_string())?;
    let table = Table::compile(profile);
    let compiled = start.elapsed().as_secs_f64();
    drop(black_box(config));
    black_box(table);
    let dropped = start.elapsed().as_secs_f64();
    Ok([parsed, compiled - parsed, dropped - compiled])
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(file), Some(name)) = (args.first(), args.get(1)) else {
        eprintln!("usage: load_count FILE PROFILE [REPEATS]");
        return ExitCode::from(2);
    };
    let repeats: usize = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(1);
    let path = PathBuf::from(file);
    let mut phases: [Vec<f64>; 3] = Default::default();
    for _ in 0..repeats.max(1) {
        match load_once(&path, name) {
            Ok(times) => {
                for (all, t) in phases.iter_mut().zip(times) {
                    all.push(t * 1e3);
                }
            }
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        }
    }
    for all in &mut phases {
        all.sort_by(f64::total_cmp);
    }
    let median = |v: &[f64]| v[v.len() / 2];
    eprintln!(
        "read+parse+check {:.3} ms, compile {:.3} ms, drop config {:.3} ms (medians of {})",
        median(&phases[0]),
        median(&phases[1]),
        median(&phases[2]),
        phases[0].len()
    );
    ExitCode::SUCCESS
}
