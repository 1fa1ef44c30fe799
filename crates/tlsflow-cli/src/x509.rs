//! Just enough X.509 to show a peer certificate's subject and names to a person (`connect -v`).
//!
//! The certificate has already been verified (or verification was turned off on purpose), so
//! this only reads DER for display. It is peer input all the same: every length is checked,
//! and anything unexpected yields `None`, never a panic.

use std::net::{Ipv4Addr, Ipv6Addr};

/// A DER reader over a byte slice.
struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    /// The next element: its tag and contents.
    fn next(&mut self) -> Option<(u8, &'a [u8])> {
        let (&tag, rest) = self.0.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 || rest.len() < count {
                return None;
            }
            let len = rest[..count]
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            (len, &rest[count..])
        };
        if rest.len() < len {
            return None;
        }
        let (content, rest) = rest.split_at(len);
        self.0 = rest;
        Some((tag, content))
    }

    /// The next element, which must have this tag.
    fn expect(&mut self, tag: u8) -> Option<&'a [u8]> {
        match self.next()? {
            (t, content) if t == tag => Some(content),
            _ => None,
        }
    }
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const OCTET_STRING: u8 = 0x04;
const EXTENSIONS: u8 = 0xa3;
const SAN_OID: &[u8] = &[0x55, 0x1d, 0x11];

/// What a person wants to see of a certificate.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Summary {
    /// The subject, as `CN=..., O=...`.
    pub(crate) subject: String,
    /// Subject alternative names, as `DNS:...` and `IP:...`.
    pub(crate) names: Vec<String>,
}

/// Reads the subject and subject alternative names of a DER certificate.
pub(crate) fn summarize(der: &[u8]) -> Option<Summary> {
    let cert = Der(der).expect(SEQUENCE)?;
    let mut tbs = Der(Der(cert).expect(SEQUENCE)?);
    let (mut tag, _) = tbs.next()?;
    if tag == 0xa0 {
        tag = tbs.next()?.0; // the explicit version came first; this is the serial
    }
    if tag != 0x02 {
        return None;
    }
    tbs.expect(SEQUENCE)?; // signature algorithm
    tbs.expect(SEQUENCE)?; // issuer
    tbs.expect(SEQUENCE)?; // validity
    let subject = name(tbs.expect(SEQUENCE)?)?;
    tbs.expect(SEQUENCE)?; // public key
    let mut names = Vec::new();
    while let Some((tag, content)) = tbs.next() {
        if tag == EXTENSIONS {
            names = alt_names(Der(content).expect(SEQUENCE)?).unwrap_or_default();
        }
    }
    Some(Summary { subject, names })
}

/// A distinguished name: a sequence of sets of (type, value) pairs.
fn name(content: &[u8]) -> Option<String> {
    let mut parts = Vec::new();
    let mut rdns = Der(content);
    while let Some((tag, set)) = rdns.next() {
        if tag != SET {
            return None;
        }
        let mut atvs = Der(set);
        while let Some((tag, atv)) = atvs.next() {
            if tag != SEQUENCE {
                return None;
            }
            let mut atv = Der(atv);
            let oid = atv.expect(OID)?;
            let (kind, value) = atv.next()?;
            parts.push(format!("{}={}", attribute_name(oid), text(kind, value)));
        }
    }
    Some(parts.join(", "))
}

fn attribute_name(oid: &[u8]) -> String {
    match oid {
        [0x55, 0x04, 0x03] => "CN".into(),
        [0x55, 0x04, 0x06] => "C".into(),
        [0x55, 0x04, 0x07] => "L".into(),
        [0x55, 0x04, 0x08] => "ST".into(),
        [0x55, 0x04, 0x0a] => "O".into(),
        [0x55, 0x04, 0x0b] => "OU".into(),
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01] => "emailAddress".into(),
        other => dotted(other),
    }
}

/// An OID in dotted decimal, for attribute types without a short name.
fn dotted(oid: &[u8]) -> String {
    let mut arcs: Vec<u64> = Vec::new();
    let mut value = 0u64;
    for &b in oid {
        value = (value << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (value / 40).min(2);
                arcs.push(first);
                arcs.push(value - first * 40);
            } else {
                arcs.push(value);
            }
            value = 0;
        }
    }
    let parts: Vec<String> = arcs.iter().map(u64::to_string).collect();
    parts.join(".")
}

/// A directory string for display: UTF-8 and the ASCII types as they are, BMP decoded.
fn text(kind: u8, value: &[u8]) -> String {
    if kind == 0x1e {
        let units: Vec<u16> = value
            .chunks_exact(2)
            .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
            .collect();
        return String::from_utf16_lossy(&units);
    }
    String::from_utf8_lossy(value).into_owned()
}

/// The DNS names and IP addresses in the subject alternative name extension.
fn alt_names(extensions: &[u8]) -> Option<Vec<String>> {
    let mut list = Der(extensions);
    while let Some((tag, extension)) = list.next() {
        if tag != SEQUENCE {
            return None;
        }
        let mut extension = Der(extension);
        if extension.expect(OID)? != SAN_OID {
            continue;
        }
        let (mut tag, mut value) = extension.next()?;
        if tag == 0x01 {
            (tag, value) = extension.next()?; // the critical flag came first
        }
        if tag != OCTET_STRING {
            return None;
        }
        let mut general = Der(Der(value).expect(SEQUENCE)?);
        let mut names = Vec::new();
        while let Some((tag, value)) = general.next() {
            match (tag, value.len()) {
                (0x82, _) => names.push(format!("DNS:{}", String::from_utf8_lossy(value))),
                (0x87, 4) => {
                    let octets: [u8; 4] = value.try_into().ok()?;
                    names.push(format!("IP:{}", Ipv4Addr::from(octets)));
                }
                (0x87, 16) => {
                    let octets: [u8; 16] = value.try_into().ok()?;
                    names.push(format!("IP:{}", Ipv6Addr::from(octets)));
                }
                _ => {}
            }
        }
        return Some(names);
    }
    Some(Vec::new())
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

    #[test]
    fn dotted_oids() {
        assert_eq!(dotted(&[0x55, 0x04, 0x2a]), "2.5.4.42");
        assert_eq!(dotted(&[0x2a, 0x86, 0x48]), "1.2.840");
    }
}
