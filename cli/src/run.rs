//! `bindto run`: check everything that would leave the command unbound,
//! then exec it with the library preloaded and the profile selected, or,
//! for a program the library cannot see into (static, Go) and with
//! `--supervise`, run it supervised ([`crate::supervise`]).
//!
//! With the library, bindto execs rather than spawning, so the command
//! keeps bindto's pid, its signals and its exit status are its own, and
//! nothing of bindto stays around. Supervised, bindto stays the parent and
//! exits as the command did.

use std::ffi::OsString;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

use bindto_core::{Env, Table};

use crate::args::RunArgs;
use crate::exit::{Code, Fail, Outcome};
use crate::inspect::Unbound;
use crate::select::{self, Problem};
use crate::style::Style;
use crate::{inspect, library, supervise};

pub(crate) fn run(args: RunArgs) -> Outcome {
    let env = Env::from_process();
    let selected = select::select(&args.profile, &env).map_err(|p| match p {
        Problem::NoProfile => Fail::usage(p.message()),
        Problem::Flag(m) => Fail::refused(format!("refusing to run: {m}")),
        Problem::Invalid(_) => Fail::refused(format!(
            "refusing to run: {}\n(the library would block every connection; \
             `bindto check` shows the config's problems, `bindto list` its profiles)",
            p.message()
        )),
    })?;
    let library = library::locate().map_err(|m| Fail::refused(format!("refusing to run: {m}")))?;

    let (program, rest) = args
        .command
        .split_first()
        .ok_or_else(|| Fail::usage("no command to run"))?;
    let path_var = inspect::path_var();
    let resolved = inspect::resolve(program, path_var.as_deref()).map_err(|e| {
        let code = if e.kind() == io::ErrorKind::NotFound {
            Code::NotFound
        } else {
            Code::CannotExecute
        };
        Fail::new(code, format!("{}: {e}", program.to_string_lossy()))
    })?;

    let refused = |m: String| Fail::refused(format!("refusing to run: {m}"));
    let (preload, builds) = library::builds(&library);
    let mut lib_elfs = Vec::new();
    for front in &builds {
        let lib_elf = library::elf(front).map_err(refused)?;
        // The front loads the engine into the same process: one of another
        // target would not load, and every network call would be refused.
        let engine = library::engine_of(front);
        let engine_elf = library::elf(&engine).map_err(refused)?;
        if !engine_elf.same_target(&lib_elf) {
            return Err(refused(format!(
                "{} is {} but {} is {}; install both from one build",
                engine.display(),
                engine_elf.target(),
                front.display(),
                lib_elf.target()
            )));
        }
        lib_elfs.push(lib_elf);
    }
    let checked = inspect::check(&resolved, &lib_elfs, path_var.as_deref());
    // The library cannot see a static program's calls, nor a Go program's
    // (Go makes its own system calls even when dynamically linked).
    let needs = match &checked {
        Err(unbound @ Unbound::Static { .. }) => Some(unbound.explain(&resolved)),
        Ok(Some(elf)) if elf.go => Some(format!(
            "{} is a Go program, whose system calls bypass libbindto.so",
            resolved.display()
        )),
        _ if args.supervise => Some("--supervise was given".to_owned()),
        _ => None,
    };
    let unbound = match (&checked, needs) {
        (Err(Unbound::Static { .. }) | Ok(_), Some(needs)) => {
            let mut argv = vec![program.clone()];
            argv.extend(rest.iter().cloned());
            let table = Table::compile(&selected.profile);
            match supervise::run(&resolved, &argv, &selected.vars, &table) {
                Ok(code) => return Ok(code),
                Err(supervise::Error::Exec(error)) => return Err(exec_failed(program, &error)),
                Err(supervise::Error::Unavailable(why)) => Some(format!(
                    "{needs}; it needs supervision, which is not available here: {why}. \
                     `bindto doctor` says more; --allow-unbound runs it anyway, unbound."
                )),
            }
        }
        (Err(unbound), _) => Some(unbound.explain(&resolved)),
        (Ok(_), None) => None,
    };
    if let Some(why) = unbound {
        if !args.allow_unbound {
            return Err(Fail::refused(format!("refusing to run: {why}")));
        }
        let style = Style::stderr();
        eprintln!(
            "bindto: {}: running unbound as asked: {why}",
            style.warn("warning")
        );
    }

    let mut command = Command::new(&resolved);
    // argv[0] as typed: some programs look at their own name.
    command.arg0(program).args(rest);
    for (var, value) in &selected.vars {
        match value {
            Some(value) => command.env(var, value),
            None => command.env_remove(var),
        };
    }
    let existing = std::env::var("LD_PRELOAD").ok();
    command.env(
        "LD_PRELOAD",
        library::preload_list(&preload, existing.as_deref()),
    );
    Err(exec_failed(program, &command.exec()))
}

fn exec_failed(program: &OsString, error: &io::Error) -> Fail {
    let code = match error.kind() {
        io::ErrorKind::NotFound => Code::NotFound,
        _ => Code::CannotExecute,
    };
    Fail::new(
        code,
        format!("cannot execute {}: {error}", program.to_string_lossy()),
    )
}
