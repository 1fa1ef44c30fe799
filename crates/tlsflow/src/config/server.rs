//! Server configuration and its builder.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use super::*;
use crate::engine::RustlsEngine;
use crate::session::{Limits, Session};
use crate::{Error, ProtocolVersion, TlsStream};

config_type! {
    /// Configuration for TLS servers. Cheap to clone; share one across connections.
    ///
    /// A configuration made by [`ServerConfig::builder`] can replace its certificates while
    /// it serves: see [`reload_certificates`](ServerConfig::reload_certificates).
    ServerConfig(rustls::ServerConfig) { certificates: Option<Arc<dyn Reload>> }
}

impl ServerConfig {
    /// A builder. A certificate is required: [`ServerConfigBuilder::cert_files`],
    /// [`ServerConfigBuilder::cert`] or `ServerConfigBuilder::self_signed`.
    pub fn builder() -> ServerConfigBuilder {
        ServerConfigBuilder::default()
    }

    /// Reads the certificate and key files given to the builder again (the default
    /// certificate and every SNI certificate) and serves them from the next handshake on,
    /// on either engine. Connections already open, and handshakes already past the
    /// ClientHello, keep the certificate they had. Clones of this configuration (and
    /// acceptors and listeners made from it) share its certificates, so they all serve the
    /// new ones. Certificates given as DER are served again as they were.
    ///
    /// All files are read and checked first: if any is missing, unreadable, or its key does
    /// not match its certificate, nothing changes and the old certificates stay in service.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the file at fault, or saying that this configuration was
    /// wrapped from an engine's own configuration
    /// ([`from_rustls`](Self::from_rustls), `from_openssl`) and has no files to read.
    pub fn reload_certificates(&self) -> Result<(), Error> {
        self.reloadable()?.reload()
    }

    /// The leaf of the default certificate chain served now (DER), for logging its
    /// fingerprint; `None` for a configuration wrapped from an engine's own.
    pub fn certificate(&self) -> Option<CertificateDer<'static>> {
        self.certificates.as_ref().map(|c| c.leaf())
    }

    #[cfg(feature = "openssl")]
    pub(crate) fn with_certificates(mut self, certificates: Arc<dyn Reload>) -> Self {
        self.certificates = Some(certificates);
        self
    }

    fn reloadable(&self) -> Result<&Arc<dyn Reload>, Error> {
        self.certificates.as_ref().ok_or_else(|| {
            Error::config(
                "this configuration wraps an engine's own configuration: \
                 only one made by ServerConfig::builder can reload its certificates",
            )
        })
    }

    /// A new server session.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if rustls rejects the configuration.
    pub fn session(&self) -> Result<Session, Error> {
        let engine: Box<dyn crate::Engine> = match &self.inner {
            Inner::Rustls(config) => Box::new(RustlsEngine::server(config.clone())?),
            #[cfg(feature = "openssl")]
            Inner::Openssl(context) => Box::new(crate::engine::OpensslEngine::server(context)?),
        };
        Ok(Session::new(engine, self.limits))
    }

    /// A server stream over `io`. No I/O happens here.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if rustls rejects the configuration.
    pub fn accept<T>(&self, io: T) -> Result<TlsStream<T>, Error> {
        Ok(TlsStream::new(io, self.session()?))
    }
}

/// Builds a [`ServerConfig`].
#[derive(Default)]
pub struct ServerConfigBuilder {
    pub(crate) identity: Option<Identity>,
    pub(crate) client_ca_files: Vec<PathBuf>,
    pub(crate) client_ca_certs: Vec<CertificateDer<'static>>,
    pub(crate) common: Common,
    pub(crate) client_auth_optional: bool,
    pub(crate) session_tickets: bool,
    pub(crate) sni: Vec<(String, Identity)>,
}

impl ServerConfigBuilder {
    common_setters!();

    identity_setters!(
        /// Serves the certificate chain (leaf first) and private key in these PEM files.
        cert_files,
        /// Serves this certificate chain (DER, leaf first) and private key.
        cert
    );

    /// Serves a self-signed certificate (see [`SelfSigned`](crate::SelfSigned)).
    #[cfg(feature = "self-signed")]
    pub fn self_signed(self, cert: &crate::SelfSigned) -> Self {
        self.cert(vec![cert.cert_der()], cert.key_der())
    }

    anchor_setters!(
        /// Requires clients to present a certificate issued by a CA in this PEM file (mutual TLS;
        /// may be given several times).
        client_ca_file => client_ca_files,
        /// Requires clients to present a certificate issued by this CA (DER).
        client_ca_certificate => client_ca_certs
    );

    /// Trusts every certificate in the files of a directory as a client CA (requires client
    /// certificates, as [`client_ca_file`](Self::client_ca_file)).
    pub fn client_ca_dir(mut self, path: impl Into<PathBuf>) -> Self {
        self.common.ca_dirs.push(path.into());
        self
    }

    /// Serves this certificate chain and key (PEM files) to clients that ask for `name`
    /// through SNI; others get the default certificate. May be given for several names.
    pub fn sni_cert_files(
        mut self,
        name: impl Into<String>,
        chain: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> Self {
        self.sni.push((
            name.into(),
            Identity::Files {
                cert: chain.into(),
                key: key.into(),
            },
        ));
        self
    }

    /// Serves this certificate chain and key (DER) to clients that ask for `name` (SNI).
    pub fn sni_cert(
        mut self,
        name: impl Into<String>,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Self {
        self.sni.push((name.into(), Identity::Der(chain, key)));
        self
    }

    /// Resumes sessions with stateless tickets rather than from a cache of sessions in the
    /// server's memory (the default: rustls's cache of 256 sessions, OpenSSL's of 20,480).
    /// The server then keeps nothing per session, so a burst of clients leaves no state
    /// behind once they are gone, and resumption works across a server's threads and
    /// restarts of a connection. The ticket key belongs to the configuration: rustls makes
    /// a new one every six hours; OpenSSL keeps one per configuration. The rustls engine
    /// needs the `aws-lc-rs` or `ring` feature for it.
    pub fn session_tickets(mut self) -> Self {
        self.session_tickets = true;
        self
    }

    /// Asks clients for a certificate but accepts clients without one (a certificate that
    /// is presented must still verify). Needs a client CA.
    pub fn client_auth_optional(mut self) -> Self {
        self.client_auth_optional = true;
        self
    }

    /// Builds the configuration.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the file or option at fault: no certificate given, an
    /// unreadable PEM file, a key that does not match the certificate.
    pub fn build(self) -> Result<ServerConfig, Error> {
        match self.common.engine {
            EngineKind::Rustls => self.build_rustls(),
            EngineKind::Openssl => self.build_openssl(),
        }
    }

    fn build_rustls(self) -> Result<ServerConfig, Error> {
        let provider = self.common.rustls_provider()?;
        let identity = self.identity.ok_or_else(|| {
            Error::config("a server needs a certificate and key (or a self-signed certificate)")
        })?;
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions(&self.common.versions)?)
            .map_err(Error::from)?;
        let wants_client_auth = !self.client_ca_files.is_empty()
            || !self.client_ca_certs.is_empty()
            || !self.common.ca_dirs.is_empty();
        if self.client_auth_optional && !wants_client_auth {
            return Err(Error::config("client_auth_optional needs a client CA"));
        }
        let builder = if !wants_client_auth {
            builder.with_no_client_auth()
        } else {
            let roots = root_store(
                &self.client_ca_files,
                &self.common.ca_dirs,
                self.client_ca_certs,
                "client CA",
            )?;
            let mut verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            if self.client_auth_optional {
                verifier = verifier.allow_unauthenticated();
            }
            let verifier = verifier
                .build()
                .map_err(|e| Error::config(format!("cannot build the client verifier: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        };
        let password = self.common.key_password.clone();
        let load: super::reload::Loader<Arc<rustls::sign::CertifiedKey>> =
            Box::new(move |identity: &Identity| {
                let origin = identity.describe();
                let (chain, key) = identity.clone().load(password.as_deref())?;
                let leaf = chain.first().cloned().ok_or_else(|| {
                    Error::config(format!("the server certificate chain{origin} is empty"))
                })?;
                rustls::sign::CertifiedKey::from_der(chain, key, &provider)
                    .map(|certified| (Arc::new(certified), leaf))
                    .map_err(|e| {
                        Error::config(format!("unusable server certificate or key{origin}: {e}"))
                    })
            });
        let certificates = Arc::new(Certificates::new(identity, self.sni, load)?);
        let mut config = builder.with_cert_resolver(Arc::new(SniResolver(certificates.clone())));
        if let Some(log) = self.common.key_log()? {
            config.key_log = log;
        }
        config.alpn_protocols = self.common.alpn;
        if self.session_tickets {
            config.ticketer = ticketer()?;
            config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        }
        // Lets the engine run TLS 1.3 records itself once the handshake is over.
        config.enable_secret_extraction = true;
        Ok(ServerConfig {
            inner: Inner::Rustls(Arc::new(config)),
            limits: self.common.limits,
            certificates: Some(certificates),
        })
    }
}

/// A rotating ticket key of the built-in provider.
fn ticketer() -> Result<Arc<dyn rustls::server::ProducesTickets>, Error> {
    #[cfg(feature = "aws-lc-rs")]
    let ticketer = rustls::crypto::aws_lc_rs::Ticketer::new();
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    let ticketer = rustls::crypto::ring::Ticketer::new();
    #[cfg(not(any(feature = "ring", feature = "aws-lc-rs")))]
    let ticketer: Result<Arc<dyn rustls::server::ProducesTickets>, rustls::Error> = Err(
        rustls::Error::General("session tickets need the aws-lc-rs or ring feature".into()),
    );
    ticketer.map_err(|e| Error::config(format!("cannot make a session ticket key: {e}")))
}
