//! Colour, only on a terminal, never when `NO_COLOR` is set (no-color.org)
//! or `TERM=dumb`: output that goes to a file or a pipe stays plain text.

use std::env;
use std::io::IsTerminal;

/// How to paint text for one output stream.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Style {
    color: bool,
}

impl Style {
    /// For text written to stdout.
    pub(crate) fn stdout() -> Style {
        Style::new(std::io::stdout().is_terminal())
    }

    /// For text written to stderr.
    pub(crate) fn stderr() -> Style {
        Style::new(std::io::stderr().is_terminal())
    }

    /// No colour at all.
    #[cfg(test)]
    pub(crate) fn plain() -> Style {
        Style { color: false }
    }

    fn new(terminal: bool) -> Style {
        let no_color = env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let dumb = env::var_os("TERM").is_some_and(|v| v == "dumb");
        Style {
            color: terminal && !no_color && !dumb,
        }
    }

    fn paint(self, sgr: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{sgr}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    pub(crate) fn good(self, text: &str) -> String {
        self.paint("32", text)
    }

    pub(crate) fn warn(self, text: &str) -> String {
        self.paint("33", text)
    }

    pub(crate) fn bad(self, text: &str) -> String {
        self.paint("1;31", text)
    }

    pub(crate) fn bold(self, text: &str) -> String {
        self.paint("1", text)
    }

    pub(crate) fn dim(self, text: &str) -> String {
        self.paint("2", text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_without_a_terminal() {
        assert_eq!(Style { color: false }.bad("x"), "x");
        assert_eq!(Style { color: true }.good("x"), "\x1b[32mx\x1b[0m");
    }
}
