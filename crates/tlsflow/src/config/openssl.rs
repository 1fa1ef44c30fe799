//! The builders' options applied to OpenSSL contexts, for the OpenSSL engine.

use std::path::Path;
use std::sync::Arc;

use openssl::pkey::PKey;
use openssl::ssl::{
    AlpnError, NameType, SniError, SslContext, SslContextBuilder, SslMethod, SslOptions,
    SslSessionCacheMode, SslVerifyMode, SslVersion,
};
use openssl::x509::{X509VerifyResult, X509};
use rustls::pki_types::CertificateDer;

use super::{
    Certificates, ClientConfig, ClientConfigBuilder, Common, Identity, ServerConfig,
    ServerConfigBuilder,
};
use crate::{Error, ProtocolVersion};

fn context(method: SslMethod, what: &str) -> Result<SslContextBuilder, Error> {
    let mut builder = SslContext::builder(method)
        .map_err(|e| Error::config(format!("cannot create an OpenSSL {what} context: {e}")))?;
    // Renegotiation is the one case where a write waits for a read: refuse it.
    builder.set_options(SslOptions::NO_RENEGOTIATION);
    Ok(builder)
}

fn versions(builder: &mut SslContextBuilder, list: &[ProtocolVersion]) -> Result<(), Error> {
    let code = |v: &ProtocolVersion| {
        match v {
        ProtocolVersion::Tls12 => Ok(SslVersion::TLS1_2),
        ProtocolVersion::Tls13 => Ok(SslVersion::TLS1_3),
        ProtocolVersion::Other(c) => Err(Error::config(format!(
            "protocol version 0x{c:04x} is not offered by the builder; configure an OpenSSL context directly"
        ))),
    }
    };
    let (min, max) = if list.is_empty() {
        (SslVersion::TLS1_2, SslVersion::TLS1_3)
    } else {
        let mut codes = list.iter().map(code).collect::<Result<Vec<_>, _>>()?;
        codes.sort_by_key(|v| if *v == SslVersion::TLS1_3 { 1 } else { 0 });
        (codes[0], codes[codes.len() - 1])
    };
    builder
        .set_min_proto_version(Some(min))
        .and_then(|()| builder.set_max_proto_version(Some(max)))
        .map_err(|e| Error::config(format!("cannot set protocol versions: {e}")))
}

/// Cipher suites (by IANA name), verify depth and the key log.
fn apply_common(builder: &mut SslContextBuilder, common: &Common) -> Result<(), Error> {
    if let Some(depth) = common.verify_depth {
        builder.set_verify_depth(depth);
    }
    if let Some(log) = common.key_log()? {
        builder.set_keylog_callback(move |_, line| log.line(line));
    }
    if common.cipher_suites.is_empty() {
        return Ok(());
    }
    let (mut tls13, mut tls12) = (Vec::new(), Vec::new());
    for name in &common.cipher_suites {
        let iana = super::suite_name(name);
        if iana.contains("_WITH_") {
            let openssl_name = ::openssl::ssl::cipher_name(&iana);
            if openssl_name == "(NONE)" {
                return Err(Error::config(format!(
                    "unknown or unsupported cipher suite {name:?}"
                )));
            }
            tls12.push(openssl_name.to_owned());
        } else {
            tls13.push(iana);
        }
    }
    // An empty list for one version disables that version's suites, as on rustls.
    builder
        .set_ciphersuites(&tls13.join(":"))
        .map_err(|e| Error::config(format!("unsupported TLS 1.3 cipher suites {tls13:?}: {e}")))?;
    if tls12.is_empty() {
        // No TLS 1.2 suite means no TLS 1.2 (OpenSSL cannot take an empty list).
        return builder
            .set_min_proto_version(Some(SslVersion::TLS1_3))
            .map_err(|e| Error::config(format!("cannot restrict to TLS 1.3: {e}")));
    }
    builder
        .set_cipher_list(&tls12.join(":"))
        .map_err(|e| Error::config(format!("unsupported TLS 1.2 cipher suites {tls12:?}: {e}")))
}

/// ALPN protocols in wire format: each prefixed by its length.
fn alpn_wire(protocols: &[Vec<u8>]) -> Result<Vec<u8>, Error> {
    let mut wire = Vec::new();
    for p in protocols {
        let len = u8::try_from(p.len())
            .ok()
            .filter(|l| *l > 0)
            .ok_or_else(|| Error::config("an ALPN protocol name must be 1 to 255 bytes"))?;
        wire.push(len);
        wire.extend_from_slice(p);
    }
    Ok(wire)
}

fn add_ca_file(builder: &mut SslContextBuilder, path: &Path) -> Result<(), Error> {
    // Read as the rustls engine reads it: OpenSSL's own message would not name the file.
    for der in super::load_certs(path)? {
        add_ca(builder, &der, &format!(" in {}", path.display()))?;
    }
    Ok(())
}

fn add_ca_der(builder: &mut SslContextBuilder, der: &[u8]) -> Result<(), Error> {
    add_ca(builder, der, "")
}

fn add_ca(builder: &mut SslContextBuilder, der: &[u8], origin: &str) -> Result<(), Error> {
    let unusable = |e| Error::config(format!("unusable CA certificate{origin}: {e}"));
    let cert = X509::from_der(der).map_err(unusable)?;
    builder.cert_store_mut().add_cert(cert).map_err(unusable)
}

fn set_identity(
    builder: &mut SslContextBuilder,
    identity: Identity,
    password: Option<&str>,
    role: &str,
) -> Result<(), Error> {
    let origin = identity.describe();
    match identity {
        Identity::Files { cert, key } => {
            // Parse through the shared loaders so errors read the same on both engines.
            super::load_certs(&cert)?;
            let key_der = super::load_key_with(&key, password)?;
            builder
                .set_certificate_chain_file(&cert)
                .map_err(|e| Error::config(format!("cannot load {}: {e}", cert.display())))?;
            let pkey = PKey::private_key_from_der(key_der.secret_der())
                .map_err(|e| Error::config(format!("cannot load {}: {e}", key.display())))?;
            builder
                .set_private_key(&pkey)
                .map_err(|e| Error::config(format!("cannot load {}: {e}", key.display())))?;
        }
        Identity::Der(chain, key) => {
            let mut certs = chain.iter();
            let leaf = certs
                .next()
                .ok_or_else(|| Error::config(format!("the {role} certificate chain is empty")))?;
            let leaf = X509::from_der(leaf)
                .map_err(|e| Error::config(format!("unusable {role} certificate: {e}")))?;
            builder
                .set_certificate(&leaf)
                .map_err(|e| Error::config(format!("unusable {role} certificate: {e}")))?;
            for extra in certs {
                let extra = X509::from_der(extra).map_err(|e| {
                    Error::config(format!("unusable certificate in the {role} chain: {e}"))
                })?;
                builder.add_extra_chain_cert(extra).map_err(|e| {
                    Error::config(format!("unusable certificate in the {role} chain: {e}"))
                })?;
            }
            let key = PKey::private_key_from_der(key.secret_der())
                .map_err(|e| Error::config(format!("unusable {role} private key: {e}")))?;
            builder
                .set_private_key(&key)
                .map_err(|e| Error::config(format!("unusable {role} private key: {e}")))?;
        }
    }
    builder
        .check_private_key()
        .map_err(|e| Error::config(format!("unusable {role} certificate or key{origin}: the key does not match the certificate ({e})")))
}

/// The server's most preferred protocol that the client offered, as a slice of the
/// client's list (both in wire format).
fn select_alpn<'a>(server: &[u8], offered: &'a [u8]) -> Option<&'a [u8]> {
    let entries = |mut wire: &'a [u8]| {
        std::iter::from_fn(move || {
            let (&len, rest) = wire.split_first()?;
            let (name, rest) = rest.split_at_checked(usize::from(len))?;
            wire = rest;
            Some(name)
        })
    };
    let mut server_wire = server;
    while let Some((&len, rest)) = server_wire.split_first() {
        let (wanted, rest) = rest.split_at_checked(usize::from(len))?;
        server_wire = rest;
        if let Some(found) = entries(offered).find(|name| *name == wanted) {
            return Some(found);
        }
    }
    None
}

/// An OpenSSL client context from the builder's options.
pub(crate) fn client_context(options: ClientConfigBuilder) -> Result<SslContext, Error> {
    let mut builder = context(SslMethod::tls_client(), "client")?;
    versions(&mut builder, &options.common.versions)?;
    apply_common(&mut builder, &options.common)?;
    if options.no_verify {
        builder.set_verify(SslVerifyMode::NONE);
    } else {
        match options.verify_callback.clone() {
            None => builder.set_verify(SslVerifyMode::PEER),
            Some(callback) => builder.set_verify_callback(SslVerifyMode::PEER, move |ok, store| {
                // Runs once per certificate, root first; the application's check runs on the
                // leaf, after OpenSSL accepted the whole chain.
                if !ok || store.error_depth() != 0 {
                    return ok;
                }
                let chain: Vec<CertificateDer<'static>> = store
                    .chain()
                    .map(|stack| {
                        stack
                            .iter()
                            .filter_map(|c| c.to_der().ok())
                            .map(CertificateDer::from)
                            .collect()
                    })
                    .unwrap_or_default();
                match callback(&chain) {
                    Ok(()) => true,
                    Err(_) => {
                        store.set_error(X509VerifyResult::APPLICATION_VERIFICATION);
                        false
                    }
                }
            }),
        }
        for path in &options.ca_files {
            add_ca_file(&mut builder, path)?;
        }
        for der in &options.ca_certs {
            add_ca_der(&mut builder, der)?;
        }
        for dir in &options.common.ca_dirs {
            for der in super::load_ca_dir(dir)? {
                add_ca_der(&mut builder, &der)?;
            }
        }
        if options.system_roots || (options.ca_files.is_empty() && options.ca_certs.is_empty()) {
            builder.set_default_verify_paths().map_err(|e| {
                Error::config(format!("cannot load the system's trusted roots: {e}"))
            })?;
        }
    }
    if let Some(identity) = options.identity {
        set_identity(
            &mut builder,
            identity,
            options.common.key_password.as_deref(),
            "client",
        )?;
    }
    if !options.common.alpn.is_empty() {
        builder
            .set_alpn_protos(&alpn_wire(&options.common.alpn)?)
            .map_err(|e| Error::config(format!("cannot set ALPN protocols: {e}")))?;
    }
    Ok(builder.build())
}

/// An OpenSSL server context from the builder's options, with its certificates.
///
/// Every certificate (the default one and each SNI one) gets a context of its own, alike
/// but for the certificate; the servername callback, which OpenSSL calls for every
/// ClientHello (with SNI or without), swaps in the current one for the name asked. The
/// context made here keeps the session cache and ticket keys across reloads.
pub(crate) fn server_context(
    mut options: ServerConfigBuilder,
) -> Result<(SslContext, Arc<Certificates<SslContext>>), Error> {
    let identity = options.identity.take().ok_or_else(|| {
        Error::config("a server needs a certificate and key (or a self-signed certificate)")
    })?;
    let sni = std::mem::take(&mut options.sni);
    let options = Arc::new(options);
    let mut builder = server_context_for(&options, identity.clone())?;
    let for_load = options.clone();
    let load: super::reload::Loader<SslContext> = Box::new(move |identity: &Identity| {
        let context = server_context_for(&for_load, identity.clone())?.build();
        let leaf = context
            .certificate()
            .and_then(|leaf| leaf.to_der().ok())
            .ok_or_else(|| {
                Error::config(format!("no server certificate in {}", identity.describe()))
            })?;
        Ok((context, CertificateDer::from(leaf)))
    });
    let certificates = Arc::new(Certificates::new(identity, sni, load)?);
    let served = certificates.clone();
    builder.set_servername_callback(move |ssl, _alert| {
        let wanted = ssl
            .servername(NameType::HOST_NAME)
            .map(str::to_ascii_lowercase);
        let current = served.current();
        ssl.set_ssl_context(current.for_name(wanted.as_deref()))
            .map_err(|_| SniError::ALERT_FATAL)
    });
    Ok((builder.build(), certificates))
}

/// A server context with everything but the SNI table.
fn server_context_for(
    options: &ServerConfigBuilder,
    identity: Identity,
) -> Result<SslContextBuilder, Error> {
    let mut builder = context(SslMethod::tls_server(), "server")?;
    versions(&mut builder, &options.common.versions)?;
    apply_common(&mut builder, &options.common)?;
    set_identity(
        &mut builder,
        identity,
        options.common.key_password.as_deref(),
        "server",
    )?;
    let wants_client_auth = !options.client_ca_files.is_empty()
        || !options.client_ca_certs.is_empty()
        || !options.common.ca_dirs.is_empty();
    if options.client_auth_optional && !wants_client_auth {
        return Err(Error::config("client_auth_optional needs a client CA"));
    }
    if wants_client_auth {
        for dir in &options.common.ca_dirs {
            for der in super::load_ca_dir(dir)? {
                add_ca_der(&mut builder, &der)?;
            }
        }
        builder.set_verify(if options.client_auth_optional {
            SslVerifyMode::PEER
        } else {
            SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT
        });
        for path in &options.client_ca_files {
            add_ca_file(&mut builder, path)?;
        }
        for der in &options.client_ca_certs {
            add_ca_der(&mut builder, der)?;
        }
    }
    if options.session_tickets {
        // Tickets stay on (OpenSSL's default); the server-side cache goes.
        builder.set_session_cache_mode(SslSessionCacheMode::OFF);
    }
    if !options.common.alpn.is_empty() {
        let wire = alpn_wire(&options.common.alpn)?;
        builder.set_alpn_select_callback(move |_, offered| {
            select_alpn(&wire, offered).ok_or(AlpnError::NOACK)
        });
    }
    Ok(builder)
}

impl ClientConfigBuilder {
    pub(super) fn build_openssl(self) -> Result<ClientConfig, Error> {
        if self.session_cache.is_some_and(|servers| servers > 0) {
            return Err(Error::config(
                "session_cache_size needs the rustls engine: the OpenSSL engine's client \
                 does not resume sessions",
            ));
        }
        let limits = self.common.limits;
        Ok(ClientConfig::from_openssl(client_context(self)?).with_limits(limits))
    }
}

impl ServerConfigBuilder {
    pub(super) fn build_openssl(self) -> Result<ServerConfig, Error> {
        let limits = self.common.limits;
        let (context, certificates) = server_context(self)?;
        Ok(ServerConfig::from_openssl(context)
            .with_limits(limits)
            .with_certificates(certificates))
    }
}
