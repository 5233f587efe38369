//! Resolver settings: the profile's `[profile.X.dns]` keys, else
//! `/etc/resolv.conf`'s `search`/`domain` and `options`, else the
//! resolver's defaults. Only these four settings are read: the nameserver
//! is always the profile's.

use std::time::Duration;

use bindto_core::DnsOptions;

use super::wire::{Query, RecordType};

/// Defaults of glibc's resolver, except the timeout, which glibc also
/// takes as 5 s.
const NDOTS: u8 = 1;
const TIMEOUT_MS: u32 = 5000;
const ATTEMPTS: u8 = 2;

/// Resolv.conf caps, as glibc does (`RES_MAXNDOTS`, `RES_MAXRETRANS`,
/// `RES_MAXRETRY`).
const MAX_NDOTS: u8 = 15;
const MAX_TIMEOUT_S: u32 = 30;
const MAX_ATTEMPTS: u8 = 5;

/// The settings one lookup uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Conf {
    /// Domains appended to a name with fewer than `ndots` dots (and tried
    /// after the bare name otherwise).
    pub(crate) search: Vec<String>,
    pub(crate) ndots: u8,
    /// How long to wait for the answers of one attempt.
    pub(crate) timeout: Duration,
    /// Tries over UDP before giving up.
    pub(crate) attempts: u8,
}

impl Conf {
    /// The settings for a profile with `options`, `system` (resolv.conf,
    /// see [`super::files::conf`]) filling in what it leaves open.
    pub(crate) fn merge(options: &DnsOptions, system: &System) -> Conf {
        Conf {
            search: options
                .search
                .clone()
                .or_else(|| system.search.clone())
                .unwrap_or_default(),
            ndots: options.ndots.or(system.ndots).unwrap_or(NDOTS),
            timeout: Duration::from_millis(
                options
                    .timeout_ms
                    .or(system.timeout_ms)
                    .unwrap_or(TIMEOUT_MS)
                    .into(),
            ),
            attempts: options
                .attempts
                .or(system.attempts)
                .unwrap_or(ATTEMPTS)
                .max(1),
        }
    }

    /// The names to query for `name`, in order, as glibc's `res_search`
    /// tries them: a name ending in a dot only as it is; a name with at
    /// least `ndots` dots first as it is, then with each search domain; a
    /// shorter one with each search domain first, then as it is.
    pub(crate) fn candidates<'a>(&'a self, name: &'a str) -> impl Iterator<Item = Candidate<'a>> {
        let alone = Candidate {
            name: name.strip_suffix('.').unwrap_or(name),
            domain: None,
        };
        let absolute = name.ends_with('.');
        let searched = self
            .search
            .iter()
            .filter(move |_| !absolute)
            .map(move |domain| Candidate {
                name,
                domain: Some(domain),
            });
        let dots = name.bytes().filter(|&b| b == b'.').count();
        let first = absolute || dots >= usize::from(self.ndots);
        let before = first.then_some(alone);
        let after = (!first).then_some(alone);
        before.into_iter().chain(searched).chain(after)
    }
}

/// One name to query: a name as given, or under a search domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Candidate<'a> {
    name: &'a str,
    domain: Option<&'a str>,
}

impl Candidate<'_> {
    /// The query for this name, or `None` if it is not a domain name.
    pub(crate) fn query(&self, id: u16, kind: RecordType) -> Option<Query> {
        match self.domain {
            None => Query::new(id, self.name, kind),
            Some(domain) => Query::within(id, self.name, domain, kind),
        }
    }

    /// The name as text, without a final dot.
    pub(crate) fn text(&self) -> String {
        match self.domain {
            None => self.name.to_owned(),
            Some(domain) => format!("{}.{}", self.name, domain.trim_end_matches('.')),
        }
    }

    /// Whether `text` names this candidate (in any case).
    pub(crate) fn is(&self, text: &str) -> bool {
        match self.domain {
            None => text.eq_ignore_ascii_case(self.name),
            Some(domain) => {
                let domain = domain.trim_end_matches('.');
                text.len() == self.name.len() + 1 + domain.len()
                    && text[..self.name.len()].eq_ignore_ascii_case(self.name)
                    && text.as_bytes()[self.name.len()] == b'.'
                    && text[self.name.len() + 1..].eq_ignore_ascii_case(domain)
            }
        }
    }
}

/// What `/etc/resolv.conf` says about the four settings.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct System {
    search: Option<Vec<String>>,
    ndots: Option<u8>,
    timeout_ms: Option<u32>,
    attempts: Option<u8>,
}

impl System {
    /// Parses resolv.conf as glibc does: the last `search` or `domain`
    /// line wins; options accumulate; unknown words are ignored.
    pub(crate) fn parse(text: &str) -> System {
        let mut system = System::default();
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or_default();
            let mut words = line.split_whitespace();
            match words.next() {
                Some("search") => system.search = Some(words.map(str::to_owned).collect()),
                Some("domain") => system.search = Some(words.take(1).map(str::to_owned).collect()),
                Some("options") => {
                    for option in words {
                        system.option(option);
                    }
                }
                _ => {}
            }
        }
        system
    }

    fn option(&mut self, option: &str) {
        let Some((key, value)) = option.split_once(':') else {
            return;
        };
        let Ok(value) = value.parse::<u32>() else {
            return;
        };
        match key {
            "ndots" => self.ndots = Some(value.min(MAX_NDOTS.into()) as u8),
            "timeout" => self.timeout_ms = Some(value.clamp(1, MAX_TIMEOUT_S) * 1000),
            "attempts" => self.attempts = Some(value.clamp(1, MAX_ATTEMPTS.into()) as u8),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESOLV: &str = "# comment\nnameserver 198.18.1.1\ndomain old.test\n\
                          search a.test b.test. ; trailing\noptions ndots:2 timeout:3 rotate attempts:9\n";

    #[test]
    fn resolv_conf_is_read_like_glibc() {
        let system = System::parse(RESOLV);
        assert_eq!(
            system,
            System {
                search: Some(vec!["a.test".into(), "b.test.".into()]),
                ndots: Some(2),
                timeout_ms: Some(3000),
                attempts: Some(5),
            }
        );
        assert_eq!(
            System::parse("domain x.test\n").search,
            Some(vec!["x.test".into()])
        );
    }

    #[test]
    fn the_profile_wins_then_the_system_then_defaults() {
        let system = System::parse(RESOLV);
        let options = DnsOptions {
            search: Some(vec![]),
            ndots: None,
            timeout_ms: Some(250),
            attempts: None,
        };
        let conf = Conf::merge(&options, &system);
        assert_eq!(conf.search, Vec::<String>::new());
        assert_eq!((conf.ndots, conf.attempts), (2, 5));
        assert_eq!(conf.timeout, Duration::from_millis(250));
        let conf = Conf::merge(&DnsOptions::default(), &System::default());
        assert_eq!((conf.ndots, conf.attempts), (1, 2));
        assert_eq!(conf.timeout, Duration::from_secs(5));
    }

    #[test]
    fn candidates_follow_ndots() {
        let conf = Conf::merge(&DnsOptions::default(), &System::parse(RESOLV));
        let texts = |name| conf.candidates(name).map(|c| c.text()).collect::<Vec<_>>();
        assert_eq!(texts("host"), ["host.a.test", "host.b.test", "host"]);
        assert_eq!(texts("x.y.z"), ["x.y.z", "x.y.z.a.test", "x.y.z.b.test"]);
        assert_eq!(texts("host.bindto.test."), ["host.bindto.test"]);
        let under = conf.candidates("host").next().unwrap();
        assert!(under.is("HOST.a.test") && !under.is("host.b.test"));
    }
}
