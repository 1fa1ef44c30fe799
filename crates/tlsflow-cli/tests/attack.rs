//! `tlsflow serve` under attack, with its default options, on 127.0.0.1: each case keeps a
//! legitimate client served in bounded time. Figures are printed (`--nocapture`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{Proc, Server};

/// A client that skips verification: the server's certificate is generated at start.
fn insecure_client() -> tlsflow::ClientConfig {
    tlsflow::ClientConfig::builder()
        .dangerous_disable_verification()
        .build()
        .unwrap()
}

/// A legitimate client: a full handshake, then 1 MiB echoed back, checked. Returns how long
/// it took.
fn legitimate_client(addr: SocketAddr) -> Duration {
    let config = insecure_client();
    let started = Instant::now();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.set_nodelay(true).unwrap();
    let mut tls = config.connect("localhost", tcp).unwrap();
    tls.handshake().unwrap();
    let (mut reader, mut writer) = tls.into_split().unwrap();
    let data: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    let sending = {
        let data = data.clone();
        thread::spawn(move || {
            writer.write_all(&data).unwrap();
            writer.shutdown().unwrap();
        })
    };
    let mut echoed = Vec::new();
    reader.read_to_end(&mut echoed).unwrap();
    let elapsed = started.elapsed();
    assert!(echoed == data, "the echo differs");
    sending.join().unwrap();
    elapsed
}

/// The first flight of a real client: what a byte-a-second attacker drips.
fn client_hello() -> Vec<u8> {
    let config = insecure_client();
    config
        .session("localhost")
        .unwrap()
        .pending_output()
        .to_vec()
}

/// 2,000 connections that send nothing and 500 that send a ClientHello a byte a second: a
/// legitimate client still completes its handshake and a 1 MiB echo in under a second,
/// each of five times. With the default options, and with fewer connection slots than the
/// attacker has sockets (which froze the server while it kept handshakes in its slots).
#[test]
fn a_slowloris_does_not_keep_a_legitimate_client_out() {
    slowloris(&[]);
}

#[test]
fn a_slowloris_with_more_sockets_than_slots_does_not_either() {
    slowloris(&["--max-connections", "300"]);
}

fn slowloris(options: &[&str]) {
    let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--echo"];
    args.extend_from_slice(options);
    let server = Server::start(&args);
    let addr: SocketAddr = format!("127.0.0.1:{}", server.port()).parse().unwrap();
    let silent: Vec<TcpStream> = (0..2000)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    let dripping: Vec<TcpStream> = (0..500)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    let hello = client_hello();
    let stop = Arc::new(AtomicBool::new(false));
    let drip = {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut dripping = dripping;
            let mut at = 0;
            while !stop.load(Ordering::Relaxed) && at < hello.len() {
                for tcp in &mut dripping {
                    // Shed connections refuse the byte; the attacker does not care.
                    let _ = tcp.write(&hello[at..=at]);
                }
                at += 1;
                thread::sleep(Duration::from_secs(1));
            }
            dripping
        })
    };
    thread::sleep(Duration::from_secs(2));
    let mut times = Vec::new();
    for _ in 0..5 {
        times.push(legitimate_client(addr));
        thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::Relaxed);
    drop(drip.join().unwrap());
    drop(silent);
    eprintln!(
        "legitimate client under a slowloris, options {options:?} (handshake and 1 MiB \
         echo): {times:?}"
    );
    let worst = times.iter().max().unwrap();
    assert!(
        *worst < Duration::from_secs(1),
        "a legitimate client took {worst:?} under the slowloris"
    );
    assert!(
        server
            .proc
            .stderr()
            .contains("shed connections still in their TLS handshake"),
        "the server says it shed handshakes: {}",
        server.proc.stderr()
    );
}

/// The server's resident memory, from /proc.
fn rss(server: &Proc) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.id())).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kb| kb.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .expect("a VmRSS line")
}

/// The server's CPU time so far (user and system), from /proc.
fn cpu(server: &Proc) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", server.id())).unwrap();
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|hz| u64::try_from(hz).ok())
        .filter(|&hz| hz > 0)
        .expect("the clock tick rate");
    Duration::from_micros(ticks * 1_000_000 / per_second)
}

fn server_addr(server: &Server) -> SocketAddr {
    format!("127.0.0.1:{}", server.port()).parse().unwrap()
}

/// Hostile bytes, each from a fresh connection, each followed by a legitimate client that
/// must be served in under a second: random bytes, a plaintext HTTP request, a record header
/// that claims 18 KiB, a truncated ClientHello then FIN, a reset right after a ClientHello,
/// a ClientHello with a 64 KiB server name, a thousand ChangeCipherSpec records.
#[test]
fn garbage_from_one_client_never_hurts_the_next() {
    let mut server = Server::start(&["serve", "--listen", "127.0.0.1:0", "--echo"]);
    let addr = server_addr(&server);
    let hello = client_hello();
    let random: Vec<u8> = (0u32..4096)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut ccs = Vec::new();
    for _ in 0..1000 {
        ccs.extend_from_slice(&[20, 3, 3, 0, 1, 1]);
    }
    ccs.extend_from_slice(&hello);
    let cases: Vec<(&str, Vec<u8>, Ending)> = vec![
        ("random bytes", random, Ending::Close),
        (
            "a plaintext HTTP request",
            b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
            Ending::Close,
        ),
        (
            "a record header claiming 18 KiB",
            vec![22, 3, 1, 0x48, 0x00, 1, 0, 0x47, 0xfc],
            Ending::Close,
        ),
        (
            "a truncated ClientHello, then FIN",
            hello[..hello.len() / 2].to_vec(),
            Ending::Fin,
        ),
        (
            "a reset right after a ClientHello",
            hello.clone(),
            Ending::Reset,
        ),
        ("a 64 KiB server name", huge_sni_hello(), Ending::Close),
        ("a thousand ChangeCipherSpec records", ccs, Ending::Close),
    ];
    for (name, bytes, ending) in cases {
        let mut tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = tcp.write_all(&bytes);
        match ending {
            Ending::Close => {
                // Read what the server answers (an alert, or nothing) until it closes.
                let mut answer = Vec::new();
                let _ = tcp.read_to_end(&mut answer);
            }
            Ending::Fin => {
                tcp.shutdown(Shutdown::Write).unwrap();
                let _ = tcp.read_to_end(&mut Vec::new());
            }
            Ending::Reset => {
                socket2::SockRef::from(&tcp)
                    .set_linger(Some(Duration::ZERO))
                    .unwrap();
            }
        }
        drop(tcp);
        let took = legitimate_client(addr);
        eprintln!("after {name}: a legitimate client took {took:?}");
        assert!(took < Duration::from_secs(1), "after {name}: {took:?}");
    }
    assert!(
        server.proc.exited().is_none(),
        "the server is still running"
    );
}

/// How a garbage case ends its connection.
enum Ending {
    /// Wait for the server to close.
    Close,
    /// Half-close, then wait.
    Fin,
    /// Reset at once.
    Reset,
}

/// A ClientHello record sequence whose server_name extension is 64 KiB, cut into records.
fn huge_sni_hello() -> Vec<u8> {
    let name = vec![b'a'; 65_000];
    let mut list = vec![0u8];
    list.extend_from_slice(&u16::try_from(name.len()).unwrap().to_be_bytes());
    list.extend_from_slice(&name);
    let mut sni = (u16::try_from(list.len()).unwrap()).to_be_bytes().to_vec();
    sni.extend_from_slice(&list);
    let mut extensions = vec![0, 0];
    extensions.extend_from_slice(&u16::try_from(sni.len()).unwrap().to_be_bytes());
    extensions.extend_from_slice(&sni);
    let mut body = vec![3, 3];
    body.extend_from_slice(&[7; 32]);
    body.extend_from_slice(&[0, 0, 2, 0x13, 0x01, 1, 0]);
    body.extend_from_slice(
        &u16::try_from(extensions.len())
            .unwrap_or(u16::MAX)
            .to_be_bytes(),
    );
    body.extend_from_slice(&extensions);
    let [_, a, b, c] = u32::try_from(body.len()).unwrap().to_be_bytes();
    let mut message = vec![1, a, b, c];
    message.extend_from_slice(&body);
    let mut records = Vec::new();
    for fragment in message.chunks(16 * 1024) {
        records.extend_from_slice(&[22, 3, 1]);
        records.extend_from_slice(&u16::try_from(fragment.len()).unwrap().to_be_bytes());
        records.extend_from_slice(fragment);
    }
    records
}

/// A `--sink` transfer cut by a reset: the server reports an error for that peer and never
/// a SHA-256 line, which would claim the data arrived whole.
#[test]
fn a_reset_sink_transfer_is_an_error_not_a_digest() {
    // `-v` logs each finished handshake: the reset must come after it, in the transfer,
    // not while the server still waits for the client's Finished.
    let mut server = Server::start(&["serve", "--listen", "127.0.0.1:0", "--sink", "-v"]);
    let addr = server_addr(&server);
    let config = insecure_client();
    let tcp = TcpStream::connect(addr).unwrap();
    let local = tcp.local_addr().unwrap();
    let mut tls = config
        .connect("localhost", tcp.try_clone().unwrap())
        .unwrap();
    tls.write_all(&vec![9u8; 1 << 20]).unwrap();
    tls.flush().unwrap();
    let peer = local.to_string();
    server.proc.wait_for_stderr("the handshake line", |line| {
        (line.contains(&peer) && line.contains("TLSv1.3")).then_some(())
    });
    socket2::SockRef::from(&tcp)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(tls);
    drop(tcp);
    let line = server.proc.wait_for_stderr("the error line", |line| {
        (line.contains(&peer) && line.contains("WARN")).then(|| line.to_owned())
    });
    assert!(line.contains("receiving failed"), "{line}");
    assert!(
        !server.proc.stderr().contains("sha256"),
        "{}",
        server.proc.stderr()
    );
}

/// An echo client that sends and never reads: the server stops reading once its answers
/// cannot leave, so its memory stays bounded however much the client tries to send.
#[test]
fn an_echo_client_that_never_reads_cannot_grow_the_server() {
    let server = Server::start(&["serve", "--listen", "127.0.0.1:0", "--echo"]);
    let addr = server_addr(&server);
    legitimate_client(addr);
    let before = rss(&server.proc);
    let config = insecure_client();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut tls = config.connect("localhost", tcp).unwrap();
    let chunk = vec![1u8; 64 * 1024];
    let mut sent = 0usize;
    while sent < 256 << 20 {
        match tls.write_all(&chunk).and_then(|()| tls.flush()) {
            Ok(()) => sent += chunk.len(),
            Err(_) => break,
        }
    }
    thread::sleep(Duration::from_millis(300));
    let grown = rss(&server.proc).saturating_sub(before);
    eprintln!(
        "an echo client that never reads sent {} KiB before it blocked; the server grew {} KiB",
        sent / 1024,
        grown / 1024
    );
    assert!(
        sent < 64 << 20,
        "the server took {sent} bytes it could not answer"
    );
    assert!(grown < 8 << 20, "the server grew {grown} bytes");
    drop(tls);
    let took = legitimate_client(addr);
    assert!(took < Duration::from_secs(1), "{took:?}");
}

/// Out of file descriptors: the server keeps running without a busy loop, logs the
/// failure at most once a second with a count, and serves again once descriptors free up.
#[test]
fn running_out_of_descriptors_is_survived() {
    // `ulimit` for the server alone: 64 descriptors, a few for itself.
    let binary = env!("CARGO_BIN_EXE_tlsflow");
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!(
            "ulimit -n 64 && exec {binary} serve --listen 127.0.0.1:0 --echo"
        ))
        .stdin(std::process::Stdio::null());
    let mut proc = Proc::spawn("tlsflow serve (64 descriptors)", command);
    let addr: SocketAddr = proc.wait_for_stderr("its address", |line| {
        let (_, addr) = line.split_once("listening on ")?;
        addr.trim().parse().ok()
    });
    let held: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    thread::sleep(Duration::from_millis(500));
    let cpu_before = cpu(&proc);
    thread::sleep(Duration::from_secs(3));
    let spent = cpu(&proc) - cpu_before;
    let log = proc.stderr();
    let warnings = log.matches("accepting a connection failed").count();
    eprintln!("out of descriptors for 3 s: {spent:?} of CPU, {warnings} warning line(s)");
    assert!(spent < Duration::from_millis(600), "a busy loop: {spent:?}");
    assert!((1..=5).contains(&warnings), "{log}");
    drop(held);
    thread::sleep(Duration::from_millis(300));
    let took = legitimate_client(addr);
    assert!(took < Duration::from_secs(1), "{took:?}");
}

/// `--max-connections`: with both slots held by established connections, a third client
/// waits; once one closes, it is served.
#[test]
fn max_connections_holds_and_releases() {
    let server = Server::start(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--echo",
        "--max-connections",
        "2",
    ]);
    let addr = server_addr(&server);
    let config = insecure_client();
    let established: Vec<_> = (0..2)
        .map(|_| {
            let mut tls = config
                .connect("localhost", TcpStream::connect(addr).unwrap())
                .unwrap();
            tls.handshake().unwrap();
            tls
        })
        .collect();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    let mut waiting = config.connect("localhost", tcp).unwrap();
    let err = waiting.handshake().unwrap_err();
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "a third client is not served while two are: {err}"
    );
    drop(established);
    waiting
        .get_ref()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    waiting.handshake().unwrap();
    waiting.write_all(b"ping").unwrap();
    waiting.flush().unwrap();
    let mut pong = [0u8; 4];
    waiting.read_exact(&mut pong).unwrap();
    assert_eq!(&pong, b"ping");
}

/// The soft limit on open files of this process.
fn open_files_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .and_then(|line| line.split_whitespace().nth(3))
        .and_then(|soft| soft.parse().ok())
        .unwrap_or(0)
}

/// 5,000 idle established connections, each after a handshake and a 1 KiB echo: the server
/// holds under 8 KiB per connection, still serves a legitimate client in under a second,
/// and is back within 1.5 times its memory once they close.
#[test]
fn five_thousand_idle_connections() {
    // `TLSFLOW_IDLE=N` measures with another count (a multiple of 4).
    let count: usize = std::env::var("TLSFLOW_IDLE")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(5000);
    let limit = open_files_limit();
    // This process holds the client ends, the server (which inherits the limit) the rest.
    assert!(
        limit > count as u64 + 200,
        "this test needs {} open files (ulimit -n), the limit is {limit}",
        count + 200
    );
    // The server inherits this process's limit on open files.
    let server = Server::start(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--echo",
        "--max-connections",
        "20000",
    ]);
    let addr = server_addr(&server);
    legitimate_client(addr);
    thread::sleep(Duration::from_millis(300));
    let before = rss(&server.proc);
    let config = insecure_client();
    let started = Instant::now();
    let connections: Vec<_> = thread::scope(|s| {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let config = &config;
                s.spawn(move || {
                    (0..count / 4)
                        .map(|_| {
                            let tcp = TcpStream::connect(addr).unwrap();
                            tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                            let mut tls = config.connect("localhost", tcp).unwrap();
                            tls.write_all(&[5u8; 1024]).unwrap();
                            tls.flush().unwrap();
                            let mut echo = [0u8; 1024];
                            tls.read_exact(&mut echo).unwrap();
                            tls
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| worker.join().unwrap())
            .collect()
    });
    let opening = started.elapsed();
    thread::sleep(Duration::from_millis(500));
    let idle = rss(&server.proc);
    let per_connection = (idle.saturating_sub(before)) / count as u64;
    let took = legitimate_client(addr);
    drop(connections);
    // `TLSFLOW_SETTLE=S`: seconds to wait after they closed (allocators give memory back
    // at different paces).
    let settle = std::env::var("TLSFLOW_SETTLE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    thread::sleep(Duration::from_secs(settle));
    let after = rss(&server.proc);
    eprintln!(
        "{count} idle connections opened in {opening:?}: server RSS {} KiB before, {} KiB \
         with them ({per_connection} bytes each), {} KiB after they closed; a legitimate \
         client took {took:?} meanwhile",
        before / 1024,
        idle / 1024,
        after / 1024
    );
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert!(
        per_connection < 8 * 1024,
        "{per_connection} bytes per idle connection"
    );
    assert!(
        after * 2 < before * 3,
        "memory not given back: {after} bytes after the connections closed, {before} before"
    );
}

/// `--idle-timeout`: an established connection that moves nothing is closed, so silent
/// clients cannot hold the connection slots for ever; one that keeps moving data is not.
#[test]
fn idle_established_connections_are_closed() {
    let server = Server::start(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--echo",
        "--idle-timeout",
        "500ms",
    ]);
    let addr = server_addr(&server);
    let config = insecure_client();
    let connect = || {
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut tls = config.connect("localhost", tcp).unwrap();
        tls.handshake().unwrap();
        tls
    };
    let mut busy = connect();
    let mut silent = connect();
    let started = Instant::now();
    // The busy one echoes a little every 200 ms for 1.5 s.
    while started.elapsed() < Duration::from_millis(1500) {
        busy.write_all(b"ping").unwrap();
        busy.flush().unwrap();
        let mut pong = [0u8; 4];
        busy.read_exact(&mut pong).unwrap();
        thread::sleep(Duration::from_millis(200));
    }
    let closed = silent.read(&mut [0u8; 16]);
    assert!(
        matches!(closed, Ok(0)) || closed.is_err(),
        "the silent connection is closed: {closed:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    busy.write_all(b"still").unwrap();
    busy.flush().unwrap();
    let mut back = [0u8; 5];
    busy.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"still");
}
