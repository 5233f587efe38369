//! `bindto`: runs programs with libbindto.so preloaded, and explains,
//! checks and demonstrates what a profile does.
//!
//! Each subcommand lives in the module of its name; `exit` holds the exit
//! codes they share.

// The workspace warns on stdout printing to keep the shim off a program's
// stdout; printing results is what this binary is for.
#![allow(clippy::print_stdout)]

mod args;
mod check;
mod demo;
mod doctor;
mod elf;
mod exit;
mod explain;
mod host;
mod inspect;
mod library;
mod list;
mod run;
mod select;
mod style;
mod supervise;
mod users;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::args::{Cli, Command};
use crate::exit::Outcome;
use crate::style::Style;

fn main() -> ExitCode {
    // The demo's own client where curl is missing: not a command users
    // type, so not in the parser, its help or the completions.
    let mut args = std::env::args();
    if args.nth(1).as_deref() == Some(demo::CLIENT) {
        return finish(demo::client_main(args.next()));
    }
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Run(_)) {
        // Output cut short (`bindto list | head -1`) ends the command
        // quietly, as it ends `cat`, instead of a panic on BrokenPipe.
        // Not for `run`, which stays the parent of what it supervises.
        // SAFETY: no other thread yet; SIG_DFL is a valid disposition.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    let outcome: Outcome = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Check(args) => check::run(args),
        Command::Explain(args) => explain::run(args),
        Command::List => list::run(),
        Command::Doctor(args) => doctor::run(args),
        Command::Demo => demo::run(),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "bindto", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
    };
    finish(outcome)
}

/// The exit code of `outcome`, its error on stderr.
fn finish(outcome: Outcome) -> ExitCode {
    match outcome {
        Ok(code) => code,
        Err(fail) => {
            let style = Style::stderr();
            eprintln!("bindto: {}: {fail}", style.bad("error"));
            fail.code.into()
        }
    }
}
