//! Keys and AEAD protection of TLS 1.3 records: which suites tlsflow implements, the traffic
//! keys rustls's key schedule gives, sealing and opening under them, and the checks of a
//! record's framing and inner content type.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, NONCE_LEN};
use rustls::client::ClientConnectionData;
use rustls::kernel::KernelConnection;
use rustls::server::ServerConnectionData;
use rustls::{ConnectionTrafficSecrets, SupportedCipherSuite};

use super::{fatal, Fatal, HEADER, MAX_CIPHERTEXT, MAX_PLAINTEXT, TAG};
use crate::wire::alert::{
    BAD_RECORD_MAC, DECODE_ERROR, INTERNAL_ERROR, RECORD_OVERFLOW, UNEXPECTED_MESSAGE,
};
use crate::wire::content::{ALERT, APPLICATION_DATA, CHANGE_CIPHER_SPEC, HANDSHAKE};

/// Whether the record layer implements `suite` exactly as the configuration would: it is one
/// of the TLS 1.3 suites of rustls's aws-lc-rs provider, whose AEADs are the ones used here.
/// A suite of any other provider (ring, a custom or wrapped one) is someone else's choice of
/// implementation, and keeps rustls's record layer.
///
/// Suites are compared by address. The compiler may give one static suite several copies
/// (rustls's lists hold their own), so each place rustls offers them from is checked; a
/// suite defined anywhere else can never share an address with these.
pub(crate) fn implements(suite: SupportedCipherSuite) -> bool {
    use rustls::crypto::aws_lc_rs::{
        cipher_suite as aws, ALL_CIPHER_SUITES, DEFAULT_CIPHER_SUITES,
    };
    let named = [
        aws::TLS13_AES_128_GCM_SHA256,
        aws::TLS13_AES_256_GCM_SHA384,
        aws::TLS13_CHACHA20_POLY1305_SHA256,
    ];
    crate::engine::rustls::one_of(suite, &[&named, DEFAULT_CIPHER_SUITES, ALL_CIPHER_SUITES])
}

/// rustls's half of the connection after the handshake.
pub(crate) enum Keys {
    Client(KernelConnection<ClientConnectionData>),
    Server(KernelConnection<ServerConnectionData>),
}

/// One direction of the connection.
#[derive(Clone, Copy)]
pub(super) enum Direction {
    Send,
    Receive,
}

impl Keys {
    pub(super) fn suite(&self) -> SupportedCipherSuite {
        match self {
            Keys::Client(k) => k.negotiated_cipher_suite(),
            Keys::Server(k) => k.negotiated_cipher_suite(),
        }
    }

    /// Moves to the next traffic secret of one direction (a key update): the protection
    /// of what is sent from now on, or of what is received.
    pub(super) fn next(&mut self, direction: Direction) -> Result<Protection, Fatal> {
        let next = match (self, direction) {
            (Keys::Client(k), Direction::Send) => k.update_tx_secret(),
            (Keys::Client(k), Direction::Receive) => k.update_rx_secret(),
            (Keys::Server(k), Direction::Send) => k.update_tx_secret(),
            (Keys::Server(k), Direction::Receive) => k.update_rx_secret(),
        };
        let (seq, secrets) =
            next.map_err(|e| fatal(INTERNAL_ERROR, format!("cannot update keys: {e}")))?;
        Protection::new(&secrets, seq)
    }

    pub(super) fn ticket(&mut self, body: &[u8]) -> Result<(), Fatal> {
        match self {
            Keys::Client(k) => k
                .handle_new_session_ticket(body)
                .map_err(|e| fatal(DECODE_ERROR, format!("unusable NewSessionTicket: {e}"))),
            Keys::Server(_) => Err(fatal(
                UNEXPECTED_MESSAGE,
                "a client sent a NewSessionTicket",
            )),
        }
    }
}

/// The key and record sequence of one direction.
pub(super) struct Protection {
    pub(super) key: LessSafeKey,
    pub(super) iv: [u8; NONCE_LEN],
    pub(super) seq: u64,
}

impl Protection {
    pub(super) fn new(secrets: &ConnectionTrafficSecrets, seq: u64) -> Result<Self, Fatal> {
        use aws_lc_rs::aead::{AES_128_GCM, AES_256_GCM, CHACHA20_POLY1305};
        let (algorithm, key, iv) = match secrets {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (&AES_128_GCM, key, iv),
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (&AES_256_GCM, key, iv),
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => (&CHACHA20_POLY1305, key, iv),
            _ => return Err(fatal(INTERNAL_ERROR, "unsupported record protection")),
        };
        let key = UnboundKey::new(algorithm, key.as_ref())
            .map_err(|_| fatal(INTERNAL_ERROR, "unusable traffic key"))?;
        let iv = <[u8; NONCE_LEN]>::try_from(iv.as_ref())
            .map_err(|_| fatal(INTERNAL_ERROR, "unusable traffic IV"))?;
        Ok(Protection {
            key: LessSafeKey::new(key),
            iv,
            seq,
        })
    }

    /// The nonce of the next record: the IV XOR the sequence number (RFC 8446, 5.3).
    pub(super) fn nonce(&mut self) -> Result<Nonce, Fatal> {
        // Sequence numbers never wrap.
        let seq = self.seq;
        self.seq = seq
            .checked_add(1)
            .ok_or_else(|| fatal(INTERNAL_ERROR, "record sequence number exhausted"))?;
        let mut nonce = self.iv;
        for (n, s) in nonce[NONCE_LEN - 8..].iter_mut().zip(seq.to_be_bytes()) {
            *n ^= s;
        }
        Ok(Nonce::assume_unique_for_key(nonce))
    }

    /// Seals one record of content type `kind` into the front of `dst`; returns its size.
    pub(super) fn seal(
        &mut self,
        kind: u8,
        content: &[u8],
        dst: &mut [u8],
    ) -> Result<usize, Fatal> {
        let body = content.len() + 1 + TAG;
        let header = record_header(body);
        let nonce = self.nonce()?;
        let (head, rest) = dst.split_at_mut(HEADER);
        head.copy_from_slice(&header);
        let (ciphertext, rest) = rest.split_at_mut(content.len());
        self.key
            .seal_out_of_place_scatter(
                nonce,
                Aad::from(header),
                content,
                ciphertext,
                &[kind],
                &mut rest[..1 + TAG],
            )
            .map_err(|_| fatal(INTERNAL_ERROR, "sealing a record failed"))?;
        Ok(HEADER + body)
    }

    /// Seals one record of content type `kind` whose `len` content bytes `fill` writes into
    /// place (gathered from several slices), into the front of `dst`; returns its size.
    pub(super) fn seal_filled(
        &mut self,
        kind: u8,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
        dst: &mut [u8],
    ) -> Result<usize, Fatal> {
        let body = len + 1 + TAG;
        let header = record_header(body);
        let nonce = self.nonce()?;
        let (head, rest) = dst.split_at_mut(HEADER);
        head.copy_from_slice(&header);
        let (content, rest) = rest.split_at_mut(len);
        fill(content);
        self.key
            .seal_in_place_scatter(
                nonce,
                Aad::from(header),
                content,
                &[kind],
                &mut rest[..1 + TAG],
            )
            .map_err(|_| fatal(INTERNAL_ERROR, "sealing a record failed"))?;
        Ok(HEADER + body)
    }
}

pub(super) fn record_header(body: usize) -> [u8; HEADER] {
    let [hi, lo] = u16::try_from(body).unwrap_or(u16::MAX).to_be_bytes();
    [APPLICATION_DATA, 3, 3, hi, lo]
}

/// The body length of the record at the front of `data`, once all of it has arrived.
pub(super) fn complete_record(data: &[u8]) -> Result<Option<usize>, Fatal> {
    let Some(header) = data.get(..HEADER) else {
        return Ok(None);
    };
    let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
    match header[0] {
        APPLICATION_DATA => {}
        CHANGE_CIPHER_SPEC | ALERT | HANDSHAKE => {
            return Err(fatal(
                UNEXPECTED_MESSAGE,
                format!(
                    "an unencrypted record (type {}) after the handshake",
                    header[0]
                ),
            ))
        }
        other => {
            return Err(fatal(
                UNEXPECTED_MESSAGE,
                format!("a record of unknown type {other}"),
            ))
        }
    }
    if header[1] != 3 {
        return Err(fatal(DECODE_ERROR, "not a TLS record (bad version)"));
    }
    if len > MAX_CIPHERTEXT {
        return Err(fatal(
            RECORD_OVERFLOW,
            format!("a record of {len} bytes, more than TLS allows"),
        ));
    }
    // A body of only a tag may be authentic, and is then refused for having no content
    // type (unexpected_message, RFC 8446, 5.4); a shorter one cannot be (5.2).
    if len < TAG {
        return Err(fatal(BAD_RECORD_MAC, "a record too short to be authentic"));
    }
    Ok((data.len() >= HEADER + len).then_some(len))
}

/// The content type and content length of an opened record (padding stripped).
pub(super) fn inner_type(plaintext: &[u8]) -> Result<(u8, usize), Fatal> {
    if plaintext.len() > MAX_PLAINTEXT + 1 {
        return Err(fatal(
            RECORD_OVERFLOW,
            "a record with more than 16 KiB of plaintext",
        ));
    }
    match plaintext.iter().rposition(|&b| b != 0) {
        Some(at) => Ok((plaintext[at], at)),
        None => Err(fatal(UNEXPECTED_MESSAGE, "a record with no content type")),
    }
}
