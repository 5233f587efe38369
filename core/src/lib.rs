//! The pure part of bindto: the profile language, the config layers and the
//! compiled decision table that the shim consults on every connect.
//!
//! Nothing here touches the network or libc. The only I/O is reading the
//! config files named by [`layers::paths`], so everything else can be tested
//! with plain strings.
//!
//! The flow is `Env` → [`layers::read`] → [`Config`] → [`Profile`] →
//! [`Table`], or `Env` → [`legacy::profile`] → [`Profile`] → [`Table`] for the
//! older tools' variables; [`setup`] does the whole walk for the shim.
//! Where no variable names a profile, the config's `[[match]]` rules may
//! ([`Config::matches`], [`matches::first_fit`]); [`matches::write_index`]
//! keeps them where the preloaded front reads them without parsing TOML.
#![forbid(unsafe_code)]

pub mod addr;
pub mod cache;
mod config;
mod env;
mod error;
pub mod layers;
pub mod legacy;
pub mod matches;
pub mod profile;
mod table;

pub use addr::{IfName, PortRange};
pub use config::{Config, KeyOrigin, ProfileInfo};
pub use env::Env;
pub use error::Error;
pub use layers::{Layer, Source};
pub use matches::{Match, User};
pub use profile::{Binding, DnsOptions, OnFailure, Origin, Profile, Protocol, RuleKind};
pub use table::{Decision, Table, Verdict};

/// What the environment asks of a process, and where it came from.
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "made once per process and moved straight into its holder"
)]
pub enum Setup {
    /// Neither `BIND_PROFILE` nor any of the older tools' variables: do nothing.
    PassThrough,
    /// A compiled table to consult.
    Table(Table),
}

/// Reads the environment and the config files it points at, and compiles the
/// table the process must follow, or takes it from `cache` when the files
/// are the ones it was compiled from (a profile's table only). Says what the
/// cache did, when there is one.
///
/// `secure` is the caller's word that the process runs with raised privileges
/// (AT_SECURE): only the root-owned system file counts then, and `env` must
/// be [`Env::privileged`].
pub fn setup(
    env: &Env,
    secure: bool,
    cache: Option<&cache::Dir>,
) -> Result<(Setup, Option<cache::Outcome>), Error> {
    if let Some(name) = env.profile() {
        if let Some(dir) = cache {
            let (table, outcome) = cache::table(dir, env, secure, name)?;
            return Ok((Setup::Table(table), Some(outcome)));
        }
        let config = Config::load(env, secure)?;
        return Ok((Setup::Table(Table::compile(config.profile(name)?)), None));
    }
    match legacy::profile(env)? {
        Some(profile) => Ok((Setup::Table(Table::compile(&profile)), None)),
        None => Ok((Setup::PassThrough, None)),
    }
}
