//! The host name a client asks for, read from its ClientHello as it arrives (rustls's
//! unbuffered server connection does not report it).

use crate::wire::content::HANDSHAKE;
use crate::wire::RECORD_HEADER;

/// The host name a ClientHello asks for (its `server_name` extension), read from the first
/// record of the client's first flight.
///
/// `None` while that record is incomplete; `Some(None)` when the ClientHello has no host name
/// or is not one this parser understands (rustls itself then decides what to do with it).
pub(super) fn client_hello_sni(data: &[u8]) -> Option<Option<String>> {
    let header = data.get(..RECORD_HEADER)?;
    let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
    let record = data.get(RECORD_HEADER..RECORD_HEADER + len)?;
    if header[0] != HANDSHAKE {
        return Some(None);
    }
    Some(parse_sni(record))
}

/// A cursor over a byte slice that never reads past its end.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<usize> {
        self.take(1).map(|b| usize::from(b[0]))
    }

    fn u16(&mut self) -> Option<usize> {
        self.take(2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    }

    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(n)
    }

    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(n)
    }
}

fn parse_sni(handshake: &[u8]) -> Option<String> {
    let mut c = Cursor(handshake);
    if c.u8()? != 1 {
        return None; // not a ClientHello
    }
    c.take(3)?; // length (the body may continue in a later record)
    c.take(2 + 32)?; // legacy_version, random
    c.vec8()?; // legacy_session_id
    c.vec16()?; // cipher_suites
    c.vec8()?; // legacy_compression_methods
    let mut extensions = Cursor(c.vec16()?);
    while let Some(kind) = extensions.u16() {
        let body = extensions.vec16()?;
        if kind != 0 {
            continue;
        }
        let mut list = Cursor(Cursor(body).vec16()?);
        while let Some(name_type) = list.u8() {
            let name = list.vec16()?;
            if name_type == 0 {
                return std::str::from_utf8(name).ok().map(str::to_owned);
            }
        }
        return None;
    }
    None
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::*;

    #[test]
    fn sni_is_read_from_a_real_client_hello() {
        let cert = crate::SelfSigned::generate(&["sni.example"]).unwrap();
        let config = crate::ClientConfig::builder()
            .ca_certificate(cert.cert_der())
            .build()
            .unwrap();
        let session = config.session("sni.example").unwrap();
        let hello = session.pending_output().to_vec();
        assert_eq!(
            client_hello_sni(&hello),
            Some(Some("sni.example".to_owned()))
        );
        // Incomplete records wait; anything else is no name.
        assert_eq!(client_hello_sni(&hello[..hello.len() - 1]), None);
        assert_eq!(client_hello_sni(&[23, 3, 3, 0, 1, 0]), Some(None));
        let mut cut = hello.clone();
        cut.truncate(60);
        cut[3..5].copy_from_slice(&55u16.to_be_bytes());
        assert_eq!(client_hello_sni(&cut), Some(None));
        // Random bytes never panic.
        let mut rng = crate::testing::Rng::new(7);
        for _ in 0..10_000 {
            let mut junk = hello.clone();
            let i = rng.below(junk.len());
            junk[i] = rng.below(256) as u8;
            let _ = client_hello_sni(&junk);
        }
    }
}
