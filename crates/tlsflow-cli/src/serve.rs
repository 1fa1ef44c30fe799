//! `tlsflow serve`: a TLS server for many connections at once, in one of five modes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tlsflow::ServerConfig;

use crate::acceptor::Admission;
use crate::cli::{HostPort, ServeArgs};
use crate::failure::{Context, Outcome};
use crate::trust::{self, ServerTls};
use crate::{acceptor, modes, net};

/// What the server does with each connection.
#[derive(Debug, Clone)]
pub(crate) enum Mode {
    /// Send back what the client sends.
    Echo,
    /// Read and discard, then print the count and SHA-256.
    Sink,
    /// Relay the plaintext to a TCP service.
    Forward(HostPort),
    /// Send a file, then close.
    File(PathBuf),
    /// Answer one HTTP request with a page, then close.
    Http,
}

impl Mode {
    fn of(args: &ServeArgs) -> Mode {
        if args.sink {
            Mode::Sink
        } else if let Some(to) = &args.forward {
            Mode::Forward(to.clone())
        } else if let Some(path) = &args.file {
            Mode::File(path.clone())
        } else if args.http {
            Mode::Http
        } else {
            Mode::Echo
        }
    }

    fn describe(&self) -> String {
        match self {
            Mode::Echo => "echo".into(),
            Mode::Sink => "sink".into(),
            Mode::Forward(to) => format!("forward to {to}"),
            Mode::File(path) => format!("send file {}", path.display()),
            Mode::Http => "HTTP page".into(),
        }
    }
}

/// What every connection task needs.
pub(crate) struct Shared {
    pub(crate) config: ServerConfig,
    pub(crate) mode: Mode,
    pub(crate) handshake_timeout: Duration,
    pub(crate) idle_timeout: Duration,
}

/// Runs `serve` until Ctrl-C.
pub(crate) fn run(args: &ServeArgs) -> Outcome {
    let mode = Mode::of(args);
    if let Mode::File(path) = &mode {
        // Fail at start, not at the first client, when the file cannot be read.
        std::fs::File::open(path).context(|| format!("cannot read file {}", path.display()))?;
    }
    let (config, generated) = trust::server_config(&ServerTls {
        cert: args.cert.as_deref(),
        key: args.key.as_deref(),
        client_ca: args.client_ca.as_deref(),
        alpn: &args.alpn,
        versions: &args.tls_version,
        cipher_suites: &args.cipher_suite,
        engine: args.engine,
        self_signed_names: self_signed_names(&args.listen),
    })?;
    let shared = Arc::new(Shared {
        config,
        mode,
        handshake_timeout: args.handshake_timeout,
        idle_timeout: args.idle_timeout,
    });
    let runtime = net::runtime()?;
    let result = runtime.block_on(async {
        // Before the listening line: a SIGHUP from then on reloads, never kills.
        let reloading = reload_on_hangup(shared.clone(), args.cert.is_some());
        let listener = net::listen(&args.listen, args.backlog, "tlsflow serve").await?;
        if let (Some(path), Some(leaf)) = (&args.cert, shared.config.certificate()) {
            eprintln!(
                "serving {}; SHA-256 fingerprint {}",
                path.display(),
                tlsflow::fingerprint_sha256(&leaf)
            );
        }
        if let Some(cert) = &generated {
            eprintln!(
                "self-signed certificate for {}; SHA-256 fingerprint {}",
                self_signed_names(&args.listen).join(", "),
                cert.fingerprint_sha256()
            );
            eprintln!(
                "(clients must skip verification, e.g. `tlsflow connect --insecure-skip-verify`; \
                 for a certificate clients can trust, make one with `tlsflow cert` and pass \
                 --cert/--key)"
            );
        }
        tracing::info!(
            "mode: {}; client certificates {}",
            shared.mode.describe(),
            if args.client_ca.is_some() {
                "required"
            } else {
                "not requested"
            }
        );
        let admission = Admission {
            max_connections: args.max_connections,
            max_handshakes: args.max_handshakes.min(args.max_connections),
        };
        let served = acceptor::accept_until_stopped(
            listener,
            admission,
            args.shutdown_timeout,
            |tcp, peer, pending| modes::serve_connection(shared.clone(), tcp, peer, pending),
        )
        .await;
        reloading.abort();
        served
    });
    // Connections still open after the grace period are cut here.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

/// Reloads the certificate files at each SIGHUP, in a task of its own, and says on stderr
/// what is served after it. A reload that fails (a file missing, unreadable, or a key that
/// does not match) changes nothing: the old certificate stays in service. Without files
/// (a generated certificate) there is nothing to reload, and it says so.
fn reload_on_hangup(shared: Arc<Shared>, files: bool) -> tokio::task::JoinHandle<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let hangup = signal(SignalKind::hangup());
        tokio::spawn(async move {
            let mut hangup = match hangup {
                Ok(hangup) => hangup,
                Err(e) => {
                    tracing::warn!("cannot watch for SIGHUP (certificate reloads): {e}");
                    return;
                }
            };
            while hangup.recv().await.is_some() {
                if !files {
                    eprintln!(
                        "SIGHUP: nothing to reload: the certificate was generated at start \
                         (serve files with --cert/--key to reload them)"
                    );
                    continue;
                }
                let result = shared.config.reload_certificates();
                let served = shared
                    .config
                    .certificate()
                    .map(|leaf| tlsflow::fingerprint_sha256(&leaf))
                    .unwrap_or_default();
                match result {
                    Ok(()) => {
                        eprintln!("SIGHUP: certificates reloaded; SHA-256 fingerprint {served}")
                    }
                    Err(e) => eprintln!(
                        "SIGHUP: reload refused, the old certificate stays in service \
                         (SHA-256 fingerprint {served}): {e}"
                    ),
                }
            }
        })
    }
    #[cfg(not(unix))]
    {
        let _ = (shared, files);
        tokio::spawn(async {})
    }
}

/// Names for a self-signed certificate: loopback, plus the host we listen on.
fn self_signed_names(listen: &HostPort) -> Vec<String> {
    let mut names: Vec<String> = ["localhost", "127.0.0.1", "::1"]
        .map(str::to_owned)
        .to_vec();
    let unspecified = ["0.0.0.0", "::"].contains(&listen.host.as_str());
    if !unspecified && !names.contains(&listen.host) {
        names.push(listen.host.clone());
    }
    names
}
