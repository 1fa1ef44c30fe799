//! HTTP on top, with a real client: the example HTTPS server (hyper 1.x over tlsflow's tokio
//! stream) serves a 64 MiB body to Debian's `curl`, over HTTP/1.1 and over HTTP/2 (chosen
//! by ALPN), and the body's SHA-256 is checked.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::Duration;

use sha2::{Digest, Sha256};

#[allow(dead_code)]
#[path = "../examples/https_server/server.rs"]
mod server;

const SIZE: usize = 64 << 20;

fn curl_available() -> bool {
    match Command::new("curl").arg("--version").output() {
        Ok(out) if out.status.success() => true,
        _ if std::env::var_os("TLSFLOW_SKIP_PEERS").is_some() => false,
        _ => panic!("the `curl` command is required (Debian: apt-get install curl), or set TLSFLOW_SKIP_PEERS=1"),
    }
}

fn fetch(port: u16, ca: &std::path::Path, version_flag: &str) -> (Vec<u8>, String) {
    let url = format!("https://localhost:{port}/bytes/{SIZE}");
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--fail", "--max-time", "120"])
        .arg("--resolve")
        .arg(format!("localhost:{port}:127.0.0.1"))
        .arg("--cacert")
        .arg(ca)
        .arg(version_flag)
        .args(["--write-out", "%{stderr}%{http_version}"])
        .arg(&url)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "curl {version_flag} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.stdout,
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

/// Fetches 64 MiB with `curl --http1.1`, then `curl --http2`, checking the HTTP version
/// negotiated and the body's SHA-256.
async fn fetch_both(port: u16, ca: &std::path::Path) {
    let expected_sha = Sha256::digest(server::body(SIZE));
    for (flag, version) in [("--http1.1", "1.1"), ("--http2", "2")] {
        let ca = ca.to_owned();
        let (body, negotiated) = tokio::time::timeout(
            Duration::from_secs(180),
            tokio::task::spawn_blocking(move || fetch(port, &ca, flag)),
        )
        .await
        .expect("curl timed out")
        .unwrap();
        assert_eq!(
            negotiated, version,
            "curl {flag} negotiated HTTP/{negotiated}"
        );
        assert_eq!(body.len(), SIZE, "curl {flag}: body length");
        assert_eq!(
            Sha256::digest(&body),
            expected_sha,
            "curl {flag}: body corrupted"
        );
    }
}

/// A self-signed certificate for `localhost`, a server configuration offering HTTP/2 and
/// HTTP/1.1, and the certificate's PEM file in a fresh directory.
fn setup(
    tag: &str,
) -> (
    tlsflow::ServerConfig,
    std::path::PathBuf,
    std::path::PathBuf,
) {
    let cert = tlsflow::SelfSigned::generate(&["localhost"]).unwrap();
    let dir = std::env::temp_dir().join(format!("tlsflow-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, cert.cert_pem()).unwrap();
    let config = tlsflow::ServerConfig::builder()
        .self_signed(&cert)
        .alpn(server::ALPN)
        .build()
        .unwrap();
    (config, ca, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_fetches_64_mib_over_http1_and_http2() {
    if !curl_available() {
        eprintln!("skipping: curl not installed and TLSFLOW_SKIP_PEERS is set");
        return;
    }
    let (config, ca, dir) = setup("curl-hyper");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let serving = tokio::spawn(server::serve(listener, config));
    fetch_both(port, &ca).await;
    serving.abort();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The same fetches from an axum 0.8 app served by `axum::serve` through [`TlsListener`].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_fetches_64_mib_from_axum_through_the_tls_listener() {
    use axum::extract::Path;
    use axum::routing::get;

    if !curl_available() {
        eprintln!("skipping: curl not installed and TLSFLOW_SKIP_PEERS is set");
        return;
    }
    let (config, ca, dir) = setup("curl-axum");
    let app = axum::Router::new().route(
        "/bytes/{n}",
        get(|Path(n): Path<usize>| async move { server::body(n.min(server::MAX_BODY)) }),
    );
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = tcp.local_addr().unwrap().port();
    let serving =
        tokio::spawn(async move { axum::serve(tlsflow::TlsListener::new(tcp, config), app).await });
    fetch_both(port, &ca).await;
    serving.abort();
    let _ = std::fs::remove_dir_all(&dir);
}
