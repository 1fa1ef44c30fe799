//! Client and server configuration: thin builders over rustls's own configuration.
//!
//! Verification is on by default. The only way to turn it off is
//! [`ClientConfigBuilder::dangerous_disable_verification`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::engine::rustls::map_error;
use crate::engine::{ProtocolVersion, RustlsEngine};
use crate::session::{Limits, Session};
use crate::{Error, TlsStream};

/// The crypto provider chosen by cargo features: aws-lc-rs if enabled, else ring, else the
/// process-wide rustls default.
pub(crate) fn default_provider() -> Result<Arc<CryptoProvider>, Error> {
    #[cfg(feature = "aws-lc-rs")]
    {
        Ok(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
    }
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    {
        Ok(Arc::new(rustls::crypto::ring::default_provider()))
    }
    #[cfg(not(any(feature = "ring", feature = "aws-lc-rs")))]
    {
        CryptoProvider::get_default().cloned().ok_or_else(|| {
            Error::config(
                "no crypto provider: enable the `aws-lc-rs` or `ring` feature, \
                 or install a rustls default provider",
            )
        })
    }
}

fn versions(
    list: &[ProtocolVersion],
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, Error> {
    if list.is_empty() {
        return Ok(vec![&rustls::version::TLS13, &rustls::version::TLS12]);
    }
    list.iter()
        .map(|v| match v {
            ProtocolVersion::Tls13 => Ok(&rustls::version::TLS13),
            ProtocolVersion::Tls12 => Ok(&rustls::version::TLS12),
            ProtocolVersion::Other(code) => Err(Error::config(format!(
                "protocol version 0x{code:04x} is not supported by the rustls engine"
            ))),
        })
        .collect()
}

/// Reads every certificate in a PEM file; an empty or unreadable file is an error naming it.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            Error::config(format!(
                "cannot read certificates from {}: {e}",
                path.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(Error::config(format!(
            "no certificate found in {}",
            path.display()
        )));
    }
    Ok(certs)
}

/// Reads the first certificates in PEM text.
pub fn parse_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::config(format!("cannot parse PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(Error::config("no certificate found in the PEM text"));
    }
    Ok(certs)
}

/// Reads a private key (PKCS#8, PKCS#1 or SEC1) from a PEM file.
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        Error::config(format!(
            "cannot read a private key from {}: {e}",
            path.display()
        ))
    })
}

/// Reads a private key from PEM text.
pub fn parse_private_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, Error> {
    PrivateKeyDer::from_pem_slice(pem)
        .map_err(|e| Error::config(format!("cannot parse the PEM private key: {e}")))
}

/// Which TLS engine a configuration builds sessions on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum EngineKind {
    /// rustls 0.23 (the default).
    #[default]
    Rustls,
    /// OpenSSL 3 on memory buffers (cargo feature `openssl`).
    Openssl,
}

impl std::str::FromStr for EngineKind {
    type Err = Error;

    /// `rustls` or `openssl`.
    fn from_str(name: &str) -> Result<Self, Error> {
        match name {
            "rustls" => Ok(EngineKind::Rustls),
            "openssl" => Ok(EngineKind::Openssl),
            other => Err(Error::config(format!(
                "unknown engine {other:?}: use rustls or openssl"
            ))),
        }
    }
}

impl std::fmt::Display for EngineKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EngineKind::Rustls => "rustls",
            EngineKind::Openssl => "openssl",
        })
    }
}

#[cfg(not(feature = "openssl"))]
fn openssl_missing() -> Error {
    Error::config("the OpenSSL engine needs tlsflow's `openssl` cargo feature")
}

pub(crate) enum Identity {
    Files { cert: PathBuf, key: PathBuf },
    Der(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
}

impl Identity {
    /// Where the identity came from, for error messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Identity::Files { cert, key } => {
                format!(" ({} with {})", cert.display(), key.display())
            }
            Identity::Der(..) => String::new(),
        }
    }

    fn load(self) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), Error> {
        match self {
            Identity::Files { cert, key } => Ok((load_certs(&cert)?, load_private_key(&key)?)),
            Identity::Der(chain, key) => Ok((chain, key)),
        }
    }
}

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
    Openssl(openssl::ssl::SslContext),
}

impl ClientConfig {
    /// A builder, verifying servers against the system's roots unless told otherwise.
    pub fn builder() -> ClientConfigBuilder {
        ClientConfigBuilder::default()
    }

    /// Wraps a rustls configuration as it is.
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
    pub fn from_openssl(context: openssl::ssl::SslContext) -> Self {
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
    pub(crate) alpn: Vec<Vec<u8>>,
    pub(crate) versions: Vec<ProtocolVersion>,
    pub(crate) limits: Limits,
    pub(crate) provider: Option<Arc<CryptoProvider>>,
    pub(crate) no_verify: bool,
    pub(crate) engine: EngineKind,
}

impl ClientConfigBuilder {
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

    /// Offers these ALPN protocols, in order of preference.
    pub fn alpn<P: AsRef<[u8]>>(mut self, protocols: impl IntoIterator<Item = P>) -> Self {
        self.alpn = protocols.into_iter().map(|p| p.as_ref().to_vec()).collect();
        self
    }

    /// Allows only these protocol versions (default: TLS 1.3 and TLS 1.2).
    pub fn versions(mut self, versions: &[ProtocolVersion]) -> Self {
        self.versions = versions.to_vec();
        self
    }

    /// Sets the buffer limits of each session.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Uses this rustls crypto provider instead of the one chosen by features.
    pub fn crypto_provider(mut self, provider: Arc<CryptoProvider>) -> Self {
        self.provider = Some(provider);
        self
    }

    /// Builds sessions on this engine (default: rustls).
    pub fn engine(mut self, engine: EngineKind) -> Self {
        self.engine = engine;
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
        match self.engine {
            EngineKind::Rustls => self.build_rustls(),
            #[cfg(feature = "openssl")]
            EngineKind::Openssl => {
                let limits = self.limits;
                Ok(
                    ClientConfig::from_openssl(crate::config_openssl::client_context(self)?)
                        .with_limits(limits),
                )
            }
            #[cfg(not(feature = "openssl"))]
            EngineKind::Openssl => Err(openssl_missing()),
        }
    }

    fn build_rustls(self) -> Result<ClientConfig, Error> {
        let provider = match self.provider {
            Some(p) => p,
            None => default_provider()?,
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions(&self.versions)?)
            .map_err(map_error)?;
        let builder = if self.no_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyServer(provider)))
        } else {
            let mut roots = RootCertStore::empty();
            for path in &self.ca_files {
                for cert in load_certs(path)? {
                    roots.add(cert).map_err(|e| {
                        Error::config(format!(
                            "unusable CA certificate in {}: {e}",
                            path.display()
                        ))
                    })?;
                }
            }
            for cert in self.ca_certs {
                roots
                    .add(cert)
                    .map_err(|e| Error::config(format!("unusable CA certificate: {e}")))?;
            }
            if self.system_roots || roots.is_empty() {
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
            }
            if roots.is_empty() {
                return Err(Error::config(
                    "no trusted roots: the system has none; give a CA file",
                ));
            }
            builder.with_root_certificates(roots)
        };
        let mut config = match self.identity {
            Some(identity) => {
                let origin = identity.describe();
                let (chain, key) = identity.load()?;
                builder.with_client_auth_cert(chain, key).map_err(|e| {
                    Error::config(format!("unusable client certificate or key{origin}: {e}"))
                })?
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = self.alpn;
        Ok(ClientConfig {
            inner: ClientInner::Rustls(Arc::new(config)),
            limits: self.limits,
        })
    }
}

/// Configuration for TLS servers. Cheap to clone; share one across connections.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    inner: ServerInner,
    limits: Limits,
}

#[derive(Clone, Debug)]
enum ServerInner {
    Rustls(Arc<rustls::ServerConfig>),
    #[cfg(feature = "openssl")]
    Openssl(openssl::ssl::SslContext),
}

impl ServerConfig {
    /// A builder. A certificate is required: [`ServerConfigBuilder::cert_files`],
    /// [`ServerConfigBuilder::cert`] or [`ServerConfigBuilder::self_signed`].
    pub fn builder() -> ServerConfigBuilder {
        ServerConfigBuilder::default()
    }

    /// Wraps a rustls configuration as it is.
    pub fn from_rustls(inner: Arc<rustls::ServerConfig>) -> Self {
        ServerConfig {
            inner: ServerInner::Rustls(inner),
            limits: Limits::default(),
        }
    }

    /// Wraps an OpenSSL server context as it is, for everything OpenSSL offers beyond the
    /// builder.
    #[cfg(feature = "openssl")]
    pub fn from_openssl(context: openssl::ssl::SslContext) -> Self {
        ServerConfig {
            inner: ServerInner::Openssl(context),
            limits: Limits::default(),
        }
    }

    /// The rustls configuration inside, if this configuration uses rustls.
    pub fn rustls(&self) -> Option<&Arc<rustls::ServerConfig>> {
        match &self.inner {
            ServerInner::Rustls(config) => Some(config),
            #[cfg(feature = "openssl")]
            ServerInner::Openssl(_) => None,
        }
    }

    /// The engine this configuration builds sessions on.
    pub fn engine(&self) -> EngineKind {
        match &self.inner {
            ServerInner::Rustls(_) => EngineKind::Rustls,
            #[cfg(feature = "openssl")]
            ServerInner::Openssl(_) => EngineKind::Openssl,
        }
    }

    /// Sets the buffer limits of sessions made from this configuration.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// A new server session.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if rustls rejects the configuration.
    pub fn session(&self) -> Result<Session, Error> {
        let engine: Box<dyn crate::Engine> = match &self.inner {
            ServerInner::Rustls(config) => Box::new(RustlsEngine::server(config.clone())?),
            #[cfg(feature = "openssl")]
            ServerInner::Openssl(context) => {
                Box::new(crate::engine::OpensslEngine::server(context)?)
            }
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
    pub(crate) alpn: Vec<Vec<u8>>,
    pub(crate) versions: Vec<ProtocolVersion>,
    pub(crate) limits: Limits,
    pub(crate) provider: Option<Arc<CryptoProvider>>,
    pub(crate) engine: EngineKind,
}

impl ServerConfigBuilder {
    /// Serves the certificate chain (leaf first) and private key in these PEM files.
    pub fn cert_files(mut self, chain: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.identity = Some(Identity::Files {
            cert: chain.into(),
            key: key.into(),
        });
        self
    }

    /// Serves this certificate chain (DER, leaf first) and private key.
    pub fn cert(
        mut self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Self {
        self.identity = Some(Identity::Der(chain, key));
        self
    }

    /// Serves a self-signed certificate (see [`SelfSigned`](crate::SelfSigned)).
    pub fn self_signed(self, cert: &crate::SelfSigned) -> Self {
        self.cert(vec![cert.cert_der()], cert.key_der())
    }

    /// Requires clients to present a certificate issued by a CA in this PEM file (mutual TLS;
    /// may be given several times).
    pub fn client_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.client_ca_files.push(path.into());
        self
    }

    /// Requires clients to present a certificate issued by this CA (DER).
    pub fn client_ca_certificate(mut self, der: impl Into<CertificateDer<'static>>) -> Self {
        self.client_ca_certs.push(der.into());
        self
    }

    /// Accepts these ALPN protocols, in order of preference.
    pub fn alpn<P: AsRef<[u8]>>(mut self, protocols: impl IntoIterator<Item = P>) -> Self {
        self.alpn = protocols.into_iter().map(|p| p.as_ref().to_vec()).collect();
        self
    }

    /// Allows only these protocol versions (default: TLS 1.3 and TLS 1.2).
    pub fn versions(mut self, versions: &[ProtocolVersion]) -> Self {
        self.versions = versions.to_vec();
        self
    }

    /// Sets the buffer limits of each session.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Uses this rustls crypto provider instead of the one chosen by features.
    pub fn crypto_provider(mut self, provider: Arc<CryptoProvider>) -> Self {
        self.provider = Some(provider);
        self
    }

    /// Builds sessions on this engine (default: rustls).
    pub fn engine(mut self, engine: EngineKind) -> Self {
        self.engine = engine;
        self
    }

    /// Builds the configuration.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the file or option at fault: no certificate given, an
    /// unreadable PEM file, a key that does not match the certificate.
    pub fn build(self) -> Result<ServerConfig, Error> {
        match self.engine {
            EngineKind::Rustls => self.build_rustls(),
            #[cfg(feature = "openssl")]
            EngineKind::Openssl => {
                let limits = self.limits;
                Ok(
                    ServerConfig::from_openssl(crate::config_openssl::server_context(self)?)
                        .with_limits(limits),
                )
            }
            #[cfg(not(feature = "openssl"))]
            EngineKind::Openssl => Err(openssl_missing()),
        }
    }

    fn build_rustls(self) -> Result<ServerConfig, Error> {
        let provider = match self.provider {
            Some(p) => p,
            None => default_provider()?,
        };
        let identity = self.identity.ok_or_else(|| {
            Error::config("a server needs a certificate and key (or a self-signed certificate)")
        })?;
        let origin = identity.describe();
        let (chain, key) = identity.load()?;
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions(&self.versions)?)
            .map_err(map_error)?;
        let builder = if self.client_ca_files.is_empty() && self.client_ca_certs.is_empty() {
            builder.with_no_client_auth()
        } else {
            let mut roots = RootCertStore::empty();
            for path in &self.client_ca_files {
                for cert in load_certs(path)? {
                    roots.add(cert).map_err(|e| {
                        Error::config(format!("unusable client CA in {}: {e}", path.display()))
                    })?;
                }
            }
            for cert in self.client_ca_certs {
                roots
                    .add(cert)
                    .map_err(|e| Error::config(format!("unusable client CA certificate: {e}")))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| Error::config(format!("cannot build the client verifier: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        };
        let mut config = builder.with_single_cert(chain, key).map_err(|e| {
            Error::config(format!("unusable server certificate or key{origin}: {e}"))
        })?;
        config.alpn_protocols = self.alpn;
        Ok(ServerConfig {
            inner: ServerInner::Rustls(Arc::new(config)),
            limits: self.limits,
        })
    }
}

/// The verifier behind [`ClientConfigBuilder::dangerous_disable_verification`]: signatures
/// are still checked (so the handshake is sound), identities are not.
#[derive(Debug)]
struct AcceptAnyServer(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
