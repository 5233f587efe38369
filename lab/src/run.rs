//! Running a program in a namespace, with a clean environment and a time
//! limit, and finding the shim to preload into it.

use std::env;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs;
use std::io::{ErrorKind, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long a client may run before it is killed, unless the lab's builder
/// says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Names the shim to preload, overriding the search in `target/`.
pub const SHIM_VAR: &str = "BINDTO_SHIM";

/// The shim's file name, as cargo builds the `bindto-shim` cdylib.
pub const SHIM_FILE: &str = "libbindto.so";

/// The engine the shim (the front) loads from its own directory.
pub const ENGINE_FILE: &str = "libbindto_engine.so";

/// What a client run did.
#[derive(Debug)]
pub struct RunOutput {
    /// The command, for messages.
    pub command: String,
    /// How it ended (killed by SIGKILL if it timed out).
    pub status: ExitStatus,
    /// Everything it wrote to stdout (lossily decoded).
    pub stdout: String,
    /// Everything it wrote to stderr (lossily decoded).
    pub stderr: String,
    /// Whether it was killed for running out of time, or for leaving
    /// something running that still held its stdout or stderr.
    pub timed_out: bool,
}

impl RunOutput {
    /// Exited by itself, with status 0.
    pub fn success(&self) -> bool {
        !self.timed_out && self.status.success()
    }

    /// Asserts [`success`](Self::success) and returns stdout.
    #[track_caller]
    pub fn assert_success(&self) -> &str {
        assert!(self.success(), "expected success: {self}");
        &self.stdout
    }

    /// Asserts that it exited by itself (in time) with a failure status,
    /// and returns stderr.
    #[track_caller]
    pub fn assert_failure(&self) -> &str {
        assert!(
            !self.timed_out && !self.status.success(),
            "expected a failure: {self}"
        );
        &self.stderr
    }
}

impl fmt::Display for RunOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ended = if self.timed_out {
            "timed out and was killed".to_owned()
        } else {
            format!("exited ({})", self.status)
        };
        write!(
            f,
            "{} {ended}\n--- stdout\n{}\n--- stderr\n{}",
            self.command,
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }
}

/// Runs `args` in namespace `ns` and waits, at most `timeout`.
///
/// The environment is `PATH` plus `vars` (later ones win), nothing else, so
/// that the test's own environment (a developer's `BIND_PROFILE`, say)
/// cannot leak in. The variables are set by `env` at the last exec, so the
/// `ip` that switches namespaces runs without them: `LD_PRELOAD` is for the
/// program under test, not for the tools that start it.
///
/// # Panics
/// If `ip` cannot be started, or `args` is empty.
pub(crate) fn run_in(
    ns: &str,
    args: &[&str],
    vars: &[(&str, &str)],
    timeout: Duration,
) -> RunOutput {
    let program = args.first().expect("nothing to run");
    // `env` would take it for a variable.
    assert!(!program.contains('='), "program name {program:?} has a '='");
    let path = env::var_os("PATH").unwrap_or_default();
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, "env", "-i"])
        .arg(assignment("PATH", &path))
        .args(vars.iter().map(|(key, value)| {
            assert!(
                !key.is_empty() && !key.contains('='),
                "bad variable name {key:?}"
            );
            assignment(key, value.as_ref())
        }))
        .args(args)
        .env_clear()
        .env("PATH", &path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so that whatever it starts can be killed
        // with it.
        .process_group(0);
    let command = format!("{:?} (in {ns}, with {vars:?})", args.join(" "));
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run {cmd:?}: {error}"));
    let stdout = Capture::start(child.stdout.take().expect("stdout is piped"));
    let stderr = Capture::start(child.stderr.take().expect("stderr is piped"));

    let deadline = Instant::now() + timeout;
    let timed_out = loop {
        if exited(&child) && stdout.done() && stderr.done() {
            break false;
        }
        if Instant::now() >= deadline {
            break true;
        }
        thread::sleep(POLL);
    };
    // Kill the group even after a clean exit, so nothing a test started
    // outlives it. The leader is not reaped yet, so its pid, which is the
    // group's id, cannot have been reused.
    kill_group(&child);
    let status = child.wait().expect("cannot wait for the client");
    // Once the group is dead its pipes close; give the readers a moment.
    let settle = Instant::now() + Duration::from_secs(1);
    while !(stdout.done() && stderr.done()) && Instant::now() < settle {
        thread::sleep(POLL);
    }
    RunOutput {
        command,
        status,
        stdout: stdout.text(),
        stderr: stderr.text(),
        timed_out,
    }
}

/// How often a run is checked on.
const POLL: Duration = Duration::from_millis(5);

fn assignment(key: &str, value: &OsStr) -> OsString {
    let mut text = OsString::from(key);
    text.push("=");
    text.push(value);
    text
}

/// Whether the child has exited, without reaping it (`WNOWAIT`), so its
/// pid stays ours until [`Child::wait`].
fn exited(child: &Child) -> bool {
    // SAFETY: siginfo_t is plain old data, for which all zeroes is valid.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is a valid, writable siginfo_t; WNOWAIT leaves the
    // child unreaped, so Child::wait still works.
    let rc = unsafe {
        libc::waitid(
            libc::P_PID,
            child.id(),
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    // SAFETY: waitid filled `info` (or left it zeroed, when nothing has
    // changed state), so reading si_pid reads initialized memory.
    rc == 0 && unsafe { info.si_pid() } != 0
}

/// SIGKILLs the child's process group (the child leads it).
fn kill_group(child: &Child) {
    let group = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
    // SAFETY: kill has no memory-safety preconditions; the group is ours.
    unsafe { libc::kill(-group, libc::SIGKILL) };
}

/// A thread that collects everything from a pipe. The bytes are shared, so
/// they can be read even if something outside the killed group still holds
/// the pipe and the thread never finishes.
struct Capture {
    bytes: Arc<Mutex<Vec<u8>>>,
    reader: JoinHandle<()>,
}

impl Capture {
    fn start(mut pipe: impl Read + Send + 'static) -> Capture {
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&bytes);
        let reader = thread::spawn(move || {
            let mut chunk = [0; 4096];
            loop {
                match pipe.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => sink
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .extend_from_slice(&chunk[..n]),
                    Err(error) if error.kind() == ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        });
        Capture { bytes, reader }
    }

    fn done(&self) -> bool {
        self.reader.is_finished()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes.lock().unwrap_or_else(PoisonError::into_inner))
            .into_owned()
    }
}

/// The workspace's root directory (this crate's parent).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the lab crate lives in the workspace")
        .to_owned()
}

/// The absolute path of the shim to preload: `$BINDTO_SHIM` if set, else
/// `libbindto.so` from the release build, else from the debug build, in
/// the target directory the tests were built in or `<workspace>/target`.
///
/// # Panics
/// If there is none: build it first (`cargo build --release -p bindto-shim`).
pub fn shim_path() -> PathBuf {
    let mut targets = Vec::new();
    // The test binary runs from <target>/<profile>/deps, which also finds
    // a CARGO_TARGET_DIR elsewhere.
    if let Some(target) = env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(Path::to_owned))
    {
        targets.push(target);
    }
    targets.push(workspace_root().join("target"));
    find_shim(env::var_os(SHIM_VAR), &targets).unwrap_or_else(|message| panic!("{message}"))
}

/// The engine beside [`shim_path`], which the front loads.
pub fn engine_path() -> PathBuf {
    shim_path().with_file_name(ENGINE_FILE)
}

fn find_shim(overridden: Option<OsString>, targets: &[PathBuf]) -> Result<PathBuf, String> {
    if let Some(path) = overridden {
        return fs::canonicalize(&path)
            .map_err(|error| format!("{SHIM_VAR}={}: {error}", Path::new(&path).display()));
    }
    ["release", "debug"]
        .iter()
        .flat_map(|profile| targets.iter().map(move |target| target.join(profile)))
        .map(|dir| dir.join(SHIM_FILE))
        .find(|path| path.is_file())
        .map(|path| fs::canonicalize(&path).unwrap_or(path))
        .ok_or_else(|| {
            format!(
                "{SHIM_FILE} not found under {targets:?}: build it with \
                 `cargo build --release -p bindto-shim`, or set {SHIM_VAR}"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = env::temp_dir().join(format!("bindto-run-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn touch(path: &Path) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, "").unwrap();
    }

    #[test]
    fn release_shim_beats_debug_and_override_beats_both() {
        let dir = scratch("shim");
        let (one, two) = (dir.join("one"), dir.join("two"));
        let targets = [one.clone(), two.clone()];
        assert!(find_shim(None, &targets).is_err());

        touch(&one.join("debug").join(SHIM_FILE));
        assert_eq!(
            find_shim(None, &targets).unwrap(),
            one.join("debug").join(SHIM_FILE)
        );
        touch(&two.join("release").join(SHIM_FILE));
        assert_eq!(
            find_shim(None, &targets).unwrap(),
            two.join("release").join(SHIM_FILE)
        );
        let custom = dir.join("custom.so");
        touch(&custom);
        assert_eq!(
            find_shim(Some(custom.clone().into()), &targets).unwrap(),
            custom
        );
        assert!(find_shim(Some(dir.join("missing.so").into()), &targets).is_err());
        fs::remove_dir_all(dir).unwrap();
    }
}
