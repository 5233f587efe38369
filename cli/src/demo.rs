//! `bindto demo`: bindto at work in a few seconds, on any machine.
//!
//! It builds the end-to-end tests' lab (`bindto_tests::Lab`): a client
//! network namespace whose default route leaves through `wan0`, with a
//! second uplink `vpn0`, each to a server namespace that answers with its
//! own name. The same request then runs without bindto, with a profile,
//! and to an excluded address, and the answers show which uplink each left
//! through. The lab is removed at the end, also on failure (it is dropped
//! while unwinding) and on Ctrl-C (the signal only sets a flag; the lab's
//! own `ip` commands die of it and unwind, or the next step stops).
//!
//! Namespaces need root. Without it, the demo re-runs itself in an
//! unprivileged user namespace, as the lab's tests do, where the kernel
//! allows that.

use std::net::{IpAddr, SocketAddr};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bindto_core::{Config, Layer, Origin, Protocol, Source, Table};
use bindto_tests::privilege::CHILD_VAR;
use bindto_tests::{Lab, TARGETS_V4};

use crate::exit::{Fail, Outcome};
use crate::library;
use crate::style::Style;

/// The lab's server program, as cargo builds it and `make install` puts
/// it: beside bindto, or in `<prefix>/lib/bindto/`.
const SERVER: &str = "uplink-server";
const SERVER_PLACES: [&str; 2] = [".", "../lib/bindto"];

/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The demo's profile: everything through vpn0, except one address.
const PROFILE: &str = "\
[profile.demo]
interface = \"vpn0\"
exclude = [\"198.19.0.2\"]
";

/// Set by SIGINT, SIGTERM or SIGHUP.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

pub(crate) fn run() -> Outcome {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return rerun_in_user_namespace();
    }
    let exe = std::env::current_exe()
        .map_err(|e| Fail::problem(format!("cannot tell where bindto is: {e}")))?;
    library::locate().map_err(|m| Fail::problem(format!("the demo needs the library: {m}")))?;
    let server = find_server(&exe)?;
    if Command::new("ip").arg("-V").output().is_err() {
        return Err(Fail::problem(
            "the demo needs `ip` (iproute2) to build its namespaces",
        ));
    }
    catch_signals();

    // Lab steps panic on failure; the panic's message becomes the error,
    // and unwinding drops (removes) the lab.
    static PANIC: Mutex<Option<String>> = Mutex::new(None);
    panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| {
                info.payload()
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
            })
            .unwrap_or_else(|| "unknown failure".to_owned());
        *PANIC.lock().unwrap_or_else(|e| e.into_inner()) = Some(message);
    }));
    let result = panic::catch_unwind(AssertUnwindSafe(|| demo(&exe, &server)));
    let _ = panic::take_hook();
    match result {
        Ok(outcome) => outcome,
        Err(_) if INTERRUPTED.load(Ordering::Relaxed) => {
            Err(Fail::problem("interrupted; the lab was removed"))
        }
        Err(_) => {
            let message = PANIC.lock().unwrap_or_else(|e| e.into_inner()).take();
            Err(Fail::problem(format!(
                "the demo failed, and its lab was removed: {}",
                message.unwrap_or_default()
            )))
        }
    }
}

fn demo(exe: &Path, server: &Path) -> Outcome {
    let style = Style::stdout();
    let started = Instant::now();
    println!(
        "{}",
        style.bold("bindto demo: a throwaway lab of network namespaces, removed at the end")
    );
    println!(
        "  client namespace: wan0 -> server \"wan\"  (the default route)\n\
         \x20                   vpn0 -> server \"vpn\"  (a second uplink, like a VPN)\n\
         \x20 each server answers on {} and {} with its name and the client address it saw\n",
        TARGETS_V4[0], TARGETS_V4[1]
    );
    let Some(lab) = Lab::builder()
        .server_bin(server)
        .ports([80])
        .timeout(REQUEST_TIMEOUT)
        .build()
    else {
        return Err(Fail::problem(
            "this kernel refused to create network namespaces (see above)",
        ));
    };
    stop_if_interrupted()?;

    let config = lab.dir().join("profiles.toml");
    std::fs::write(&config, PROFILE)
        .map_err(|e| Fail::problem(format!("cannot write {}: {e}", config.display())))?;
    let table = demo_table(&config)?;
    println!("profile {}:", style.bold("demo"));
    for line in PROFILE.lines().skip(1) {
        println!("  {line}");
    }
    println!();

    let exe = exe.to_string_lossy();
    let config = config.to_string_lossy();
    let vars = [("BINDTO_CONFIG", config.as_ref())];
    let steps: [(&str, IpAddr, bool, &str); 3] = [
        ("without bindto", TARGETS_V4[0].into(), false, "wan"),
        ("with the profile", TARGETS_V4[0].into(), true, "vpn"),
        ("to the excluded address", TARGETS_V4[1].into(), true, "wan"),
    ];
    let mut wrong = 0;
    for (n, (title, target, bound, expected)) in steps.into_iter().enumerate() {
        let request = client(target, &exe);
        let mut args: Vec<&str> = Vec::new();
        if bound {
            args.extend([exe.as_ref(), "run", "-p", "demo", "--"]);
        }
        args.extend(request.iter().map(String::as_str));
        println!("{}. {title}:", n + 1);
        println!("   $ {}", shown(&args, &exe));
        let out = lab.run_client(&args, &vars);
        stop_if_interrupted()?;
        let answer = out.stdout.trim();
        let uplink = answer.split_whitespace().next().unwrap_or("");
        let why = if bound {
            let decision = table.decide(SocketAddr::new(target, 80), Protocol::Tcp);
            // The line of the profile shown above, not the lab's file.
            let line = decision
                .origin
                .location
                .as_ref()
                .and_then(|(_, line, _)| PROFILE.lines().nth((*line as usize).checked_sub(1)?));
            let rule = Origin {
                location: None,
                ..decision.origin.clone()
            };
            format!(", as {rule} says: {}", line.unwrap_or_default().trim())
        } else {
            ", the default route".to_owned()
        };
        if out.success() && uplink == expected {
            println!(
                "   {} {}",
                style.good(&format!("-> {answer}")),
                style.dim(&format!("(left through {uplink}0{why})"))
            );
        } else {
            wrong += 1;
            let detail = if out.timed_out {
                "timed out".to_owned()
            } else {
                format!("{}; stderr: {}", out.status, out.stderr.trim())
            };
            println!(
                "   {} {}",
                style.bad(&format!("-> {answer:?}")),
                style.bad(&format!(
                    "(expected it to leave through {expected}0: {detail})"
                ))
            );
        }
    }
    drop(lab);
    println!(
        "\nRemoved the lab ({:.1} s). Next: `bindto list`, `bindto explain -p NAME HOST`, \
         `bindto doctor -p NAME`.",
        started.elapsed().as_secs_f64()
    );
    if wrong > 0 {
        return Err(Fail::problem(format!(
            "{wrong} request(s) did not leave where bindto should have sent them"
        )));
    }
    Ok(ExitCode::SUCCESS)
}

/// The request: curl when installed (what users know), else bindto's own
/// minimal client, which goes through libc's connect like any program.
fn client(target: IpAddr, exe: &str) -> Vec<String> {
    let has_curl = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("curl").is_file()));
    if has_curl {
        ["curl", "-s", "--max-time", "3"]
            .map(str::to_owned)
            .into_iter()
            .chain([format!("http://{target}/")])
            .collect()
    } else {
        vec![exe.to_owned(), CLIENT.to_owned(), format!("{target}:80")]
    }
}

/// A command line as a user would type it: `bindto` for this executable.
fn shown(args: &[&str], exe: &str) -> String {
    args.iter()
        .map(|a| if *a == exe { "bindto" } else { a })
        .collect::<Vec<_>>()
        .join(" ")
}

fn demo_table(config: &Path) -> Result<Table, Fail> {
    let layer = Layer {
        source: Source::Environment,
        path: config.to_owned(),
        text: PROFILE.to_owned(),
        stamp: None,
    };
    let config = Config::from_layers(vec![layer]).map_err(|e| Fail::problem(e.to_string()))?;
    let profile = config
        .profile("demo")
        .map_err(|e| Fail::problem(e.to_string()))?;
    Ok(Table::compile(profile))
}

fn find_server(exe: &Path) -> Result<PathBuf, Fail> {
    let dir = exe.parent().unwrap_or(Path::new("/"));
    SERVER_PLACES
        .iter()
        .map(|place| dir.join(place).join(SERVER))
        .find(|path| path.is_file())
        .ok_or_else(|| {
            Fail::problem(format!(
                "the demo's {SERVER} is not beside {} nor in its ../lib/bindto: \
                 `cargo build --release` builds it, `make install` installs it",
                exe.display()
            ))
        })
}

/// Not root: run again as root of a new user namespace (with its own
/// network and mount namespaces), where the lab prepares a private /run;
/// or say what to do.
fn rerun_in_user_namespace() -> Outcome {
    let needs_root = "the demo builds network namespaces, which needs root: run `sudo bindto demo`";
    if std::env::var_os(CHILD_VAR).is_some() {
        return Err(Fail::problem(format!(
            "{needs_root} (re-run in a user namespace, but not root there)"
        )));
    }
    const UNSHARE: [&str; 4] = ["--user", "--map-root-user", "--net", "--mount"];
    let probe = Command::new("unshare").args(UNSHARE).arg("true").output();
    if !probe.is_ok_and(|o| o.status.success()) {
        return Err(Fail::problem(format!(
            "{needs_root} (this kernel does not allow unprivileged user namespaces)"
        )));
    }
    let exe = std::env::current_exe()
        .map_err(|e| Fail::problem(format!("cannot tell where bindto is: {e}")))?;
    let status = Command::new("unshare")
        .args(UNSHARE)
        .arg(exe)
        .arg("demo")
        .env(CHILD_VAR, "1")
        .status()
        .map_err(|e| Fail::problem(format!("cannot run unshare: {e}")))?;
    Ok(ExitCode::from(
        status.code().unwrap_or(1).clamp(0, 255) as u8
    ))
}

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

fn catch_signals() {
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe; the sigaction struct is fully initialised.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
}

fn stop_if_interrupted() -> Result<(), Fail> {
    if INTERRUPTED.load(Ordering::Relaxed) {
        Err(Fail::problem("interrupted; the lab was removed"))
    } else {
        Ok(())
    }
}

/// The first argument that makes `bindto` the demo's client (`main`).
pub(crate) const CLIENT: &str = "demo-client";

/// `bindto demo-client ADDR:PORT`: the demo's request where curl is
/// missing. Connects, sends a line, prints the answer line.
pub(crate) fn client_main(target: Option<String>) -> Outcome {
    use std::io::{BufRead, BufReader, Write};
    let target: SocketAddr = target
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| Fail::usage(format!("usage: bindto {CLIENT} ADDRESS:PORT")))?;
    let fail = |e: std::io::Error| Fail::problem(format!("{target}: {e}"));
    let mut stream =
        std::net::TcpStream::connect_timeout(&target, Duration::from_secs(3)).map_err(fail)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .map_err(fail)?;
    stream.write_all(b"bindto demo\n").map_err(fail)?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).map_err(fail)?;
    print!("{line}");
    Ok(ExitCode::SUCCESS)
}
