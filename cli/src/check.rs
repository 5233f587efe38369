//! `bindto check [FILE]`: parse and compile the config, one line per
//! profile on success, `file:line:col: message` on failure.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bindto_core::{Config, Env, Profile, Source, layers};

use crate::args::CheckArgs;
use crate::exit::{Fail, Outcome};
use crate::style::Style;

pub(crate) fn run(args: CheckArgs) -> Outcome {
    let env = Env::from_process();
    let config = match &args.file {
        Some(file) => load_file(file)?,
        None => crate::select::load(&env).map_err(|e| Fail::problem(e.to_string()))?,
    };
    let style = Style::stdout();
    if config.layers().is_empty() {
        let searched: Vec<String> = layers::paths(&env, false)
            .iter()
            .map(|(_, p)| p.display().to_string())
            .collect();
        return Err(Fail::problem(format!(
            "no config file found (looked for {}); start from the example, {}",
            searched.join(", "),
            example().display()
        )));
    }
    // BIND_PROFILE names what the library will use: a missing one is the
    // verdict, before anything is said to be ok.
    if args.file.is_none()
        && let Some(name) = env.profile()
    {
        config
            .profile(name)
            .map_err(|e| Fail::problem(format!("BIND_PROFILE is set, but {}", e.message)))?;
    }
    for layer in config.layers() {
        println!(
            "{} {} ({})",
            style.good("ok"),
            layer.path.display(),
            layer.source
        );
    }
    let mut profiles = Vec::new();
    for name in config.names() {
        // Config::load already resolved every profile; this cannot fail.
        let profile = config
            .profile(name)
            .map_err(|e| Fail::problem(e.to_string()))?;
        profiles.push(profile);
    }
    let width = profiles.iter().map(|p| p.name.len()).max().unwrap_or(0);
    for profile in &profiles {
        let name = format!("{:width$}", profile.name);
        println!("  {}  {}", style.bold(&name), summary(profile));
    }
    if profiles.is_empty() {
        println!("  (no profiles)");
    }
    Ok(ExitCode::SUCCESS)
}

/// The example config: installed beside the executable's prefix
/// (`make install`), or the source tree's where bindto runs from it.
fn example() -> PathBuf {
    const NAME: &str = "profiles.example.toml";
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().unwrap_or(Path::new("/"));
    let installed = dir.join("../share/doc/bindto").join(NAME);
    // target/release/bindto in a checkout.
    let source = dir.join("../..").join(NAME);
    [installed, source]
        .into_iter()
        .filter_map(|p| p.canonicalize().ok())
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(format!("/usr/local/share/doc/bindto/{NAME}")))
}

fn load_file(file: &Path) -> Result<Config, Fail> {
    let layer = layers::read_one(Source::Given, file, false)
        .map_err(|e| Fail::problem(e.to_string()))?
        .ok_or_else(|| Fail::problem(format!("{}: not found", file.display())))?;
    Config::from_layers(vec![layer]).map_err(|e| Fail::problem(e.to_string()))
}

/// One line about what a profile does: binding, rules, rewrites.
pub(crate) fn summary(profile: &Profile) -> String {
    let mut out = String::new();
    let b = &profile.binding;
    match (b.interface, b.source.is_empty()) {
        (None, true) => out.push_str("direct by default"),
        (interface, _) => {
            out.push_str("binds");
            if let Some(i) = interface {
                let _ = write!(out, " to {i}");
            }
            let sources: Vec<String> = b.source.iter().map(|s| s.to_string()).collect();
            if !sources.is_empty() {
                let _ = write!(out, " from {}", sources.join(" "));
            }
        }
    }
    let plural = |n: usize, one: &str| {
        if n == 1 {
            format!("1 {one}")
        } else {
            format!("{n} {one}s")
        }
    };
    if !profile.exclude.is_empty() {
        let _ = write!(out, ", {}", plural(profile.exclude.len(), "exclude"));
    }
    if !profile.routes.is_empty() {
        let _ = write!(out, ", {}", plural(profile.routes.len(), "route"));
    }
    for rewrite in &profile.dns {
        let _ = write!(out, ", port {} -> {}", rewrite.port, rewrite.server);
    }
    let listen: Vec<String> = profile.listen.iter().map(|a| a.to_string()).collect();
    if !listen.is_empty() {
        let _ = write!(out, ", listens on {}", listen.join(" "));
    }
    if profile.on_failure == bindto_core::OnFailure::Allow {
        out.push_str(", on failure: allow");
    }
    out
}
