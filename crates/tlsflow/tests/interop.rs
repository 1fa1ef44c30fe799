//! tlsflow against independent TLS implementations, run as real processes on 127.0.0.1:
//! `openssl s_server`/`s_client`, `gnutls-serv`/`gnutls-cli` and Python's `ssl` module
//! (`tests/peers/tls_peer.py`). Every peer × tlsflow's role × engine × TLS version × cipher
//! suite (48 cases) moves `TLSFLOW_INTEROP_MIB` MiB (default 64) each way at once, checked by
//! SHA-256 on both sides, and asserts the negotiated version and suite on tlsflow's side.
//! Then, per peer and engine, the same against tlsflow on a non-blocking socket with the
//! smallest buffers. A missing peer fails the test unless `TLSFLOW_SKIP_PEERS=1`.
//!
//! One exception to "each way": `gnutls-cli` receives about 1.4 MB/s (it writes every byte
//! it receives with its own write(2)), so what tlsflow sends it is
//! `TLSFLOW_INTEROP_GNUTLS_CLI_MIB` MiB (default 4; with 64 each of its 8 cases took about
//! 70 s here). Each case's line says how much went each way.
//!
//! Cases run `TLSFLOW_INTEROP_JOBS` at a time (default 2) across this file;
//! `TLSFLOW_INTEROP_FILTER` runs only the cases whose label contains it. Run with
//! `--nocapture` to see one line per case and the count.

#![allow(clippy::unwrap_used)]

mod common;
mod peers;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use socket2::{Domain, Socket, Type};
use tlsflow::{CipherSuite, ClientConfig, EngineKind, ProtocolVersion, ServerConfig, TlsStream};

use common::pki::ServerPki;
use common::process::{Digest256, Generator};
use peers::{Ending, Net, Peer, Plan, Role, Suite};

/// Socket timeouts on tlsflow's blocking side: no read or write waits longer.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Cases running at once across this file's tests, at most `TLSFLOW_INTEROP_JOBS`.
static RUNNING: (Mutex<u64>, Condvar) = (Mutex::new(0), Condvar::new());

fn with_slot<R>(run: impl FnOnce() -> R) -> R {
    let jobs = env_number("TLSFLOW_INTEROP_JOBS", 2).max(1);
    let (count, freed) = &RUNNING;
    let mut n = freed
        .wait_while(count.lock().unwrap(), |n| *n >= jobs)
        .unwrap();
    *n += 1;
    drop(n);
    let result = run();
    *count.lock().unwrap() -= 1;
    freed.notify_one();
    result
}

/// One interop case.
#[derive(Clone, Copy, Debug)]
struct Case {
    peer: Peer,
    role: Role,
    engine: EngineKind,
    version: ProtocolVersion,
    suite: Suite,
    /// tlsflow on a non-blocking socket with the smallest buffers.
    small: bool,
}

impl Case {
    fn label(&self) -> String {
        let version = if self.version == ProtocolVersion::Tls13 {
            "TLS1.3"
        } else {
            "TLS1.2"
        };
        let role = format!("tlsflow-{:?}", self.role).to_lowercase();
        let io = if self.small {
            "nonblocking-small"
        } else {
            "blocking-split"
        };
        let (peer, suite) = (self.peer.name(self.role), self.suite.iana(self.version));
        let engine = self.engine.to_string();
        format!("{peer:<18} {role:<14} {engine:<7} {version} {suite:<45} {io:<17}")
    }
}

/// What tlsflow sends, and how much it expects back.
#[derive(Clone, Copy)]
struct Payload {
    seed: u64,
    len: u64,
    /// Only bytes a line-based echo server returns unchanged (see `Generator::lines`).
    lines: bool,
    expect: u64,
}

impl Payload {
    fn generator(self) -> Generator {
        if self.lines {
            Generator::lines(self.seed, self.len)
        } else {
            Generator::new(self.seed, self.len)
        }
    }
}

/// What tlsflow's side saw.
struct Side {
    sent: Digest256,
    received: Digest256,
    version: Option<ProtocolVersion>,
    suite: Option<CipherSuite>,
    elapsed: Duration,
    /// Writes and reads that returned `WouldBlock` (non-blocking only).
    blocked: Option<(u64, u64)>,
}

/// tlsflow's side over a blocking socket: a writer thread and this reader, through the
/// split halves, so the peer can send and receive at once.
fn duplex_blocking(
    mut tls: TlsStream<TcpStream>,
    payload: Payload,
    ending: Ending,
) -> Result<Side, String> {
    let len = payload.expect;
    tls.handshake().map_err(|e| format!("handshake: {e}"))?;
    let (version, suite) = (tls.protocol_version(), tls.cipher_suite());
    let started = Instant::now();
    let (mut reader, mut writer) = tls.into_split().map_err(|_| "split refused")?;
    let half_close = ending == Ending::TlsflowHalfCloses;
    let sender = thread::spawn(move || {
        let mut generator = payload.generator();
        let mut buf = vec![0u8; 64 * 1024];
        let sent = (|| loop {
            let block = generator.next_block(&mut buf);
            if block.is_empty() {
                writer.flush()?;
                return if half_close {
                    writer.shutdown()
                } else {
                    Ok(())
                };
            }
            writer.write_all(block)?;
        })();
        (writer, sent.map(|()| generator.digest()))
    });
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut received = 0u64;
    while received < len {
        let want = buf.len().min(usize::try_from(len - received).unwrap());
        match reader.read(&mut buf[..want]) {
            Ok(0) => return Err(format!("end of stream after {received} bytes")),
            Ok(n) => {
                hasher.update(&buf[..n]);
                received += n as u64;
            }
            Err(e) => return Err(format!("read failed after {received} bytes: {e}")),
        }
    }
    let expect_end = |reader: &mut tlsflow::ReadHalf<_, _>| match reader.read(&mut [0u8; 1]) {
        Ok(0) => Ok(()),
        Ok(_) => Err("more bytes than expected".to_owned()),
        Err(e) => Err(format!("no clean close_notify after all the data: {e}")),
    };
    if ending == Ending::PeerCloses {
        expect_end(&mut reader)?;
    }
    let (mut writer, sent) = sender.join().unwrap();
    let sent = sent.map_err(|e| format!("write failed: {e}"))?;
    if !half_close {
        writer.shutdown().map_err(|e| format!("shutdown: {e}"))?;
    }
    if ending != Ending::PeerCloses {
        expect_end(&mut reader)?;
    }
    Ok(Side {
        sent,
        received: Digest256 {
            len: received,
            sha: hasher.finalize().into(),
        },
        version,
        suite,
        elapsed: started.elapsed(),
        blocked: None,
    })
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

/// tlsflow's side over a non-blocking socket, in one thread: write when it can, read when
/// it can, nap when neither moved.
fn duplex_nonblocking(
    mut tls: TlsStream<TcpStream>,
    payload: Payload,
    ending: Ending,
) -> Result<Side, String> {
    let len = payload.expect;
    let deadline = Instant::now() + Duration::from_secs(300);
    let nap = || thread::sleep(Duration::from_micros(50));
    loop {
        match tls.handshake() {
            Ok(()) => break,
            Err(e) if would_block(&e) => nap(),
            Err(e) => return Err(format!("handshake: {e}")),
        }
        if Instant::now() > deadline {
            return Err("handshake timed out".into());
        }
    }
    let (version, suite) = (tls.protocol_version(), tls.cipher_suite());
    let started = Instant::now();
    let mut generator = payload.generator();
    let mut out = vec![0u8; 64 * 1024];
    let (mut block_start, mut block_end) = (0, 0);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let (mut received, mut all_sent, mut shut, mut eof) = (0u64, false, false, false);
    let (mut blocked_writes, mut blocked_reads) = (0u64, 0u64);
    while !(shut && eof) {
        if Instant::now() > deadline {
            return Err(format!(
                "timed out: received {received}, eof {eof}, shut {shut}"
            ));
        }
        let mut moved = false;
        if !all_sent {
            if block_start == block_end {
                block_end = generator.next_block(&mut out).len();
                block_start = 0;
                all_sent = block_end == 0;
            }
            if !all_sent {
                match tls.write(&out[block_start..block_end]) {
                    Ok(n) => (block_start, moved) = (block_start + n, true),
                    Err(e) if would_block(&e) => blocked_writes += 1,
                    Err(e) => return Err(format!("write failed: {e}")),
                }
            }
        }
        let may_shut = match ending {
            Ending::TlsflowHalfCloses => true,
            Ending::TlsflowClosesLast => received == len,
            Ending::PeerCloses => eof,
        };
        if all_sent && !shut && may_shut {
            match tls.shutdown() {
                Ok(()) => (shut, moved) = (true, true),
                Err(e) if would_block(&e) => {}
                Err(e) => return Err(format!("shutdown: {e}")),
            }
        }
        if !eof {
            match tls.read(&mut buf) {
                Ok(0) if received < len => return Err(format!("end after {received} bytes")),
                Ok(0) => (eof, moved) = (true, true),
                Ok(n) if received + n as u64 > len => return Err("more bytes than expected".into()),
                Ok(n) => {
                    hasher.update(&buf[..n]);
                    (received, moved) = (received + n as u64, true);
                }
                Err(e) if would_block(&e) => blocked_reads += 1,
                Err(e) => return Err(format!("read failed after {received} bytes: {e}")),
            }
        }
        if !moved {
            nap(); // a real program would poll() on tls.interest() here
        }
    }
    Ok(Side {
        sent: generator.digest(),
        received: Digest256 {
            len: received,
            sha: hasher.finalize().into(),
        },
        version,
        suite,
        elapsed: started.elapsed(),
        blocked: Some((blocked_writes, blocked_reads)),
    })
}

/// tlsflow's sockets: plain, with Nagle off and timeouts.
struct PlainNet;

impl Net for PlainNet {
    fn connect(&self, port: u16) -> io::Result<TcpStream> {
        TcpStream::connect(("127.0.0.1", port))
    }

    fn listen(&self) -> TcpListener {
        TcpListener::bind("127.0.0.1:0").unwrap()
    }
}

/// tlsflow's sockets with the smallest send buffer and a receive buffer under one record
/// (asking for 4096 gives 8192), set before connect or listen, as the ticket asks.
struct SmallNet;

fn small_socket() -> Socket {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.set_send_buffer_size(1).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.set_tcp_nodelay(true).unwrap();
    socket
}

impl Net for SmallNet {
    fn connect(&self, port: u16) -> io::Result<TcpStream> {
        let socket = small_socket();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        socket.connect(&addr.into())?;
        Ok(socket.into())
    }

    fn listen(&self) -> TcpListener {
        let socket = small_socket();
        let addr: SocketAddr = ([127, 0, 0, 1], 0).into();
        socket.bind(&addr.into()).unwrap();
        socket.listen(1).unwrap();
        socket.into()
    }
}

fn run_case(case: &Case, seed: u64) -> Result<String, String> {
    let len = env_number("TLSFLOW_INTEROP_MIB", 64) << 20;
    // gnutls-cli takes about 1.4 MB/s (one write(2) per byte it receives, see peers/mod.rs):
    // what tlsflow sends it has its own size.
    let to_peer = if case.peer == Peer::Gnutls && case.role == Role::Server {
        len.min(env_number("TLSFLOW_INTEROP_GNUTLS_CLI_MIB", 4) << 20)
    } else {
        len
    };
    let pki = ServerPki::new("interop");
    let plan = Plan {
        peer: case.peer,
        tlsflow: case.role,
        version: case.version,
        suite: case.suite,
        pki: &pki,
        len,
        seed: seed * 2 + 1,
    };
    let net: &dyn Net = if case.small { &SmallNet } else { &PlainNet };
    let (running, tcp) = peers::start(&plan, net)?;
    let raw = tcp.try_clone().unwrap();
    tcp.set_nodelay(true).unwrap();
    // gnutls-cli reads nothing from its stdin while tlsflow sends: allow for that.
    let timeout = IO_TIMEOUT + Duration::from_secs(to_peer >> 20);
    let mut buffers = String::new();
    if case.small {
        tcp.set_nonblocking(true).unwrap();
        let sock = socket2::SockRef::from(&tcp);
        let (snd, rcv) = (sock.send_buffer_size(), sock.recv_buffer_size());
        buffers = format!(" SO_SNDBUF {} SO_RCVBUF {}", snd.unwrap(), rcv.unwrap());
    } else {
        tcp.set_read_timeout(Some(timeout)).unwrap();
        tcp.set_write_timeout(Some(timeout)).unwrap();
    }
    // Default configurations: the peer alone limits the version and the suite, so what
    // tlsflow reports is what was negotiated.
    let tls = match case.role {
        Role::Client => (ClientConfig::builder().ca_file(&pki.ca_file))
            .engine(case.engine)
            .build()
            .unwrap()
            .connect("localhost", tcp)
            .unwrap(),
        Role::Server => (ServerConfig::builder().cert_files(&pki.cert_file, &pki.key_file))
            .engine(case.engine)
            .build()
            .unwrap()
            .accept(tcp)
            .unwrap(),
    };
    let payload = Payload {
        seed: seed * 2,
        len: to_peer,
        lines: running.echo,
        expect: if running.echo { to_peer } else { len },
    };
    let side = if case.small {
        duplex_nonblocking(tls, payload, running.ending)
    } else {
        duplex_blocking(tls, payload, running.ending)
    };
    if side.is_err() {
        // A writer thread may still wait on the socket: wake it.
        let _ = raw.shutdown(Shutdown::Both);
    }
    let running_echo = running.echo;
    let view = running.finish(side.is_err());
    let side = side.map_err(|e| format!("tlsflow: {e}; peer log: {}", view.log))?;
    let fail = |what: String| Err(format!("{what}; peer log: {}", view.log));
    if side.version != Some(case.version) {
        return fail(format!("negotiated {:?}", side.version));
    }
    let suite = side.suite.and_then(CipherSuite::name);
    if suite != Some(case.suite.iana(case.version)) {
        return fail(format!("negotiated suite {:?}", side.suite));
    }
    // The echo server sent back what it received.
    let peer_sent = if running_echo {
        Some(side.sent)
    } else {
        view.sent
    };
    if peer_sent != Some(side.received) {
        return fail(format!(
            "tlsflow received {:?}, the peer sent {peer_sent:?}",
            side.received
        ));
    }
    if let Some(received) = view.received.filter(|r| *r != side.sent) {
        return fail(format!(
            "the peer received {received:?}, tlsflow sent {:?}",
            side.sent
        ));
    }
    if let Some(status) = view.status.filter(|s| !s.success()) {
        return fail(format!("the peer exited with {status}"));
    }
    if let Some((writes, reads)) = side.blocked {
        buffers.push_str(&format!(", WouldBlock: {writes} writes {reads} reads"));
    }
    let moved = side.sent.len + side.received.len;
    let rate = moved as f64 / side.elapsed.as_secs_f64() / 1e6;
    Ok(format!(
        "{} ok: sent {:>2} MiB, received {:>2} MiB in {:>6.2?}: {rate:6.1} MB/s{buffers}",
        case.label(),
        side.sent.len >> 20,
        side.received.len >> 20,
        side.elapsed,
    ))
}

/// Runs `cases` (two at a time across the file), prints a line each, and fails listing
/// every case that failed.
fn run_all(cases: Vec<Case>, first_seed: u64) {
    let filter = std::env::var("TLSFLOW_INTEROP_FILTER").unwrap_or_default();
    let cases: Vec<(u64, Case)> = (first_seed..)
        .zip(cases)
        .filter(|(_, c)| c.label().contains(&filter))
        .collect();
    let started = Instant::now();
    let results: Vec<(Case, Result<String, String>)> = thread::scope(|scope| {
        let handles: Vec<_> = (cases.iter())
            .map(|(seed, case)| {
                scope.spawn(move || {
                    with_slot(|| {
                        let one = thread::scope(|s| s.spawn(|| run_case(case, *seed)).join());
                        let result = one.unwrap_or_else(|_| Err("panicked".into()));
                        match &result {
                            Ok(line) => eprintln!("{line}"),
                            Err(e) => eprintln!("{} FAILED: {e}", case.label()),
                        }
                        (*case, result)
                    })
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let failed: Vec<String> = (results.iter())
        .filter_map(|(case, r)| r.as_ref().err().map(|e| format!("{}: {e}", case.label())))
        .collect();
    eprintln!(
        "{} interop cases run in {:.1?}, {} failed",
        results.len(),
        started.elapsed(),
        failed.len()
    );
    assert!(failed.is_empty(), "failed cases:\n{}", failed.join("\n"));
}

#[test]
fn every_peer_role_engine_version_and_suite() {
    let mut cases = Vec::new();
    for peer in Peer::ALL.into_iter().filter(|p| p.available()) {
        for role in [Role::Client, Role::Server] {
            for engine in [EngineKind::Rustls, EngineKind::Openssl] {
                for version in [ProtocolVersion::Tls13, ProtocolVersion::Tls12] {
                    for suite in Suite::ALL {
                        let small = false;
                        cases.push(Case {
                            peer,
                            role,
                            engine,
                            version,
                            suite,
                            small,
                        });
                    }
                }
            }
        }
    }
    run_all(cases, 1);
}

/// The ticket's scenario: the peer sends and receives at full speed while tlsflow's
/// non-blocking socket has the smallest buffers the kernel allows.
#[test]
fn peers_at_full_speed_against_the_smallest_nonblocking_buffers() {
    let mut cases = Vec::new();
    for peer in Peer::ALL.into_iter().filter(|p| p.available()) {
        // tlsflow as client against the servers that echo or send from stdin, as server
        // against the Python client: both ways of making the small socket are covered.
        let role = if peer == Peer::Python {
            Role::Server
        } else {
            Role::Client
        };
        for engine in [EngineKind::Rustls, EngineKind::Openssl] {
            let (version, suite) = (ProtocolVersion::Tls13, Suite::AesGcm);
            cases.push(Case {
                peer,
                role,
                engine,
                version,
                suite,
                small: true,
            });
        }
    }
    run_all(cases, 1000);
}
