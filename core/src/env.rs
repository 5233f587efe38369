use std::path::PathBuf;

/// The environment variables bindto reads, captured once.
///
/// The core never calls `getenv` itself: the shim and the CLI hand it what
/// they read, which keeps the core pure and lets tests state their
/// environment exactly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    vars: Vec<(&'static str, String)>,
}

impl Env {
    /// Every variable that can change what bindto does.
    pub const VARS: &'static [&'static str] = &[
        "BIND_PROFILE",
        "BINDTO_CONFIG",
        "XDG_CONFIG_HOME",
        "HOME",
        "BIND_INTERFACE",
        "BIND_SOURCE_IP",
        "BIND_ADDR",
        "BIND_EXCLUDE",
        "DNS_OVERRIDE_IP",
        "DNS_OVERRIDE_PORT",
        "XDG_CACHE_HOME",
        "BINDTO_CACHE",
    ];

    /// Captures the variables of [`Env::VARS`] through `lookup`; variables
    /// that are unset or not UTF-8 are left out.
    pub fn capture(mut lookup: impl FnMut(&str) -> Option<String>) -> Env {
        let vars = Env::VARS
            .iter()
            .filter_map(|&name| lookup(name).map(|value| (name, value)))
            .collect();
        Env { vars }
    }

    /// The process environment, through `std::env`.
    pub fn from_process() -> Env {
        Env::capture(|name| std::env::var(name).ok())
    }

    /// An environment of exactly these variables (names outside
    /// [`Env::VARS`] are ignored).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Env {
        let pairs: Vec<_> = pairs.into_iter().collect();
        Env::capture(|name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    /// The environment a privileged process (AT_SECURE: setuid, setgid,
    /// file capabilities) follows: without the older tools' variables,
    /// which would let whoever runs a setuid program choose its interface,
    /// source address, excludes and DNS server, as glibc ignores
    /// `RES_OPTIONS`, `LOCALDOMAIN` and `HOSTALIASES` there. What the
    /// others select is then decided by the root-owned system file alone
    /// (see [`crate::layers::paths`]).
    pub fn privileged(mut self) -> Env {
        self.vars
            .retain(|(name, _)| !crate::legacy::is_variable(name));
        self
    }

    /// The value of `name`, treating an empty value as unset.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// Whether anything is asked of bindto: `BIND_PROFILE` or one of the
    /// older tools' variables that select a binding. When not, a process
    /// passes through without reading any file.
    pub fn asks_anything(&self) -> bool {
        self.profile().is_some()
            || crate::legacy::SELECTORS
                .iter()
                .any(|v| self.get(v).is_some())
    }

    /// The profile selected by `BIND_PROFILE`.
    pub fn profile(&self) -> Option<&str> {
        self.get(bindto_abi::hooks::PROFILE)
    }

    /// Every variable captured, in [`Env::VARS`] order.
    pub(crate) fn vars(&self) -> &[(&'static str, String)] {
        &self.vars
    }

    pub(crate) fn path(&self, name: &str) -> Option<PathBuf> {
        self.get(name).map(PathBuf::from)
    }
}
