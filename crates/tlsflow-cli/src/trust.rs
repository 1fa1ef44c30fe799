//! TLS configuration from the command line: engines, certificates, trust, ALPN, versions.

use std::path::Path;

use tlsflow::{ClientConfig, EngineKind, ProtocolVersion, SelfSigned, ServerConfig};

use crate::cli::{ClientTls, Engine, HostPort, TlsVersion};
use crate::failure::{Context, Failure, Outcome};

/// The library's engine for `--engine`, refusing one this build does not have before
/// anything starts.
pub(crate) fn engine_kind(engine: Engine) -> Outcome<EngineKind> {
    match engine {
        Engine::Rustls => Ok(EngineKind::Rustls),
        Engine::Openssl if cfg!(feature = "openssl") => Ok(EngineKind::Openssl),
        // The library has it behind a cargo feature that needs the system's OpenSSL (and
        // the command line does not offer it then).
        Engine::Openssl => Err(Failure::usage(
            "the OpenSSL engine is not available in this build (build with \
             `--features openssl`, or use --engine rustls)",
        )),
    }
}

fn versions(list: &[TlsVersion]) -> Vec<ProtocolVersion> {
    list.iter()
        .map(|v| match v {
            TlsVersion::Tls12 => ProtocolVersion::Tls12,
            TlsVersion::Tls13 => ProtocolVersion::Tls13,
        })
        .collect()
}

/// Fails with a message naming `path` when it cannot be opened for reading, so a typo in a
/// path reads as "no such file" rather than as a PEM problem.
fn readable(path: &Path, what: &str) -> Outcome {
    std::fs::File::open(path)
        .map(drop)
        .context(|| format!("cannot read {what} {}", path.display()))
}

/// The client configuration `connect` and `tunnel` use.
pub(crate) fn client_config(tls: &ClientTls) -> Outcome<ClientConfig> {
    let mut builder = ClientConfig::builder()
        .engine(engine_kind(tls.engine)?)
        .alpn(&tls.alpn)
        .versions(&versions(&tls.tls_version))
        .cipher_suites(&tls.cipher_suite);
    if tls.insecure_skip_verify {
        eprintln!(
            "tlsflow: warning: --insecure-skip-verify: the connection is encrypted but the \
             server is not authenticated; anyone on the path can impersonate it"
        );
        builder = builder.dangerous_disable_verification();
    } else if let Some(ca) = &tls.ca {
        readable(ca, "CA file")?;
        builder = builder.ca_file(ca);
    } else {
        builder = builder.system_roots();
    }
    if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
        readable(cert, "certificate file")?;
        readable(key, "key file")?;
        builder = builder.client_cert_files(cert, key);
    }
    builder
        .build()
        .map_err(|e| Failure::runtime(crate::failure::describe_tls(&e)))
}

/// The name to send as SNI and to verify: `--sni`, or the host the user typed.
pub(crate) fn server_name<'a>(tls: &'a ClientTls, server: &'a HostPort) -> &'a str {
    tls.sni.as_deref().unwrap_or(&server.host)
}

/// What `serve` presents and requires.
pub(crate) struct ServerTls<'a> {
    pub(crate) cert: Option<&'a Path>,
    pub(crate) key: Option<&'a Path>,
    pub(crate) client_ca: Option<&'a Path>,
    pub(crate) alpn: &'a [String],
    pub(crate) versions: &'a [TlsVersion],
    pub(crate) cipher_suites: &'a [String],
    pub(crate) engine: Engine,
    /// Names for a self-signed certificate when no --cert is given.
    pub(crate) self_signed_names: Vec<String>,
}

/// The server configuration, and the self-signed certificate made for it, if any.
pub(crate) fn server_config(tls: &ServerTls<'_>) -> Outcome<(ServerConfig, Option<SelfSigned>)> {
    // Stateless tickets: a server keeps nothing per session, so its memory goes back to
    // where it was once a burst of clients is gone (a session cache's entries, made all
    // through the burst, pin pages all over the heap: docs/bench/serve/allocators.md).
    let mut builder = ServerConfig::builder()
        .session_tickets()
        .engine(engine_kind(tls.engine)?)
        .alpn(tls.alpn)
        .versions(&versions(tls.versions))
        .cipher_suites(tls.cipher_suites);
    let mut generated = None;
    match (tls.cert, tls.key) {
        (Some(cert), Some(key)) => {
            readable(cert, "certificate file")?;
            readable(key, "key file")?;
            builder = builder.cert_files(cert, key);
        }
        _ => {
            let cert = SelfSigned::generate(&tls.self_signed_names)
                .context(|| "cannot make a self-signed certificate".to_owned())?;
            builder = builder.self_signed(&cert);
            generated = Some(cert);
        }
    }
    if let Some(ca) = tls.client_ca {
        readable(ca, "client CA file")?;
        builder = builder.client_ca_file(ca);
    }
    let config = builder
        .build()
        .map_err(|e| Failure::runtime(crate::failure::describe_tls(&e)))?;
    Ok((config, generated))
}
