//! Client and server configuration: thin builders over rustls's own configuration.
//!
//! Verification is on by default. The only way to turn it off is
//! [`ClientConfigBuilder::dangerous_disable_verification`].

use std::path::PathBuf;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;

use crate::engine::ProtocolVersion;
use crate::Error;

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

pub(crate) fn versions(
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

mod client;
mod keylog;
#[cfg(feature = "openssl")]
pub(crate) mod openssl;
mod pem;
mod reload;
mod server;
mod verify;

pub use client::{ClientConfig, ClientConfigBuilder};
pub use pem::{load_certs, load_private_key, parse_certs, parse_private_key};
pub use server::{ServerConfig, ServerConfigBuilder};

#[cfg(feature = "openssl")]
pub(crate) use pem::{load_ca_dir, load_key_with};
pub(crate) use pem::{root_store, Identity};
pub(crate) use reload::{Certificates, Reload};
pub(crate) use verify::{ServerVerifier, SniResolver, VerifyCallback};

#[cfg(not(feature = "openssl"))]
fn openssl_missing() -> Error {
    Error::config("the OpenSSL engine needs tlsflow's `openssl` cargo feature")
}

#[cfg(not(feature = "openssl"))]
impl ClientConfigBuilder {
    fn build_openssl(self) -> Result<ClientConfig, Error> {
        Err(openssl_missing())
    }
}

#[cfg(not(feature = "openssl"))]
impl ServerConfigBuilder {
    fn build_openssl(self) -> Result<ServerConfig, Error> {
        Err(openssl_missing())
    }
}

/// A cipher suite name in one spelling: IANA (`TLS_AES_128_GCM_SHA256`,
/// `TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`); rustls's `TLS13_` prefix is accepted too.
pub(crate) fn suite_name(name: &str) -> String {
    let upper = name.trim().to_ascii_uppercase();
    match upper.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => upper,
    }
}

/// The options both builders share; some are for one engine only, checked at build time.
#[derive(Default, Clone)]
pub(crate) struct Common {
    pub(crate) alpn: Vec<Vec<u8>>,
    pub(crate) versions: Vec<ProtocolVersion>,
    pub(crate) limits: crate::session::Limits,
    pub(crate) provider: Option<Arc<CryptoProvider>>,
    pub(crate) engine: EngineKind,
    pub(crate) key_password: Option<String>,
    pub(crate) ca_dirs: Vec<PathBuf>,
    pub(crate) verify_depth: Option<u32>,
    pub(crate) cipher_suites: Vec<String>,
    pub(crate) key_log: Option<PathBuf>,
}

impl Common {
    /// The key log file, opened, when one was asked for.
    pub(crate) fn key_log(&self) -> Result<Option<Arc<keylog::KeyLogFile>>, Error> {
        self.key_log
            .as_deref()
            .map(keylog::KeyLogFile::open)
            .transpose()
    }

    /// The crypto provider for the rustls engine: the configured one (or the features'
    /// default), restricted to the chosen suites. Refuses OpenSSL-only options.
    pub(crate) fn rustls_provider(&self) -> Result<Arc<CryptoProvider>, Error> {
        if self.verify_depth.is_some() {
            return Err(Error::config(
                "verify_depth is an OpenSSL option: use .engine(EngineKind::Openssl)",
            ));
        }
        let mut provider = match &self.provider {
            Some(p) => (**p).clone(),
            None => (*default_provider()?).clone(),
        };
        restrict_suites(&mut provider, &self.cipher_suites)?;
        Ok(Arc::new(provider))
    }
}

/// A configuration for one of the engines: rustls's, or an OpenSSL context.
#[derive(Clone, Debug)]
enum Inner<R> {
    Rustls(Arc<R>),
    #[cfg(feature = "openssl")]
    Openssl(::openssl::ssl::SslContext),
}

/// A configuration type (`ClientConfig`, `ServerConfig`) around `Inner<$rustls>` and the
/// sessions' limits, with what both have: wrapping an engine's own configuration, looking
/// inside, and setting limits.
macro_rules! config_type {
    ($(#[$doc:meta])* $Config:ident($rustls:ty) { $($field:ident: $fty:ty),* }) => {
        $(#[$doc])*
        #[derive(Clone, Debug)]
        pub struct $Config {
            inner: Inner<$rustls>,
            limits: Limits,
            $($field: $fty,)*
        }

        impl $Config {
            /// Wraps a rustls configuration as it is.
            ///
            /// With `enable_secret_extraction = true` (which [`builder`](Self::builder)
            /// sets), a TLS 1.3 connection moves to tlsflow's own record layer once the
            /// handshake is over: rustls hands over the traffic secrets and keeps the key
            /// schedule and session tickets, and tlsflow seals and opens records with
            /// aws-lc-rs without copying plaintext in between (it honours
            /// `max_fragment_size`). That happens only when the negotiated suite is one of
            /// rustls's own aws-lc-rs provider, so the record layer does exactly what the
            /// configuration chose. Without secret extraction, with TLS 1.2, with another
            /// provider (ring, a FIPS or custom one) or in a build without the `aws-lc-rs`
            /// feature, rustls's record layer runs the whole connection, with the configured
            /// provider.
            pub fn from_rustls(inner: Arc<$rustls>) -> Self {
                $Config {
                    inner: Inner::Rustls(inner),
                    limits: Limits::default(),
                    $($field: Default::default(),)*
                }
            }

            /// Wraps an OpenSSL context as it is, for everything OpenSSL offers beyond the
            /// builder (password callbacks, verify callbacks, engines, legacy versions). A
            /// client context that verifies peers verifies the server name given to
            /// `connect`.
            #[cfg(feature = "openssl")]
            pub fn from_openssl(context: ::openssl::ssl::SslContext) -> Self {
                $Config {
                    inner: Inner::Openssl(context),
                    limits: Limits::default(),
                    $($field: Default::default(),)*
                }
            }

            /// The rustls configuration inside, if this configuration uses rustls.
            pub fn rustls(&self) -> Option<&Arc<$rustls>> {
                match &self.inner {
                    Inner::Rustls(config) => Some(config),
                    #[cfg(feature = "openssl")]
                    Inner::Openssl(_) => None,
                }
            }

            /// The engine this configuration builds sessions on.
            pub fn engine(&self) -> EngineKind {
                match &self.inner {
                    Inner::Rustls(_) => EngineKind::Rustls,
                    #[cfg(feature = "openssl")]
                    Inner::Openssl(_) => EngineKind::Openssl,
                }
            }

            /// Sets the buffer limits of sessions made from this configuration.
            pub fn with_limits(mut self, limits: Limits) -> Self {
                self.limits = limits;
                self
            }
        }
    };
}

use config_type;

/// A builder's setters of its own certificate chain and key (inside its `impl` block): from
/// PEM files, and as DER.
macro_rules! identity_setters {
    ($(#[$files_doc:meta])* $files:ident, $(#[$der_doc:meta])* $der:ident) => {
        $(#[$files_doc])*
        pub fn $files(mut self, chain: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
            self.identity = Some(Identity::Files {
                cert: chain.into(),
                key: key.into(),
            });
            self
        }

        $(#[$der_doc])*
        pub fn $der(
            mut self,
            chain: Vec<CertificateDer<'static>>,
            key: PrivateKeyDer<'static>,
        ) -> Self {
            self.identity = Some(Identity::Der(chain, key));
            self
        }
    };
}

use identity_setters;

/// A builder's setters of trust anchors (inside its `impl` block): a PEM file, kept in
/// `self.$files`, and a DER certificate, kept in `self.$certs`.
macro_rules! anchor_setters {
    (
        $(#[$files_doc:meta])* $files_fn:ident => $files:ident,
        $(#[$der_doc:meta])* $der_fn:ident => $certs:ident
    ) => {
        $(#[$files_doc])*
        pub fn $files_fn(mut self, path: impl Into<PathBuf>) -> Self {
            self.$files.push(path.into());
            self
        }

        $(#[$der_doc])*
        pub fn $der_fn(mut self, der: impl Into<CertificateDer<'static>>) -> Self {
            self.$certs.push(der.into());
            self
        }
    };
}

use anchor_setters;

/// The setters of [`Common`], for both builders (inside their `impl` blocks).
macro_rules! common_setters {
    () => {
        /// The ALPN protocols, in order of preference: offered by a client, accepted by a
        /// server.
        pub fn alpn<P: AsRef<[u8]>>(mut self, protocols: impl IntoIterator<Item = P>) -> Self {
            self.common.alpn = protocols.into_iter().map(|p| p.as_ref().to_vec()).collect();
            self
        }

        /// Allows only these protocol versions (default: TLS 1.3 and TLS 1.2).
        pub fn versions(mut self, versions: &[ProtocolVersion]) -> Self {
            self.common.versions = versions.to_vec();
            self
        }

        /// Sets the buffer limits of each session.
        pub fn limits(mut self, limits: Limits) -> Self {
            self.common.limits = limits;
            self
        }

        /// Uses this rustls crypto provider instead of the one chosen by features. Its
        /// suites seal and open every record of the connection: tlsflow's own record layer
        /// takes over after the handshake only for suites of rustls's aws-lc-rs provider.
        pub fn crypto_provider(mut self, provider: Arc<CryptoProvider>) -> Self {
            self.common.provider = Some(provider);
            self
        }

        /// The password of a password-protected (encrypted PKCS#8 PEM) private key given
        /// by file. Decrypting needs the `openssl` feature, on either engine.
        pub fn key_password(mut self, password: impl Into<String>) -> Self {
            self.common.key_password = Some(password.into());
            self
        }

        /// Allows only these cipher suites, by IANA name (`TLS_AES_128_GCM_SHA256`,
        /// `TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256`, ...), for both TLS 1.3 and TLS
        /// 1.2.
        pub fn cipher_suites<S: AsRef<str>>(mut self, names: &[S]) -> Self {
            self.common.cipher_suites = names.iter().map(|n| n.as_ref().to_owned()).collect();
            self
        }

        /// Limits the length of the peer's certificate chain (OpenSSL's verify depth: the
        /// number of intermediates allowed). OpenSSL engine only; rustls refuses it at
        /// build.
        pub fn verify_depth(mut self, depth: u32) -> Self {
            self.common.verify_depth = Some(depth);
            self
        }

        /// Appends each connection's secrets to the file at `path`, in the NSS key log format
        /// that Wireshark and tshark read to decrypt a capture, on either engine. Whoever
        /// reads the file can decrypt the traffic: for debugging only. The file is opened
        /// (created with owner-only permissions) at build time.
        pub fn key_log_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
            self.common.key_log = Some(path.into());
            self
        }

        /// [`key_log_file`](Self::key_log_file) with the path in the `SSLKEYLOGFILE`
        /// environment variable, when it is set and not empty; nothing otherwise.
        pub fn key_log_from_env(self) -> Self {
            match std::env::var_os("SSLKEYLOGFILE") {
                Some(path) if !path.is_empty() => self.key_log_file(path),
                _ => self,
            }
        }

        /// Builds sessions on this engine (default: rustls).
        pub fn engine(mut self, engine: EngineKind) -> Self {
            self.common.engine = engine;
            self
        }
    };
}

pub(crate) use common_setters;

/// Keeps only the provider's suites named in `wanted`.
pub(crate) fn restrict_suites(
    provider: &mut CryptoProvider,
    wanted: &[String],
) -> Result<(), Error> {
    if wanted.is_empty() {
        return Ok(());
    }
    let iana = |s: &rustls::SupportedCipherSuite| {
        crate::CipherSuite::from_code(u16::from(s.suite())).to_string()
    };
    let available: Vec<String> = provider.cipher_suites.iter().map(iana).collect();
    if let Some(name) = wanted
        .iter()
        .find(|name| !available.contains(&suite_name(name)))
    {
        return Err(Error::config(format!(
            "unknown or unsupported cipher suite {name:?}; available: {}",
            available.join(", ")
        )));
    }
    let wanted: Vec<String> = wanted.iter().map(|name| suite_name(name)).collect();
    provider.cipher_suites.retain(|s| wanted.contains(&iana(s)));
    Ok(())
}
