//! Helpers shared by the CLI's tests: a hermetic environment, temporary
//! directories, and an installed-looking copy of bindto with a stand-in
//! libbindto.so.
//!
//! Every command starts from an empty environment (PATH, and HOME and
//! XDG_CONFIG_HOME pointing into the test's own directory), so neither the
//! developer's profiles nor their BIND_* variables can change a result.

#![allow(dead_code, unreachable_pub)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Skips the calling test for `reason`: a line straight to fd 2, which
/// libtest does not capture (an `eprintln!` it would show only for a
/// failing test), or a failure when CI requires every test to run
/// (`BINDTO_E2E=require`).
#[track_caller]
pub fn skip(reason: &str) {
    use std::io::Write;
    assert!(
        std::env::var("BINDTO_E2E").as_deref() != Ok("require"),
        "BINDTO_E2E=require, but this test cannot run: {reason}"
    );
    let _ = writeln!(std::io::stderr(), "SKIP: {reason}");
}

/// The bindto binary cargo built for these tests.
pub const BINDTO: &str = env!("CARGO_BIN_EXE_bindto");

/// A temporary directory, removed on drop.
pub struct Scratch {
    pub dir: PathBuf,
}

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "bindto-cli-{}-{}-{name}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        // Readable by others, for tests that run bindto as another user.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        Scratch { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Writes `text` to `name` (creating directories) and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, text).unwrap();
        path
    }

    /// `bindto ARGS` with a hermetic environment rooted here.
    pub fn bindto(&self, args: &[&str]) -> Command {
        self.command(Path::new(BINDTO), args)
    }

    /// `exe ARGS` with a hermetic environment rooted here.
    pub fn command(&self, exe: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(exe);
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.path("home"))
            .env("XDG_CONFIG_HOME", self.path("xdg"))
            .current_dir(&self.dir);
        cmd
    }

    /// A copy of bindto installed as `<here>/prefix/bin/bindto`, with a
    /// stand-in `<here>/prefix/lib/bindto/libbindto.so` that announces on
    /// stderr each process it is loaded into (and a copy of it as the
    /// engine, `libbindto_engine.so`). `None` (and a note) without
    /// a C compiler.
    pub fn install(&self) -> Option<PathBuf> {
        let bin = self.path("prefix/bin");
        let lib = self.path("prefix/lib/bindto");
        fs::create_dir_all(&bin).unwrap();
        fs::create_dir_all(&lib).unwrap();
        let exe = bin.join("bindto");
        fs::copy(BINDTO, &exe).unwrap();
        let source = self.write(
            "stand-in.c",
            "#include <unistd.h>\n\
             __attribute__((constructor)) static void announce(void) {\n\
             \x20   static const char m[] = \"libbindto loaded\\n\";\n\
             \x20   write(2, m, sizeof m - 1);\n}\n",
        );
        let so = lib.join("libbindto.so");
        if !compile(&["-shared", "-fPIC"], &source, &so) {
            return None;
        }
        // The engine beside it, which `bindto run` requires; never loaded
        // by the stand-in.
        fs::copy(&so, lib.join("libbindto_engine.so")).unwrap();
        Some(exe)
    }

    /// A statically linked program that exits with `code`; `None` (and a
    /// note) if static linking is not available here.
    pub fn static_program(&self, code: u8) -> Option<PathBuf> {
        let source = self.write(
            "static.c",
            &format!("int main(void) {{ return {code}; }}\n"),
        );
        let out = self.path("static-program");
        compile(&["-static"], &source, &out).then_some(out)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// `cc FLAGS SOURCE -o OUT`; false (with a note) when it cannot be done.
fn compile(flags: &[&str], source: &Path, out: &Path) -> bool {
    match Command::new("cc")
        .args(flags)
        .arg(source)
        .arg("-o")
        .arg(out)
        .output()
    {
        Ok(o) if o.status.success() => true,
        Ok(o) => {
            skip(&format!(
                "cc {flags:?} failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ));
            false
        }
        Err(e) => {
            skip(&format!("no C compiler (cc): {e}"));
            false
        }
    }
}

/// Runs `cmd` and returns its output.
pub fn run(cmd: &mut Command) -> Output {
    retry_busy(cmd, Command::output)
}

/// Starts `cmd`.
pub fn spawn(cmd: &mut Command) -> std::process::Child {
    retry_busy(cmd, Command::spawn)
}

/// Retries "text file busy": a binary just copied by one test can be
/// briefly held open for writing by a child that another test's thread
/// forked meanwhile (until that child's exec closes it).
fn retry_busy<T>(cmd: &mut Command, f: fn(&mut Command) -> std::io::Result<T>) -> T {
    let mut tries = 0;
    loop {
        match f(cmd) {
            Ok(t) => return t,
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 50 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("cannot run {cmd:?}: {e}"),
        }
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts the exit code and returns (stdout, stderr).
#[track_caller]
pub fn expect(o: &Output, code: i32) -> (String, String) {
    let (out, err) = (stdout(o), stderr(o));
    assert_eq!(
        o.status.code(),
        Some(code),
        "expected exit {code}, got {:?}\n--- stdout\n{out}\n--- stderr\n{err}",
        o.status
    );
    (out, err)
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
