//! Self-signed certificates for local use and tests (feature `self-signed`).

#[cfg(not(any(feature = "aws-lc-rs", feature = "ring")))]
compile_error!(
    "tlsflow's `self-signed` feature generates keys with a crypto provider: \
     enable `aws-lc-rs` (the default) or `ring` as well"
);

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};

use crate::Error;

/// A freshly generated self-signed certificate and its private key.
///
/// For local use: a server presents it with
/// [`ServerConfigBuilder::self_signed`](crate::ServerConfigBuilder::self_signed), and a client
/// trusts it with [`ClientConfigBuilder::ca_certificate`](crate::ClientConfigBuilder::ca_certificate)
/// (or compares [`fingerprint_sha256`](Self::fingerprint_sha256) out of band).
#[derive(Clone)]
pub struct SelfSigned {
    cert_der: CertificateDer<'static>,
    cert_pem: String,
    key_der: Vec<u8>,
    key_pem: String,
}

impl std::fmt::Debug for SelfSigned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelfSigned")
            .field("fingerprint_sha256", &self.fingerprint_sha256())
            .finish_non_exhaustive()
    }
}

impl SelfSigned {
    /// Generates a certificate valid for `names` (DNS names or IP addresses, as subject
    /// alternative names).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when no name is given or a name is not usable in a certificate.
    pub fn generate<S: AsRef<str>>(names: &[S]) -> Result<SelfSigned, Error> {
        if names.is_empty() {
            return Err(Error::config(
                "a self-signed certificate needs at least one name",
            ));
        }
        let names: Vec<String> = names.iter().map(|n| n.as_ref().to_owned()).collect();
        for name in &names {
            // The same rule clients apply to the names they connect to.
            if rustls::pki_types::ServerName::try_from(name.as_str()).is_err() {
                return Err(Error::config(format!(
                    "{name:?} is neither a DNS name nor an IP address"
                )));
            }
        }
        let failed = |e: rcgen::Error| Error::config(format!("cannot generate a certificate: {e}"));
        let mut params = rcgen::CertificateParams::new(names.clone()).map_err(failed)?;
        // A subject of its own (the first name), so that several self-signed certificates
        // trusted at once are told apart by verifiers that look issuers up by name.
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, names[0].clone());
        let key = rcgen::KeyPair::generate().map_err(failed)?;
        let cert = params.self_signed(&key).map_err(failed)?;
        Ok(SelfSigned {
            cert_der: cert.der().clone(),
            cert_pem: cert.pem(),
            key_der: key.serialize_der(),
            key_pem: key.serialize_pem(),
        })
    }

    /// The certificate, DER-encoded.
    pub fn cert_der(&self) -> CertificateDer<'static> {
        self.cert_der.clone()
    }

    /// The private key, PKCS#8 DER.
    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }

    /// The certificate as PEM text.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The private key as PEM text.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The SHA-256 fingerprint of the certificate, as colon-separated upper-case hex (the
    /// form `openssl x509 -fingerprint -sha256` prints).
    pub fn fingerprint_sha256(&self) -> String {
        fingerprint_sha256(&self.cert_der)
    }
}

/// The SHA-256 fingerprint of a DER certificate (any, such as
/// [`ServerConfig::certificate`](crate::ServerConfig::certificate)), as colon-separated
/// upper-case hex (the form `openssl x509 -fingerprint -sha256` prints).
pub fn fingerprint_sha256(der: &[u8]) -> String {
    let hex: Vec<String> = Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    hex.join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_dns_names_or_addresses() {
        assert!(SelfSigned::generate(&["localhost", "127.0.0.1", "::1"]).is_ok());
        let err = SelfSigned::generate(&["not a name!"]).unwrap_err();
        assert!(err.to_string().contains("neither a DNS name"), "{err}");
        assert!(SelfSigned::generate::<&str>(&[]).is_err());
    }
}
