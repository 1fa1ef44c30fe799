//! `serve --forward` in front of a real plain-TCP service (Python's `http.server` serving a
//! 64 MiB file) with the real `curl` fetching it over TLS; and the same through `tunnel`,
//! with `curl` speaking plain HTTP to the tunnel. Bodies checked by SHA-256. Needs
//! `python3` and `curl` (or `TLSFLOW_SKIP_PEERS=1`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::{
    free_port, is_listening, make_cert, random_file, sha256_file, Proc, Server, TempDir, STEP,
};

const SIZE: usize = 64 << 20;

fn peers_available() -> bool {
    common::peer_available("python3", &["--version"], "Debian: apt-get install python3")
        && common::peer_available("curl", &["--version"], "Debian: apt-get install curl")
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// `python3 -m http.server` serving `dir` on a free port (another one if it was taken).
fn http_server(dir: &Path) -> (Proc, u16) {
    let mut failures = Vec::new();
    for _ in 0..3 {
        let port = free_port();
        let mut command = Command::new("python3");
        command
            .args([
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
            ])
            .arg("--directory")
            .arg(dir);
        let mut server = Proc::spawn("python3 -m http.server", command);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if is_listening(port) {
                return (server, port);
            }
            if let Some(status) = server.exited() {
                failures.push(format!("port {port}: exited {status}: {}", server.stderr()));
                break;
            }
            if Instant::now() > deadline {
                failures.push(format!("port {port}: not listening: {}", server.stderr()));
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
    panic!("could not start python3 -m http.server: {failures:#?}");
}

/// Fetches `url` with curl into `out`; `extra` adds options (trust, name resolution).
fn curl(url: &str, out: &Path, extra: &[&str]) {
    let mut command = Command::new("curl");
    command
        .args(["--silent", "--show-error", "--fail", "--max-time", "60"])
        .args(extra)
        .args(["--output", s(out), url]);
    let result = Proc::spawn("curl", command).finish(STEP);
    assert!(
        result.status.success(),
        "curl {url} failed ({}): {}",
        result.status,
        result.stderr
    );
}

struct Setup {
    dir: TempDir,
    expected: String,
    _http: Proc,
    http_port: u16,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
}

fn setup(tag: &str) -> Setup {
    let dir = TempDir::new(tag);
    let site = dir.join("site");
    std::fs::create_dir_all(&site).unwrap();
    let expected = random_file(&site.join("big.bin"), SIZE, 21);
    let (cert, key) = make_cert(&dir.join("tls"), &["localhost"]);
    let (http, http_port) = http_server(&site);
    Setup {
        dir,
        expected,
        _http: http,
        http_port,
        cert,
        key,
    }
}

fn forwarding_server(setup: &Setup) -> Server {
    let backend = format!("127.0.0.1:{}", setup.http_port);
    Server::start(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--cert",
        s(&setup.cert),
        "--key",
        s(&setup.key),
        "--forward",
        &backend,
    ])
}

#[test]
fn curl_fetches_64_mib_through_serve_forward() {
    if !peers_available() {
        return;
    }
    let setup = setup("forward");
    let server = forwarding_server(&setup);
    let port = server.port();
    let out = setup.dir.join("fetched.bin");
    let resolve = format!("localhost:{port}:127.0.0.1");
    curl(
        &format!("https://localhost:{port}/big.bin"),
        &out,
        &["--cacert", s(&setup.cert), "--resolve", &resolve],
    );
    assert_eq!(sha256_file(&out), setup.expected);
}

#[test]
fn curl_fetches_64_mib_through_tunnel_and_serve_forward() {
    if !peers_available() {
        return;
    }
    let setup = setup("tunnel");
    let server = forwarding_server(&setup);
    let to = format!("127.0.0.1:{}", server.port());
    let tunnel = Server::start(&[
        "tunnel",
        "--listen",
        "127.0.0.1:0",
        "--to",
        &to,
        "--ca",
        s(&setup.cert),
        "--sni",
        "localhost",
    ]);
    let out = setup.dir.join("fetched.bin");
    curl(
        &format!("http://127.0.0.1:{}/big.bin", tunnel.port()),
        &out,
        &[],
    );
    assert_eq!(sha256_file(&out), setup.expected);
    // A second request on a new connection works too.
    curl(
        &format!("http://127.0.0.1:{}/big.bin", tunnel.port()),
        &out,
        &[],
    );
    assert_eq!(sha256_file(&out), setup.expected);
    for log in [tunnel.proc.stderr(), server.proc.stderr()] {
        assert!(!log.contains("WARN"), "{log}");
    }
}

/// `serve --http` answers the real `curl` with a page naming the negotiated parameters,
/// for each engine, and closes cleanly (curl reports no error).
#[test]
fn curl_gets_the_page_of_serve_http() {
    if !peers_available() {
        return;
    }
    let dir = TempDir::new("http");
    let (cert, key) = make_cert(dir.path(), &["localhost"]);
    let engines: &[&str] = if cfg!(feature = "openssl") {
        &["rustls", "openssl"]
    } else {
        &["rustls"]
    };
    for engine in engines {
        let server = Server::start(&[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--http",
            "--cert",
            s(&cert),
            "--key",
            s(&key),
            "--engine",
            engine,
        ]);
        let port = server.port();
        let out = dir.join("page.txt");
        let resolve = format!("localhost:{port}:127.0.0.1");
        curl(
            &format!("https://localhost:{port}/"),
            &out,
            &["--cacert", s(&cert), "--resolve", &resolve, "--tlsv1.3"],
        );
        let page = std::fs::read_to_string(&out).unwrap();
        assert!(page.starts_with("tlsflow\n"), "{engine}: {page}");
        assert!(page.contains("protocol: TLSv1.3"), "{engine}: {page}");
        assert!(page.contains("server name: localhost"), "{engine}: {page}");
    }
}

/// With the service behind `serve --forward` down, the client learns the connection ended
/// on purpose: the rustls engine sends `internal_error`, which `connect` explains; the
/// OpenSSL engine, which cannot send an alert of its choosing, closes cleanly.
#[test]
fn a_client_of_serve_forward_hears_when_the_service_is_down() {
    let dir = TempDir::new("forward-down");
    let (cert, key) = make_cert(dir.path(), &["localhost"]);
    let down = format!("127.0.0.1:{}", free_port());
    let engines: &[&str] = if cfg!(feature = "openssl") {
        &["rustls", "openssl"]
    } else {
        &["rustls"]
    };
    let input = dir.join("request.txt");
    std::fs::write(&input, b"hello\n").unwrap();
    for engine in engines {
        let server = Server::start(&[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--cert",
            s(&cert),
            "--key",
            s(&key),
            "--forward",
            &down,
            "--engine",
            engine,
        ]);
        let to = format!("localhost:{}", server.port());
        let out = common::run(&["connect", &to, "--ca", s(&cert)], Some(&input));
        if *engine == "rustls" {
            out.assert_error(1, &["internal_error", "the service it forwards to is down"]);
        } else {
            // A clean end: the client's input may or may not have left before the server
            // closed; if not, connect says the server closed first.
            assert!(out.stdout_text().is_empty());
            if out.status.code() != Some(0) {
                out.assert_error(1, &["closed the connection (cleanly, with close_notify)"]);
            }
        }
    }
}
