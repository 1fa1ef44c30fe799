//! Session resumption on both engines: from the server's session cache (the default) and from
//! stateless tickets ([`ServerConfigBuilder::session_tickets`]). The client is rustls itself,
//! which says how each handshake went.
//!
//! [`ServerConfigBuilder::session_tickets`]: tlsflow::ServerConfigBuilder::session_tickets

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;

use rustls::HandshakeKind;
use tlsflow::{EngineKind, ProtocolVersion, SelfSigned, ServerConfig};

const ENGINES: [EngineKind; 2] = [EngineKind::Rustls, EngineKind::Openssl];

/// How each of `rounds` connections from one rustls client (one session store) went, as the
/// client saw it, and what the tlsflow server's `is_resumed()` said.
fn handshakes(
    server: &ServerConfig,
    client: &Arc<rustls::ClientConfig>,
    rounds: usize,
) -> (Vec<HandshakeKind>, Vec<Option<bool>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = server.clone();
    let serving = thread::spawn(move || {
        let mut resumed = Vec::new();
        for _ in 0..rounds {
            let mut tls = server.accept(listener.accept().unwrap().0).unwrap();
            assert_eq!(tls.is_resumed(), None, "not known before the handshake");
            let mut byte = [0u8; 1];
            tls.read_exact(&mut byte).unwrap();
            resumed.push(tls.is_resumed());
            tls.write_all(&byte).unwrap();
            tls.close().unwrap();
        }
        resumed
    });
    let kinds = (0..rounds)
        .map(|_| {
            let name = "localhost".try_into().unwrap();
            let conn = rustls::ClientConnection::new(client.clone(), name).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, TcpStream::connect(addr).unwrap());
            tls.write_all(b"x").unwrap();
            let mut byte = [0u8; 1];
            // Reading the echo also takes the tickets sent after the handshake.
            tls.read_exact(&mut byte).unwrap();
            tls.conn.send_close_notify();
            tls.flush().unwrap();
            let mut rest = Vec::new();
            let _ = tls.read_to_end(&mut rest);
            tls.conn.handshake_kind().unwrap()
        })
        .collect();
    (kinds, serving.join().unwrap())
}

#[test]
fn sessions_resume_from_the_cache_and_from_tickets_on_both_engines() {
    let cert = SelfSigned::generate(&["localhost"]).unwrap();
    let client = tlsflow::ClientConfig::builder()
        .ca_certificate(cert.cert_der())
        .build()
        .unwrap();
    for engine in ENGINES {
        for tickets in [false, true] {
            let mut builder = ServerConfig::builder()
                .self_signed(&cert)
                .versions(&[ProtocolVersion::Tls13])
                .engine(engine);
            if tickets {
                builder = builder.session_tickets();
            }
            let server = builder.build().unwrap();
            // A new session store for each case.
            let client = Arc::new((**client.rustls().unwrap()).clone());
            let (kinds, resumed) = handshakes(&server, &client, 3);
            let case = format!("{engine} engine, tickets: {tickets}");
            assert_eq!(resumed, [Some(false), Some(true), Some(true)], "{case}");
            assert_eq!(
                kinds,
                [
                    HandshakeKind::Full,
                    HandshakeKind::Resumed,
                    HandshakeKind::Resumed
                ],
                "{engine} engine, tickets: {tickets}"
            );
            if let (EngineKind::Rustls, Some(config)) = (engine, server.rustls()) {
                assert_eq!(config.ticketer.enabled(), tickets, "stateless tickets");
            }
        }
    }
}

/// A tlsflow client (rustls engine) keeps its sessions in its configuration: its second
/// connection resumes, and both ends say so, against either server engine.
#[test]
fn a_tlsflow_client_resumes_and_both_ends_say_so() {
    for engine in ENGINES {
        let limits = tlsflow::Limits::default();
        let (client, server) =
            tlsflow::testing::self_signed_configs_on(EngineKind::Rustls, engine, limits).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let serving = thread::spawn(move || {
            (0..2)
                .map(|_| {
                    let mut tls = server.accept(listener.accept().unwrap().0).unwrap();
                    tls.write_all(b"hi").unwrap();
                    tls.close().unwrap();
                    tls.is_resumed()
                })
                .collect::<Vec<_>>()
        });
        let mut seen = Vec::new();
        for _ in 0..2 {
            let mut tls = client
                .connect("localhost", TcpStream::connect(addr).unwrap())
                .unwrap();
            assert_eq!(tls.is_resumed(), None);
            let mut got = Vec::new();
            // Reading to the end also takes the tickets sent after the handshake.
            tls.read_to_end(&mut got).unwrap();
            tls.close().unwrap();
            seen.push(tls.is_resumed());
        }
        assert_eq!(seen, [Some(false), Some(true)], "client, {engine} server");
        let server_saw = serving.join().unwrap();
        assert_eq!(server_saw, [Some(false), Some(true)], "{engine} server");
    }
}

/// The client's resumption controls: with resumption off every connection runs a full
/// handshake; with a cache of one server the second connection resumes; and the OpenSSL
/// engine's client, which does not resume, refuses a cache size at build.
#[test]
fn the_client_builder_turns_resumption_off_and_sizes_its_cache() {
    let cert = SelfSigned::generate(&["localhost"]).unwrap();
    let server = ServerConfig::builder().self_signed(&cert).build().unwrap();
    let rounds = |client: tlsflow::ClientConfig| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = server.clone();
        let serving = thread::spawn(move || {
            for _ in 0..2 {
                let mut tls = server.accept(listener.accept().unwrap().0).unwrap();
                tls.write_all(b"hi").unwrap();
                tls.close().unwrap();
            }
        });
        let seen: Vec<Option<bool>> = (0..2)
            .map(|_| {
                let mut tls = client
                    .connect("localhost", TcpStream::connect(addr).unwrap())
                    .unwrap();
                let mut got = Vec::new();
                tls.read_to_end(&mut got).unwrap();
                tls.close().unwrap();
                tls.is_resumed()
            })
            .collect();
        serving.join().unwrap();
        seen
    };
    let builder = || tlsflow::ClientConfig::builder().ca_certificate(cert.cert_der());
    let off = builder().no_resumption().build().unwrap();
    assert_eq!(rounds(off), [Some(false), Some(false)]);
    let one = builder().session_cache_size(1).build().unwrap();
    assert_eq!(rounds(one), [Some(false), Some(true)]);

    let err = builder()
        .session_cache_size(8)
        .engine(EngineKind::Openssl)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("rustls engine"), "{err}");
    // Off is what the OpenSSL engine's client does anyway.
    builder()
        .no_resumption()
        .engine(EngineKind::Openssl)
        .build()
        .unwrap();
}
