//! Runs every measurement of BENCHMARKS.md except the criterion bench
//! (whose results it reads) and writes the file, keeping the sections
//! other scripts measured ([`keep_by_hand`]). `benches/run.sh` builds what
//! it needs and calls it; see there for the arguments.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use bindto_benches::{profile_toml, random_rules};

/// What run.sh hands over.
#[derive(Debug, Default)]
struct Opts {
    smoke: bool,
    out: PathBuf,
    work: PathBuf,
    shim: PathBuf,
    netloop: PathBuf,
    bindlo: PathBuf,
    decide_count: PathBuf,
    criterion: PathBuf,
    command: String,
    /// (name, settings, library) per release-profile variant.
    variants: Vec<(String, String, PathBuf)>,
}

fn parse_args() -> Opts {
    let mut o = Opts::default();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--smoke" {
            o.smoke = true;
            continue;
        }
        let value = args
            .next()
            .unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--out" => o.out = value.into(),
            "--work" => o.work = value.into(),
            "--shim" => o.shim = value.into(),
            "--netloop" => o.netloop = value.into(),
            "--bindlo" => o.bindlo = value.into(),
            "--decide-count" => o.decide_count = value.into(),
            "--criterion" => o.criterion = value.into(),
            "--command" => o.command = value,
            "--variant" => {
                let mut parts = value.splitn(3, '|');
                let (Some(name), Some(settings), Some(lib)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    panic!("--variant NAME|SETTINGS|LIBRARY");
                };
                o.variants.push((name.into(), settings.into(), lib.into()));
            }
            _ => panic!("unknown argument {flag}"),
        }
    }
    o
}

/// Summary of repeated measurements.
#[derive(Debug, Clone, Copy)]
struct Stats {
    median: f64,
    min: f64,
    max: f64,
}

fn stats(values: &[f64]) -> Stats {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    };
    Stats {
        median,
        min: v.first().copied().unwrap_or(f64::NAN),
        max: v.last().copied().unwrap_or(f64::NAN),
    }
}

impl Stats {
    fn show(&self, unit: &str, digits: usize) -> String {
        format!(
            "{:.d$} {unit} ({:.d$}–{:.d$})",
            self.median,
            self.min,
            self.max,
            d = digits
        )
    }
}

/// How a program is started: environment and preload.
#[derive(Debug, Clone)]
struct Setup {
    name: &'static str,
    what: String,
    env: Vec<(String, String)>,
}

impl Setup {
    fn command(&self, program: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(program);
        c.args(args).envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }
}

fn output(mut c: Command) -> (String, String) {
    let out = c
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{c:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{c:?} failed: {stderr}");
    (stdout, stderr)
}

/// User-space instructions of a whole run (or of the functions matching
/// `toggle`), counted by callgrind.
fn instructions(
    o: &Opts,
    setup: &Setup,
    program: &Path,
    args: &[&str],
    toggle: Option<&str>,
) -> u64 {
    let mut c = Command::new("valgrind");
    c.arg("--tool=callgrind").arg(format!(
        "--callgrind-out-file={}",
        o.work.join("callgrind.out").display()
    ));
    if let Some(t) = toggle {
        c.arg(format!("--toggle-collect={t}"));
    }
    c.arg(program).args(args);
    c.envs(setup.env.iter().map(|(k, v)| (k, v)));
    let (_, stderr) = output(c);
    stderr
        .lines()
        .find_map(|l| l.split("Collected : ").nth(1))
        .and_then(|n| n.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no callgrind total in: {stderr}"))
}

/// Syscall counts per name of one run, by `strace -f -c`. The preload and
/// variables go to the traced program only (`-E`).
fn syscalls(o: &Opts, setup: &Setup, program: &Path, args: &[&str]) -> BTreeMap<String, i64> {
    let file = o.work.join("strace.out");
    let mut c = Command::new("strace");
    c.args(["-f", "-c", "-o"]).arg(&file);
    for (k, v) in &setup.env {
        c.arg("-E").arg(format!("{k}={v}"));
    }
    c.arg(program).args(args);
    output(c);
    let text = fs::read_to_string(&file).expect("strace output");
    let mut counts = BTreeMap::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.len() < 5 || words[0].starts_with('%') || words[0].starts_with('-') {
            continue;
        }
        let name = words[words.len() - 1];
        if name == "total" {
            continue;
        }
        if let Ok(calls) = words[3].parse::<i64>() {
            counts.insert(name.to_string(), calls);
        }
    }
    counts
}

/// A per-operation count with its sign, to three decimals at most: the
/// counts are whole numbers over N = 200, so the rest is float noise.
fn signed(x: f64) -> String {
    let text = format!("{x:+.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "+0".into()
    } else {
        text.into()
    }
}

fn read_proc(path: &str) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

fn first_line(program: &str, args: &[&str]) -> String {
    match Command::new(program)
        .args(args)
        .stderr(Stdio::null())
        .output()
    {
        Ok(out) => String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .to_string(),
        Err(_) => "?".into(),
    }
}

fn machine(o: &Opts) -> String {
    let cpuinfo = read_proc("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|m| m.trim_start_matches([' ', '\t', ':']))
        })
        .unwrap_or("?");
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = read_proc("/proc/meminfo");
    let memory = meminfo.lines().next().unwrap_or("?");
    let rows = [
        ("date", first_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"])),
        ("CPU", format!("{model}, nproc {nproc}")),
        (
            "kernel",
            read_proc("/proc/sys/kernel/osrelease").trim().to_string(),
        ),
        (
            "memory",
            memory.trim_start_matches("MemTotal:").trim().to_string(),
        ),
        ("rustc", first_line("rustc", &["-V"])),
        ("gcc", first_line("gcc", &["--version"])),
        ("valgrind", first_line("valgrind", &["--version"])),
        ("strace", first_line("strace", &["-V"])),
        (
            "source",
            first_line("git", &["describe", "--always", "--dirty"]),
        ),
        ("load average at start", load()),
        ("command", format!("`{}`", o.command)),
    ];
    let mut s = String::from("| | |\n| --- | --- |\n");
    for (k, v) in rows {
        let _ = writeln!(s, "| {k} | {v} |");
    }
    s
}

fn load() -> String {
    read_proc("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() {
    let o = parse_args();
    fs::create_dir_all(&o.work).expect("work directory");
    let started = Instant::now();
    let mut md = String::new();
    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(
        md,
        "What bindto costs, measured by `benches/run.sh` (see [Reproduce](#reproduce)), which \
         rewrites this file but for the sections measured by other scripts, each of which says \
         how. Every number is a median over repeated runs, with the range (min–max) in \
         parentheses; every ratio is taken between runs of the same round. How the numbers were \
         brought where they are, finding by finding, is in \
         [benches/analysis.md](benches/analysis.md).\n"
    );
    let _ = writeln!(md, "## Machine\n\n{}", machine(&o));
    let _ = writeln!(
        md,
        "**Load caveat.** This is a small shared machine (other builds may run at the same time). \
         Wall times move with that load: read them as medians of interleaved runs, and trust the \
         ratios more than the absolute numbers. The instruction counts (callgrind) and syscall \
         counts (strace) do not depend on load and are exact; targets are judged on them where \
         both exist.\n"
    );
    if o.smoke {
        let _ = writeln!(
            md,
            "**Smoke run**: tiny sizes and one round each. These numbers mean nothing.\n"
        );
    }

    let mut verdicts: Vec<(String, String, String, bool)> = Vec::new();
    decide_section(&o, &mut md, &mut verdicts);
    let files = write_profiles(&o);
    let setups = setups(&o, &files);
    connect_section(&o, &mut md, &mut verdicts, &setups);
    startup_section(&o, &mut md, &mut verdicts, &setups);
    size_section(&o, &mut md, &mut verdicts, &setups);
    variants_section(&o, &mut md, &files);

    let mut summary = String::from(
        "## Targets\n\n| what | target | measured | met |\n| --- | --- | --- | --- |\n",
    );
    for (what, target, measured, met) in &verdicts {
        let _ = writeln!(
            summary,
            "| {what} | {target} | {measured} | {} |",
            if *met { "yes" } else { "**no**" }
        );
    }
    let _ = writeln!(
        md,
        "## Reproduce\n\n    benches/run.sh            # everything, rewrites BENCHMARKS.md (25 minutes on this machine, most of it building)\n    benches/run.sh --smoke    # every step once at tiny sizes, writes target/bench-work/BENCHMARKS.smoke.md\n\n\
         Needs gcc, valgrind and strace (`apt-get install gcc valgrind strace binutils`); run as root or \
         with CAP_NET_RAW for SO_BINDTODEVICE. Load average at the end: {}; the measurements after the builds and the criterion bench took {:.0} s.",
        load(),
        started.elapsed().as_secs_f64()
    );
    // The summary goes first, after the machine.
    let at = md.find("## Decision cost").unwrap_or(md.len());
    md.insert_str(at, &format!("{summary}\n"));
    // run.sh runs from the workspace root.
    let previous = fs::read_to_string("BENCHMARKS.md").unwrap_or_default();
    let md = keep_by_hand(&md, &previous);
    fs::write(&o.out, md).expect("write the report");
    eprintln!("wrote {}", o.out.display());
}

/// The `## ` sections this program writes. Any other section of
/// BENCHMARKS.md was measured by another script or by hand, and says how.
const GENERATED: [&str; 8] = [
    "Machine",
    "Targets",
    "Decision cost against the rule count",
    "Per-connect cost",
    "Start-up",
    "Size and memory",
    "Release profile settings",
    "Reproduce",
];

/// `text`'s `## ` sections, each as (heading, its text up to the next).
fn sections(text: &str) -> Vec<(&str, &str)> {
    let starts: Vec<usize> = text.match_indices("\n## ").map(|(at, _)| at + 1).collect();
    starts
        .iter()
        .enumerate()
        .map(|(n, &start)| {
            let end = starts.get(n + 1).copied().unwrap_or(text.len());
            let section = &text[start..end];
            (section[3..].lines().next().unwrap_or(""), section)
        })
        .collect()
}

/// `md` with the sections of `previous` that this program does not write,
/// each after the generated section it followed there, or before
/// Reproduce when that one is not written this time (a smoke run).
fn keep_by_hand(md: &str, previous: &str) -> String {
    let mut after: BTreeMap<&str, String> = BTreeMap::new();
    let mut last = GENERATED[0];
    for (heading, text) in sections(previous) {
        if GENERATED.contains(&heading) {
            last = heading;
        } else {
            let kept = after.entry(last).or_default();
            kept.push_str(text.trim_end());
            kept.push_str("\n\n");
        }
    }
    let body = md.find("\n## ").map_or(md.len(), |at| at + 1);
    let mut out = md[..body].to_owned();
    let keep = |out: &mut String, kept: String| {
        if !out.ends_with("\n\n") {
            out.push('\n');
        }
        out.push_str(&kept);
    };
    for (heading, text) in sections(md) {
        if heading == "Reproduce" {
            let orphans = GENERATED.iter().filter(|&&h| h != heading);
            for kept in orphans.filter_map(|h| after.remove(h)) {
                keep(&mut out, kept);
            }
        }
        out.push_str(text);
        if let Some(kept) = after.remove(heading) {
            keep(&mut out, kept);
        }
    }
    out
}

/// Reads criterion's estimates of one benchmark: median (ns), range of the
/// samples' per-iteration means (ns).
fn criterion_result(o: &Opts, id: &str) -> Option<Stats> {
    let dir = o.criterion.join(id).join("new");
    let estimates = fs::read_to_string(dir.join("estimates.json")).ok()?;
    let median = number_after(
        &estimates[estimates.find("\"median\"")?..],
        "\"point_estimate\":",
    )?;
    let sample = fs::read_to_string(dir.join("sample.json")).ok()?;
    let iters = numbers_in(&sample, "\"iters\":")?;
    let times = numbers_in(&sample, "\"times\":")?;
    let per: Vec<f64> = iters.iter().zip(&times).map(|(i, t)| t / i).collect();
    let range = stats(&per);
    Some(Stats {
        median,
        min: range.min,
        max: range.max,
    })
}

fn number_after(text: &str, key: &str) -> Option<f64> {
    let rest = &text[text.find(key)? + key.len()..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].trim().parse().ok()
}

fn numbers_in(text: &str, key: &str) -> Option<Vec<f64>> {
    let rest = &text[text.find(key)? + key.len()..];
    let rest = &rest[rest.find('[')? + 1..];
    let end = rest.find(']')?;
    rest[..end]
        .split(',')
        .map(|n| n.trim().parse().ok())
        .collect()
}

const SIZES: [usize; 4] = [10, 1_000, 10_000, 100_000];

fn decide_section(o: &Opts, md: &mut String, verdicts: &mut Vec<(String, String, String, bool)>) {
    let _ = writeln!(md, "## Decision cost against the rule count\n");
    let _ = writeln!(
        md,
        "`Table::decide` on random profiles (half IPv4, half IPv6 prefixes of typical lengths, a \
         fifth of the routes with port filters, a fifth with protocol filters, a tenth excludes), \
         each call on the next of 4096 random destinations (half inside some rule, half anywhere). \
         `linear` is the naive reference: every rule looked at for every destination. Wall time \
         from criterion (`cargo bench -p bindto-benches --bench decide`; median of 100 samples, \
         range of the samples' means); instructions from callgrind on `decide_count` (runs of N \
         and 2N decisions inside one function, the difference divided by N), with the L1 and \
         last-level data misses callgrind's cache model (48 KiB L1, 2 MiB last level, as this \
         CPU's L1 and L2) predicts per decision.\n"
    );
    let _ = writeln!(
        md,
        "| rules | table: time | table: instructions | table: L1 / L2 misses | linear: time | linear: instructions | linear / table (time) |"
    );
    let _ = writeln!(md, "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let sizes: &[usize] = if o.smoke { &[10, 1_000] } else { &SIZES };
    let mut table_times = BTreeMap::new();
    for &n in sizes {
        // A smoke run only checks that the bench runs (`--test`).
        let t = criterion_result(o, &format!("table/{n}")).filter(|_| !o.smoke);
        let l = criterion_result(o, &format!("linear/{n}")).filter(|_| !o.smoke);
        let lookups = if o.smoke { 64 } else { 4096 };
        let count = |kind: &str, count: usize, cache: bool| -> (u64, u64, u64) {
            let mut c = Command::new("valgrind");
            c.arg("--tool=callgrind")
                .arg(format!(
                    "--callgrind-out-file={}",
                    o.work.join("callgrind.out").display()
                ))
                .arg("--toggle-collect=*lookups*");
            if cache {
                c.args(["--cache-sim=yes", "--D1=49152,12,64", "--LL=2097152,16,64"]);
            }
            c.arg(&o.decide_count)
                .args([kind, &n.to_string(), &count.to_string()]);
            let (_, stderr) = output(c);
            let nums: Vec<u64> = stderr
                .lines()
                .find_map(|l| l.split("Collected : ").nth(1))
                .map(|n| {
                    n.split_whitespace()
                        .filter_map(|x| x.parse().ok())
                        .collect()
                })
                .unwrap_or_default();
            // Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw
            match nums.as_slice() {
                [ir, _, _, _, d1, _, _, dl, ..] => (*ir, *d1, *dl),
                [ir, ..] => (*ir, 0, 0),
                _ => panic!("no callgrind total: {stderr}"),
            }
        };
        let per = |a: u64, b: u64, n: usize| (b as f64 - a as f64) / n as f64;
        let (i1, d1a, dla) = count("table", lookups, true);
        let (i2, d1b, dlb) = count("table", 2 * lookups, true);
        let table_ir = per(i1, i2, lookups);
        // The second pass over the same 4096 destinations is warm; the first
        // run's misses over its lookups are the cold figure.
        let (d1, dl) = (d1a as f64 / lookups as f64, dla as f64 / lookups as f64);
        let _ = (d1b, dlb);
        let linear_lookups = (lookups * 10 / n).clamp(4, lookups);
        let (j1, _, _) = count("linear", linear_lookups, false);
        let (j2, _, _) = count("linear", 2 * linear_lookups, false);
        let linear_ir = per(j1, j2, linear_lookups);
        let show = |s: Option<Stats>| match s {
            Some(s) if s.median >= 1e6 => format!(
                "{:.2} ms ({:.2}–{:.2})",
                s.median / 1e6,
                s.min / 1e6,
                s.max / 1e6
            ),
            Some(s) if s.median >= 1e3 => format!(
                "{:.1} µs ({:.1}–{:.1})",
                s.median / 1e3,
                s.min / 1e3,
                s.max / 1e3
            ),
            Some(s) => s.show("ns", 1),
            None => "–".into(),
        };
        let ratio = match (t, l) {
            (Some(t), Some(l)) => format!("{:.0}×", l.median / t.median),
            _ => "–".into(),
        };
        let _ = writeln!(
            md,
            "| {n} | {} | {table_ir:.0} | {d1:.1} / {dl:.1} | {} | {linear_ir:.0} | {ratio} |",
            show(t),
            show(l)
        );
        table_times.insert(n, (t, table_ir));
    }
    let _ = writeln!(
        md,
        "\nMisses are those of the first pass over the 4096 destinations (a cold-ish table); the criterion loop cycles through the same 4096, so its working set is partly cached.\n"
    );
    if let (Some((Some(small), ir10)), Some((Some(big), ir100k))) =
        (table_times.get(&10), table_times.get(&100_000))
    {
        verdicts.push((
            "decide, median at 100 000 rules".into(),
            "≤ 50 ns".into(),
            format!("{:.1} ns ({:.0} instructions)", big.median, ir100k),
            big.median <= 50.0,
        ));
        let ratio = big.median / small.median;
        verdicts.push((
            "decide, 100 000 rules / 10 rules".into(),
            "≤ 2×".into(),
            format!(
                "{ratio:.2}× time ({:.1} / {:.1} ns), {:.2}× instructions",
                big.median,
                small.median,
                ir100k / ir10
            ),
            ratio <= 2.0,
        ));
    }
}

struct Files {
    small: PathBuf,
    big: PathBuf,
    big_excluded: PathBuf,
    big_rules: usize,
}

fn write_profiles(o: &Opts) -> Files {
    // Loopback is only bound when a route names it: netloop's connects
    // and sends go to 127.0.0.1.
    let to_lo = "[[profile.lo.route]]\nto = \"127.0.0.0/8\"\n";
    let small = o.work.join("small.toml");
    fs::write(
        &small,
        format!("[profile.lo]\ninterface = \"lo\"\n{to_lo}\n[profile.excluded]\ninterface = \"lo\"\nexclude = [\"127.0.0.0/8\"]\n"),
    )
    .expect("write small.toml");
    let big_rules = 10_000;
    let rules = random_rules(big_rules, 10_000, &["lo"]);
    let big = o.work.join("rules10k.toml");
    fs::write(&big, profile_toml("lo", "lo", &[], &rules) + to_lo).expect("write rules10k.toml");
    let big_excluded = o.work.join("rules10k-excluded.toml");
    fs::write(
        &big_excluded,
        profile_toml("excluded", "lo", &["127.0.0.0/8"], &rules),
    )
    .expect("write rules10k-excluded.toml");
    Files {
        small,
        big,
        big_excluded,
        big_rules,
    }
}

/// The preload with `config`, its table cache in the work directory (so
/// that runs share it as a user's programs share `~/.cache/bindto`, and
/// the user's own is left alone).
fn shim_env(o: &Opts, shim: &Path, config: &Path, profile: &str) -> Vec<(String, String)> {
    vec![
        ("LD_PRELOAD".into(), shim.display().to_string()),
        ("BINDTO_CONFIG".into(), config.display().to_string()),
        ("BIND_PROFILE".into(), profile.into()),
        (
            "XDG_CACHE_HOME".into(),
            o.work.join("cache").display().to_string(),
        ),
    ]
}

/// `env` with the table cache turned off.
fn cold(mut env: Vec<(String, String)>) -> Vec<(String, String)> {
    env.push(("BINDTO_CACHE".into(), "0".into()));
    env
}

/// a, b, c, d of the issue, and b and c with a 10 000-rule profile.
fn setups(o: &Opts, f: &Files) -> Vec<Setup> {
    let shim = |name, what: &str, config: &Path, profile| Setup {
        name,
        what: what.into(),
        env: shim_env(o, &o.shim, config, profile),
    };
    vec![
        Setup {
            name: "a",
            what: "no preload".into(),
            env: Vec::new(),
        },
        shim(
            "b",
            "libbindto.so, `interface = \"lo\"` and a route naming 127.0.0.0/8",
            &f.small,
            "lo",
        ),
        shim(
            "c",
            "libbindto.so, `interface = \"lo\"`, destination excluded",
            &f.small,
            "excluded",
        ),
        Setup {
            name: "d",
            what: "minimal C shim `benches/cshim/bindlo.c` (SO_BINDTODEVICE lo)".into(),
            env: vec![
                ("LD_PRELOAD".into(), o.bindlo.display().to_string()),
                ("BIND_INTERFACE".into(), "lo".into()),
            ],
        },
        shim(
            "b10k",
            &format!("as b, plus {} random rules", f.big_rules),
            &f.big,
            "lo",
        ),
        shim(
            "c10k",
            &format!("as c, plus {} random rules", f.big_rules),
            &f.big_excluded,
            "excluded",
        ),
    ]
}

fn run_netloop(o: &Opts, s: &Setup, args: &[&str]) -> String {
    output(s.command(&o.netloop, args)).0
}

fn connect_section(
    o: &Opts,
    md: &mut String,
    verdicts: &mut Vec<(String, String, String, bool)>,
    setups: &[Setup],
) {
    let _ = writeln!(md, "## Per-connect cost\n");
    let _ = writeln!(
        md,
        "`benches/cshim/netloop.c` (gcc -O2) makes N loopback TCP connects (socket, connect, \
         close; a listener in the same process accepts and resets) or N `sendto` of 16 bytes on \
         one unconnected UDP socket, and times the loop alone. Variants:\n"
    );
    for s in setups {
        let _ = writeln!(md, "- **{}**: {}", s.name, s.what);
    }
    let (n_tcp, n_udp, rounds) = if o.smoke {
        (20, 200, 1)
    } else {
        (2_000, 20_000, 11)
    };
    // Interleaved: every round runs every variant, in an order that rotates.
    let mut times: BTreeMap<(&str, &str), Vec<f64>> = BTreeMap::new();
    for round in 0..rounds {
        for k in 0..setups.len() {
            let s = &setups[(k + round) % setups.len()];
            for (proto, n) in [("tcp", n_tcp), ("udp", n_udp)] {
                let ns: f64 = run_netloop(o, s, &[proto, &n.to_string()])
                    .trim()
                    .parse()
                    .expect("ns per op");
                times.entry((s.name, proto)).or_default().push(ns);
            }
        }
    }
    let _ = writeln!(
        md,
        "\nWall time per operation, {rounds} interleaved rounds of {n_tcp} connects and {n_udp} sends each:\n\n| variant | TCP connect | UDP sendto |\n| --- | ---: | ---: |"
    );
    for s in setups {
        let _ = writeln!(
            md,
            "| {} | {} | {} |",
            s.name,
            stats(&times[&(s.name, "tcp")]).show("ns", 0),
            stats(&times[&(s.name, "udp")]).show("ns", 0)
        );
    }
    let ratio = |x: &str, y: &str, proto: &str| -> Stats {
        let r: Vec<f64> = times[&(x, proto)]
            .iter()
            .zip(&times[&(y, proto)])
            .map(|(a, b)| a / b)
            .collect();
        stats(&r)
    };
    let _ = writeln!(
        md,
        "\nRatios, per round, then the median (range):\n\n| ratio | TCP connect | UDP sendto |\n| --- | ---: | ---: |"
    );
    for (x, y) in [
        ("b", "a"),
        ("c", "a"),
        ("b", "d"),
        ("b10k", "a"),
        ("b10k", "b"),
    ] {
        let _ = writeln!(
            md,
            "| {x}/{y} | {} | {} |",
            ratio(x, y, "tcp").show("", 3),
            ratio(x, y, "udp").show("", 3)
        );
    }

    // Syscalls: strace -c of N and 2N operations.
    let (m_tcp, m_udp) = if o.smoke { (5, 5) } else { (200, 200) };
    let _ = writeln!(
        md,
        "\n### Syscalls added per operation\n\n`strace -f -c` of runs with N and 2N operations (N = {m_tcp}); the difference divided by N, minus the same for **a**. Which calls were added is in brackets.\n\n| variant | TCP connect | UDP sendto |\n| --- | ---: | ---: |"
    );
    let per_op = |s: &Setup, proto: &str, n: usize| -> BTreeMap<String, f64> {
        // One run first, so that both counted runs find the table cache
        // written (else the first pays for writing it, and the difference
        // shows the cache's syscalls with a minus sign).
        output(s.command(&o.netloop, &[proto, "1"]));
        let one = syscalls(o, s, &o.netloop, &[proto, &n.to_string()]);
        let two = syscalls(o, s, &o.netloop, &[proto, &(2 * n).to_string()]);
        let mut per = BTreeMap::new();
        for name in one.keys().chain(two.keys()) {
            let d = two.get(name).copied().unwrap_or(0) - one.get(name).copied().unwrap_or(0);
            per.insert(name.clone(), d as f64 / n as f64);
        }
        per
    };
    let base_tcp = per_op(&setups[0], "tcp", m_tcp);
    let base_udp = per_op(&setups[0], "udp", m_udp);
    let added = |per: &BTreeMap<String, f64>, base: &BTreeMap<String, f64>| -> (f64, String) {
        let mut total = 0.0;
        let mut parts = Vec::new();
        for name in per
            .keys()
            .chain(base.keys())
            .collect::<std::collections::BTreeSet<_>>()
        {
            let d = per.get(name).copied().unwrap_or(0.0) - base.get(name).copied().unwrap_or(0.0);
            if d.abs() > 1e-9 {
                total += d;
                parts.push(format!("{} {name}", signed(d)));
            }
        }
        (total, parts.join(", "))
    };
    let mut sys_added = BTreeMap::new();
    for s in &setups[1..] {
        let (t, tw) = added(&per_op(s, "tcp", m_tcp), &base_tcp);
        let (u, uw) = added(&per_op(s, "udp", m_udp), &base_udp);
        let _ = writeln!(
            md,
            "| {} | {} [{tw}] | {} [{uw}] |",
            s.name,
            signed(t),
            signed(u)
        );
        sys_added.insert(s.name, (t, u));
    }
    // A connect's own syscalls are whole numbers; a fraction is the
    // once-a-second check of the config files (statx), which falls unevenly
    // between the two runs and belongs to no connect.
    for (name, what, target) in [
        ("b", "syscalls added per bound TCP connect (b)", 1.0),
        ("c", "syscalls added per excluded TCP connect (c)", 0.0),
    ] {
        let n = sys_added[name].0;
        let per_connect = n.round();
        verdicts.push((
            what.into(),
            if target == 0.0 { "0" } else { "exactly 1" }.into(),
            if per_connect == n {
                signed(n)
            } else {
                format!(
                    "{} ({} with the once-a-second config check)",
                    signed(per_connect),
                    signed(n)
                )
            },
            per_connect == target,
        ));
    }

    // Instructions: callgrind of N and 2N operations.
    let (k_tcp, k_udp) = if o.smoke { (5, 5) } else { (200, 200) };
    let _ = writeln!(
        md,
        "\n### User-space instructions added per operation\n\nCallgrind counts inside netloop's measured loop (`--toggle-collect=tcp_loop` or `udp_loop`: the hooks, libc and everything they call, after a first operation that paid for reading the config) in runs of N and 2N operations (N = {k_tcp} connects, {k_udp} sends); the difference divided by N, minus the same for **a** (whose own figure is the first row).\n\n| variant | TCP connect | UDP sendto |\n| --- | ---: | ---: |"
    );
    let per_op = |s: &Setup, proto: &str, n: usize| -> f64 {
        let toggle = Some(if proto == "tcp" {
            "tcp_loop"
        } else {
            "udp_loop"
        });
        let one = instructions(o, s, &o.netloop, &[proto, &n.to_string()], toggle);
        let two = instructions(o, s, &o.netloop, &[proto, &(2 * n).to_string()], toggle);
        (two as f64 - one as f64) / n as f64
    };
    let base = (
        per_op(&setups[0], "tcp", k_tcp),
        per_op(&setups[0], "udp", k_udp),
    );
    let _ = writeln!(md, "| a (itself) | {:.0} | {:.0} |", base.0, base.1);
    let mut ir_added = BTreeMap::new();
    for s in &setups[1..] {
        let t = per_op(s, "tcp", k_tcp) - base.0;
        let u = per_op(s, "udp", k_udp) - base.1;
        let _ = writeln!(md, "| {} | {t:+.0} | {u:+.0} |", s.name);
        ir_added.insert(s.name, (t, u));
    }
    let t = ir_added["b10k"].0;
    verdicts.push((
        "instructions added per bound TCP connect, 10 000 rules (b10k)".into(),
        "≤ 200".into(),
        format!("{t:.0} (d, the C shim: {:.0})", ir_added["d"].0),
        t <= 200.0,
    ));
}

fn startup_section(
    o: &Opts,
    md: &mut String,
    verdicts: &mut Vec<(String, String, String, bool)>,
    setups: &[Setup],
) {
    let _ = writeln!(md, "## Start-up\n");
    let truth = Path::new("/bin/true");
    let pick = |name: &str| {
        setups
            .iter()
            .find(|s| s.name == name)
            .expect("setup")
            .clone()
    };
    let (a, b, d, b10k) = (pick("a"), pick("b"), pick("d"), pick("b10k"));
    // What the front saves: the engine preloaded directly, as before the
    // front existed.
    let engine = Setup {
        name: "b engine",
        what: "as b, but libbindto_engine.so preloaded directly, without the front".into(),
        env: b
            .env
            .iter()
            .map(|(k, v)| match k.as_str() {
                "LD_PRELOAD" => (k.clone(), engine_of(&o.shim).display().to_string()),
                _ => (k.clone(), v.clone()),
            })
            .collect(),
    };
    let execed = [&a, &b, &engine, &d];
    let ir: Vec<(Setup, u64)> = execed
        .iter()
        .map(|s| ((*s).clone(), instructions(o, s, truth, &[], None)))
        .collect();
    let (rounds, execs) = if o.smoke { (1, 5) } else { (11, 100) };
    let mut wall: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for round in 0..rounds {
        for k in 0..execed.len() {
            let s = execed[(k + round) % execed.len()];
            let start = Instant::now();
            for _ in 0..execs {
                output(s.command(truth, &[]));
            }
            wall.entry(s.name)
                .or_default()
                .push(start.elapsed().as_secs_f64() * 1e6 / execs as f64);
        }
    }
    let _ = writeln!(
        md,
        "Exec of `/bin/true`, which never touches the network: callgrind's total, and wall time per fork+exec+wait from a Rust parent ({rounds} interleaved rounds of {execs}). libbindto.so is the front, which never loads the engine in a process that makes no hooked call; **b engine** preloads the engine itself, as before the front.\n\n| variant | instructions | added | wall time | added |\n| --- | ---: | ---: | ---: | ---: |"
    );
    let base_wall = stats(&wall["a"]).median;
    for (s, n) in &ir {
        let w = stats(&wall[s.name]);
        let _ = writeln!(
            md,
            "| {} ({}) | {n} | {:+} | {} | {:+.0} µs |",
            s.name,
            s.what,
            *n as i64 - ir[0].1 as i64,
            w.show("µs", 0),
            w.median - base_wall
        );
    }
    let added = ir[1].1 as i64 - ir[0].1 as i64;
    verdicts.push((
        "instructions added to exec of /bin/true".into(),
        "≤ 60 000".into(),
        format!(
            "{added} (engine preloaded directly: {}; C shim: {})",
            ir[2].1 as i64 - ir[0].1 as i64,
            ir[3].1 as i64 - ir[0].1 as i64
        ),
        added <= 60_000,
    ));

    // First connect: config read + compile, or the cached table.
    let b10k_cold = Setup {
        name: "b10k cold",
        what: "as b10k, table cache off (`BINDTO_CACHE=0`): read, parse and compile".into(),
        env: cold(b10k.env.clone()),
    };
    let variants = [&a, &b, &b10k, &b10k_cold];
    // One run each first, so that the cache the warm variants read exists.
    for s in variants {
        run_netloop(o, s, &["first"]);
    }
    let firsts = if o.smoke { 1 } else { 11 };
    let mut first: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut second: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for round in 0..firsts {
        for k in 0..variants.len() {
            let s = variants[(k + round) % variants.len()];
            let out = run_netloop(o, s, &["first"]);
            let mut it = out
                .split_whitespace()
                .map(|x| x.parse::<f64>().expect("ns"));
            first
                .entry(s.name)
                .or_default()
                .push(it.next().unwrap_or(f64::NAN) / 1e3);
            second
                .entry(s.name)
                .or_default()
                .push(it.next().unwrap_or(f64::NAN) / 1e3);
        }
    }
    let first_ir: Vec<u64> = variants
        .iter()
        .map(|s| instructions(o, s, &o.netloop, &["first"], None))
        .collect();
    let _ = writeln!(
        md,
        "\nFirst connect: `netloop first` times socket()+connect() of a UDP socket (no packet leaves) twice; the first pays for setting up the rules: reading the config and compiling it, or, when an earlier process compiled the same files, loading the compiled table from the cache (`$XDG_CACHE_HOME/bindto`, here in the work directory, warmed by one run before the rounds). {firsts} interleaved runs; instructions are the whole process's, minus **a**.\n\n| variant | first connect | second connect | instructions added (whole run) |\n| --- | ---: | ---: | ---: |"
    );
    for (i, s) in variants.iter().enumerate() {
        let _ = writeln!(
            md,
            "| {} ({}) | {} | {} | {:+} |",
            s.name,
            s.what,
            stats(&first[s.name]).show("µs", 0),
            stats(&second[s.name]).show("µs", 1),
            first_ir[i] as i64 - first_ir[0] as i64
        );
    }
    let warm = stats(&first["b10k"]).median / 1e3;
    let cold = stats(&first["b10k cold"]).median / 1e3;
    verdicts.push((
        "first connect with 10 000 rules (read + compile)".into(),
        "≤ 5 ms".into(),
        format!(
            "{warm:.2} ms with the table cached by an earlier process; {cold:.2} ms compiling (first run after an edit)"
        ),
        warm <= 5.0,
    ));
    let _ = writeln!(md);
}

/// The engine beside the front at `front`.
fn engine_of(front: &Path) -> PathBuf {
    front.with_file_name("libbindto_engine.so")
}

fn file_size(p: &Path) -> u64 {
    fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

fn stripped_size(o: &Opts, lib: &Path) -> u64 {
    let copy = o.work.join("stripped.so");
    let status = Command::new("strip")
        .arg("--strip-all")
        .arg("-o")
        .arg(&copy)
        .arg(lib)
        .status();
    assert!(status.is_ok_and(|s| s.success()), "strip {}", lib.display());
    file_size(&copy)
}

fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / 1024.0 / 1024.0)
}

fn size_section(
    o: &Opts,
    md: &mut String,
    verdicts: &mut Vec<(String, String, String, bool)>,
    setups: &[Setup],
) {
    let _ = writeln!(md, "## Size and memory\n");
    let engine = engine_of(&o.shim);
    let (built, engine_built) = (file_size(&o.shim), file_size(&engine));
    let (stripped, engine_stripped) = (stripped_size(o, &o.shim), stripped_size(o, &engine));
    let (total_built, total) = (built + engine_built, stripped + engine_stripped);
    let c = stripped_size(o, &o.bindlo);
    let _ = writeln!(
        md,
        "A process that asks for bindto loads both the front and the engine.\n\n| library | as built | stripped (`strip --strip-all`) |\n| --- | ---: | ---: |\n| libbindto.so (front) | {} ({built} B) | {} ({stripped} B) |\n| libbindto_engine.so (engine) | {} ({engine_built} B) | {} ({engine_stripped} B) |\n| both | {} | {} |\n| bindlo.so (C) | {} B | {c} B |\n",
        mib(built),
        mib(stripped),
        mib(engine_built),
        mib(engine_stripped),
        mib(total_built),
        mib(total),
        file_size(&o.bindlo)
    );
    verdicts.push((
        "stripped engine + front".into(),
        "≤ 1.5 MiB".into(),
        format!("{} (front {} B)", mib(total), stripped),
        total <= 1536 * 1024,
    ));
    let rounds = if o.smoke { 1 } else { 11 };
    let mut rss: BTreeMap<&str, Vec<[f64; 3]>> = BTreeMap::new();
    for round in 0..rounds {
        for k in 0..setups.len() {
            let s = &setups[(k + round) % setups.len()];
            let out = run_netloop(o, s, &["rss"]);
            let v: Vec<f64> = out
                .split_whitespace()
                .map(|x| x.parse().expect("KiB"))
                .collect();
            rss.entry(s.name).or_default().push([v[0], v[1], v[2]]);
        }
    }
    let column = |name: &str, i: usize| -> Stats {
        let v: Vec<f64> = rss[name].iter().map(|r| r[i]).collect();
        stats(&v)
    };
    let _ = writeln!(
        md,
        "Resident memory: `netloop rss` makes one UDP connect (so the config is read and the table built), then prints its VmRSS, and the anonymous (heap, stacks) and file-backed (mapped libraries) parts of it; {rounds} interleaved runs.\n\n| variant | VmRSS | added | RssAnon | RssFile |\n| --- | ---: | ---: | ---: | ---: |"
    );
    let base = column("a", 0).median;
    let rss = |name: &str| column(name, 0);
    for s in setups {
        let r = column(s.name, 0);
        let _ = writeln!(
            md,
            "| {} ({}) | {} | {:+.0} KiB | {:.0} KiB | {:.0} KiB |",
            s.name,
            s.what,
            r.show("KiB", 0),
            r.median - base,
            column(s.name, 1).median,
            column(s.name, 2).median
        );
    }
    let added = rss("b").median - base;
    let added10k = rss("b10k").median - base;
    verdicts.push((
        "resident memory added (b; b10k)".into(),
        "≤ 1 MiB".into(),
        format!("{added:.0} KiB; {added10k:.0} KiB"),
        added <= 1024.0,
    ));
    let _ = writeln!(md);
}

fn variants_section(o: &Opts, md: &mut String, files: &Files) {
    if o.variants.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "## Release profile settings\n\nThe engine (libbindto_engine.so, preloaded directly: the front's own profile is fixed in `shim/front/Cargo.toml`) built with each setting changed alone from the workspace's `[profile.release]` (`CARGO_PROFILE_RELEASE_*` overrides, each in its own target directory). `panic` stays `unwind`: the engine catches panics at the FFI boundary. Instructions are callgrind counts: exec of `/bin/true`, added per bound TCP connect with 10 000 rules (N and 2N), and a whole `netloop first` run with 10 000 rules (read + compile + one connect).\n\n| settings | as built | stripped | /bin/true | per connect (b10k) | first connect (b10k) |\n| --- | ---: | ---: | ---: | ---: | ---: |"
    );
    let none = Setup {
        name: "a",
        what: String::new(),
        env: Vec::new(),
    };
    let n = if o.smoke { 5 } else { 100 };
    let base_true = instructions(o, &none, Path::new("/bin/true"), &[], None);
    let loop_only = Some("tcp_loop");
    let base_one = instructions(o, &none, &o.netloop, &["tcp", &n.to_string()], loop_only);
    let base_two = instructions(
        o,
        &none,
        &o.netloop,
        &["tcp", &(2 * n).to_string()],
        loop_only,
    );
    let base_first = instructions(o, &none, &o.netloop, &["first"], None);
    for (name, settings, lib) in &o.variants {
        let s = Setup {
            name: "v",
            what: String::new(),
            // Compiled every time: the column is the cost of compiling.
            env: cold(shim_env(o, lib, &files.big, "lo")),
        };
        let t = instructions(o, &s, Path::new("/bin/true"), &[], None) as i64 - base_true as i64;
        let one = instructions(o, &s, &o.netloop, &["tcp", &n.to_string()], loop_only);
        let two = instructions(o, &s, &o.netloop, &["tcp", &(2 * n).to_string()], loop_only);
        let per = (two as f64 - one as f64 - (base_two as f64 - base_one as f64)) / n as f64;
        let first = instructions(o, &s, &o.netloop, &["first"], None) as i64 - base_first as i64;
        let _ = writeln!(
            md,
            "| {name}: `{settings}` | {} | {} | {t:+} | {per:+.0} | {first:+} |",
            mib(file_size(lib)),
            mib(stripped_size(o, lib))
        );
    }
    let _ = writeln!(md);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_measured_elsewhere_stay_where_they_were() {
        let md = "# B\n\nintro\n\n## Machine\n\nm\n\n## Per-connect cost\n\np\n\n\
                  ## Release profile settings\n\nr\n\n## Reproduce\n\nx";
        let previous = "# B\n\nold\n\n## Per-connect cost\n\nold p\n\n\
                        ## 32-bit programs\n\ni\n\n## Release profile settings\n\nold r\n\n\
                        ## Supervision\n\ns\n## Resolver\n\nd\n\n## Reproduce\n\nold x\n";
        assert_eq!(
            keep_by_hand(md, previous),
            "# B\n\nintro\n\n## Machine\n\nm\n\n## Per-connect cost\n\np\n\n\
             ## 32-bit programs\n\ni\n\n## Release profile settings\n\nr\n\n\
             ## Supervision\n\ns\n\n## Resolver\n\nd\n\n## Reproduce\n\nx"
        );
        assert_eq!(keep_by_hand(md, ""), md);

        let smoke = md.replace("## Release profile settings\n\nr\n\n", "");
        assert_eq!(
            keep_by_hand(&smoke, previous),
            "# B\n\nintro\n\n## Machine\n\nm\n\n## Per-connect cost\n\np\n\n\
             ## 32-bit programs\n\ni\n\n\
             ## Supervision\n\ns\n\n## Resolver\n\nd\n\n## Reproduce\n\nx"
        );
    }
}
