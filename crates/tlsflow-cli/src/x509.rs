//! Certificate details for people (`connect -v`), read with `x509-parser` from the DER the
//! peer sent: the subject and the subject alternative names.

use std::net::IpAddr;

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// What a person wants to see of a certificate.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Summary {
    /// The subject, as `CN=..., O=...`.
    pub(crate) subject: String,
    /// Subject alternative names, as `DNS:...` and `IP:...`.
    pub(crate) names: Vec<String>,
}

/// Reads the subject and subject alternative names of a DER certificate; `None` when it
/// does not parse.
pub(crate) fn summarize(der: &[u8]) -> Option<Summary> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let subject = cert.subject().to_string();
    let names = match cert.subject_alternative_name() {
        Ok(Some(extension)) => extension
            .value
            .general_names
            .iter()
            .filter_map(general_name)
            .collect(),
        _ => Vec::new(),
    };
    Some(Summary { subject, names })
}

fn general_name(name: &GeneralName<'_>) -> Option<String> {
    match name {
        GeneralName::DNSName(dns) => Some(format!("DNS:{dns}")),
        GeneralName::IPAddress(bytes) => {
            let ip = match bytes.len() {
                4 => IpAddr::from(<[u8; 4]>::try_from(*bytes).ok()?),
                16 => IpAddr::from(<[u8; 16]>::try_from(*bytes).ok()?),
                _ => return None,
            };
            Some(format!("IP:{ip}"))
        }
        GeneralName::RFC822Name(email) => Some(format!("email:{email}")),
        GeneralName::URI(uri) => Some(format!("URI:{uri}")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_generated_certificate() {
        let cert = tlsflow::SelfSigned::generate(&["localhost", "127.0.0.1"]).unwrap();
        let summary = summarize(cert.cert_der().as_ref()).unwrap();
        assert!(summary.subject.starts_with("CN="), "{summary:?}");
        assert_eq!(summary.names, ["DNS:localhost", "IP:127.0.0.1"]);
    }

    #[test]
    fn garbage_and_truncation_never_panic() {
        let cert = tlsflow::SelfSigned::generate(&["example.com"]).unwrap();
        let der = cert.cert_der().as_ref().to_vec();
        for len in 0..der.len() {
            let _ = summarize(&der[..len]);
        }
        let mut seed = 0x1234_5678u32;
        for i in 0..der.len() {
            let mut bent = der.clone();
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            bent[i] ^= (seed >> 16) as u8 | 1;
            let _ = summarize(&bent);
        }
        assert_eq!(summarize(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
    }
}
