//! A client that tries 0-RTT: tlsflow never accepts early data, so the server skips it (by
//! trial decryption, within rustls's budget of 16 KiB) and the handshake goes on, whatever
//! the size of the early data and however it is cut into records.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;

use rustls::pki_types::ServerName;
use tlsflow::{ClientConfig, ProtocolVersion, SelfSigned, ServerConfig};

/// Serves one connection: echoes what it reads until the client closes.
fn echo_once(config: ServerConfig) -> (std::net::SocketAddr, thread::JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = thread::spawn(move || {
        let mut tls = config.accept(listener.accept().unwrap().0).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = tls.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            tls.write_all(&buf[..n]).unwrap();
            tls.flush().unwrap();
        }
        tls.shutdown().unwrap();
        got
    });
    (addr, handle)
}

/// Runs one rustls client connection: `early` bytes of 0-RTT data if it can, then
/// `message`, read back from the echo. Returns whether it could send early data.
fn client(config: &Arc<rustls::ClientConfig>, addr: std::net::SocketAddr, early: usize) -> bool {
    let name = ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(config.clone(), name).unwrap();
    let tried = match conn.early_data() {
        Some(mut writer) => {
            assert!(
                writer.bytes_left() >= early,
                "the ticket allows {}",
                writer.bytes_left()
            );
            writer.write_all(&vec![b'e'; early]).unwrap();
            true
        }
        None => false,
    };
    let mut tcp = TcpStream::connect(addr).unwrap();
    let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
    tls.write_all(b"after the handshake").unwrap();
    let mut echoed = [0u8; 19];
    tls.read_exact(&mut echoed).unwrap();
    assert_eq!(&echoed, b"after the handshake");
    tls.conn.send_close_notify();
    tls.flush().unwrap();
    let mut rest = Vec::new();
    tls.read_to_end(&mut rest).unwrap();
    assert!(
        !conn.is_early_data_accepted(),
        "tlsflow accepted early data"
    );
    tried
}

#[test]
fn rejected_early_data_of_any_size_is_skipped() {
    let cert = SelfSigned::generate(&["localhost"]).unwrap();
    let built = ServerConfig::builder()
        .self_signed(&cert)
        .versions(&[ProtocolVersion::Tls13])
        .build()
        .unwrap();
    // The first server issues tickets that allow 16 KiB of early data; the second, with the
    // same session store, declines early data as tlsflow always does.
    let mut issuing = (**built.rustls().unwrap()).clone();
    issuing.max_early_data_size = 16 * 1024;
    let issuing = Arc::new(issuing);
    let mut declining = (*issuing).clone();
    declining.max_early_data_size = 0;
    let declining = Arc::new(declining);
    // A configuration that never moves to tlsflow's record layer (rustls runs all of it)
    // must skip declined early data just the same.
    let mut rustls_only = (*declining).clone();
    rustls_only.enable_secret_extraction = false;
    let rustls_only = Arc::new(rustls_only);

    for (early, fragment) in [
        (100, None),
        (9_000, None),
        (15_000, None),
        (9_000, Some(512)),
    ] {
        let mut config = (**ClientConfig::builder()
            .ca_certificate(cert.cert_der())
            .build()
            .unwrap()
            .rustls()
            .unwrap())
        .clone();
        config.enable_early_data = true;
        config.max_fragment_size = fragment;
        let config = Arc::new(config);

        for server in [&declining, &rustls_only] {
            // Tickets from the declining servers allow no early data: a fresh one each time.
            let (addr, first) = echo_once(ServerConfig::from_rustls(issuing.clone()));
            client(&config, addr, early);
            first.join().unwrap();

            let (addr, second) = echo_once(ServerConfig::from_rustls(server.clone()));
            assert!(client(&config, addr, early), "the ticket allows early data");
            assert_eq!(
                second.join().unwrap(),
                b"after the handshake",
                "{early} bytes of early data in records of {fragment:?}, record layer {}",
                server.enable_secret_extraction
            );
        }
    }
}
