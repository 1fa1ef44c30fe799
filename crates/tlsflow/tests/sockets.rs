//! Real sockets: loopback TCP with the smallest buffers the kernel allows, a slow reader,
//! writes of random sizes through `write` (not `write_all`), 64 MiB each way, checked by
//! SHA-256 at the far end. `TLSFLOW_SOCKET_MIB` changes the size.

#![allow(clippy::unwrap_used)]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use socket2::{Domain, Socket, Type};
use tlsflow::testing::{engine_pairs, self_signed_configs_on, Rng};
use tlsflow::{EngineKind, Limits, TlsStream};

fn size() -> usize {
    let mib = std::env::var("TLSFLOW_SOCKET_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    mib << 20
}

/// A socket with the smallest send buffer and a receive buffer smaller than one TLS record
/// (asking for 4096 gives 8192): the sender meets backpressure on nearly every write.
fn small_socket() -> Socket {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.set_send_buffer_size(1).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.set_tcp_nodelay(true).unwrap();
    socket
}

fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = small_socket();
    listener.set_reuse_address(true).unwrap();
    listener
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    listener.listen(1).unwrap();
    let addr = listener.local_addr().unwrap().as_socket().unwrap();
    let listener: TcpListener = listener.into();
    let client = small_socket();
    client.connect(&addr.into()).unwrap();
    let (server, _) = listener.accept().unwrap();
    server.set_nodelay(true).unwrap();
    let client: TcpStream = client.into();
    eprintln!(
        "socket buffers: sndbuf {} rcvbuf {}",
        socket2::SockRef::from(&client).send_buffer_size().unwrap(),
        socket2::SockRef::from(&server).recv_buffer_size().unwrap()
    );
    (client, server)
}

fn payload(seed: u64, len: usize) -> Vec<u8> {
    let mut data = vec![0u8; len];
    Rng::new(seed).fill(&mut data);
    data
}

struct Outcome {
    received: usize,
    received_sha: [u8; 32],
}

/// Sends `outgoing` and receives until the peer's close_notify, on a non-blocking stream,
/// with random write sizes and a reader that naps now and then.
fn run_nonblocking(mut tls: TlsStream<TcpStream>, outgoing: &[u8], seed: u64) -> Outcome {
    let mut rng = Rng::new(seed);
    let mut hasher = Sha256::new();
    let (mut sent, mut received, mut shut, mut eof) = (0usize, 0usize, false, false);
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + Duration::from_secs(180);
    while !(shut && eof) {
        if Instant::now() > deadline {
            let session = tls.session();
            panic!(
                "transfer timed out: sent {sent}, received {received}, shut {shut}, eof {eof}; \
                 {:?}, {:?}, {:?}, {:?}",
                session.state(),
                session.buffered(),
                session.interest(),
                session.counters()
            );
        }
        let mut progressed = false;
        if sent < outgoing.len() {
            let len = rng.log_between(1, 256 * 1024).min(outgoing.len() - sent);
            match tls.write(&outgoing[sent..sent + len]) {
                Ok(0) => panic!("write returned Ok(0)"),
                Ok(n) => {
                    assert!(n <= len);
                    sent += n;
                    progressed = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("write failed after {sent} bytes: {e}"),
            }
        } else if !shut {
            match tls.shutdown() {
                Ok(()) => shut = true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("shutdown failed: {e}"),
            }
        }
        if !eof {
            let len = rng.log_between(1, buf.len());
            match tls.read(&mut buf[..len]) {
                Ok(0) => eof = true,
                Ok(n) => {
                    hasher.update(&buf[..n]);
                    received += n;
                    progressed = true;
                    if rng.below(64) == 0 {
                        thread::sleep(Duration::from_micros(200)); // the slow reader
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("read failed after {received} bytes: {e}"),
            }
        }
        if !progressed {
            // A real program would poll() on tls.interest() here.
            thread::sleep(Duration::from_micros(50));
        }
    }
    Outcome {
        received,
        received_sha: hasher.finalize().into(),
    }
}

#[test]
fn nonblocking_small_buffers_both_ways() {
    for (client_engine, server_engine) in engine_pairs() {
        nonblocking_small_buffers_both_ways_on(client_engine, server_engine);
    }
}

fn nonblocking_small_buffers_both_ways_on(client_engine: EngineKind, server_engine: EngineKind) {
    let size = size();
    let (client_config, server_config) =
        self_signed_configs_on(client_engine, server_engine, Limits::default()).unwrap();
    let (client_tcp, server_tcp) = tcp_pair();
    client_tcp.set_nonblocking(true).unwrap();
    server_tcp.set_nonblocking(true).unwrap();
    let to_server = payload(1, size);
    let to_client = payload(2, size);
    let started = Instant::now();
    let (from_client, from_server) = thread::scope(|scope| {
        let server = scope.spawn(|| {
            let tls = server_config.accept(server_tcp).unwrap();
            run_nonblocking(tls, &to_client, 11)
        });
        let client = scope.spawn(|| {
            let tls = client_config.connect("localhost", client_tcp).unwrap();
            run_nonblocking(tls, &to_server, 12)
        });
        (server.join().unwrap(), client.join().unwrap())
    });
    eprintln!(
        "{client_engine} -> {server_engine}: nonblocking: {size} bytes each way in {:.2?}",
        started.elapsed()
    );
    assert_eq!(from_client.received, size);
    assert_eq!(from_server.received, size);
    assert_eq!(
        from_client.received_sha,
        <[u8; 32]>::from(Sha256::digest(&to_server))
    );
    assert_eq!(
        from_server.received_sha,
        <[u8; 32]>::from(Sha256::digest(&to_client))
    );
}

/// Writes `data` with random-sized `write` calls on a blocking stream.
fn send_blocking(tls: &mut TlsStream<TcpStream>, data: &[u8], seed: u64) {
    let mut rng = Rng::new(seed);
    let mut sent = 0;
    while sent < data.len() {
        let len = rng.log_between(1, 256 * 1024).min(data.len() - sent);
        let n = tls.write(&data[sent..sent + len]).unwrap();
        assert!(n >= 1 && n <= len, "write returned {n} for {len} bytes");
        sent += n;
    }
    tls.flush().unwrap();
}

/// Reads `len` bytes on a blocking stream, slowly, and returns their SHA-256.
fn receive_blocking(tls: &mut TlsStream<TcpStream>, len: usize, seed: u64) -> [u8; 32] {
    let mut rng = Rng::new(seed);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0;
    while got < len {
        let want = rng.log_between(1, buf.len()).min(len - got);
        let n = tls.read(&mut buf[..want]).unwrap();
        assert!(n > 0, "early EOF after {got} bytes");
        hasher.update(&buf[..n]);
        got += n;
        if rng.below(64) == 0 {
            thread::sleep(Duration::from_micros(200));
        }
    }
    hasher.finalize().into()
}

#[test]
fn blocking_small_buffers_each_way_in_turn() {
    for (client_engine, server_engine) in engine_pairs() {
        blocking_small_buffers_each_way_in_turn_on(client_engine, server_engine);
    }
}

fn blocking_small_buffers_each_way_in_turn_on(
    client_engine: EngineKind,
    server_engine: EngineKind,
) {
    let size = size();
    let (client_config, server_config) =
        self_signed_configs_on(client_engine, server_engine, Limits::default()).unwrap();
    let (client_tcp, server_tcp) = tcp_pair();
    for tcp in [&client_tcp, &server_tcp] {
        tcp.set_read_timeout(Some(Duration::from_secs(120)))
            .unwrap();
        tcp.set_write_timeout(Some(Duration::from_secs(120)))
            .unwrap();
    }
    let to_server = payload(3, size);
    let to_client = payload(4, size);
    let started = Instant::now();
    thread::scope(|scope| {
        let server = scope.spawn(|| {
            let mut tls = server_config.accept(server_tcp).unwrap();
            let sha = receive_blocking(&mut tls, size, 21);
            send_blocking(&mut tls, &to_client, 22);
            tls.close().unwrap();
            sha
        });
        let mut tls = client_config.connect("localhost", client_tcp).unwrap();
        tls.handshake().unwrap();
        send_blocking(&mut tls, &to_server, 23);
        let sha = receive_blocking(&mut tls, size, 24);
        let mut rest = [0u8; 1];
        assert_eq!(
            tls.read(&mut rest).unwrap(),
            0,
            "expected the server's close_notify"
        );
        tls.close().unwrap();
        assert_eq!(sha, <[u8; 32]>::from(Sha256::digest(&to_client)));
        let server_sha = server.join().unwrap();
        assert_eq!(server_sha, <[u8; 32]>::from(Sha256::digest(&to_server)));
    });
    eprintln!(
        "{client_engine} -> {server_engine}: blocking: {size} bytes each way in {:.2?}",
        started.elapsed()
    );
}

/// A write that finds plaintext opened and not read must move it aside to seal (rustls
/// reads before it writes), and must not open more: with the peer's records waiting in the
/// receive buffer, unread plaintext stays within a record moved aside plus one opened,
/// however many writes follow. Covers rustls running every record: TLS 1.2, and TLS 1.3
/// on a configuration that never moves to the record layer.
#[test]
fn writes_leave_unread_plaintext_within_two_records() {
    use std::sync::Arc;
    use tlsflow::{ClientConfig, ProtocolVersion, SelfSigned, ServerConfig};

    const INCOMING: usize = 512 * 1024;
    const OUTGOING: usize = 64 * 1024;
    for version in [ProtocolVersion::Tls12, ProtocolVersion::Tls13] {
        let cert = SelfSigned::generate(&["localhost"]).unwrap();
        let built = ServerConfig::builder()
            .self_signed(&cert)
            .versions(&[version])
            .build()
            .unwrap();
        let mut rustls_only = (**built.rustls().unwrap()).clone();
        rustls_only.enable_secret_extraction = false;
        let server = ServerConfig::from_rustls(Arc::new(rustls_only));
        let client = ClientConfig::builder()
            .ca_certificate(cert.cert_der())
            .build()
            .unwrap();

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = thread::spawn(move || {
            let mut tls = client
                .connect("localhost", TcpStream::connect(addr).unwrap())
                .unwrap();
            tls.write_all(&payload(1, INCOMING)).unwrap();
            tls.flush().unwrap();
            let mut echoed = vec![0u8; OUTGOING];
            tls.read_exact(&mut echoed).unwrap();
            assert_eq!(echoed, payload(2, OUTGOING));
        });
        let mut tls = server.accept(listener.accept().unwrap().0).unwrap();
        let mut received = vec![0u8; INCOMING];
        // One byte in: a receive buffer's worth of records arrives with it.
        tls.read_exact(&mut received[..1]).unwrap();
        let mut most = 0;
        for chunk in payload(2, OUTGOING).chunks(1024) {
            tls.write_all(chunk).unwrap();
            most = most.max(tls.buffered().incoming_plaintext);
        }
        tls.flush().unwrap();
        assert!(
            most <= 2 * 16 * 1024,
            "{version:?}: writes left {most} bytes of plaintext opened and unread"
        );
        tls.read_exact(&mut received[1..]).unwrap();
        assert_eq!(received, payload(1, INCOMING), "{version:?}");
        peer.join().unwrap();
    }
}
