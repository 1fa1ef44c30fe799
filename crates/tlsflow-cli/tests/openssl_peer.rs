//! `tlsflow` against an independent TLS implementation, Debian's `openssl` CLI: `serve
//! --echo` with `openssl s_client` as the client, and `connect` against `openssl s_server`,
//! 16 MiB each way, checked by SHA-256. Needs `openssl` (or `TLSFLOW_SKIP_PEERS=1`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    free_port, is_listening, make_cert, random_file, run, sha256_hex, Proc, Server, TempDir, STEP,
};
use sha2::{Digest, Sha256};

const SIZE: usize = 16 << 20;

fn openssl_available() -> bool {
    common::peer_available("openssl", &["version"], "Debian: apt-get install openssl")
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// `openssl s_client` sends 16 MiB through `serve --echo` and reads it all back.
///
/// s_client stops at the end of its input (`-no_ign_eof`) without waiting for what is still
/// on its way back, so its stdin stays open until the whole echo has arrived.
#[test]
fn openssl_s_client_through_serve_echo() {
    if !openssl_available() {
        return;
    }
    let dir = TempDir::new("s_client");
    let (cert, key) = make_cert(dir.path(), &["localhost"]);
    let data = dir.join("data.bin");
    let expected = random_file(&data, SIZE, 11);
    let server = Server::start(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--cert",
        s(&cert),
        "--key",
        s(&key),
        "--echo",
    ]);
    let mut client = Command::new("openssl")
        .args(["s_client", "-connect", &server.addr.to_string()])
        // -no_ign_eof must follow -quiet; -nocommands keeps lines starting with Q, R, K or
        // k from being taken as commands.
        .args([
            "-quiet",
            "-no_ign_eof",
            "-nocommands",
            "-verify_return_error",
        ])
        .args([
            "-servername",
            "localhost",
            "-verify_hostname",
            "localhost",
            "-CAfile",
        ])
        .arg(&cert)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start openssl s_client");
    let mut stdin = client.stdin.take().unwrap();
    let mut stdout = client.stdout.take().unwrap();
    let mut stderr = client.stderr.take().unwrap();
    let errors = thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let reader = thread::spawn(move || {
        let mut hasher = Sha256::new();
        let mut total = 0usize;
        let mut buf = vec![0u8; 1 << 16];
        while total < SIZE {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    hasher.update(&buf[..n]);
                    total += n;
                }
            }
        }
        let _ = done_tx.send(());
        (total, common::hex(&hasher.finalize()))
    });
    let payload = std::fs::read(&data).unwrap();
    let writer = thread::spawn(move || {
        let result = stdin.write_all(&payload);
        (stdin, result)
    });
    let echoed = done_rx.recv_timeout(STEP);
    let (stdin, written) = writer.join().unwrap();
    drop(stdin); // end of input: s_client sends close_notify and exits
    if echoed.is_err() {
        let _ = client.kill();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.try_wait().unwrap().is_none() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    let _ = client.kill();
    let status = client.wait().unwrap();
    let s_client_stderr = errors.join().unwrap();
    let (count, digest) = reader.join().unwrap();
    written.unwrap_or_else(|e| panic!("writing to s_client failed: {e}; {s_client_stderr}"));
    assert_eq!(
        count, SIZE,
        "echo short; s_client stderr: {s_client_stderr}"
    );
    assert_eq!(digest, expected);
    assert!(status.success(), "s_client: {status}; {s_client_stderr}");
    let server_log = server.proc.stderr();
    assert!(!server_log.contains("WARN"), "server log:\n{server_log}");
}

/// Starts `openssl s_server -naccept 1` on a free port (retrying on another port if the
/// chosen one is taken) with its stdin held open: s_server drops the connection at the end
/// of its stdin.
fn start_s_server(cert: &Path, key: &Path) -> (Proc, std::process::ChildStdin, u16) {
    let mut failures = Vec::new();
    for _ in 0..3 {
        let port = free_port();
        let mut command = Command::new("openssl");
        command
            .args(["s_server", "-accept", &format!("127.0.0.1:{port}")])
            .args(["-cert", s(cert), "-key", s(key), "-quiet", "-naccept", "1"])
            .stdin(Stdio::piped());
        let mut server = Proc::spawn("openssl s_server", command);
        let stdin = server.stdin();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // A probe connection would be the one -naccept 1 serves, and -quiet prints
            // nothing: look for the listening socket instead.
            if is_listening(port) {
                return (server, stdin, port);
            }
            if let Some(status) = server.exited() {
                failures.push(format!("port {port}: exited {status}: {}", server.stderr()));
                break;
            }
            if Instant::now() > deadline {
                failures.push(format!("port {port}: {}", server.stderr()));
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
    panic!("could not start openssl s_server: {failures:#?}");
}

/// `connect` sends 16 MiB to `openssl s_server` (which prints exactly what it receives) and
/// reads what s_server sends, ending cleanly on its close_notify.
#[test]
fn connect_to_openssl_s_server() {
    if !openssl_available() {
        return;
    }
    let dir = TempDir::new("s_server");
    let (cert, key) = make_cert(dir.path(), &["localhost"]);
    let data = dir.join("data.bin");
    let expected = random_file(&data, SIZE, 12);
    let (server, mut server_stdin, port) = start_s_server(&cert, &key);
    server_stdin.write_all(b"greetings from openssl\n").unwrap();
    server_stdin.flush().unwrap();
    let target = format!("localhost:{port}");
    let out = run(&["connect", &target, "--ca", s(&cert), "-v"], Some(&data));
    let server_out = server.finish(STEP);
    drop(server_stdin);
    out.assert_code(0);
    assert_eq!(out.stdout_text(), "greetings from openssl\n");
    assert!(out.stderr.contains("protocol TLSv1.3"), "{}", out.stderr);
    assert!(
        out.stderr.contains("peer certificate names: DNS:localhost"),
        "{}",
        out.stderr
    );
    assert_eq!(
        server_out.stdout.len(),
        SIZE,
        "s_server stderr: {}",
        server_out.stderr
    );
    assert_eq!(sha256_hex(&server_out.stdout), expected);
}

/// An OpenSSL server whose only cipher suite rustls does not implement: no shared suite.
#[test]
fn no_shared_cipher_suite_with_openssl() {
    if !openssl_available() {
        return;
    }
    let dir = TempDir::new("s_server-ccm");
    let (cert, key) = make_cert(dir.path(), &["localhost"]);
    let port = free_port();
    let mut command = Command::new("openssl");
    command
        .args(["s_server", "-accept", &format!("127.0.0.1:{port}")])
        .args([
            "-cert",
            s(&cert),
            "-key",
            s(&key),
            "-quiet",
            "-naccept",
            "1",
            "-tls1_3",
        ])
        .args(["-ciphersuites", "TLS_AES_128_CCM_SHA256"])
        .stdin(Stdio::piped());
    let mut server = Proc::spawn("openssl s_server", command);
    let _stdin = server.stdin();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !is_listening(port) {
        assert!(
            Instant::now() < deadline,
            "s_server did not listen: {}",
            server.stderr()
        );
        thread::sleep(Duration::from_millis(20));
    }
    let out = run(
        &["connect", &format!("localhost:{port}"), "--ca", s(&cert)],
        None,
    );
    out.assert_error(1, &["TLS handshake with", "no shared cipher suite"]);
}
