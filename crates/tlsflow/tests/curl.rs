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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_fetches_64_mib_over_http1_and_http2() {
    if !curl_available() {
        eprintln!("skipping: curl not installed and TLSFLOW_SKIP_PEERS is set");
        return;
    }
    let cert = tlsflow::SelfSigned::generate(&["localhost"]).unwrap();
    let dir = std::env::temp_dir().join(format!("tlsflow-curl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, cert.cert_pem()).unwrap();
    let config = tlsflow::ServerConfig::builder()
        .self_signed(&cert)
        .alpn(server::ALPN)
        .build()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let serving = tokio::spawn(server::serve(listener, config));

    let mut expected = vec![0u8; SIZE];
    server::fill(SIZE as u64, &mut expected);
    let expected_sha = Sha256::digest(&expected);
    for (flag, version) in [("--http1.1", "1.1"), ("--http2", "2")] {
        let ca = ca.clone();
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
    serving.abort();
    let _ = std::fs::remove_dir_all(&dir);
}
