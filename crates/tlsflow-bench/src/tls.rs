//! The one TLS configuration every contender shares: a rustls client/server pair and an
//! OpenSSL client/server pair, both TLS 1.3 only with `TLS_AES_128_GCM_SHA256`, X25519,
//! no resumption, and the client verifying the server's self-signed certificate as
//! `localhost`. tlsflow wraps the very same objects (`from_rustls`, `from_openssl`).

use std::sync::Arc;

use openssl::pkey::PKey;
use openssl::ssl::{
    SslContext, SslMethod, SslOptions, SslRef, SslSessionCacheMode, SslVerifyMode, SslVersion,
};
use openssl::x509::X509;
use rustls::client::Resumption;
use rustls::crypto::aws_lc_rs;
use rustls::RootCertStore;

use crate::contender::Engine;
use crate::failure::{Failure, Outcome};

/// The name clients connect to and verify.
pub(crate) const SERVER_NAME: &str = "localhost";

/// The server's certificate and key, as PEM.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    cert_pem: String,
    key_pem: String,
}

const KEY_MARKER: &str = "-----BEGIN PRIVATE KEY-----";

impl Identity {
    /// A fresh self-signed certificate for `localhost`.
    pub(crate) fn generate() -> Outcome<Identity> {
        let cert = tlsflow::SelfSigned::generate(&[SERVER_NAME])
            .map_err(|e| Failure::io(format!("cannot make a certificate: {e}")))?;
        Ok(Identity {
            cert_pem: cert.cert_pem().to_owned(),
            key_pem: cert.key_pem().to_owned(),
        })
    }

    /// The certificate followed by the key, as [`from_pem`](Self::from_pem) reads them.
    pub(crate) fn to_pem(&self) -> String {
        format!("{}\n{}", self.cert_pem.trim_end(), self.key_pem)
    }

    pub(crate) fn from_pem(text: &str) -> Outcome<Identity> {
        let at = text
            .find(KEY_MARKER)
            .ok_or_else(|| Failure::io("no PKCS#8 private key in the PEM input"))?;
        Ok(Identity {
            cert_pem: text[..at].to_owned(),
            key_pem: text[at..].to_owned(),
        })
    }
}

/// Every configuration a contender may use, all made from one [`Identity`].
#[derive(Clone)]
pub(crate) struct Tls {
    pub(crate) rustls_client: Arc<rustls::ClientConfig>,
    pub(crate) rustls_server: Arc<rustls::ServerConfig>,
    pub(crate) openssl_client: SslContext,
    pub(crate) openssl_server: SslContext,
    tlsflow_clients: [tlsflow::ClientConfig; 2],
    tlsflow_servers: [tlsflow::ServerConfig; 2],
}

impl Tls {
    pub(crate) fn new(identity: &Identity) -> Outcome<Tls> {
        let (rustls_client, rustls_server) =
            rustls_pair(identity).map_err(|e| Failure::io(format!("rustls configuration: {e}")))?;
        let (openssl_client, openssl_server) = openssl_pair(identity)
            .map_err(|e| Failure::io(format!("OpenSSL configuration: {e}")))?;
        Ok(Tls {
            tlsflow_clients: [
                tlsflow::ClientConfig::from_rustls(rustls_client.clone()),
                tlsflow::ClientConfig::from_openssl(openssl_client.clone()),
            ],
            tlsflow_servers: [
                tlsflow::ServerConfig::from_rustls(rustls_server.clone()),
                tlsflow::ServerConfig::from_openssl(openssl_server.clone()),
            ],
            rustls_client,
            rustls_server,
            openssl_client,
            openssl_server,
        })
    }

    pub(crate) fn tlsflow_client(&self, engine: Engine) -> &tlsflow::ClientConfig {
        &self.tlsflow_clients[engine as usize]
    }

    pub(crate) fn tlsflow_server(&self, engine: Engine) -> &tlsflow::ServerConfig {
        &self.tlsflow_servers[engine as usize]
    }

    /// A tokio-openssl client object: SNI and hostname verification as tlsflow's OpenSSL
    /// engine sets them.
    pub(crate) fn openssl_client_ssl(
        &self,
    ) -> Result<openssl::ssl::Ssl, openssl::error::ErrorStack> {
        let mut ssl = openssl::ssl::Ssl::new(&self.openssl_client)?;
        ssl.set_hostname(SERVER_NAME)?;
        ssl.param_mut().set_host(SERVER_NAME)?;
        Ok(ssl)
    }
}

type RustlsPair = (Arc<rustls::ClientConfig>, Arc<rustls::ServerConfig>);

fn rustls_pair(identity: &Identity) -> Result<RustlsPair, Box<dyn std::error::Error>> {
    let certs = tlsflow::parse_certs(identity.cert_pem.as_bytes())?;
    let key = tlsflow::parse_private_key(identity.key_pem.as_bytes())?;
    let mut provider = aws_lc_rs::default_provider();
    provider.cipher_suites = vec![aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256];
    // The group OpenSSL 3.0 picks by default, so both engines do the same work.
    provider.kx_groups = vec![aws_lc_rs::kx_group::X25519];
    let provider = Arc::new(provider);
    let mut roots = RootCertStore::empty();
    for cert in &certs {
        roots.add(cert.clone())?;
    }
    let mut client = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.resumption = Resumption::disabled();
    // What tlsflow's builders set, so that tlsflow runs TLS 1.3 records itself after the
    // handshake; tokio-rustls and StreamOwned ignore it.
    client.enable_secret_extraction = true;
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    server.send_tls13_tickets = 0;
    server.enable_secret_extraction = true;
    Ok((Arc::new(client), Arc::new(server)))
}

fn openssl_pair(
    identity: &Identity,
) -> Result<(SslContext, SslContext), openssl::error::ErrorStack> {
    let cert = X509::from_pem(identity.cert_pem.as_bytes())?;
    let key = PKey::private_key_from_pem(identity.key_pem.as_bytes())?;
    let common = |method| -> Result<_, openssl::error::ErrorStack> {
        let mut builder = SslContext::builder(method)?;
        builder.set_min_proto_version(Some(SslVersion::TLS1_3))?;
        builder.set_max_proto_version(Some(SslVersion::TLS1_3))?;
        builder.set_ciphersuites("TLS_AES_128_GCM_SHA256")?;
        builder.set_groups_list("X25519")?;
        builder.set_session_cache_mode(SslSessionCacheMode::OFF);
        builder.set_options(SslOptions::NO_TICKET);
        Ok(builder)
    };
    let mut client = common(SslMethod::tls_client())?;
    client.set_verify(SslVerifyMode::PEER);
    client.cert_store_mut().add_cert(cert.clone())?;
    let mut server = common(SslMethod::tls_server())?;
    server.set_num_tickets(0)?;
    server.set_certificate(&cert)?;
    server.set_private_key(&key)?;
    server.check_private_key()?;
    Ok((client.build(), server.build()))
}

/// The protocol version and cipher suite a connection settled on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Negotiated {
    pub(crate) version: String,
    pub(crate) suite: String,
}

impl std::fmt::Display for Negotiated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.version, self.suite)
    }
}

impl Negotiated {
    pub(crate) fn of_tlsflow<T>(stream: &tlsflow::TlsStream<T>) -> Negotiated {
        Negotiated {
            version: stream
                .protocol_version()
                .map_or_else(|| "?".to_owned(), |v| v.to_string()),
            suite: stream
                .cipher_suite()
                .map_or_else(|| "?".to_owned(), |s| s.to_string()),
        }
    }

    pub(crate) fn of_rustls(state: &rustls::CommonState) -> Negotiated {
        Negotiated {
            version: match state.protocol_version() {
                Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_owned(),
                Some(other) => format!("{other:?}"),
                None => "?".to_owned(),
            },
            suite: state
                .negotiated_cipher_suite()
                .map_or_else(|| "?".to_owned(), |s| format!("{:?}", s.suite())),
        }
    }

    pub(crate) fn of_openssl(ssl: &SslRef) -> Negotiated {
        Negotiated {
            version: ssl.version_str().to_owned(),
            suite: ssl
                .current_cipher()
                .map_or_else(|| "?".to_owned(), |c| c.name().to_owned()),
        }
    }

    /// Every TLS contender must run TLS 1.3 with AES-128-GCM.
    pub(crate) fn check(&self) -> Outcome<()> {
        if self.version == "TLSv1.3" && self.suite.contains("AES_128_GCM") {
            Ok(())
        } else {
            Err(Failure::Abort(format!(
                "negotiated {self}, not TLSv1.3 with AES-128-GCM"
            )))
        }
    }
}
