//! Exit codes and the error every subcommand returns.
//!
//! The codes are part of the interface (scripts test them), so they live in
//! one place and the help text is generated from the same table.

use std::fmt;
use std::process::ExitCode;

/// Why bindto stopped, as its exit status says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Code {
    /// `check`, `doctor`, `explain`, `list` or `demo` found a problem: a
    /// config that does not parse, an unknown profile, a failed check.
    Problem = 1,
    /// The command line is wrong (clap uses 2 for its own errors too).
    Usage = 2,
    /// `run` refused to start the command: it would leave unbound.
    Refused = 3,
    /// `run`: the command was found but could not be executed (as in sh).
    CannotExecute = 126,
    /// `run`: the command was not found (as in sh).
    NotFound = 127,
}

impl From<Code> for ExitCode {
    fn from(code: Code) -> ExitCode {
        ExitCode::from(code as u8)
    }
}

/// The exit codes, for `--help` and docs/REFERENCE.md ("Exit status").
pub(crate) const HELP: &str = "\
Exit status:
  0    success
  1    check, doctor, explain, list or demo found a problem (bad config,
       unknown profile, failed check)
  2    usage error
  3    run refused to start the command (static or Go binary where
       supervision is not available, setuid binary, unknown profile,
       config that does not parse, libbindto.so not found)
  126  run: the command cannot be executed
  127  run: the command was not found
  otherwise, run exits with the command's own status: bindto execs it, so
  it is the command's process, or supervising it, exits as it did (a shell
  shows a death by signal N as 128+N)";

/// A failed subcommand: the message to print and the status to exit with.
#[derive(Debug)]
pub(crate) struct Fail {
    pub(crate) code: Code,
    pub(crate) message: String,
}

impl Fail {
    pub(crate) fn new(code: Code, message: impl Into<String>) -> Fail {
        Fail {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn problem(message: impl Into<String>) -> Fail {
        Fail::new(Code::Problem, message)
    }

    pub(crate) fn usage(message: impl Into<String>) -> Fail {
        Fail::new(Code::Usage, message)
    }

    pub(crate) fn refused(message: impl Into<String>) -> Fail {
        Fail::new(Code::Refused, message)
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// What a subcommand returns: the status on success (0, or 1 when a check
/// found problems it already printed), or a failure to report.
pub(crate) type Outcome = Result<ExitCode, Fail>;
