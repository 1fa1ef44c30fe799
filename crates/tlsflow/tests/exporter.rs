//! Exported keying material (RFC 5705, RFC 8446 section 7.5): the OpenSSL engine gives the
//! same bytes as an independent implementation (a rustls client) on TLS 1.3 and TLS 1.2,
//! different bytes for another label or context; the rustls engine says plainly that it
//! cannot.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;

use tlsflow::{EngineKind, Error, ProtocolVersion, SelfSigned, ServerConfig};

const LABEL: &str = "EXPORTER-tlsflow-test";

#[test]
fn the_openssl_engine_exports_what_the_peer_exports() {
    let cert = SelfSigned::generate(&["localhost"]).unwrap();
    for version in [ProtocolVersion::Tls13, ProtocolVersion::Tls12] {
        let server = ServerConfig::builder()
            .self_signed(&cert)
            .versions(&[version])
            .engine(EngineKind::Openssl)
            .build()
            .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let serving = thread::spawn(move || {
            let mut tls = server.accept(listener.accept().unwrap().0).unwrap();
            let mut early = [0u8; 32];
            let err = tls
                .export_keying_material(&mut early, LABEL, None)
                .unwrap_err();
            assert!(matches!(err, Error::Protocol { .. }), "{err:?}");
            tls.handshake().unwrap();
            let mut exported = Vec::new();
            for context in [None, Some(&b"context"[..]), Some(&b"other"[..])] {
                let mut out = [0u8; 32];
                tls.export_keying_material(&mut out, LABEL, context)
                    .unwrap();
                exported.push(out);
            }
            let mut out = [0u8; 32];
            tls.export_keying_material(&mut out, "EXPORTER-another-label", Some(b"context"))
                .unwrap();
            exported.push(out);
            let mut byte = [0u8; 1];
            tls.read_exact(&mut byte).unwrap();
            tls.close().unwrap();
            exported
        });

        let client = tlsflow::ClientConfig::builder()
            .ca_certificate(cert.cert_der())
            .build()
            .unwrap();
        let mut rustls_client = (**client.rustls().unwrap()).clone();
        rustls_client.enable_secret_extraction = false;
        let conn =
            rustls::ClientConnection::new(Arc::new(rustls_client), "localhost".try_into().unwrap())
                .unwrap();
        let mut tls = rustls::StreamOwned::new(conn, TcpStream::connect(addr).unwrap());
        tls.write_all(b"x").unwrap();
        tls.flush().unwrap();
        let export = |context: Option<&[u8]>, label: &str| {
            tls.conn
                .export_keying_material([0u8; 32], label.as_bytes(), context)
                .unwrap()
        };
        let expected = [
            export(None, LABEL),
            export(Some(b"context"), LABEL),
            export(Some(b"other"), LABEL),
            export(Some(b"context"), "EXPORTER-another-label"),
        ];
        tls.conn.send_close_notify();
        tls.flush().unwrap();
        let exported = serving.join().unwrap();
        assert_eq!(exported, expected, "{version}");
        // Each label and context gives its own bytes.
        for (i, a) in expected.iter().enumerate() {
            for b in &expected[i + 1..] {
                assert_ne!(a, b, "{version}");
            }
        }
    }
}

#[test]
fn the_rustls_engine_says_it_cannot_export() {
    let (client, server) =
        tlsflow::testing::self_signed_configs(tlsflow::Limits::default()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = thread::spawn(move || {
        let mut tls = server.accept(listener.accept().unwrap().0).unwrap();
        let mut rest = Vec::new();
        tls.read_to_end(&mut rest).unwrap();
        tls.close().unwrap();
    });
    let mut tls = client
        .connect("localhost", TcpStream::connect(addr).unwrap())
        .unwrap();
    tls.handshake().unwrap();
    let mut out = [0u8; 32];
    let err = tls
        .export_keying_material(&mut out, LABEL, None)
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
    assert!(err.to_string().contains("OpenSSL engine"), "{err}");
    assert_eq!(out, [0u8; 32], "nothing written");
    assert_eq!(
        std::io::Error::from(err).kind(),
        std::io::ErrorKind::Unsupported
    );
    // The connection is unaffected.
    tls.write_all(b"still fine").unwrap();
    tls.close().unwrap();
    serving.join().unwrap();
}
