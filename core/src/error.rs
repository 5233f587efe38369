use std::fmt;
use std::path::{Path, PathBuf};

/// A config or environment error, naming the file and position it is about.
///
/// Displayed as `path:line:column: message`, or a shorter form when there is
/// no file (an environment variable) or no position (a missing file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// The file the error is in, if any.
    pub path: Option<PathBuf>,
    /// 1-based line and column, if the error has a position.
    pub position: Option<(u32, u32)>,
    /// What is wrong, naming the key.
    pub message: String,
}

impl Error {
    pub(crate) fn new(message: impl Into<String>) -> Error {
        Error {
            path: None,
            position: None,
            message: message.into(),
        }
    }

    pub(crate) fn in_file(path: &Path, message: impl Into<String>) -> Error {
        Error {
            path: Some(path.to_owned()),
            ..Error::new(message)
        }
    }

    /// An error at byte offset `at` of `text`, the contents of `path`.
    pub(crate) fn at(path: &Path, text: &str, at: usize, message: impl Into<String>) -> Error {
        Error {
            position: Some(line_column(text, at)),
            ..Error::in_file(path, message)
        }
    }
}

/// 1-based line and column (in characters) of byte offset `at`.
pub(crate) fn line_column(text: &str, at: usize) -> (u32, u32) {
    let before = &text[..at.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (saturate(line), saturate(column))
}

fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(path) = &self.path {
            write!(f, "{}:", path.display())?;
            if let Some((line, column)) = self.position {
                write!(f, "{line}:{column}:")?;
            }
            f.write_str(" ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}
