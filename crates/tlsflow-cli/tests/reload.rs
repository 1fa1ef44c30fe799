//! `tlsflow serve` reloads its certificate files on SIGHUP: clients that trust only the new
//! certificate connect after it, clients that trust only the old one are refused, a
//! connection opened before it keeps working, and a bad new file is refused with a clear
//! line while the old certificate stays in service.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;

use common::{make_cert, run, Output, Server, TempDir};

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The SHA-256 fingerprint of the certificate in a PEM file, as the server prints it.
fn fingerprint(pem: &Path) -> String {
    tlsflow::fingerprint_sha256(&tlsflow::load_certs(pem).unwrap()[0])
}

fn hang_up(server: &Server) {
    let status = Command::new("kill")
        .args(["-HUP", &server.proc_id()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Runs `tlsflow connect` to the server trusting `ca`, sending a line; returns the output.
fn connect(server: &Server, ca: &Path, dir: &TempDir) -> Output {
    let input = dir.join("line.txt");
    std::fs::write(&input, b"hello through the reload\n").unwrap();
    let target = format!("localhost:{}", server.port());
    run(&["connect", &target, "--ca", s(ca)], Some(&input))
}

fn echoes(out: &Output) {
    out.assert_code(0);
    assert_eq!(out.stdout, b"hello through the reload\n");
}

fn refused(out: &Output) {
    out.assert_error(1, &["TLS handshake with", "unknown CA"]);
}

#[test]
fn sighup_reloads_the_certificate_files() {
    let dir = TempDir::new("sighup");
    let (old_cert, old_key) = make_cert(&dir.join("old"), &["localhost"]);
    let (new_cert, new_key) = make_cert(&dir.join("new"), &["localhost"]);
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::copy(&old_cert, &cert).unwrap();
    std::fs::copy(&old_key, &key).unwrap();

    let mut server = Server::start(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--cert",
        s(&cert),
        "--key",
        s(&key),
    ]);
    let old_print = fingerprint(&old_cert);
    let new_print = fingerprint(&new_cert);
    server
        .proc
        .wait_for_stderr("the served fingerprint", |line| {
            line.contains(&format!("SHA-256 fingerprint {old_print}"))
                .then_some(())
        });

    // A connection opened before the reload, by the library as a client.
    let client = tlsflow::ClientConfig::builder()
        .ca_file(&old_cert)
        .build()
        .unwrap();
    let mut before = client
        .connect("localhost", TcpStream::connect(server.addr).unwrap())
        .unwrap();
    let echo = |tls: &mut tlsflow::TlsStream<TcpStream>, text: &[u8]| {
        tls.write_all(text).unwrap();
        let mut back = vec![0u8; text.len()];
        tls.read_exact(&mut back).unwrap();
        assert_eq!(back, text);
    };
    echo(&mut before, b"opened before the reload\n");
    echoes(&connect(&server, &old_cert, &dir));

    // New files, then SIGHUP.
    std::fs::copy(&new_cert, &cert).unwrap();
    std::fs::copy(&new_key, &key).unwrap();
    hang_up(&server);
    server.proc.wait_for_stderr("the reload line", |line| {
        line.contains(&format!(
            "SIGHUP: certificates reloaded; SHA-256 fingerprint {new_print}"
        ))
        .then_some(())
    });
    echoes(&connect(&server, &new_cert, &dir));
    refused(&connect(&server, &old_cert, &dir));
    echo(&mut before, b"still working after the reload\n");

    // A broken key: refused with a clear line, the new certificate stays in service.
    std::fs::write(&key, "not a key\n").unwrap();
    hang_up(&server);
    let line = server.proc.wait_for_stderr("the refusal line", |line| {
        line.contains("SIGHUP: reload refused")
            .then(|| line.to_owned())
    });
    assert!(line.contains(&new_print), "{line}");
    assert!(line.contains("key.pem"), "{line}");
    echoes(&connect(&server, &new_cert, &dir));
    echo(&mut before, b"and after the refused one\n");
    before.close().unwrap();
}

#[test]
fn sighup_without_files_says_there_is_nothing_to_reload() {
    let mut server = Server::start(&["serve", "--listen", "127.0.0.1:0"]);
    hang_up(&server);
    server
        .proc
        .wait_for_stderr("the nothing-to-reload line", |line| {
            line.contains("SIGHUP: nothing to reload").then_some(())
        });
    assert!(
        server.proc.exited().is_none(),
        "SIGHUP must not stop the server"
    );
}
