//! The lab's DNS server (zone and log: `bindto_tests::dns`).
//!
//! ```text
//! lab-dns --name NAME --log FILE --listen ADDR... --port PORT...
//! ```
//!
//! The same arguments as `uplink-server`, so the lab starts both alike:
//! UDP and TCP on every address and port, `ready` on stdout once all are
//! bound, and an exit when the parent goes.

use std::env;
use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::process::parent_id;
use std::path::PathBuf;
use std::process::{self, ExitCode};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use bindto_tests::dns::{self, Transport};
use bindto_tests::server::READY;

const USAGE: &str = "usage: lab-dns --name NAME --log FILE --listen ADDR... --port PORT...";

fn main() -> ExitCode {
    let (name, log, addrs) = match parse(env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("lab-dns: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if let Err(error) = serve(name, &log, &addrs) {
        eprintln!("lab-dns: {error}");
        return ExitCode::FAILURE;
    }
    let parent = parent_id();
    loop {
        thread::sleep(Duration::from_millis(200));
        if parent_id() != parent {
            process::exit(0);
        }
    }
}

fn parse(
    mut args: impl Iterator<Item = String>,
) -> Result<(String, PathBuf, Vec<SocketAddr>), String> {
    let (mut name, mut log, mut ips, mut ports) =
        (None, None, Vec::<IpAddr>::new(), Vec::<u16>::new());
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let bad = || format!("bad value {value:?} for {flag}");
        match flag.as_str() {
            "--name" => name = Some(value),
            "--log" => log = Some(PathBuf::from(value)),
            "--listen" => ips.push(value.parse().map_err(|_| bad())?),
            "--port" => ports.push(value.parse().map_err(|_| bad())?),
            _ => return Err(format!("unknown argument {flag:?}")),
        }
    }
    let addrs: Vec<SocketAddr> = ips
        .iter()
        .flat_map(|&ip| ports.iter().map(move |&port| SocketAddr::new(ip, port)))
        .collect();
    if addrs.is_empty() {
        return Err("needs at least one --listen and one --port".to_owned());
    }
    Ok((
        name.ok_or("--name is required")?,
        log.ok_or("--log is required")?,
        addrs,
    ))
}

/// The log, one whole line per write.
struct Log(Mutex<std::fs::File>);

impl Log {
    fn write(&self, line: &str) {
        let mut file = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = file.write_all(format!("{line}\n").as_bytes());
    }
}

fn serve(name: String, log: &PathBuf, addrs: &[SocketAddr]) -> io::Result<()> {
    let file = OpenOptions::new().create(true).append(true).open(log)?;
    let log = Arc::new(Log(Mutex::new(file)));
    let name: Arc<str> = name.into();
    let mut udp = Vec::new();
    let mut tcp = Vec::new();
    for &addr in addrs {
        udp.push(
            UdpSocket::bind(addr)
                .map_err(|e| io::Error::new(e.kind(), format!("udp {addr}: {e}")))?,
        );
        tcp.push(
            TcpListener::bind(addr)
                .map_err(|e| io::Error::new(e.kind(), format!("tcp {addr}: {e}")))?,
        );
    }
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{READY}")?;
    stdout.flush()?;
    for socket in udp {
        let (name, log) = (Arc::clone(&name), Arc::clone(&log));
        thread::spawn(move || serve_udp(&name, &log, &socket));
    }
    for listener in tcp {
        let (name, log) = (Arc::clone(&name), Arc::clone(&log));
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (name, log) = (Arc::clone(&name), Arc::clone(&log));
                thread::spawn(move || serve_tcp(&name, &log, stream));
            }
        });
    }
    Ok(())
}

fn serve_udp(name: &str, log: &Log, socket: &UdpSocket) {
    let mut buf = [0u8; 4096];
    while let Ok((n, peer)) = socket.recv_from(&mut buf) {
        if let Some((reply, query)) = dns::answer(name, &buf[..n], Transport::Udp, peer) {
            log.write(&query.line());
            if !reply.is_empty() {
                let _ = socket.send_to(&reply, peer);
            }
        }
    }
}

/// Answers length-prefixed queries until the client closes.
fn serve_tcp(name: &str, log: &Log, mut stream: TcpStream) {
    let Ok(peer) = stream.peer_addr() else { return };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    loop {
        let mut len = [0u8; 2];
        if stream.read_exact(&mut len).is_err() {
            return;
        }
        let mut request = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if stream.read_exact(&mut request).is_err() {
            return;
        }
        let Some((reply, query)) = dns::answer(name, &request, Transport::Tcp, peer) else {
            return;
        };
        log.write(&query.line());
        if reply.is_empty() {
            continue;
        }
        let mut framed = (reply.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&reply);
        if stream.write_all(&framed).is_err() {
            return;
        }
    }
}
