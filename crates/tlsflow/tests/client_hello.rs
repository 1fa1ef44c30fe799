//! Reading the ClientHello before choosing the server's configuration
//! ([`tlsflow::StartHandshake`]): what it reports for rustls and OpenSSL clients, a
//! configuration chosen per name on either engine, and hostile first flights.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use tlsflow::{
    AlertDescription, CipherSuite, ClientConfig, ClientHelloReader, EngineKind, Error,
    ProtocolVersion, SelfSigned, ServerConfig, StartHandshake, TlsAcceptor,
};

const ENGINES: [EngineKind; 2] = [EngineKind::Rustls, EngineKind::Openssl];

fn client_for(cert: &SelfSigned, engine: EngineKind, versions: &[ProtocolVersion]) -> ClientConfig {
    ClientConfig::builder()
        .ca_certificate(cert.cert_der())
        .alpn(["h2", "http/1.1"])
        .versions(versions)
        .engine(engine)
        .build()
        .unwrap()
}

/// Serves one connection: reads the ClientHello, picks `tenant` for `tenant.test` and
/// `default` otherwise, echoes one line. Returns what the client offered.
fn serve_one(
    listener: TcpListener,
    default: ServerConfig,
    tenant: ServerConfig,
) -> thread::JoinHandle<tlsflow::ClientHello> {
    thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        let start = StartHandshake::read(tcp).unwrap();
        let hello = start.client_hello().clone();
        let config = match hello.server_name.as_deref() {
            Some("tenant.test") => &tenant,
            _ => &default,
        };
        let mut tls = start.into_stream(config).unwrap();
        tls.handshake().unwrap();
        let mut line = [0u8; 6];
        tls.read_exact(&mut line).unwrap();
        tls.write_all(&line).unwrap();
        tls.close().unwrap();
        hello
    })
}

#[test]
fn the_configuration_is_chosen_by_name_on_every_engine_pairing() {
    let default_cert = SelfSigned::generate(&["default.test"]).unwrap();
    let tenant_cert = SelfSigned::generate(&["tenant.test"]).unwrap();
    for server_engine in ENGINES {
        for client_engine in ENGINES {
            for (name, cert) in [
                ("tenant.test", &tenant_cert),
                ("default.test", &default_cert),
            ] {
                let config = |cert: &SelfSigned| {
                    ServerConfig::builder()
                        .self_signed(cert)
                        .alpn(["h2"])
                        .engine(server_engine)
                        .build()
                        .unwrap()
                };
                let listener = TcpListener::bind("127.0.0.1:0").unwrap();
                let addr = listener.local_addr().unwrap();
                let server = serve_one(listener, config(&default_cert), config(&tenant_cert));
                // The client trusts only the certificate of the name it asks for.
                let client = client_for(cert, client_engine, &[]);
                let mut tls = client
                    .connect(name, TcpStream::connect(addr).unwrap())
                    .unwrap();
                tls.write_all(b"hello\n").unwrap();
                let mut echo = [0u8; 6];
                tls.read_exact(&mut echo).unwrap();
                assert_eq!(&echo, b"hello\n");
                assert_eq!(tls.alpn_protocol().as_deref(), Some(&b"h2"[..]));
                tls.close().unwrap();

                let hello = server.join().unwrap();
                let case = format!("{client_engine} client, {server_engine} server, {name}");
                assert_eq!(hello.server_name.as_deref(), Some(name), "{case}");
                assert_eq!(hello.alpn, [b"h2".to_vec(), b"http/1.1".to_vec()], "{case}");
                assert!(hello.offers_tls13(), "{case}: {:?}", hello.versions);
                assert!(
                    hello.versions.contains(&ProtocolVersion::Tls12),
                    "{case}: {:?}",
                    hello.versions
                );
                assert!(
                    hello
                        .cipher_suites
                        .contains(&CipherSuite::from_code(0x1301)),
                    "{case}: {:?}",
                    hello.cipher_suites
                );
                assert!(!hello.signature_schemes.is_empty(), "{case}");
                assert!(!hello.named_groups.is_empty(), "{case}");
            }
        }
    }
}

#[test]
fn a_tls12_only_client_offers_only_tls12() {
    let cert = SelfSigned::generate(&["default.test"]).unwrap();
    for client_engine in ENGINES {
        let server = ServerConfig::builder().self_signed(&cert).build().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let serving = serve_one(listener, server.clone(), server);
        let client = client_for(&cert, client_engine, &[ProtocolVersion::Tls12]);
        let mut tls = client
            .connect("default.test", TcpStream::connect(addr).unwrap())
            .unwrap();
        tls.write_all(b"hello\n").unwrap();
        let mut echo = [0u8; 6];
        tls.read_exact(&mut echo).unwrap();
        assert_eq!(tls.protocol_version(), Some(ProtocolVersion::Tls12));
        tls.close().unwrap();
        let hello = serving.join().unwrap();
        assert_eq!(
            hello.versions,
            [ProtocolVersion::Tls12],
            "{client_engine} client"
        );
        assert!(!hello.offers_tls13());
    }
}

/// A client's first flight, as a tlsflow client session writes it.
fn first_flight(name: &str) -> Vec<u8> {
    let cert = SelfSigned::generate(&[name]).unwrap();
    let client = client_for(&cert, EngineKind::Rustls, &[]);
    let tls = client.connect(name, std::io::empty()).unwrap();
    tls.session().pending_output().to_vec()
}

#[test]
fn a_client_hello_fed_one_byte_at_a_time_is_read_once_complete() {
    let flight = first_flight("bytes.test");
    let mut reader = ClientHelloReader::new();
    for (i, byte) in flight.iter().enumerate() {
        let done = reader.feed(std::slice::from_ref(byte)).unwrap().is_some();
        assert_eq!(
            done,
            i + 1 == flight.len(),
            "after {} of {} bytes",
            i + 1,
            flight.len()
        );
    }
    assert_eq!(reader.received(), &flight[..]);
    let hello = reader.client_hello().unwrap();
    assert_eq!(hello.server_name.as_deref(), Some("bytes.test"));
}

#[test]
fn hostile_first_flights_are_refused_with_an_alert_and_no_panic() {
    let flight = first_flight("hostile.test");
    let mut not_hello = flight.clone();
    not_hello[5] = 2; // a ServerHello where the ClientHello belongs
    let mut bad_session_id = flight.clone();
    // record header (5), message header (4), version (2), random (32): the session id length
    bad_session_id[43] = 0xff;
    let mut long_length = flight.clone();
    long_length[8] = long_length[8].wrapping_add(7); // ... or more, and the client stops
    let cases: [(&str, Vec<u8>); 5] = [
        ("plain HTTP", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("not a ClientHello", not_hello),
        ("a session id longer than the message", bad_session_id),
        ("a long length", long_length),
        ("an alert first", vec![21, 3, 3, 0, 2, 2, 40]),
    ];
    for (what, bytes) in cases {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = thread::spawn(move || {
            let (tcp, _) = listener.accept().unwrap();
            StartHandshake::read(tcp).map(|_| ())
        });
        let mut raw = TcpStream::connect(addr).unwrap();
        raw.write_all(&bytes).unwrap();
        raw.shutdown(std::net::Shutdown::Write).unwrap();
        let err = server.join().unwrap().unwrap_err();
        let err = Error::from_io(&err).unwrap_or_else(|| panic!("{what}: {err}"));
        assert!(
            matches!(
                err,
                Error::Protocol { .. } | Error::HandshakeEof | Error::PeerAlert { .. }
            ),
            "{what}: {err:?}"
        );
        // What the server sent back: nothing, or one fatal alert record.
        let mut answer = Vec::new();
        raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = raw.read_to_end(&mut answer);
        if !answer.is_empty() {
            assert_eq!(answer[0], 21, "{what}: an alert record, not {answer:?}");
            assert_eq!(answer[5], 2, "{what}: a fatal alert");
        }
        if !["an alert first", "a long length"].contains(&what) {
            assert!(
                !answer.is_empty(),
                "{what}: the fault ({err}) is answered with an alert"
            );
            assert_ne!(
                answer[6],
                u8::from(AlertDescription::CloseNotify),
                "{what}: not a close_notify"
            );
        }
    }
}

#[test]
fn the_acceptor_reads_the_hello_within_its_timeout() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let cert = SelfSigned::generate(&["async.test"]).unwrap();
        let config = ServerConfig::builder().self_signed(&cert).build().unwrap();
        let acceptor =
            TlsAcceptor::new(config.clone()).handshake_timeout(Some(Duration::from_millis(300)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();

        // A client that connects and says nothing: the acceptor gives up.
        let _silent = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (tcp, _) = listener.accept().await.unwrap();
        let err = acceptor.start(tcp).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");

        // A real client: read its hello, go on with the configuration, talk.
        let client = client_for(&cert, EngineKind::Rustls, &[]);
        let talking = tokio::spawn(async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let mut tls = client.connect_tokio("async.test", tcp).await.unwrap();
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            tls.write_all(b"ping").await.unwrap();
            let mut pong = [0u8; 4];
            tls.read_exact(&mut pong).await.unwrap();
            tls.close_tokio().await.unwrap();
            pong
        });
        let (tcp, _) = listener.accept().await.unwrap();
        let start = acceptor.start(tcp).await.unwrap();
        assert_eq!(
            start.client_hello().server_name.as_deref(),
            Some("async.test")
        );
        let mut tls = start.into_stream(&config).unwrap();
        tls.handshake_tokio().await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut ping = [0u8; 4];
        tls.read_exact(&mut ping).await.unwrap();
        tls.write_all(b"pong").await.unwrap();
        tls.close_tokio().await.unwrap();
        assert_eq!(&talking.await.unwrap(), b"pong");
    });
}

/// Promise 10 through `into_stream`: a ClientHello the chosen configuration refuses (no
/// common suite) is answered with its alert by the stream's handshake, on both engines.
#[test]
fn a_hello_the_chosen_configuration_refuses_is_answered_with_its_alert() {
    let cert = SelfSigned::generate(&["refuse.test"]).unwrap();
    for server_engine in ENGINES {
        let server = ServerConfig::builder()
            .self_signed(&cert)
            .versions(&[ProtocolVersion::Tls13])
            .cipher_suites(&["TLS_AES_128_GCM_SHA256"])
            .engine(server_engine)
            .build()
            .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let serving = thread::spawn(move || {
            let (tcp, _) = listener.accept().unwrap();
            let start = StartHandshake::read(tcp).unwrap();
            let mut tls = start.into_stream(&server).unwrap();
            tls.handshake().unwrap_err()
        });
        let client = ClientConfig::builder()
            .ca_certificate(cert.cert_der())
            .versions(&[ProtocolVersion::Tls13])
            .cipher_suites(&["TLS_AES_256_GCM_SHA384"])
            .build()
            .unwrap();
        let mut tls = client
            .connect("refuse.test", TcpStream::connect(addr).unwrap())
            .unwrap();
        let err = tls.handshake().unwrap_err();
        let err = Error::from_io(&err).unwrap();
        assert_eq!(
            err.peer_alert(),
            Some(AlertDescription::HandshakeFailure),
            "{server_engine} server: {err:?}"
        );
        let server_err = serving.join().unwrap();
        assert!(
            Error::from_io(&server_err).is_some(),
            "{server_engine}: {server_err}"
        );
    }
}
