//! Client configuration and its builder.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::*;
use crate::engine::RustlsEngine;
use crate::session::{Limits, Session};
use crate::{Error, ProtocolVersion, TlsStream};

config_type! {
    /// Configuration for TLS clients. Cheap to clone; share one across connections.
    ClientConfig(rustls::ClientConfig) {}
}

impl ClientConfig {
    /// A builder, verifying servers against the system's roots unless told otherwise.
    pub fn builder() -> ClientConfigBuilder {
        ClientConfigBuilder::default()
    }

    /// A new client session for `server_name` (verified, and sent as SNI if a DNS name).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an invalid server name.
    pub fn session(&self, server_name: &str) -> Result<Session, Error> {
        let engine: Box<dyn crate::Engine> = match &self.inner {
            Inner::Rustls(config) => Box::new(RustlsEngine::client(config.clone(), server_name)?),
            #[cfg(feature = "openssl")]
            Inner::Openssl(context) => {
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
    pub(crate) session_cache: Option<usize>,
}

impl ClientConfigBuilder {
    common_setters!();

    /// Remembers sessions of up to `servers` servers (by name) to resume later connections
    /// to them (TLS 1.3 tickets; TLS 1.2 session ids and tickets), shared by every
    /// connection made from the configuration and its clones. rustls's default is 256; `0`
    /// turns resumption off, so every connection runs a full handshake. See
    /// [`TlsStream::is_resumed`](crate::TlsStream::is_resumed).
    ///
    /// The rustls engine only: the OpenSSL engine's client does not resume sessions (it
    /// would need `SSL_set_session`, which the `openssl` crate leaves `unsafe`), so there
    /// any size but `0` is refused at build.
    pub fn session_cache_size(mut self, servers: usize) -> Self {
        self.session_cache = Some(servers);
        self
    }

    /// Turns session resumption off: [`session_cache_size(0)`](Self::session_cache_size).
    pub fn no_resumption(self) -> Self {
        self.session_cache_size(0)
    }

    anchor_setters!(
        /// Trusts the certificates in a PEM file (may be given several times). When any trust
        /// anchor is given, system roots are not used unless [`system_roots`](Self::system_roots)
        /// is also called.
        ca_file => ca_files,
        /// Trusts a DER certificate.
        ca_certificate => ca_certs
    );

    /// Also trusts the operating system's roots.
    pub fn system_roots(mut self) -> Self {
        self.system_roots = true;
        self
    }

    identity_setters!(
        /// Presents this certificate chain and key to servers that ask (mutual TLS).
        client_cert_files,
        /// Presents this certificate chain and key (DER) to servers that ask (mutual TLS).
        client_cert
    );

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
        let algorithms = provider.signature_verification_algorithms;
        let builder = if self.no_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ServerVerifier {
                    identity: None,
                    callback: None,
                    algorithms,
                }))
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
                    let identity = rustls::client::WebPkiServerVerifier::builder_with_provider(
                        Arc::new(roots),
                        provider.clone(),
                    )
                    .build()
                    .map_err(|e| Error::config(format!("cannot build the verifier: {e}")))?;
                    builder
                        .dangerous()
                        .with_custom_certificate_verifier(Arc::new(ServerVerifier {
                            identity: Some(identity),
                            callback: Some(callback),
                            algorithms,
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
        if let Some(log) = self.common.key_log()? {
            config.key_log = log;
        }
        config.alpn_protocols = self.common.alpn;
        match self.session_cache {
            None => {}
            Some(0) => config.resumption = rustls::client::Resumption::disabled(),
            Some(servers) => {
                config.resumption = rustls::client::Resumption::in_memory_sessions(servers);
            }
        }
        // Lets the engine run TLS 1.3 records itself once the handshake is over.
        config.enable_secret_extraction = true;
        Ok(ClientConfig {
            inner: Inner::Rustls(Arc::new(config)),
            limits: self.common.limits,
        })
    }
}
