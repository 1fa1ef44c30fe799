//! An HTTPS server (hyper 1.x, HTTP/1.1 and HTTP/2 by ALPN) on tlsflow's tokio stream.
//!
//! ```text
//! cargo run --release --features tokio,self-signed --example https_server -- [--listen 127.0.0.1:8443] [--cert FILE --key FILE]
//! curl --cacert cert.pem https://localhost:8443/bytes/1000000 | sha256sum
//! ```
//!
//! Without `--cert`/`--key` it makes a self-signed certificate for `localhost`, writes it to
//! `cert.pem` in the temporary directory, and prints its path and fingerprint.

use std::process::ExitCode;

mod server;

async fn run() -> Result<(), String> {
    let mut listen = "127.0.0.1:8443".to_string();
    let (mut cert, mut key) = (None, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--listen" => listen = value()?,
            "--cert" => cert = Some(value()?),
            "--key" => key = Some(value()?),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let builder = tlsflow::ServerConfig::builder().alpn(server::ALPN);
    let config = match (cert, key) {
        (Some(cert), Some(key)) => builder.cert_files(cert, key).build(),
        (None, None) => {
            let cert = tlsflow::SelfSigned::generate(&["localhost", "127.0.0.1"])
                .map_err(|e| e.to_string())?;
            let path = std::env::temp_dir().join("tlsflow-https-server-cert.pem");
            std::fs::write(&path, cert.cert_pem())
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            eprintln!(
                "self-signed certificate: {} (sha256 {})",
                path.display(),
                cert.fingerprint_sha256()
            );
            builder.self_signed(&cert).build()
        }
        _ => return Err("--cert and --key go together".into()),
    }
    .map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    eprintln!(
        "listening on https://{}",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    server::serve(listener, config)
        .await
        .map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("https_server: {e}");
            ExitCode::FAILURE
        }
    }
}
