//! The std stream's contract beyond bulk transfer: explicit handshake, accessors, counters,
//! half-close, graceful close, key updates sent by reads, interest, sticky errors.

#![allow(clippy::unwrap_used)]

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use tlsflow::testing::{self_signed_configs, stream_pair, Hostility, Rng};
use tlsflow::{ClientConfig, Error, Limits, ProtocolVersion, SelfSigned, ServerConfig, State};

fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    for s in [&client, &server] {
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.set_nodelay(true).unwrap();
    }
    (client, server)
}

fn configs_with_alpn() -> (ClientConfig, ServerConfig, SelfSigned) {
    let cert = SelfSigned::generate(&["localhost"]).unwrap();
    let server = ServerConfig::builder()
        .self_signed(&cert)
        .alpn(["h2", "http/1.1"])
        .build()
        .unwrap();
    let client = ClientConfig::builder()
        .ca_certificate(cert.cert_der())
        .alpn(["http/1.1"])
        .versions(&[ProtocolVersion::Tls12])
        .build()
        .unwrap();
    (client, server, cert)
}

#[test]
fn explicit_handshake_and_accessors() {
    let (client_config, server_config, cert) = configs_with_alpn();
    let (c, s) = tcp_pair();
    let server = thread::spawn(move || {
        let mut tls = server_config.accept(s).unwrap();
        tls.handshake().unwrap();
        assert_eq!(tls.server_name().as_deref(), Some("localhost"));
        assert_eq!(tls.alpn_protocol().as_deref(), Some(&b"http/1.1"[..]));
        assert!(
            tls.peer_certificates().is_none(),
            "no client certificate was asked for"
        );
        let mut buf = [0u8; 5];
        tls.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello");
        assert_eq!(tls.counters().plaintext_delivered, 5);
        tls.close().unwrap();
    });
    let mut tls = client_config.connect("localhost", c).unwrap();
    assert_eq!(tls.state(), State::Handshaking);
    assert!(tls.protocol_version().is_none());
    tls.handshake().unwrap();
    assert_eq!(tls.state(), State::Open);
    assert_eq!(tls.protocol_version(), Some(ProtocolVersion::Tls12));
    assert!(tls
        .cipher_suite()
        .unwrap()
        .to_string()
        .starts_with("TLS_ECDHE_"));
    assert_eq!(tls.alpn_protocol().as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(tls.server_name().as_deref(), Some("localhost"));
    let chain = tls.peer_certificates().unwrap();
    assert_eq!(chain[0], cert.cert_der().as_ref());
    assert_eq!(tls.write(b"hello").unwrap(), 5);
    tls.flush().unwrap();
    let counters = tls.counters();
    assert_eq!(counters.plaintext_accepted, 5);
    assert!(counters.ciphertext_sent > 5 && counters.ciphertext_received > 0);
    assert_eq!(tls.buffered().outgoing_ciphertext, 0);
    let mut rest = Vec::new();
    tls.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    assert_eq!(tls.state(), State::ReadClosed);
    tls.shutdown().unwrap();
    assert_eq!(tls.state(), State::Closed);
    server.join().unwrap();
}

#[test]
fn half_close_keeps_reading_and_close_notify_is_sent_once() {
    let (client_config, server_config) = self_signed_configs(Limits::default()).unwrap();
    let (c, s) = tcp_pair();
    let server = thread::spawn(move || {
        let mut tls = server_config.accept(s).unwrap();
        let mut got = Vec::new();
        tls.read_to_end(&mut got).unwrap(); // ends at the client's close_notify
        assert_eq!(got, b"request");
        assert_eq!(tls.state(), State::ReadClosed);
        let reply = vec![0x5a; 4 << 20];
        tls.write_all(&reply).unwrap(); // the client still reads after its shutdown
        tls.shutdown().unwrap();
    });
    let mut tls = client_config.connect("localhost", c).unwrap();
    tls.write_all(b"request").unwrap();
    tls.shutdown().unwrap();
    let sent_after_first = tls.counters().ciphertext_sent;
    tls.shutdown().unwrap(); // a second shutdown sends nothing more
    assert_eq!(tls.counters().ciphertext_sent, sent_after_first);
    assert_eq!(tls.state(), State::WriteClosed);
    let err = tls.write(b"more").unwrap_err();
    assert!(matches!(
        Error::from_io(&err),
        Some(Error::WriteAfterShutdown)
    ));
    let mut reply = Vec::new();
    tls.read_to_end(&mut reply).unwrap();
    assert_eq!(reply.len(), 4 << 20);
    assert!(reply.iter().all(|&b| b == 0x5a));
    assert_eq!(tls.state(), State::Closed);
    server.join().unwrap();
}

/// A client that writes and closes at once leaves the server's TLS 1.3 session tickets
/// unread in its socket; `close` drains them, so the server sees a clean end, not a reset.
#[test]
fn graceful_close_lets_the_peer_see_a_clean_end() {
    let (client_config, server_config) = self_signed_configs(Limits::default()).unwrap();
    for _ in 0..20 {
        let (c, s) = tcp_pair();
        let server_config = server_config.clone();
        let server = thread::spawn(move || {
            let mut tls = server_config.accept(s).unwrap();
            let mut got = Vec::new();
            let result = tls.read_to_end(&mut got);
            let _ = tls.shutdown();
            result.map(|_| got)
        });
        let mut tls = client_config.connect("localhost", c).unwrap();
        tls.write_all(&[1u8; 100_000]).unwrap();
        tls.close().unwrap();
        drop(tls);
        let got = server
            .join()
            .unwrap()
            .expect("the server saw an error instead of a clean end");
        assert_eq!(got.len(), 100_000);
    }
}

/// A side that only reads still sends what reading produced (TLS 1.3 session tickets after
/// the handshake; rustls defers the reply to a key update until that side next sends data,
/// as RFC 8446 allows). Key updates from the writer must not disturb the stream.
#[test]
fn reads_send_the_output_they_produce() {
    let (client_config, server_config) = self_signed_configs(Limits::default()).unwrap();
    let (c, s) = tcp_pair();
    let server = thread::spawn(move || {
        let mut tls = server_config.accept(s).unwrap();
        let mut got = Vec::new();
        tls.read_to_end(&mut got).unwrap(); // only reads, never writes or flushes
        assert_eq!(got.len(), 4000);
        assert_eq!(tls.protocol_version(), Some(ProtocolVersion::Tls13));
        assert_eq!(
            tls.buffered().outgoing_ciphertext,
            0,
            "reading left output unsent"
        );
        let sent_by_reading = tls.counters().ciphertext_sent;
        tls.shutdown().unwrap();
        sent_by_reading
    });
    let mut tls = client_config.connect("localhost", c).unwrap();
    tls.write_all(&[0u8; 1000]).unwrap();
    for _ in 0..3 {
        tls.session_mut().refresh_traffic_keys().unwrap();
        tls.write_all(&[0u8; 1000]).unwrap();
    }
    tls.shutdown().unwrap();
    let mut rest = Vec::new();
    tls.read_to_end(&mut rest).unwrap();
    let sent_by_reading = server.join().unwrap();
    // Everything the server sent arrived: its handshake, its tickets, its close_notify.
    assert!(sent_by_reading > 0);
    assert!(tls.counters().ciphertext_received > sent_by_reading);
}

#[test]
fn interest_says_what_the_stream_waits_for() {
    let (mut client, mut server) = stream_pair(
        5,
        Hostility {
            capacity: 1024,
            max_io: 1024,
            would_block_percent: 0,
            interrupt_percent: 0,
        },
    )
    .unwrap();
    // Before anything, the client has its ClientHello to send.
    assert!(client.interest().write);
    // The server has nothing to read yet: it blocks, and waits to read.
    let mut buf = [0u8; 16];
    assert_eq!(
        server.read(&mut buf).unwrap_err().kind(),
        io::ErrorKind::WouldBlock
    );
    assert!(server.interest().read);
    // Fill the pipe until the client's write blocks: then it waits to write.
    let mut blocked = false;
    for _ in 0..10_000 {
        let _ = server.read(&mut buf);
        match client.write(&[7u8; 4096]) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if !client.is_handshaking() && client.buffered().outgoing_ciphertext > 0 {
                    blocked = true;
                    break;
                }
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(blocked, "the client's writes never blocked");
    assert!(client.interest().write);
}

#[test]
fn errors_are_sticky() {
    let (mut client, mut server) = stream_pair(9, Hostility::default()).unwrap();
    // Complete the handshake, then corrupt the stream by writing garbage under the server.
    let mut rng = Rng::new(1);
    let mut buf = [0u8; 64];
    while client.is_handshaking() || server.is_handshaking() {
        let _ = client.handshake();
        let _ = server.handshake();
    }
    let mut garbage = [0u8; 64];
    rng.fill(&mut garbage);
    garbage[0] = 23; // application data
    garbage[1] = 3;
    garbage[2] = 3;
    garbage[3] = 0;
    garbage[4] = 40;
    let mut written = 0;
    while written < garbage.len() {
        if let Ok(n) = server.get_mut().write(&garbage[written..]) {
            written += n;
        }
    }
    let first = loop {
        match client.read(&mut buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => break other,
        }
    };
    let first = first.unwrap_err();
    assert_eq!(first.kind(), io::ErrorKind::InvalidData);
    for _ in 0..3 {
        assert_eq!(
            client.read(&mut buf).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        assert_eq!(
            client.write(b"x").unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        assert_eq!(
            client.flush().unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        assert_eq!(
            client.shutdown().unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }
    assert_eq!(client.state(), State::Failed);
}

/// A transport whose writes take nothing.
struct TakesNothing<R>(R);

impl<R: Read> Read for TakesNothing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl<R> Write for TakesNothing<R> {
    fn write(&mut self, _buf: &[u8]) -> io::Result<usize> {
        Ok(0)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Promise 9: a transport that returns `Ok(0)` on write is a `WriteZero` error, never a
/// loop, and the failure sticks; for the whole stream and for a split write half.
#[test]
fn a_transport_writing_zero_is_write_zero() {
    let (client_config, _server) = self_signed_configs(Limits::default()).unwrap();
    let (a, _b) = tlsflow::testing::HostileTransport::pair(1, Hostility::default());
    let mut tls = client_config.connect("localhost", TakesNothing(a)).unwrap();
    let err = tls.handshake().unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::WriteZero);
    assert_eq!(
        tls.write(b"x").unwrap_err().kind(),
        io::ErrorKind::WriteZero
    );
    assert_eq!(tls.state(), State::Failed);

    let (client, server) = stream_pair(2, Hostility::default()).unwrap();
    let (mut client, mut server) = (client, server);
    while client.is_handshaking() || server.is_handshaking() {
        let _ = client.handshake();
        let _ = server.handshake();
    }
    let (_reader, mut writer) = client
        .split_with(|t| (t.handle(), TakesNothing(std::io::empty())))
        .unwrap();
    let err = loop {
        match writer.write(&[1u8; 1000]) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            other => break other.unwrap_err(),
        }
    };
    assert_eq!(err.kind(), io::ErrorKind::WriteZero);
    assert_eq!(
        writer.write(b"x").unwrap_err().kind(),
        io::ErrorKind::WriteZero
    );
}

/// The stream lends its transport's descriptor: event loops register it, `socket2` sets
/// options through it.
#[cfg(unix)]
#[test]
fn the_stream_lends_its_socket() {
    use std::os::fd::AsRawFd;

    let (client_config, _server_config, _cert) = configs_with_alpn();
    let (c, _s) = tcp_pair();
    let fd = c.as_raw_fd();
    let tls = client_config.connect("localhost", c).unwrap();
    assert_eq!(tls.as_raw_fd(), fd);
    assert!(tls.get_ref().nodelay().unwrap());
    socket2::SockRef::from(&tls).set_tcp_nodelay(false).unwrap();
    assert!(!tls.get_ref().nodelay().unwrap());
}

/// Vectored writes on every engine pairing: slices of all sizes (empty ones too) arrive in
/// order, each call's count is a prefix of the concatenation, and tokio's stream says it
/// writes vectored.
#[test]
fn vectored_writes_arrive_in_order_on_every_engine_pairing() {
    let mut rng = tlsflow::testing::Rng::new(7);
    let mut parts: Vec<Vec<u8>> = Vec::new();
    for size in [0, 3, 20_000, 0, 50_000, 1, 16_384, 16_385, 0, 100_000, 7] {
        let mut part = vec![0u8; size];
        rng.fill(&mut part);
        parts.push(part);
    }
    let expected: Vec<u8> = parts.concat();
    for (client_engine, server_engine) in tlsflow::testing::engine_pairs() {
        let (client, server) = tlsflow::testing::self_signed_configs_on(
            client_engine,
            server_engine,
            Limits {
                send: 24 * 1024,
                ..Limits::default()
            },
        )
        .unwrap();
        let (a, b) = tcp_pair();
        let want = expected.len();
        let reading = std::thread::spawn(move || {
            let mut tls = server.accept(b).unwrap();
            let mut got = Vec::new();
            tls.read_to_end(&mut got).unwrap();
            assert_eq!(got.len(), want);
            tls.close().unwrap();
            got
        });
        let mut tls = client.connect("localhost", a).unwrap();
        let mut slices: Vec<std::io::IoSlice<'_>> =
            parts.iter().map(|p| std::io::IoSlice::new(p)).collect();
        let mut bufs = &mut slices[..];
        let mut calls = 0;
        while !bufs.is_empty() {
            let n = tls.write_vectored(bufs).unwrap();
            let offered: usize = bufs.iter().map(|b| b.len()).sum();
            assert!(n > 0 && n <= offered, "{n} of {offered}");
            std::io::IoSlice::advance_slices(&mut bufs, n);
            calls += 1;
        }
        assert!(calls > 1, "the send limit splits the write");
        tls.close().unwrap();
        let got = reading.join().unwrap();
        assert!(
            got == expected,
            "{client_engine} client, {server_engine} server"
        );
    }
}

#[test]
fn the_tokio_stream_writes_vectored() {
    use tokio::io::AsyncWrite;
    let (client, _) = tlsflow::testing::self_signed_configs(Limits::default()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tcp = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let tls = client.connect("localhost", tcp).unwrap();
        assert!(tls.is_write_vectored());
    });
}
