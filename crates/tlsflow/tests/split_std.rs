//! The std split: both peers write 64 MiB before reading anything, each through split
//! halves on two threads over blocking sockets with the smallest buffers. Without a true
//! full-duplex split this deadlocks; with it, every byte arrives (SHA-256 checked).

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use socket2::{Domain, Socket, Type};
use tlsflow::testing::{engine_pairs, self_signed_configs, self_signed_configs_on, Rng};
use tlsflow::{EngineKind, Limits, State, TlsStream};

fn size() -> usize {
    std::env::var("TLSFLOW_SOCKET_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64usize)
        << 20
}

fn small_socket() -> Socket {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.set_send_buffer_size(1).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.set_tcp_nodelay(true).unwrap();
    socket
}

fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = small_socket();
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
    for s in [&client, &server] {
        s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(120))).unwrap();
    }
    (client, server)
}

/// Writes `size` seeded bytes on one thread while the other reads everything; returns the
/// SHA-256 of what was sent and of what was received.
fn duplex(tls: TlsStream<TcpStream>, seed: u64, size: usize) -> ([u8; 32], [u8; 32]) {
    let (mut reader, mut writer) = tls.into_split().unwrap();
    let sender = thread::spawn(move || {
        let mut rng = Rng::new(seed);
        let mut hasher = Sha256::new();
        let mut block = vec![0u8; 256 * 1024];
        let mut sent = 0;
        while sent < size {
            let len = block.len().min(size - sent);
            rng.fill(&mut block[..len]);
            hasher.update(&block[..len]);
            let mut off = 0;
            while off < len {
                let want = rng.log_between(1, len - off);
                off += writer.write(&block[off..off + want]).unwrap();
            }
            sent += len;
        }
        writer.flush().unwrap();
        writer.shutdown().unwrap();
        assert!(matches!(writer.state(), State::WriteClosed | State::Closed));
        (writer, <[u8; 32]>::from(hasher.finalize()))
    });
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0;
    loop {
        let n = reader.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        got += n;
    }
    assert_eq!(got, size);
    let (writer, sent_sha) = sender.join().unwrap();
    // The halves join back into one stream.
    let tls = reader.reunite(writer).unwrap();
    assert_eq!(tls.state(), State::Closed);
    (sent_sha, hasher.finalize().into())
}

#[test]
fn both_peers_write_first_through_split_halves() {
    for (client_engine, server_engine) in engine_pairs() {
        both_peers_write_first_through_split_halves_on(client_engine, server_engine);
    }
}

fn both_peers_write_first_through_split_halves_on(
    client_engine: EngineKind,
    server_engine: EngineKind,
) {
    let size = size();
    let (client_config, server_config) =
        self_signed_configs_on(client_engine, server_engine, Limits::default()).unwrap();
    let (c, s) = tcp_pair();
    let started = Instant::now();
    let server = thread::spawn(move || {
        let mut tls = server_config.accept(s).unwrap();
        tls.handshake().unwrap();
        duplex(tls, 2, size)
    });
    let mut tls = client_config.connect("localhost", c).unwrap();
    tls.handshake().unwrap();
    let (client_sent, client_got) = duplex(tls, 1, size);
    let (server_sent, server_got) = server.join().unwrap();
    assert_eq!(client_sent, server_got, "client to server corrupted");
    assert_eq!(server_sent, client_got, "server to client corrupted");
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{client_engine} -> {server_engine}: std split duplex: {size} bytes each way in {secs:.2} s, {:.1} MB/s aggregate",
        2.0 * size as f64 / secs / 1e6
    );
}

/// On tlsflow's record layer (the rustls engine on `aws-lc-rs`, TLS 1.3) the read half holds
/// the receiving direction and opens application data itself; it gives it back to the
/// session for a key update the peer asks for (answered by the write half's next record),
/// takes it again, and gives it back with the records it read ahead when the halves are
/// reunited. The counters stay exact throughout.
#[test]
fn the_read_half_opens_records_on_its_own() {
    let lends = cfg!(feature = "aws-lc-rs");
    let (client_config, server_config) = self_signed_configs(Limits::default()).unwrap();
    let (c, s) = tcp_pair();
    let serving = thread::spawn(move || {
        let mut tls = server_config.accept(s).unwrap();
        tls.handshake().unwrap();
        tls
    });
    let mut client = client_config.connect("localhost", c).unwrap();
    client.handshake().unwrap();
    let (mut reader, mut writer) = serving.join().unwrap().into_split().unwrap();
    assert!(!reader.holds_receiving(), "nothing read yet");

    // The sockets' buffers are small: the client writes on a thread of its own.
    let sender = thread::spawn(move || {
        client.write_all(&[1; 100_000]).unwrap();
        client.flush().unwrap();
        client
    });
    let mut got = vec![0u8; 100_000];
    reader.read_exact(&mut got).unwrap();
    let client = sender.join().unwrap();
    assert!(got.iter().all(|&b| b == 1));
    assert_eq!(reader.holds_receiving(), lends);
    assert_eq!(reader.counters().plaintext_delivered, 100_000);

    // The client updates its keys and asks for ours.
    let sender = thread::spawn(move || {
        let mut client = client;
        client.session_mut().refresh_traffic_keys().unwrap();
        client.write_all(&[2; 50_000]).unwrap();
        client.flush().unwrap();
        client
    });
    reader.read_exact(&mut got[..50_000]).unwrap();
    let mut client = sender.join().unwrap();
    assert!(got[..50_000].iter().all(|&b| b == 2));
    assert_eq!(
        reader.holds_receiving(),
        lends,
        "taken again after the key update"
    );
    writer.write_all(b"answer").unwrap();
    writer.flush().unwrap();
    let mut answer = [0u8; 6];
    client.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"answer", "read under the server's next key");

    // Two records at once; the half reads the first, the reunited stream the second.
    client.write_all(b"first").unwrap();
    client.write_all(b"after").unwrap();
    client.flush().unwrap();
    thread::sleep(Duration::from_millis(100));
    let mut first = [0u8; 5];
    reader.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"first");
    let mut stream = reader.reunite(writer).unwrap();
    let mut after = [0u8; 5];
    stream.read_exact(&mut after).unwrap();
    assert_eq!(&after, b"after");
    let counters = stream.counters();
    assert_eq!(counters.plaintext_delivered, 150_010);
    assert_eq!(
        counters.ciphertext_received,
        client.counters().ciphertext_sent,
        "every byte the client sent was counted once"
    );
}

#[test]
fn split_before_the_handshake_gives_the_stream_back() {
    let (client_config, _server_config) = self_signed_configs(Limits::default()).unwrap();
    let (c, _s) = tcp_pair();
    let tls = client_config.connect("localhost", c).unwrap();
    let tls = tls.into_split().unwrap_err();
    assert!(tls.is_handshaking());
}

/// `shutdown_transport` sends `close_notify` and then the TCP FIN: the peer reads the end of
/// the TLS stream, then end-of-file on the socket itself, while our read half goes on
/// reading the peer's answer. The halves' interest says what the stream waits for.
#[test]
fn the_write_half_closes_the_tcp_write_side_too() {
    let (client_config, server_config) = self_signed_configs(Limits::default()).unwrap();
    let (c, s) = tcp_pair();
    let raw = s.try_clone().unwrap();
    let serving = thread::spawn(move || {
        let mut tls = server_config.accept(s).unwrap();
        let mut got = Vec::new();
        tls.read_to_end(&mut got).unwrap(); // up to the client's close_notify
                                            // Then the FIN: the socket itself reads end-of-file at once.
        raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        assert_eq!(
            (&raw).read(&mut [0u8; 16]).unwrap(),
            0,
            "no FIN after close_notify"
        );
        tls.write_all(b"answer after your FIN").unwrap();
        tls.shutdown().unwrap();
        got
    });
    let mut tls = client_config.connect("localhost", c).unwrap();
    tls.handshake().unwrap();
    let (mut reader, mut writer) = tls.into_split().unwrap();
    let idle = writer.interest();
    assert!(!idle.write, "nothing queued after the handshake");
    assert!(reader.interest().read, "an open stream waits to read");
    writer.write_all(b"request").unwrap();
    writer.shutdown_transport().unwrap();
    assert_eq!(writer.state(), State::WriteClosed);
    let mut answer = Vec::new();
    reader.read_to_end(&mut answer).unwrap();
    assert_eq!(answer, b"answer after your FIN");
    assert_eq!(serving.join().unwrap(), b"request");
    assert!(
        !reader.interest().read,
        "nothing more to read after close_notify"
    );
}
