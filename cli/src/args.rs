//! The command line, as clap derives it.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueHint};
use clap_complete::Shell;

use crate::exit;

/// Run a program with its sockets bound to an interface or source address.
///
/// Profiles live in /etc/bindto/profiles.toml and
/// $XDG_CONFIG_HOME/bindto/profiles.toml (default
/// ~/.config/bindto/profiles.toml); BINDTO_CONFIG=FILE replaces both.
#[derive(Debug, Parser)]
#[command(name = "bindto", version, after_help = exit::HELP)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run a command with libbindto.so preloaded and a profile selected.
    ///
    /// A static or Go program, or any with --supervise, runs supervised at
    /// the system-call level (seccomp user notification) instead of with
    /// the library. Refuses, before starting anything, a command neither
    /// can cover: a static binary where this kernel does not allow
    /// supervision, a setuid,
    /// setgid or file-capability binary (the loader drops LD_PRELOAD), an
    /// unknown profile or a config that does not parse.
    #[command(after_help = exit::HELP)]
    Run(RunArgs),
    /// Parse and compile the config (or FILE), summarise each profile and
    /// count the [[match]] rules; write their index (the system file's as
    /// root) for the preloaded library.
    #[command(after_help = exit::HELP)]
    Check(CheckArgs),
    /// Show what a profile does with one destination, and which rule says
    /// so; with --program, which [[match]] chooses the profile.
    #[command(after_help = exit::HELP)]
    Explain(ExplainArgs),
    /// List the profiles, the files they come from and the keys a user
    /// file overrides, then the [[match]] rules.
    #[command(after_help = exit::HELP)]
    List,
    /// Check that this machine can do what a profile asks: interface up,
    /// routes, source addresses, DNS, permission to bind to a device.
    #[command(after_help = exit::HELP)]
    Doctor(DoctorArgs),
    /// Show bindto at work in throwaway network namespaces, removed
    /// afterwards (root, or an unprivileged user namespace; about a second).
    #[command(after_help = exit::HELP)]
    Demo,
    /// Print a shell completion script (e.g. `bindto completions bash >
    /// /etc/bash_completion.d/bindto`).
    Completions {
        /// The shell to complete for.
        shell: Shell,
    },
}

/// Which profile: a named one, or an ad-hoc one from flags (written for the
/// library as the older tools' variables).
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct ProfileArgs {
    /// The profile to use (see `bindto list`); default: $BIND_PROFILE.
    #[arg(short, long, value_name = "NAME",
          conflicts_with_all = ["interface", "source", "exclude", "dns"])]
    pub(crate) profile: Option<String>,
    /// Ad hoc, without a profile: bind to this interface (BIND_INTERFACE).
    #[arg(long, value_name = "IFNAME")]
    pub(crate) interface: Option<String>,
    /// Ad hoc: source address, at most one per family (BIND_SOURCE_IP).
    #[arg(long, value_name = "ADDR", value_delimiter = ',')]
    pub(crate) source: Vec<String>,
    /// Ad hoc: leave these destinations alone: CIDRs, addresses or octet
    /// prefixes such as 192.168. (BIND_EXCLUDE).
    #[arg(long, value_name = "NET", value_delimiter = ',')]
    pub(crate) exclude: Vec<String>,
    /// Ad hoc: send DNS (port 53) to this server instead
    /// (DNS_OVERRIDE_IP, DNS_OVERRIDE_PORT).
    #[arg(long, value_name = "IP[:PORT]")]
    pub(crate) dns: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(crate) profile: ProfileArgs,
    /// Run a binary neither the library nor supervision can bind (setuid,
    /// setgid, file capabilities, static where supervision is not
    /// available) anyway, knowing that its traffic is not bound.
    #[arg(long)]
    pub(crate) allow_unbound: bool,
    /// Decide every network system call in bindto (seccomp user
    /// notification) rather than in the preloaded library: also raw
    /// system calls, io_uring (refused), and children that clear their
    /// environment. Automatic for static and Go programs.
    #[arg(long)]
    pub(crate) supervise: bool,
    /// The command and its arguments (after `--` if they start with `-`).
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true,
          value_name = "CMD", value_hint = ValueHint::CommandWithArguments)]
    pub(crate) command: Vec<OsString>,
}

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// Check this file alone instead of the configured layers.
    #[arg(value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub(crate) file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct ExplainArgs {
    #[command(flatten)]
    pub(crate) profile: ProfileArgs,
    /// Destination: an address, address:port, [v6]:port or a host name
    /// (optional with --program).
    #[arg(value_name = "DEST", value_hint = ValueHint::Hostname,
          required_unless_present = "program")]
    pub(crate) destination: Option<String>,
    /// Destination port [default: 443, or 53 with --udp].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) port: Option<u16>,
    /// Decide for UDP instead of TCP.
    #[arg(long)]
    pub(crate) udp: bool,
    /// Say which [[match]] chooses the profile of this program (its real
    /// path, symbolic links resolved, is what a match compares), and
    /// explain DEST with that profile.
    #[arg(long, value_name = "PATH", value_hint = ValueHint::FilePath,
          conflicts_with_all = ["profile", "interface", "source", "exclude", "dns"])]
    pub(crate) program: Option<PathBuf>,
    /// With --program: the real user running it, a name or a uid
    /// [default: you].
    #[arg(long, value_name = "USER", requires = "program")]
    pub(crate) user: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct DoctorArgs {
    #[command(flatten)]
    pub(crate) profile: ProfileArgs,
}
