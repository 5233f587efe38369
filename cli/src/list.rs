//! `bindto list`: the config files, the profiles, where each comes from
//! and which keys a later layer (the user's file) overrides, and the
//! `[[match]]` rules in the order they are tried.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use bindto_core::{Config, Env, KeyOrigin, ProfileInfo, Source, layers};

use crate::exit::{Fail, Outcome};
use crate::style::Style;

pub(crate) fn run() -> Outcome {
    let env = Env::from_process();
    let style = Style::stdout();
    let mut out = String::new();
    out += &style.bold("Config files (later ones override earlier ones):");
    out.push('\n');
    for (source, path) in layers::paths(&env, false) {
        let state = if path.is_file() {
            String::new()
        } else {
            style.dim(" (not found)")
        };
        let _ = writeln!(
            out,
            "  {:<11} {}{state}",
            source.to_string(),
            path.display()
        );
    }
    print!("{out}");
    let config = crate::select::load(&env).map_err(|e| Fail::problem(e.to_string()))?;
    print!("{}", render(&config, env.profile(), style));
    Ok(ExitCode::SUCCESS)
}

/// The profiles of `config`, each with its layers and overridden keys;
/// `selected` (BIND_PROFILE) is marked.
pub(crate) fn render(config: &Config, selected: Option<&str>, style: Style) -> String {
    let infos = config.info();
    let mut out = String::new();
    if infos.is_empty() {
        out += "\nNo profiles.\n";
        return out;
    }
    out += &format!("\n{}\n", style.bold("Profiles:"));
    let width = infos
        .iter()
        .map(|i| i.name.chars().count())
        .max()
        .unwrap_or(0);
    for info in &infos {
        let mark = if Some(info.name.as_str()) == selected {
            style.good(" (selected by BIND_PROFILE)")
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "  {}  from {}{}{mark}",
            style.bold(&format!("{:width$}", info.name)),
            from(info),
            info.extends
                .as_ref()
                .map(|base| format!(", extends {base}"))
                .unwrap_or_default()
        );
        for key in &info.keys {
            if let Some(line) = override_line(key, style) {
                let _ = writeln!(out, "      {line}");
            }
        }
    }
    out += &matches(config, style);
    out
}

/// The `[[match]]` rules, in the order they are tried, aligned.
fn matches(config: &Config, style: Style) -> String {
    let rows: Vec<[String; 4]> = config
        .matches()
        .iter()
        .map(|m| {
            let user = match &m.user {
                Some(user) => format!("user {user}"),
                None => "any user".to_owned(),
            };
            let place = format!("{}:{}", m.path.display(), m.line);
            [place, m.program.clone(), user, m.profile.clone()]
        })
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let width = |i: usize| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0);
    let (place, program, user) = (width(0), width(1), width(2));
    let mut out = format!(
        "\n{}\n",
        style.bold("Matches (the first that fits chooses, when no variable names a profile):")
    );
    for [p, prog, u, profile] in &rows {
        let _ = writeln!(
            out,
            "  {p:place$}  {prog:program$}  {u:user$}  {}",
            style.bold(profile)
        );
    }
    out
}

/// "system /etc/…, user ~/.config/…".
fn from(info: &ProfileInfo) -> String {
    info.layers
        .iter()
        .map(|(source, path)| format!("{source} {}", path.display()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// For a key written by more than one layer: who wins over whom.
fn override_line(key: &KeyOrigin, style: Style) -> Option<String> {
    let (winner, earlier) = key.written_by.split_last()?;
    if earlier.is_empty() {
        return None;
    }
    let name = |(source, path): &(Source, std::path::PathBuf)| label(*source, path);
    let over: Vec<String> = earlier.iter().map(name).collect();
    Some(format!(
        "{} {} overrides {}",
        style.warn(key.key),
        name(winner),
        over.join(", ")
    ))
}

fn label(source: Source, path: &Path) -> String {
    format!("{source} ({})", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bindto_core::Layer;

    #[test]
    fn shows_which_keys_the_user_overrides() {
        let config = Config::from_layers(vec![
            Layer::new(
                Source::System,
                "/etc/bindto/profiles.toml",
                "[profile.vpn]\ninterface = \"tun0\"\nexclude = [\"127.0.0.0/8\"]\n\
                 [profile.lan]\ninterface = \"eth0\"\n",
            ),
            Layer::new(
                Source::User,
                "/home/u/.config/bindto/profiles.toml",
                "[profile.vpn]\ninterface = \"tun1\"\n[profile.mine]\nextends = \"vpn\"\n",
            ),
        ])
        .unwrap();
        let text = render(&config, Some("mine"), Style::plain());
        assert!(
            text.contains(
                "vpn   from system /etc/bindto/profiles.toml, user /home/u/.config/bindto/profiles.toml"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "interface user (/home/u/.config/bindto/profiles.toml) overrides \
                 system (/etc/bindto/profiles.toml)"
            ),
            "{text}"
        );
        assert!(!text.contains("exclude user"), "{text}");
        // Names padded to the longest, so that "from" lines up.
        assert!(text.contains("mine  from user"), "{text}");
        assert!(
            text.contains("extends vpn (selected by BIND_PROFILE)"),
            "{text}"
        );
        assert!(
            text.contains("lan   from system /etc/bindto/profiles.toml\n"),
            "{text}"
        );
        assert!(!text.contains("Matches"), "{text}");
    }

    #[test]
    fn shows_the_matches_in_order_aligned() {
        let config = Config::from_layers(vec![
            Layer::new(
                Source::System,
                "/etc/bindto/profiles.toml",
                "[profile.vpn]\ninterface = \"tun0\"\n\
                 [[match]]\nprogram = \"/usr/bin/transmission-daemon\"\nuser = \"debian-transmission\"\nprofile = \"vpn\"\n",
            ),
            Layer::new(
                Source::User,
                "/u.toml",
                "[[match]]\nprogram = \"/opt/*\"\nprofile = \"vpn\"\n",
            ),
        ])
        .unwrap();
        let text = render(&config, None, Style::plain());
        assert!(
            text.ends_with(
                "Matches (the first that fits chooses, when no variable names a profile):\n\
                 \x20 /etc/bindto/profiles.toml:3  /usr/bin/transmission-daemon  user debian-transmission  vpn\n\
                 \x20 /u.toml:1                    /opt/*                        any user                  vpn\n"
            ),
            "{text}"
        );
    }
}
