//! Client configuration and its builder.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::*;
use crate::engine::RustlsEngine;
use crate::session::{Limits, Session};
use crate::{Error, ProtocolVersion, TlsStream};

/// Configuration for TLS clients. Cheap to clone; share one across connections.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    inner: ClientInner,
    limits: Limits,
}

#[derive(Clone, Debug)]
enum ClientInner {
    Rustls(Arc<rustls::ClientConfig>),
    #[cfg(feature = "openssl")]
    Openssl(::openssl::ssl::SslContext),
}

impl ClientConfig {
    /// A builder, verifying servers against the system's roots unless told otherwise.
    pub fn builder() -> ClientConfigBuilder {
        ClientConfigBuilder::default()
    }

    /// Wraps a rustls configuration as it is.
    ///
    /// With `enable_secret_extraction = true` (which [`builder`](Self::builder) sets), a TLS
    /// 1.3 connection moves to tlsflow's own record layer once the handshake is over: rustls
    /// hands over the traffic secrets and keeps the key schedule and session tickets, and
    /// tlsflow seals and opens records with aws-lc-rs without copying plaintext in between
    /// (it honours `max_fragment_size`). That happens only when the negotiated suite is one
    /// of rustls's own aws-lc-rs provider, so the record layer does exactly what the
    /// configuration chose. Without secret extraction, with TLS 1.2, with another provider
    /// (ring, a FIPS or custom one) or in a build without the `aws-lc-rs` feature, rustls's
    /// record layer runs the whole connection, with the configured provider.
    pub fn from_rustls(inner: Arc<rustls::ClientConfig>) -> Self {
        ClientConfig {
            inner: ClientInner::Rustls(inner),
            limits: Limits::default(),
        }
    }

    /// Wraps an OpenSSL client context as it is, for everything OpenSSL offers beyond the
    /// builder (password callbacks, verify callbacks, engines, legacy versions). Server
    /// names are verified as given to [`connect`](Self::connect) when the context verifies
    /// peers.
    #[cfg(feature = "openssl")]
    pub fn from_openssl(context: ::openssl::ssl::SslContext) -> Self {
        ClientConfig {
            inner: ClientInner::Openssl(context),
            limits: Limits::default(),
        }
    }

    /// The rustls configuration inside, if this configuration uses rustls.
    pub fn rustls(&self) -> Option<&Arc<rustls::ClientConfig>> {
        match &self.inner {
            ClientInner::Rustls(config) => Some(config),
            #[cfg(feature = "openssl")]
            ClientInner::Openssl(_) => None,
        }
    }

    /// The engine this configuration builds sessions on.
    pub fn engine(&self) -> EngineKind {
        match &self.inner {
            ClientInner::Rustls(_) => EngineKind::Rustls,
            #[cfg(feature = "openssl")]
            ClientInner::Openssl(_) => EngineKind::Openssl,
        }
    }

    /// Sets the buffer limits of sessions made from this configuration.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// A new client session for `server_name` (verified, and sent as SNI if a DNS name).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an invalid server name.
    pub fn session(&self, server_name: &str) -> Result<Session, Error> {
        let engine: Box<dyn crate::Engine> = match &self.inner {
            ClientInner::Rustls(config) => {
                Box::new(RustlsEngine::client(config.clone(), server_name)?)
            }
            #[cfg(feature = "openssl")]
            ClientInner::Openssl(context) => {
                Box::new(crate::engine::OpensslEngine::client(context, server_name)?)
            }
        };
        Ok(Session::new(engine, self.limits))
    }

    /// A client stream over `io`. No I/O happens here: the handshake runs on the first
    /// operation or on [`TlsStream::handshake`].
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an invalid server name.
    pub fn connect<T>(&self, server_name: &str, io: T) -> Result<TlsStream<T>, Error> {
        Ok(TlsStream::new(io, self.session(server_name)?))
    }
}

/// Builds a [`ClientConfig`].
#[derive(Default)]
pub struct ClientConfigBuilder {
    pub(crate) ca_files: Vec<PathBuf>,
    pub(crate) ca_certs: Vec<CertificateDer<'static>>,
    pub(crate) system_roots: bool,
    pub(crate) identity: Option<Identity>,
    pub(crate) no_verify: bool,
    pub(crate) common: Common,
    pub(crate) verify_callback: Option<VerifyCallback>,
}

impl ClientConfigBuilder {
    common_setters!();

    /// Trusts the certificates in a PEM file (may be given several times). When any trust
    /// anchor is given, system roots are not used unless [`system_roots`](Self::system_roots)
    /// is also called.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_files.push(path.into());
        self
    }

    /// Trusts a DER certificate.
    pub fn ca_certificate(mut self, der: impl Into<CertificateDer<'static>>) -> Self {
        self.ca_certs.push(der.into());
        self
    }

    /// Also trusts the operating system's roots.
    pub fn system_roots(mut self) -> Self {
        self.system_roots = true;
        self
    }

    /// Presents this certificate chain and key to servers that ask (mutual TLS).
    pub fn client_cert_files(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.identity = Some(Identity::Files {
            cert: cert.into(),
            key: key.into(),
        });
        self
    }

    /// Presents this certificate chain and key (DER) to servers that ask (mutual TLS).
    pub fn client_cert(
        mut self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Self {
        self.identity = Some(Identity::Der(chain, key));
        self
    }

    /// Runs `check` on the server's chain (DER, leaf first) after standard verification
    /// accepted it: for pinning, policy checks, logging. An `Err` fails the handshake with
    /// [`Error::Certificate`] (rustls carries the message; OpenSSL reports an application
    /// verification failure).
    pub fn verify_callback(
        mut self,
        check: impl Fn(&[CertificateDer<'_>]) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.verify_callback = Some(Arc::new(check));
        self
    }

    /// Trusts every certificate in the files of a directory (PEM; any file names, such as
    /// an `openssl rehash` directory).
    pub fn ca_dir(mut self, path: impl Into<PathBuf>) -> Self {
        self.common.ca_dirs.push(path.into());
        self
    }

    /// Accepts any server certificate for any name. The connection is encrypted but not
    /// authenticated: anyone on the path can impersonate the server. For tests only.
    pub fn dangerous_disable_verification(mut self) -> Self {
        self.no_verify = true;
        self
    }

    /// Builds the configuration.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the file or option at fault: an unreadable CA or key file,
    /// no trust anchors at all, a client key that does not match its certificate.
    pub fn build(self) -> Result<ClientConfig, Error> {
        match self.common.engine {
            EngineKind::Rustls => self.build_rustls(),
            EngineKind::Openssl => self.build_openssl(),
        }
    }

    fn build_rustls(self) -> Result<ClientConfig, Error> {
        let provider = self.common.rustls_provider()?;
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions(&self.common.versions)?)
            .map_err(Error::from)?;
        let builder = if self.no_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyServer(provider)))
        } else {
            let mut roots = root_store(&self.ca_files, &self.common.ca_dirs, self.ca_certs, "CA")?;
            if self.system_roots || roots.is_empty() {
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
            }
            if roots.is_empty() {
                return Err(Error::config(
                    "no trusted roots: the system has none; give a CA file",
                ));
            }
            match self.verify_callback {
                None => builder.with_root_certificates(roots),
                Some(callback) => {
                    let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
                        Arc::new(roots),
                        provider.clone(),
                    )
                    .build()
                    .map_err(|e| Error::config(format!("cannot build the verifier: {e}")))?;
                    builder
                        .dangerous()
                        .with_custom_certificate_verifier(Arc::new(CheckedServerVerifier {
                            inner,
                            callback,
                        }))
                }
            }
        };
        let mut config = match self.identity {
            Some(identity) => {
                let origin = identity.describe();
                let (chain, key) = identity.load(self.common.key_password.as_deref())?;
                builder.with_client_auth_cert(chain, key).map_err(|e| {
                    Error::config(format!("unusable client certificate or key{origin}: {e}"))
                })?
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = self.common.alpn;
        // Lets the engine run TLS 1.3 records itself once the handshake is over.
        config.enable_secret_extraction = true;
        Ok(ClientConfig {
            inner: ClientInner::Rustls(Arc::new(config)),
            limits: self.common.limits,
        })
    }
}
