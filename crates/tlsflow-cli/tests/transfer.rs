//! Data through `serve` and `connect` as a user moves it: files piped in and out, checked by
//! SHA-256; many connections at once; Ctrl-C letting open connections finish.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::process::Stdio;

use common::{
    make_cert, parse_sink_line, random_file, run, sha256_file, sha256_hex, sink_line, tlsflow,
    Proc, Server, TempDir, STEP,
};

/// The first scenario: `cert`, then `serve --sink`, then `connect` piping 256 MiB
/// from a file; the sink's SHA-256 line equals the file's.
#[test]
fn connect_pipes_256_mib_into_serve_sink() {
    let dir = TempDir::new("sink");
    let (cert, key) = make_cert(dir.path(), &["localhost"]);
    let data = dir.join("data.bin");
    let expected = random_file(&data, 256 << 20, 1);
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let mut server = Server::start(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--cert",
        cert,
        "--key",
        key,
        "--sink",
    ]);
    let target = format!("localhost:{}", server.port());
    let out = run(&["connect", &target, "--ca", cert], Some(&data));
    out.assert_code(0);
    assert!(out.stdout.is_empty(), "the sink sent data back");
    assert_eq!(sink_line(&mut server), (256 << 20, expected));
}

#[test]
fn echo_returns_every_byte() {
    let dir = TempDir::new("echo");
    let (cert, key) = make_cert(dir.path(), &["localhost"]);
    let data = dir.join("data.bin");
    let expected = random_file(&data, 16 << 20, 2);
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let server = Server::start(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--cert",
        cert,
        "--key",
        key,
        "--alpn",
        "h2",
        "--alpn",
        "tlsflow/1",
    ]);
    let target = format!("127.0.0.1:{}", server.port());
    let out = run(
        &[
            "-v",
            "connect",
            &target,
            "--ca",
            cert,
            "--sni",
            "localhost",
            "--alpn",
            "tlsflow/1",
        ],
        Some(&data),
    );
    out.assert_code(0);
    assert!(out.stderr.contains("ALPN tlsflow/1"), "{}", out.stderr);
    assert_eq!(out.stdout.len(), 16 << 20);
    assert_eq!(sha256_hex(&out.stdout), expected);
}

/// `--file` sends the file and closes cleanly: `connect` (with nothing to send) exits 0.
#[test]
fn file_mode_sends_the_file_then_closes_cleanly() {
    let dir = TempDir::new("file");
    let (cert, key) = make_cert(dir.path(), &["localhost"]);
    let data = dir.join("data.bin");
    let expected = random_file(&data, 8 << 20, 3);
    let server = Server::start(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--file",
        data.to_str().unwrap(),
    ]);
    for _ in 0..2 {
        let target = format!("localhost:{}", server.port());
        let out = run(&["connect", &target, "--ca", cert.to_str().unwrap()], None);
        out.assert_code(0);
        assert_eq!(sha256_hex(&out.stdout), expected);
    }
    assert!(
        !server.proc.stderr().contains("WARN"),
        "{}",
        server.proc.stderr()
    );
}

#[test]
fn many_connections_at_once() {
    let dir = TempDir::new("many");
    let (cert, key) = make_cert(dir.path(), &["localhost"]);
    let mut server = Server::start(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--sink",
    ]);
    let mut expected = Vec::new();
    let clients: Vec<Proc> = (0..8)
        .map(|i| {
            let data = dir.join(&format!("data{i}.bin"));
            expected.push((1u64 << 20, random_file(&data, 1 << 20, 100 + i)));
            let mut command = tlsflow();
            command
                .args(["connect", &format!("localhost:{}", server.port()), "--ca"])
                .arg(&cert)
                .stdin(std::fs::File::open(&data).unwrap());
            Proc::spawn("connect", command)
        })
        .collect();
    for client in clients {
        client.finish(STEP).assert_code(0);
    }
    let mut seen = server
        .proc
        .wait_for_lines("sink lines", expected.len(), parse_sink_line);
    seen.sort();
    expected.sort();
    assert_eq!(seen, expected);
}

/// Ctrl-C stops accepting, lets the open connection finish, then exits 0.
#[test]
fn ctrl_c_lets_open_connections_finish() {
    let dir = TempDir::new("ctrl-c");
    let (cert, key) = make_cert(dir.path(), &["localhost"]);
    let mut server = Server::start(&[
        "-v",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--shutdown-timeout",
        "30s",
    ]);
    let mut command = tlsflow();
    command
        .args(["connect", &format!("localhost:{}", server.port()), "--ca"])
        .arg(&cert)
        .stdin(Stdio::piped());
    let mut client = Proc::spawn("connect", command);
    let mut stdin = client.stdin();
    stdin.write_all(b"before the signal\n").unwrap();
    stdin.flush().unwrap();
    // The connection is up once the server logs its handshake (-v).
    server.proc.wait_for_stderr("the handshake", |line| {
        line.contains("TLSv1.3").then_some(())
    });

    let pid = server.proc_id();
    let _ = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status();
    server.proc.wait_for_stderr("that it is stopping", |line| {
        line.contains("waiting up to").then_some(())
    });
    // New connections are refused now; the open one still works.
    let refused = run(
        &[
            "connect",
            &format!("localhost:{}", server.port()),
            "--ca",
            cert.to_str().unwrap(),
        ],
        None,
    );
    refused.assert_error(1, &["connection refused"]);
    stdin.write_all(b"after the signal\n").unwrap();
    drop(stdin);
    let out = client.finish(STEP);
    out.assert_code(0);
    assert_eq!(out.stdout_text(), "before the signal\nafter the signal\n");
    let server_out = server.proc.finish(STEP);
    server_out.assert_code(0);
    assert!(
        server_out.stderr.contains("every connection finished"),
        "{}",
        server_out.stderr
    );
}

/// Reads a whole file the slow way, to check `sha256_file` against itself.
#[test]
fn harness_hashes_agree() {
    let dir = TempDir::new("hash");
    let path = dir.join("x.bin");
    let expected = random_file(&path, 100_000, 9);
    assert_eq!(sha256_file(&path), expected);
    let mut bytes = Vec::new();
    std::fs::File::open(&path)
        .unwrap()
        .read_to_end(&mut bytes)
        .unwrap();
    assert_eq!(sha256_hex(&bytes), expected);
}
