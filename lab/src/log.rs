//! The uplink servers' connection log, shared by the server that writes it
//! and the lab that reads it, so the format is defined once.
//!
//! One line per accepted TCP connection or received UDP datagram, written
//! before the answer is sent (so a client that got its answer can assert on
//! the log at once):
//!
//! ```text
//! tcp 198.18.2.2:41234 -> 198.19.0.1:80
//! udp [fd00:1::2]:50000 -> [2001:db8:ff::1]:53
//! ```

use std::error::Error;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

/// Transport of a logged connection or datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proto {
    /// An accepted TCP connection.
    Tcp,
    /// A received UDP datagram.
    Udp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

/// One line of a server's log: who reached which of its addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LogLine {
    /// TCP or UDP.
    pub proto: Proto,
    /// The client's address and port as the server saw them.
    pub peer: SocketAddr,
    /// The server address and port the client reached.
    pub local: SocketAddr,
}

impl fmt::Display for LogLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} -> {}", self.proto, self.peer, self.local)
    }
}

/// A log line that is not in the format above.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseLogLineError {
    line: String,
}

impl fmt::Display for ParseLogLineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed uplink server log line {:?}", self.line)
    }
}

impl Error for ParseLogLineError {}

impl FromStr for LogLine {
    type Err = ParseLogLineError;

    fn from_str(line: &str) -> Result<Self, Self::Err> {
        let error = || ParseLogLineError {
            line: line.to_owned(),
        };
        let mut words = line.split(' ');
        let (Some(proto), Some(peer), Some("->"), Some(local), None) = (
            words.next(),
            words.next(),
            words.next(),
            words.next(),
            words.next(),
        ) else {
            return Err(error());
        };
        let proto = match proto {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            _ => return Err(error()),
        };
        Ok(LogLine {
            proto,
            peer: peer.parse().map_err(|_| error())?,
            local: local.parse().map_err(|_| error())?,
        })
    }
}

/// Parses a whole log, one [`LogLine`] per non-empty line.
pub fn parse(text: &str) -> Result<Vec<LogLine>, ParseLogLineError> {
    text.lines()
        .filter(|line| !line.is_empty())
        .map(str::parse)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_both_families() {
        for text in [
            "tcp 198.18.2.2:41234 -> 198.19.0.1:80",
            "udp [fd00:1::2]:50000 -> [2001:db8:ff::1]:53",
        ] {
            let line: LogLine = text.parse().unwrap();
            assert_eq!(line.to_string(), text);
        }
    }

    #[test]
    fn parses_a_log_and_rejects_garbage() {
        let log = "tcp 198.18.1.2:1 -> 198.19.0.1:80\n\nudp 198.18.1.2:2 -> 198.19.0.2:7\n";
        let lines = parse(log).unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1].proto, Proto::Udp);
        assert_eq!(lines[1].local.port(), 7);
        for bad in [
            "sctp 1.2.3.4:1 -> 1.2.3.4:2",
            "tcp 1.2.3.4:1 1.2.3.4:2",
            "tcp 1.2.3.4 -> 1.2.3.4:2",
            "tcp 1.2.3.4:1 -> 1.2.3.4:2 extra",
        ] {
            assert!(bad.parse::<LogLine>().is_err(), "{bad}");
        }
    }
}
