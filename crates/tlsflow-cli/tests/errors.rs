//! Every mistake a user can make, and every failure the network can cause, ends in one clear
//! line naming the file, address or reason, with exit status 1 (2 for usage), never a panic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use common::{assert_clean_error, free_port, make_cert, run, Server, TempDir};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

/// A CA with its own name, and a `localhost` server certificate it signed, as PEM files.
fn ca_signed(dir: &Path, ca_name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, ca_name);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    (
        write(&format!("{ca_name}.pem"), &ca_pem),
        write("server.pem", &cert.pem()),
        write("server.key", &key.serialize_pem()),
    )
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn serve(cert: &Path, key: &Path, extra: &[&str]) -> Server {
    let mut args = vec![
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--cert",
        s(cert),
        "--key",
        s(key),
    ];
    args.extend_from_slice(extra);
    Server::start(&args)
}

#[test]
fn missing_pem_file_is_named() {
    let dir = TempDir::new("missing");
    let (cert, key) = make_cert(dir.path(), &["localhost"]);
    let missing = dir.join("nope.pem");
    run(&["serve", "--cert", s(&missing), "--key", s(&key)], None).assert_error(
        1,
        &["cannot read certificate file", s(&missing), "no such file"],
    );
    run(&["serve", "--cert", s(&cert), "--key", s(&missing)], None)
        .assert_error(1, &["key file", s(&missing)]);
    run(&["connect", "localhost:1", "--ca", s(&missing)], None)
        .assert_error(1, &["CA file", s(&missing)]);
    run(&["serve", "--file", s(&missing)], None).assert_error(1, &["file", s(&missing)]);
}

#[test]
fn unreadable_pem_is_named() {
    let dir = TempDir::new("garbage");
    let (_, key) = make_cert(dir.path(), &["localhost"]);
    let garbage = dir.join("garbage.pem");
    std::fs::write(&garbage, "this is not PEM\n").unwrap();
    run(&["serve", "--cert", s(&garbage), "--key", s(&key)], None)
        .assert_error(1, &["no certificate found", s(&garbage)]);
    // A directory where a file should be.
    run(&["serve", "--cert", s(dir.path()), "--key", s(&key)], None)
        .assert_error(1, &[s(dir.path())]);
    let (cert, _) = make_cert(&dir.join("other"), &["localhost"]);
    run(&["serve", "--cert", s(&cert), "--key", s(&garbage)], None)
        .assert_error(1, &["private key", s(&garbage)]);
}

#[test]
fn key_that_does_not_match_the_certificate() {
    let dir = TempDir::new("mismatch");
    let (cert, _) = make_cert(&dir.join("a"), &["localhost"]);
    let (_, other_key) = make_cert(&dir.join("b"), &["localhost"]);
    run(&["serve", "--cert", s(&cert), "--key", s(&other_key)], None).assert_error(
        1,
        &["does not match the certificate", s(&cert), s(&other_key)],
    );
}

#[test]
fn address_in_use() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    run(&["serve", "--listen", &addr], None)
        .assert_error(1, &["cannot listen on", &addr, "address already in use"]);
    run(&["tunnel", "--listen", &addr, "--to", "localhost:1"], None)
        .assert_error(1, &["cannot listen on", &addr, "address already in use"]);
}

#[test]
fn connection_refused() {
    let addr = format!("127.0.0.1:{}", free_port());
    run(&["connect", &addr, "--insecure-skip-verify"], None)
        .assert_error(1, &["cannot connect to", &addr, "connection refused"]);
}

/// A TCP peer that accepts and then says nothing: the handshake times out, on both sides.
#[test]
fn handshake_timeouts() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let holder = thread::spawn(move || {
        let held = silent.accept();
        thread::sleep(Duration::from_secs(3));
        drop(held);
    });
    run(
        &[
            "connect",
            &addr,
            "--insecure-skip-verify",
            "--timeout",
            "500ms",
        ],
        None,
    )
    .assert_error(1, &["timed out", "TLS handshake", &addr]);
    holder.join().unwrap();

    let dir = TempDir::new("timeout");
    let (cert, key) = make_cert(dir.path(), &["localhost"]);
    let mut server = serve(&cert, &key, &["--handshake-timeout", "300ms"]);
    let idle = TcpStream::connect(server.addr).unwrap();
    server.proc.wait_for_stderr("a handshake timeout", |line| {
        line.contains("timed out waiting for the TLS handshake")
            .then_some(())
    });
    drop(idle);
}

#[test]
fn unknown_ca() {
    let dir = TempDir::new("unknown-ca");
    let (_, cert, key) = ca_signed(dir.path(), "Server CA");
    let (other_ca, _, _) = ca_signed(&dir.join_dir("other"), "Other CA");
    let server = serve(&cert, &key, &[]);
    let target = format!("localhost:{}", server.port());
    run(&["connect", &target, "--ca", s(&other_ca)], None).assert_error(
        1,
        &["TLS handshake with", &target, "UnknownIssuer", "unknown CA"],
    );
}

/// Two self-signed certificates made by `tlsflow cert` share their issuer's name, so the
/// wrong one is still reported as an unknown CA.
#[test]
fn unknown_self_signed_certificate() {
    let dir = TempDir::new("unknown-self");
    let (cert, key) = make_cert(&dir.join("server"), &["localhost"]);
    let (other, _) = make_cert(&dir.join("other"), &["localhost"]);
    let server = serve(&cert, &key, &[]);
    let target = format!("localhost:{}", server.port());
    run(&["connect", &target, "--ca", s(&other)], None)
        .assert_error(1, &["TLS handshake with", "unknown CA"]);
}

#[test]
fn hostname_mismatch() {
    let dir = TempDir::new("hostname");
    let (cert, key) = make_cert(dir.path(), &["localhost"]);
    let server = serve(&cert, &key, &[]);
    let target = format!("127.0.0.1:{}", server.port());
    run(
        &[
            "connect",
            &target,
            "--ca",
            s(&cert),
            "--sni",
            "wrong.example",
        ],
        None,
    )
    .assert_error(
        1,
        &["TLS handshake with", "wrong.example", "hostname mismatch"],
    );
    // Without --sni the address itself is checked, and the certificate does not name it.
    run(&["connect", &target, "--ca", s(&cert)], None).assert_error(1, &["hostname mismatch"]);
}

#[test]
fn no_shared_protocol_version() {
    let dir = TempDir::new("version");
    let (cert, key) = make_cert(dir.path(), &["localhost"]);
    let mut server = serve(&cert, &key, &["--tls-version", "1.2"]);
    let target = format!("localhost:{}", server.port());
    run(
        &["connect", &target, "--ca", s(&cert), "--tls-version", "1.3"],
        None,
    )
    .assert_error(
        1,
        &[
            "TLS handshake with",
            "protocol_version",
            "no shared protocol version",
        ],
    );
    server.proc.wait_for_stderr("the server's view", |line| {
        line.contains("no shared protocol version").then_some(())
    });
}

#[test]
fn no_shared_cipher_suite() {
    let dir = TempDir::new("suite");
    let (cert, key) = make_cert(dir.path(), &["localhost"]);
    let mut server = serve(&cert, &key, &["--cipher-suite", "TLS_AES_128_GCM_SHA256"]);
    let target = format!("localhost:{}", server.port());
    let client_suite = ["--cipher-suite", "TLS_CHACHA20_POLY1305_SHA256"];
    let mut args = vec!["connect", target.as_str(), "--ca", s(&cert)];
    args.extend(client_suite);
    run(&args, None).assert_error(
        1,
        &["TLS handshake with", "handshake_failure", "cipher suite"],
    );
    server.proc.wait_for_stderr("the server's view", |line| {
        line.contains("no shared cipher suite").then_some(())
    });
}

/// A server that sends data and then closes TCP without `close_notify`: `connect` prints
/// what arrived, then fails with a truncation error.
#[test]
fn truncation_is_an_error() {
    let cert = tlsflow::SelfSigned::generate(&["localhost"]).unwrap();
    let config = tlsflow::ServerConfig::builder()
        .self_signed(&cert)
        .build()
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut tls = config.accept(tcp.try_clone().unwrap()).unwrap();
        tls.write_all(b"partial data").unwrap();
        tls.flush().unwrap();
        thread::sleep(Duration::from_millis(200));
        tcp.shutdown(std::net::Shutdown::Both).unwrap();
    });
    let out = run(
        &[
            "connect",
            &addr,
            "--insecure-skip-verify",
            "--sni",
            "localhost",
        ],
        None,
    );
    out.assert_error(1, &["receiving from", &addr, "close_notify", "truncated"]);
    assert_eq!(out.stdout, b"partial data");
    assert!(
        out.stderr.contains("--insecure-skip-verify"),
        "no warning: {}",
        out.stderr
    );
    server.join().unwrap();
}

/// A plain TCP service that answers in HTTP instead of TLS.
#[test]
fn peer_that_does_not_speak_tls() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = thread::spawn(move || {
        let (mut tcp, _) = listener.accept().unwrap();
        let mut hello = [0u8; 512];
        let _ = tcp.read(&mut hello);
        let _ = tcp.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    });
    let out = run(&["connect", &addr, "--insecure-skip-verify"], None);
    out.assert_error(1, &["TLS handshake with", &addr]);
    server.join().unwrap();
}

#[test]
fn errors_are_one_line_without_backtraces() {
    let out = run(&["connect", "no-such-host.invalid:443"], None);
    out.assert_code(1);
    assert_clean_error(&out.stderr, &["no-such-host.invalid"]);
}

trait JoinDir {
    fn join_dir(&self, name: &str) -> PathBuf;
}

impl JoinDir for TempDir {
    fn join_dir(&self, name: &str) -> PathBuf {
        let dir = self.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
