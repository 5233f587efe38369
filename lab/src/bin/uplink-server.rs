//! The server in each of the lab's server namespaces.
//!
//! ```text
//! uplink-server --name NAME --log FILE --listen ADDR... --port PORT...
//! ```
//!
//! Listens on TCP and UDP on every `--listen` address and `--port` (one
//! socket each, not the wildcard: see `bindto_lab::server`), prints
//! `ready` on stdout once all are bound, and answers:
//!
//! * TCP: reads the request (up to a blank line if it looks like HTTP, else
//!   up to a newline, the peer's EOF, or half a second of silence); to an
//!   HTTP request it answers `HTTP/1.0 200 OK` with the body
//!   `NAME PEER_IP\n`, to anything else the bare line `NAME PEER_IP\n`; then
//!   closes.
//! * UDP: answers each datagram with one datagram `NAME PEER_IP`, sent from
//!   the address it was sent to.
//!
//! Each connection and datagram is appended to the log (format:
//! `bindto_lab::log`) before it is answered. The server exits when its
//! parent does, so a test killed outright leaves no server behind.

use std::env;
use std::fs::{File, OpenOptions};
use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::process::parent_id;
use std::path::PathBuf;
use std::process::{self, ExitCode};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use bindto_lab::log::{LogLine, Proto};
use bindto_lab::server::READY;

const USAGE: &str = "usage: uplink-server --name NAME --log FILE --listen ADDR... --port PORT...";

/// Silence after which a TCP request is taken as complete: a client that
/// sends nothing (or no newline) still gets its line.
const IDLE: Duration = Duration::from_millis(500);
/// Longest time spent reading one request.
const REQUEST_TIME: Duration = Duration::from_secs(5);
/// Longest request read; the rest is drained unread.
const MAX_REQUEST: usize = 16 * 1024;

const HTTP_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE",
];

fn main() -> ExitCode {
    let args = match Args::parse(env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("uplink-server: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if let Err(error) = serve(args) {
        eprintln!("uplink-server: {error}");
        return ExitCode::FAILURE;
    }
    exit_with_parent()
}

#[derive(Debug)]
struct Args {
    name: String,
    log: PathBuf,
    listen: Vec<IpAddr>,
    ports: Vec<u16>,
}

impl Args {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
        let (mut name, mut log) = (None, None);
        let (mut listen, mut ports) = (Vec::new(), Vec::new());
        while let Some(flag) = args.next() {
            let mut value = || args.next().ok_or(format!("{flag} needs a value"));
            match flag.as_str() {
                "--name" => name = Some(value()?),
                "--log" => log = Some(PathBuf::from(value()?)),
                "--listen" => {
                    let addr = value()?;
                    listen.push(addr.parse().map_err(|_| format!("bad address {addr:?}"))?);
                }
                "--port" => {
                    let port = value()?;
                    ports.push(port.parse().map_err(|_| format!("bad port {port:?}"))?);
                }
                _ => return Err(format!("unknown argument {flag:?}")),
            }
        }
        if listen.is_empty() || ports.is_empty() {
            return Err("needs at least one --listen and one --port".to_owned());
        }
        Ok(Args {
            name: name.ok_or("--name is required")?,
            log: log.ok_or("--log is required")?,
            listen,
            ports,
        })
    }
}

/// Binds everything, says so, and leaves threads serving.
fn serve(args: Args) -> io::Result<()> {
    let log = Arc::new(Log::open(&args.log)?);
    let name: Arc<str> = args.name.into();
    let mut listeners = Vec::new();
    let mut sockets = Vec::new();
    for &ip in &args.listen {
        for &port in &args.ports {
            let addr = SocketAddr::new(ip, port);
            listeners.push(TcpListener::bind(addr).map_err(context("tcp", addr))?);
            sockets.push(UdpSocket::bind(addr).map_err(context("udp", addr))?);
        }
    }
    // Only now is everything bound: from here on the lab may send.
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{READY}")?;
    stdout.flush()?;

    for listener in listeners {
        let (name, log) = (Arc::clone(&name), Arc::clone(&log));
        thread::spawn(move || accept_tcp(&listener, &name, &log));
    }
    for socket in sockets {
        let (name, log) = (Arc::clone(&name), Arc::clone(&log));
        thread::spawn(move || answer_udp(&socket, &name, &log));
    }
    Ok(())
}

/// Names the socket in a bind error.
fn context(what: &'static str, addr: SocketAddr) -> impl FnOnce(io::Error) -> io::Error {
    move |error| io::Error::new(error.kind(), format!("{what} {addr}: {error}"))
}

/// Waits for the parent (the test, which started us through `ip netns
/// exec`'s exec) to go: we are then reparented, and exit.
fn exit_with_parent() -> ! {
    let parent = parent_id();
    loop {
        thread::sleep(Duration::from_millis(200));
        if parent_id() != parent {
            process::exit(0);
        }
    }
}

/// The log file, one whole line per write.
struct Log {
    file: Mutex<File>,
}

impl Log {
    fn open(path: &PathBuf) -> io::Result<Log> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|error| {
                io::Error::new(error.kind(), format!("log {}: {error}", path.display()))
            })?;
        Ok(Log {
            file: Mutex::new(file),
        })
    }

    fn record(&self, proto: Proto, peer: SocketAddr, local: SocketAddr) {
        let line = format!("{}\n", LogLine { proto, peer, local });
        let mut file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        // A File is unbuffered: the line is in the file once this returns.
        if let Err(error) = file.write_all(line.as_bytes()) {
            eprintln!("uplink-server: writing the log: {error}");
        }
    }
}

/// The answer's text: who we are and whom we saw.
fn whoami(name: &str, peer: SocketAddr) -> String {
    format!("{name} {}", peer.ip().to_canonical())
}

fn accept_tcp(listener: &TcpListener, name: &Arc<str>, log: &Arc<Log>) {
    loop {
        match listener.accept() {
            Ok((stream, peer)) => {
                let (name, log) = (Arc::clone(name), Arc::clone(log));
                thread::spawn(move || {
                    if let Err(error) = answer_tcp(stream, peer, &name, &log) {
                        eprintln!("uplink-server: tcp from {peer}: {error}");
                    }
                });
            }
            Err(error) => {
                eprintln!("uplink-server: accept: {error}");
                // Out of descriptors, say: do not spin.
                thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn answer_tcp(mut stream: TcpStream, peer: SocketAddr, name: &str, log: &Log) -> io::Result<()> {
    log.record(Proto::Tcp, peer, stream.local_addr()?);
    stream.set_read_timeout(Some(IDLE))?;
    let request = read_request(&mut stream);
    let body = format!("{}\n", whoami(name, peer));
    let answer = match http_method(&request) {
        Some(method) => {
            let body = if method == "HEAD" { "" } else { &body };
            format!(
                "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            )
        }
        None => body,
    };
    stream.write_all(answer.as_bytes())?;
    stream.shutdown(Shutdown::Write)?;
    // Closing with unread input would send a reset, which can make the
    // client lose the answer: read until the client closes too.
    drain(&mut stream);
    Ok(())
}

/// Reads until the request looks complete, the peer stops sending (EOF or
/// [`IDLE`]), or the limits.
fn read_request(stream: &mut TcpStream) -> Vec<u8> {
    let deadline = Instant::now() + REQUEST_TIME;
    let mut request = Vec::new();
    let mut chunk = [0; 2048];
    while !is_complete(&request) && request.len() < MAX_REQUEST && Instant::now() < deadline {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => request.extend_from_slice(&chunk[..n]),
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    request
}

fn is_complete(request: &[u8]) -> bool {
    let has = |needle: &[u8]| request.windows(needle.len()).any(|window| window == needle);
    if http_method(request).is_some() {
        has(b"\r\n\r\n") || has(b"\n\n")
    } else {
        request.contains(&b'\n')
    }
}

/// The request's HTTP method, if it starts like an HTTP request.
fn http_method(request: &[u8]) -> Option<&'static str> {
    HTTP_METHODS.into_iter().find(|method| {
        request.starts_with(method.as_bytes()) && request.get(method.len()) == Some(&b' ')
    })
}

fn drain(stream: &mut TcpStream) {
    let deadline = Instant::now() + REQUEST_TIME;
    let mut chunk = [0; 2048];
    while Instant::now() < deadline {
        match stream.read(&mut chunk) {
            Ok(1..) => {}
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Ok(0) | Err(_) => break,
        }
    }
}

fn answer_udp(socket: &UdpSocket, name: &str, log: &Log) {
    let local = match socket.local_addr() {
        Ok(local) => local,
        Err(error) => {
            eprintln!("uplink-server: udp: {error}");
            return;
        }
    };
    let mut datagram = vec![0; 65536];
    loop {
        match socket.recv_from(&mut datagram) {
            Ok((_, peer)) => {
                log.record(Proto::Udp, peer, local);
                if let Err(error) = socket.send_to(whoami(name, peer).as_bytes(), peer) {
                    eprintln!("uplink-server: udp to {peer}: {error}");
                }
            }
            Err(error) => {
                eprintln!("uplink-server: udp on {local}: {error}");
                thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Result<Args, String> {
        Args::parse(line.split_whitespace().map(str::to_owned))
    }

    #[test]
    fn parses_arguments() {
        let parsed =
            args("--name vpn --log /tmp/x --listen ::1 --listen 127.0.0.1 --port 80 --port 53")
                .unwrap();
        assert_eq!(parsed.name, "vpn");
        assert_eq!(parsed.listen.len(), 2);
        assert_eq!(parsed.ports, [80, 53]);
        assert!(args("--name vpn --log /tmp/x --port 80").is_err());
        assert!(args("--name").is_err());
        assert!(args("--bogus").is_err());
    }

    #[test]
    fn tells_http_from_lines() {
        assert_eq!(http_method(b"GET / HTTP/1.1\r\n"), Some("GET"));
        assert_eq!(http_method(b"HEAD / HTTP/1.0"), Some("HEAD"));
        assert_eq!(http_method(b"GETTER\n"), None);
        assert_eq!(http_method(b"hello\n"), None);
        assert!(!is_complete(b"GET / HTTP/1.1\r\nHost: x\r\n"));
        assert!(is_complete(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(is_complete(b"hello\n"));
        assert!(!is_complete(b"hel"));
    }

    #[test]
    fn answers_name_and_canonical_peer() {
        let mapped: SocketAddr = "[::ffff:198.18.2.2]:1000".parse().unwrap();
        assert_eq!(whoami("vpn", mapped), "vpn 198.18.2.2");
        let v6: SocketAddr = "[fd00:1::2]:1000".parse().unwrap();
        assert_eq!(whoami("wan", v6), "wan fd00:1::2");
    }
}
