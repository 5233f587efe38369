//! `bindto check [FILE]`: parse and compile the config, one line per
//! profile on success, `file:line:col: message` on failure; then the
//! `[[match]]` rules: counted, warned about where they cannot fit as
//! written, and (for the configured layers, not FILE) their index written
//! for the preloaded library.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bindto_core::cache::Dir;
use bindto_core::matches::{self, Match};
use bindto_core::{Config, Env, Profile, Source, User, layers};

use crate::args::CheckArgs;
use crate::exit::{Fail, Outcome};
use crate::style::Style;
use crate::users;

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
    let count = config.matches().len();
    if count > 0 {
        println!("{count} match{}", if count == 1 { "" } else { "es" });
    }
    for m in config.matches() {
        for warning in warnings(m) {
            eprintln!(
                "bindto: {}: {}:{}: {warning}",
                Style::stderr().warn("warning"),
                m.path.display(),
                m.line
            );
        }
    }
    if args.file.is_none() {
        write_indexes(&config, &env, style);
    }
    Ok(ExitCode::SUCCESS)
}

/// Why `m` may not fit what its writer meant.
fn warnings(m: &Match) -> Vec<String> {
    let mut out = Vec::new();
    // A pattern without wildcards or escapes names one file; the match
    // compares the executable's real path, which a link is not.
    if !m.program.contains(['*', '?', '[', '\\'])
        && let Ok(real) = Path::new(&m.program).canonicalize()
        && real != Path::new(&m.program)
    {
        out.push(format!(
            "program {} is reached through a symbolic link, and a match compares the real \
             path: write {} or a glob",
            m.program,
            real.display()
        ));
    }
    if let Some(User::Name(name)) = &m.user
        && users::uid(name).is_none()
    {
        out.push(format!(
            "user \"{name}\" is not in the user database: this match fits no one"
        ));
    }
    out
}

/// Writes the match index of each layer the user may: the system file's
/// as root only. Says where, or why not, for a layer with matches (the
/// index of one without spares the engine too, but is no news).
fn write_indexes(config: &Config, env: &Env, style: Style) {
    let euid = users::effective_uid();
    let cache = Dir::new(env, false, euid);
    for layer in config.layers() {
        let Some(dir) = matches::index_dir(layer, cache.as_ref()) else {
            continue;
        };
        let news = config.matches().iter().any(|m| m.is_in(layer));
        if layer.source == Source::System && euid != 0 {
            if news && !matches::index_is_fresh(layer, &dir) {
                println!(
                    "{} the index of {} is missing or stale: run `sudo bindto check` to \
                     write it, or every process loads the engine to read the file",
                    style.warn("note"),
                    layer.path.display()
                );
            }
            continue;
        }
        // An index of a file changed within the last second is written
        // stale (core::matches::SETTLE): wait, so that this one is trusted.
        if news && let Some(wait) = layer.stamp.as_ref().and_then(matches::unsettled) {
            std::thread::sleep(wait);
        }
        let written = matches::write_index(config, layer, &dir, users::uid);
        if !news {
            continue;
        }
        match written {
            Ok(path) => println!(
                "{} {} (index of {})",
                style.good("wrote"),
                path.display(),
                layer.path.display()
            ),
            Err(e) => eprintln!(
                "bindto: {}: cannot write the match index of {} in {}: {e}",
                Style::stderr().warn("warning"),
                layer.path.display(),
                dir.path().display()
            ),
        }
    }
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
