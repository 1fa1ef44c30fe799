//! The ticket's scenario, end to end: a TLS client on a non-blocking socket with the smallest
//! send buffer the kernel allows writes a large payload over loopback to a slow reader, and
//! the reader checks every byte by SHA-256.
//!
//! ```text
//! cargo run --release --features self-signed --example transfer -- [--size 1GiB] [--write-size 64KiB] [--engine rustls|openssl]
//! ```
//!
//! The last line is `intact: <bytes> bytes, sha256 <hex>, <rate> MB/s` when the receiver's
//! SHA-256 matches the sender's; otherwise the exit status is non-zero.

use std::io::{self, IsTerminal, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use sha2::{Digest, Sha256};
use socket2::{Domain, Socket, Type};
use tlsflow::{ClientConfig, EngineKind, SelfSigned, ServerConfig, TlsStream};

mod common;
use common::{hex, parse_size, Payload};

struct Options {
    size: u64,
    write_size: usize,
    engine: EngineKind,
}

fn parse_args() -> Result<Options, String> {
    let mut options = Options {
        size: 1 << 30,
        write_size: 64 * 1024,
        engine: EngineKind::Rustls,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--size" => options.size = parse_size(&value("--size")?)?,
            "--engine" => {
                options.engine = value("--engine")?
                    .parse()
                    .map_err(|e: tlsflow::Error| e.to_string())?;
            }
            "--write-size" => {
                options.write_size = usize::try_from(parse_size(&value("--write-size")?)?)
                    .map_err(|_| "--write-size is too large".to_string())?
                    .max(1);
            }
            "-h" | "--help" => {
                println!(
                    "usage: transfer [--size BYTES] [--write-size BYTES]  (e.g. --size 256MiB)"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(options)
}

/// The receiving side: a blocking TLS server that reads slowly and hashes what it gets.
fn receive(listener: TcpListener, config: ServerConfig) -> io::Result<(u64, [u8; 32])> {
    let (tcp, _) = listener.accept()?;
    tcp.set_nodelay(true)?;
    let mut tls = config.accept(tcp)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 4096];
    let (mut total, mut next_pause) = (0u64, 4u64 << 20);
    loop {
        let n = tls.read(&mut buf)?;
        if n == 0 {
            break; // the client's close_notify
        }
        hasher.update(&buf[..n]);
        total += n as u64;
        if total >= next_pause {
            // The slow reader: a short nap every 4 MiB lets the sender's buffers fill.
            thread::sleep(Duration::from_millis(1));
            next_pause += 4 << 20;
        }
    }
    tls.shutdown()?;
    Ok((total, hasher.finalize().into()))
}

struct Progress {
    total: u64,
    started: Instant,
    last: Instant,
    terminal: bool,
    next_line: u64,
}

impl Progress {
    fn update(&mut self, done: u64) {
        let now = Instant::now();
        if self.terminal {
            if now.duration_since(self.last) >= Duration::from_millis(200) || done == self.total {
                self.last = now;
                let rate =
                    done as f64 / now.duration_since(self.started).as_secs_f64().max(1e-9) / 1e6;
                let pct = if self.total == 0 {
                    100.0
                } else {
                    done as f64 * 100.0 / self.total as f64
                };
                eprint!(
                    "\r{pct:5.1}%  {done} / {} bytes  {rate:8.1} MB/s ",
                    self.total
                );
                if done == self.total {
                    eprintln!();
                }
            }
        } else if done >= self.next_line {
            eprintln!("sent {done} of {} bytes", self.total);
            self.next_line += (self.total / 10).max(1);
        }
    }
}

fn wait(poll: &mut Poll, events: &mut Events) -> io::Result<()> {
    match poll.poll(events, Some(Duration::from_secs(30))) {
        Ok(()) if events.is_empty() => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "no progress for 30 s",
        )),
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
        Err(e) => Err(e),
    }
}

/// Runs `op` until it stops returning `WouldBlock`, waiting for readiness in between.
fn retry<T>(
    poll: &mut Poll,
    events: &mut Events,
    mut op: impl FnMut() -> io::Result<T>,
) -> io::Result<T> {
    loop {
        match op() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait(poll, events)?,
            other => return other,
        }
    }
}

/// The sending side: a TLS client on a non-blocking socket with the smallest send buffer.
fn send(
    addr: SocketAddr,
    config: ClientConfig,
    options: &Options,
) -> io::Result<(String, [u8; 32])> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.set_send_buffer_size(1)?; // the kernel rounds up to its minimum
    socket.set_tcp_nodelay(true)?;
    socket.connect(&addr.into())?;
    socket.set_nonblocking(true)?;
    let mut tcp = TcpStream::from_std(socket.into());
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(4);
    poll.registry()
        .register(&mut tcp, Token(0), Interest::READABLE | Interest::WRITABLE)?;
    let mut tls: TlsStream<TcpStream> = config.connect("localhost", tcp)?;
    retry(&mut poll, &mut events, || tls.handshake())?;
    let negotiated = format!(
        "{} {}",
        tls.protocol_version()
            .map(|v| v.to_string())
            .unwrap_or_default(),
        tls.cipher_suite()
            .map(|s| s.to_string())
            .unwrap_or_default()
    );

    let mut payload = Payload::new(0x7154_f10e);
    let mut hasher = Sha256::new();
    let mut block = vec![0u8; options.write_size];
    let mut progress = Progress {
        total: options.size,
        started: Instant::now(),
        last: Instant::now(),
        terminal: io::stderr().is_terminal(),
        next_line: 0,
    };
    let mut sent = 0u64;
    while sent < options.size {
        let len = block.len().min((options.size - sent) as usize);
        payload.fill(&mut block[..len]);
        hasher.update(&block[..len]);
        let mut offset = 0;
        while offset < len {
            // Each accepted byte is the stream's to deliver: never offer it again.
            offset += retry(&mut poll, &mut events, || tls.write(&block[offset..len]))?;
        }
        sent += len as u64;
        progress.update(sent);
    }
    progress.update(sent);
    retry(&mut poll, &mut events, || tls.close())?;
    Ok((negotiated, hasher.finalize().into()))
}

fn run(options: &Options) -> Result<String, String> {
    let cert = SelfSigned::generate(&["localhost"]).map_err(|e| e.to_string())?;
    let server_config = ServerConfig::builder()
        .self_signed(&cert)
        .engine(options.engine)
        .build()
        .map_err(|e| e.to_string())?;
    let client_config = ClientConfig::builder()
        .ca_certificate(cert.cert_der())
        .engine(options.engine)
        .build()
        .map_err(|e| e.to_string())?;

    let listener = Socket::new(Domain::IPV4, Type::STREAM, None).map_err(|e| e.to_string())?;
    listener
        .set_recv_buffer_size(4096)
        .map_err(|e| e.to_string())?;
    let bind: SocketAddr = "127.0.0.1:0".parse().map_err(|e| format!("{e}"))?;
    listener
        .bind(&bind.into())
        .map_err(|e| format!("cannot bind loopback: {e}"))?;
    listener.listen(1).map_err(|e| e.to_string())?;
    let listener: TcpListener = listener.into();
    let addr = listener.local_addr().map_err(|e| e.to_string())?;

    let receiver = thread::spawn(move || receive(listener, server_config));
    let started = Instant::now();
    let sent = send(addr, client_config, options);
    let received = receiver
        .join()
        .map_err(|_| "the receiver panicked".to_string())?;
    let elapsed = started.elapsed().as_secs_f64();
    let (negotiated, sent_sha) = sent.map_err(|e| format!("sender failed: {e}"))?;
    let (count, received_sha) = received.map_err(|e| format!("receiver failed: {e}"))?;
    if count != options.size || received_sha != sent_sha {
        return Err(format!(
            "CORRUPTED: sent {} bytes (sha256 {}), received {count} bytes (sha256 {})",
            options.size,
            hex(&sent_sha),
            hex(&received_sha)
        ));
    }
    eprintln!("negotiated {negotiated}; {count} bytes in {elapsed:.2} s");
    Ok(format!(
        "intact: {count} bytes, sha256 {}, {:.1} MB/s",
        hex(&received_sha),
        count as f64 / elapsed / 1e6
    ))
}

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("transfer: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("transfer: {e}");
            ExitCode::FAILURE
        }
    }
}
