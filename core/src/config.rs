//! Profiles as written in the layers, merged, and resolved into [`Profile`]s.
//!
//! The merge rule, used both for layers (a later file over an earlier one)
//! and for `extends` (a profile over its base), is written once, in
//! `Keys::over`: a key that is set replaces the base's value whole, lists and
//! tables included; a key that is not set is inherited.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Deserializer};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::addr::{IfName, Net, OneOrMany, PerFamily, PortRange, parse_server};
use crate::layers::{self, Layer, Source};
use crate::matches::{self, Match};
use crate::profile::{
    Action, Binding, DnsOptions, DnsRewrite, OnFailure, Origin, Profile, Protocol, Route, RuleKind,
};
use crate::{Env, Error};

/// A key's value with the layer and byte span it was written at.
#[derive(Debug, Clone)]
struct Set<T> {
    layer: usize,
    span: Range<usize>,
    value: T,
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Set<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<T>::deserialize(d)?;
        Ok(Set {
            layer: 0,
            span: spanned.span(),
            value: spanned.into_inner(),
        })
    }
}

macro_rules! profile_keys {
    ($($key:ident: $ty:ty,)*) => {
        /// The keys of one profile as written, each with where it was set.
        #[derive(Debug, Clone, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Keys {
            $($key: Option<Set<$ty>>,)*
        }

        impl Keys {
            /// Every key this profile sets wins, whole, over `base`'s.
            fn over(self, base: Keys) -> Keys {
                Keys { $($key: self.$key.or(base.$key),)* }
            }

            fn in_layer(mut self, layer: usize) -> Keys {
                $(if let Some(set) = &mut self.$key { set.layer = layer; })*
                self
            }

            fn names(&self) -> Vec<&'static str> {
                let mut names = Vec::new();
                $(if self.$key.is_some() { names.push(stringify!($key)); })*
                names
            }
        }
    };
}

profile_keys! {
    interface: IfName,
    source: PerFamily,
    exclude: OneOrMany<Net>,
    listen: PerFamily,
    on_failure: OnFailure,
    extends: String,
    dns: BTreeMap<Spanned<String>, Spanned<DnsValue>>,
    route: Vec<Spanned<RawRoute>>,
}

/// A value under `[profile.X.dns]`: a server (under a port number) or a
/// resolver option (under its name).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged, expecting = "a server address, a number or a list of names")]
enum DnsValue {
    Int(i64),
    Text(String),
    List(Vec<String>),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    to: Spanned<OneOrMany<Net>>,
    interface: Option<IfName>,
    source: Option<PerFamily>,
    ports: Option<OneOrMany<PortRange>>,
    protocol: Option<Protocol>,
    action: Option<Action>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    profile: BTreeMap<String, Spanned<Keys>>,
    #[serde(default, rename = "match")]
    matches: Vec<Spanned<matches::Raw>>,
}

#[derive(Debug, Clone)]
struct Entry {
    keys: Keys,
    /// Layer and offset of the profile's first definition.
    header: (usize, usize),
    /// Each layer that writes this profile, with the keys it sets.
    written: Vec<(usize, Vec<&'static str>)>,
}

/// The name in `names` nearest to `name` by edit distance, if it is near
/// enough to be a typo: at most one edit in four characters.
pub(crate) fn nearest<'a>(name: &str, names: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let most = name.chars().count().div_ceil(4).max(1);
    names
        .map(|candidate| (distance(name, candidate), candidate))
        .filter(|&(d, _)| d <= most)
        .min()
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance ignoring case, counting an exchange of two
/// neighbours (`vnp` for `vpn`) as one edit.
fn distance(a: &str, b: &str) -> usize {
    let chars = |s: &str| -> Vec<char> { s.chars().flat_map(char::to_lowercase).collect() };
    let (a, b) = (chars(a), chars(b));
    // Three rows: two back for the exchange, one back, and this one.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut last: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut row = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            row[j] = (last[j] + 1).min(row[j - 1] + 1).min(last[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                row[j] = row[j].min(before[j - 2] + 1);
            }
        }
        before = std::mem::replace(&mut last, row);
    }
    last[b.len()]
}

/// Parses one file; on error the byte offset and a message that starts with
/// the dotted path of the key, e.g. `profile.vpn.route[1].ports[0]: ...`.
fn parse(text: &str) -> Result<File, (usize, String)> {
    let at = |e: &toml::de::Error| e.span().map_or(0, |s| s.start);
    let document =
        toml::Deserializer::parse(text).map_err(|e| (at(&e), e.message().trim_end().to_owned()))?;
    crate::addr::take_failed_item();
    File::deserialize(document).map_err(|e| {
        let message = e.message().trim_end();
        let item = crate::addr::take_failed_item();
        let path = e
            .span()
            .map(|span| key_path(text, &span, item))
            .unwrap_or_default();
        let message = if path.is_empty() {
            message.to_owned()
        } else {
            format!("{path}: {message}")
        };
        (at(&e), message)
    })
}

/// The dotted path of the innermost key or value of `text` whose span holds
/// `span`, the span of a deserialisation error; when that is a list and
/// `item` names the list's item that failed, the path goes on to the item.
/// The document is parsed again to find it: only an error pays for that,
/// whereas tracking the path while deserialising would instantiate the whole
/// deserialiser a second time.
fn key_path(text: &str, span: &Range<usize>, item: Option<usize>) -> String {
    let mut found = Found {
        len: usize::MAX,
        path: String::new(),
        list: false,
    };
    if let Ok(root) = DeTable::parse(text) {
        found.table(root.get_ref(), span, &mut String::new());
    }
    if let (true, Some(index)) = (found.list, item) {
        found.path.push_str(&format!("[{index}]"));
    }
    found.path
}

/// The smallest node holding the span so far. Ties go to the node visited
/// last, which is the deeper one where a table shares its span with the
/// tables its header implies.
struct Found {
    len: usize,
    path: String,
    /// Whether the node is a list under a key, as every list of items that
    /// [`crate::addr::take_failed_item`] can name is.
    list: bool,
}

impl Found {
    fn table(&mut self, table: &DeTable<'_>, span: &Range<usize>, path: &mut String) {
        for (key, value) in table {
            let parent = path.len();
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(key.get_ref());
            self.node(key.span(), span, path, false);
            self.value(value, span, path, true);
            path.truncate(parent);
        }
    }

    /// `keyed`: the value of a key, not an item of a list.
    fn value(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        span: &Range<usize>,
        path: &mut String,
        keyed: bool,
    ) {
        let list = keyed && matches!(value.get_ref(), DeValue::Array(_));
        self.node(value.span(), span, path, list);
        match value.get_ref() {
            DeValue::Table(table) => self.table(table, span, path),
            DeValue::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    let parent = path.len();
                    path.push_str(&format!("[{index}]"));
                    self.value(item, span, path, false);
                    path.truncate(parent);
                }
            }
            _ => {}
        }
    }

    fn node(&mut self, node: Range<usize>, span: &Range<usize>, path: &str, list: bool) {
        if node.start <= span.start && span.end <= node.end && node.len() <= self.len {
            self.len = node.len();
            self.list = list;
            path.clone_into(&mut self.path);
        }
    }
}

/// Who set one key of a profile, for `bindto list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyOrigin {
    /// The key's name.
    pub key: &'static str,
    /// The layers that write it, in order; the last one wins.
    pub written_by: Vec<(Source, PathBuf)>,
}

/// A profile's provenance, for `bindto list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileInfo {
    /// The profile's name.
    pub name: String,
    /// The layers that write the profile.
    pub layers: Vec<(Source, PathBuf)>,
    /// Every key written, with who wrote it.
    pub keys: Vec<KeyOrigin>,
    /// The profile it extends, if any.
    pub extends: Option<String>,
}

/// All profiles of the layers, merged and checked.
#[derive(Debug, Clone)]
pub struct Config {
    searched: Vec<PathBuf>,
    layers: Vec<Layer>,
    paths: Vec<Arc<Path>>,
    /// Byte offset of every line start, per layer, to place rules quickly.
    lines: Vec<Vec<usize>>,
    /// Whether each layer is pure ASCII, where a column is a byte offset.
    ascii: Vec<bool>,
    profiles: BTreeMap<String, Entry>,
    resolved: BTreeMap<String, Profile>,
    matches: Vec<Match>,
}

impl Config {
    /// Reads and checks the layers the environment names (see
    /// [`layers::paths`]).
    pub fn load(env: &Env, secure: bool) -> Result<Config, Error> {
        Config::from_read(layers::read(env, secure)?, env, secure)
    }

    /// Merges and checks the layers [`layers::read`] read for `env`.
    pub(crate) fn from_read(layers: Vec<Layer>, env: &Env, secure: bool) -> Result<Config, Error> {
        let searched = layers::paths(env, secure)
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        Config::with_searched(layers, searched)
    }

    /// Merges and checks these layers, earliest first.
    pub fn from_layers(layers: Vec<Layer>) -> Result<Config, Error> {
        let searched = layers.iter().map(|l| l.path.clone()).collect();
        Config::with_searched(layers, searched)
    }

    fn with_searched(layers: Vec<Layer>, searched: Vec<PathBuf>) -> Result<Config, Error> {
        let mut profiles: BTreeMap<String, Entry> = BTreeMap::new();
        // Checked once every profile is known: a match may name a profile
        // of any layer.
        let mut raw_matches = Vec::new();
        for (index, layer) in layers.iter().enumerate() {
            let file = parse(&layer.text)
                .map_err(|(at, message)| Error::at(&layer.path, &layer.text, at, message))?;
            raw_matches.push((index, file.matches));
            for (name, spanned) in file.profile {
                let start = spanned.span().start;
                let keys = spanned.into_inner().in_layer(index);
                let names = keys.names();
                match profiles.get_mut(&name) {
                    Some(entry) => {
                        entry.keys = keys.over(std::mem::take(&mut entry.keys));
                        entry.written.push((index, names));
                    }
                    None => {
                        let written = vec![(index, names)];
                        profiles.insert(
                            name,
                            Entry {
                                keys,
                                header: (index, start),
                                written,
                            },
                        );
                    }
                }
            }
        }
        let paths = layers.iter().map(|l| Arc::from(l.path.as_path())).collect();
        let lines = layers
            .iter()
            .map(|l| {
                let starts = l.text.match_indices('\n').map(|(i, _)| i + 1);
                std::iter::once(0).chain(starts).collect()
            })
            .collect();
        let ascii = layers.iter().map(|l| l.text.is_ascii()).collect();
        let mut config = Config {
            searched,
            layers,
            paths,
            lines,
            ascii,
            profiles,
            resolved: BTreeMap::new(),
            matches: Vec::new(),
        };
        // Every profile is resolved now, so an error in any of them is an
        // error of the config, whichever profile is used.
        let mut merged = HashMap::new();
        let mut resolved = BTreeMap::new();
        for (name, entry) in &config.profiles {
            let keys = config.merged(name, &mut merged)?;
            resolved.insert(name.clone(), config.resolve(name, entry.header, keys)?);
        }
        config.resolved = resolved;
        for (layer, raws) in raw_matches {
            for (index, raw) in raws.into_iter().enumerate() {
                let at = raw.span().start;
                let checked = config.check_match((layer, index, at), raw.into_inner())?;
                config.matches.push(checked);
            }
        }
        Ok(config)
    }

    /// Every `[[match]]` rule, the earliest layer's first, each layer's in
    /// file order: the order [`matches::first_fit`] tries them in.
    pub fn matches(&self) -> &[Match] {
        &self.matches
    }

    /// The layers read, earliest first.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// The names of all profiles.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.profiles.keys().map(String::as_str)
    }

    /// Where each profile and each of its keys comes from.
    pub fn info(&self) -> Vec<ProfileInfo> {
        let layer = |i: usize| (self.layers[i].source, self.layers[i].path.clone());
        self.profiles
            .iter()
            .map(|(name, entry)| {
                let mut keys: Vec<KeyOrigin> = Vec::new();
                for (index, names) in &entry.written {
                    for &key in names {
                        match keys.iter_mut().find(|k| k.key == key) {
                            Some(k) => k.written_by.push(layer(*index)),
                            None => keys.push(KeyOrigin {
                                key,
                                written_by: vec![layer(*index)],
                            }),
                        }
                    }
                }
                ProfileInfo {
                    name: name.clone(),
                    layers: entry.written.iter().map(|(i, _)| layer(*i)).collect(),
                    keys,
                    extends: entry.keys.extends.as_ref().map(|s| s.value.clone()),
                }
            })
            .collect()
    }

    /// The profile `name`, with `extends` resolved and every value checked.
    pub fn profile(&self, name: &str) -> Result<&Profile, Error> {
        self.resolved.get(name).ok_or_else(|| {
            let list = |paths: &mut dyn Iterator<Item = &Path>| {
                paths
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let mut message = if self.searched.is_empty() {
                format!("profile \"{name}\" not found: no config file")
            } else if self.layers.is_empty() {
                format!(
                    "profile \"{name}\" not found: no config file (looked for {})",
                    list(&mut self.searched.iter().map(PathBuf::as_path))
                )
            } else {
                format!(
                    "profile \"{name}\" not found in {}",
                    list(&mut self.layers.iter().map(|l| l.path.as_path()))
                )
            };
            if let Some(near) = nearest(name, self.names()) {
                message += &format!(" (did you mean \"{near}\"?)");
            }
            Error::new(message)
        })
    }

    /// The keys of profile `name` with `extends` resolved: its own, or
    /// merged over its base's and kept in `memo`. Each profile of a chain is
    /// merged once, over its base's merged keys, so that resolving every
    /// profile of a chain of n links takes n merges, not n per profile
    /// (4 000 links took 21 s that way).
    fn merged<'c: 'm, 'm>(
        &'c self,
        name: &'c str,
        memo: &'m mut HashMap<&'c str, Keys>,
    ) -> Result<&'m Keys, Error> {
        // Up the chain to the first profile whose keys are known: one
        // without `extends`, or one merged before.
        let mut chain = vec![name];
        let mut on_chain = HashSet::from([name]);
        let mut at = name;
        while !memo.contains_key(at) {
            let Some(extends) = self.profiles[at].keys.extends.as_ref() else {
                break;
            };
            let base = extends.value.as_str();
            if !self.profiles.contains_key(base) {
                return Err(self.error(
                    extends,
                    format!("profile.{name}.extends: profile \"{base}\" is not defined"),
                ));
            }
            chain.push(base);
            if !on_chain.insert(base) {
                return Err(self.error(
                    extends,
                    format!("profile.{name}.extends: cycle {}", chain.join(" -> ")),
                ));
            }
            at = base;
        }
        // Then down, each link over the one below it. A profile without
        // `extends` is not copied: a profile of 10 000 rules is read in place.
        for pair in chain.windows(2).rev() {
            let base = memo.get(pair[1]).unwrap_or(&self.profiles[pair[1]].keys);
            let keys = self.profiles[pair[0]].keys.clone().over(base.clone());
            memo.insert(pair[0], keys);
        }
        Ok(memo.get(name).unwrap_or(&self.profiles[name].keys))
    }

    fn resolve(&self, name: &str, header: (usize, usize), keys: &Keys) -> Result<Profile, Error> {
        let name_arc: Arc<str> = Arc::from(name);
        let origin = |kind: RuleKind, layer: usize, at: usize| Origin {
            profile: name_arc.clone(),
            kind,
            location: Some(self.location(layer, at)),
        };
        // The default verdict is the binding's: credited to the key that
        // sets it, in whichever layer or base profile wrote it last, so
        // that a user's override is named rather than the system header.
        let default_at = keys
            .interface
            .as_ref()
            .map(|s| (s.layer, s.span.start))
            .or_else(|| keys.source.as_ref().map(|s| (s.layer, s.span.start)))
            .unwrap_or(header);
        let binding = Binding {
            interface: keys.interface.as_ref().map(|s| s.value),
            source: keys.source.as_ref().map(|s| s.value).unwrap_or_default(),
        };
        let exclude = match &keys.exclude {
            Some(set) => set
                .value
                .0
                .iter()
                .enumerate()
                .map(|(i, (span, net))| {
                    let at = span.as_ref().unwrap_or(&set.span).start;
                    (net.0, origin(RuleKind::Exclude(i), set.layer, at))
                })
                .collect(),
            None => Vec::new(),
        };
        let mut routes = Vec::new();
        if let Some(set) = &keys.route {
            for (i, raw) in set.value.iter().enumerate() {
                let at = raw.span().start;
                let route = self.route(
                    raw.get_ref(),
                    binding,
                    (name, i, set.layer, at),
                    origin(RuleKind::Route(i), set.layer, at),
                )?;
                routes.push(route);
            }
        }
        let (dns, dns_options) = match &keys.dns {
            Some(set) => {
                let key = format!("profile.{name}.dns");
                self.dns(&set.value, (&key, set.layer), |port, at| {
                    origin(RuleKind::Dns(port), set.layer, at)
                })?
            }
            None => Default::default(),
        };
        Ok(Profile {
            name: name.to_owned(),
            binding,
            listen: keys.listen.as_ref().map(|s| s.value).unwrap_or_default(),
            on_failure: keys
                .on_failure
                .as_ref()
                .map(|s| s.value)
                .unwrap_or_default(),
            exclude,
            routes,
            dns,
            dns_options,
            origin: origin(RuleKind::Default, default_at.0, default_at.1),
        })
    }

    fn route(
        &self,
        raw: &RawRoute,
        profile: Binding,
        (name, index, layer, at): (&str, usize, usize, usize),
        origin: Origin,
    ) -> Result<Route, Error> {
        // Formatted only for an error: a file may hold 10 000 routes.
        let key = || format!("profile.{name}.route[{index}]");
        let fail = |message: &str| self.error_at(layer, at, format!("{}: {message}", key()));
        let to: Vec<_> = raw.to.get_ref().values().map(|n| n.0).collect();
        if to.is_empty() {
            let message = format!("{}.to: names no network", key());
            return Err(self.error_at(layer, raw.to.span().start, message));
        }
        let own = Binding {
            interface: raw.interface,
            source: raw.source.unwrap_or_default(),
        };
        let action = raw.action.unwrap_or_default();
        let binding = match action {
            Action::Bind if own.is_empty() && profile.is_empty() => {
                return Err(fail(
                    "binds, but neither it nor its profile names an interface or source",
                ));
            }
            Action::Bind if own.is_empty() => profile,
            Action::Bind => own,
            _ if !own.is_empty() => {
                return Err(fail(
                    "only a route with action = \"bind\" may name an interface or source",
                ));
            }
            _ => Binding::default(),
        };
        Ok(Route {
            to,
            ports: raw
                .ports
                .iter()
                .flat_map(OneOrMany::values)
                .copied()
                .collect(),
            protocol: raw.protocol,
            action,
            binding,
            origin,
        })
    }

    fn dns(
        &self,
        table: &BTreeMap<Spanned<String>, Spanned<DnsValue>>,
        (prefix, layer): (&str, usize),
        origin: impl Fn(u16, usize) -> Origin,
    ) -> Result<(Vec<DnsRewrite>, DnsOptions), Error> {
        let mut rewrites = Vec::new();
        let mut options = DnsOptions::default();
        for (key, value) in table {
            let fail = |at: usize, message: String| {
                self.error_at(layer, at, format!("{prefix}.{}: {message}", key.get_ref()))
            };
            let at = value.span().start;
            let int = |max: i64| match value.get_ref() {
                DnsValue::Int(n) if (1..=max).contains(n) => Ok(*n),
                _ => Err(fail(at, format!("must be a number from 1 to {max}"))),
            };
            let name = key.get_ref().as_str();
            if name.bytes().all(|b| b.is_ascii_digit()) {
                let port = crate::addr::port_number(name).map_err(|m| fail(key.span().start, m))?;
                // One server, or one per family: a socket reaching the
                // port over IPv6 is sent to the IPv6 one.
                let texts = match value.get_ref() {
                    DnsValue::Text(text) => std::slice::from_ref(text),
                    DnsValue::List(list) if !list.is_empty() => list.as_slice(),
                    _ => {
                        return Err(fail(
                            at,
                            "must be a server address such as \"10.8.0.1\" or \"10.8.0.1:853\", or a list of one per family".into(),
                        ));
                    }
                };
                let first = rewrites.len();
                for text in texts {
                    let server = parse_server(text, port).map_err(|m| fail(at, m))?;
                    if rewrites[first..]
                        .iter()
                        .any(|r: &DnsRewrite| r.server.is_ipv4() == server.is_ipv4())
                    {
                        let family = if server.is_ipv4() { "IPv4" } else { "IPv6" };
                        return Err(fail(
                            at,
                            format!("more than one {family} server (\"{text}\")"),
                        ));
                    }
                    rewrites.push(DnsRewrite {
                        port,
                        server,
                        origin: origin(port, key.span().start),
                    });
                }
                continue;
            }
            match name {
                "search" => {
                    options.search = Some(match value.get_ref() {
                        DnsValue::Text(t) => vec![t.clone()],
                        DnsValue::List(l) => l.clone(),
                        DnsValue::Int(_) => {
                            return Err(fail(at, "must be a domain or a list of domains".into()));
                        }
                    });
                }
                "ndots" => options.ndots = Some(int(15)? as u8),
                "timeout_ms" => options.timeout_ms = Some(int(60_000)? as u32),
                "attempts" => options.attempts = Some(int(10)? as u8),
                _ => {
                    return Err(fail(
                        key.span().start,
                        "unknown key, expected a port number, `search`, `ndots`, `timeout_ms` or `attempts`".into(),
                    ));
                }
            }
        }
        rewrites.sort_by_key(|r| (r.port, r.server.is_ipv6()));
        Ok((rewrites, options))
    }

    fn location(&self, layer: usize, at: usize) -> (Arc<Path>, u32, u32) {
        let lines = &self.lines[layer];
        let line = lines.partition_point(|&start| start <= at);
        let text = &self.layers[layer].text;
        let before = &text[lines[line - 1]..at];
        // Counting characters from the line start for each of 10 000 items
        // of a one-line list would be quadratic; in an ASCII file (nearly
        // all) bytes are characters.
        let column = if self.ascii[layer] {
            before.len()
        } else {
            before.chars().count()
        } + 1;
        (self.paths[layer].clone(), line as u32, column as u32)
    }

    fn error<T>(&self, set: &Set<T>, message: String) -> Error {
        self.error_at(set.layer, set.span.start, message)
    }

    pub(crate) fn error_at(&self, layer: usize, at: usize, message: impl Into<String>) -> Error {
        let layer = &self.layers[layer];
        Error::at(&layer.path, &layer.text, at, message)
    }
}
