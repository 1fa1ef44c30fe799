//! The rustls engine: rustls 0.23's buffered connection API on memory buffers.

use std::io::{self, Read, Write};
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConnection, Connection, ServerConnection};

use super::{Engine, PlainRead, ProtocolVersion};
use crate::Error;

/// rustls refuses ciphertext once this much plaintext waits to be read (its own fixed limit);
/// the engine stops taking ciphertext before reaching it.
const RUSTLS_PLAINTEXT_LIMIT: usize = 16 * 1024;

/// A TLS engine backed by a rustls connection.
pub struct RustlsEngine {
    conn: Connection,
    server_name: Option<String>,
    plaintext_pending: usize,
    peer_closed: bool,
    /// Plaintext authenticated before a fatal error, moved out of rustls when the error
    /// struck, so the application still receives every byte that arrived intact.
    salvaged: Vec<u8>,
    salvaged_start: usize,
}

impl std::fmt::Debug for RustlsEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RustlsEngine")
            .field("client", &self.is_client())
            .field("handshaking", &self.conn.is_handshaking())
            .finish_non_exhaustive()
    }
}

impl RustlsEngine {
    /// A client engine that will verify the server as `server_name` (a DNS name or an IP
    /// address) and send it as SNI when it is a DNS name.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when `server_name` is neither a valid DNS name nor an IP address.
    pub fn client(config: Arc<rustls::ClientConfig>, server_name: &str) -> Result<Self, Error> {
        let name = ServerName::try_from(server_name.to_owned())
            .map_err(|_| Error::config(format!("invalid server name {server_name:?}")))?;
        let conn = ClientConnection::new(config, name).map_err(map_error)?;
        Ok(RustlsEngine::wrap(
            Connection::Client(conn),
            Some(server_name.to_owned()),
        ))
    }

    /// A server engine.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when rustls rejects the configuration.
    pub fn server(config: Arc<rustls::ServerConfig>) -> Result<Self, Error> {
        let conn = ServerConnection::new(config).map_err(map_error)?;
        Ok(RustlsEngine::wrap(Connection::Server(conn), None))
    }

    fn wrap(mut conn: Connection, server_name: Option<String>) -> Self {
        // The session bounds what it offers; this is a second fence, not the primary one.
        conn.set_buffer_limit(Some(4 * 1024 * 1024));
        RustlsEngine {
            conn,
            server_name,
            plaintext_pending: 0,
            peer_closed: false,
            salvaged: Vec::new(),
            salvaged_start: 0,
        }
    }

    /// The underlying rustls connection, for what the engine trait does not cover.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    fn process(&mut self) -> Result<(), Error> {
        match self.conn.process_new_packets() {
            Ok(state) => {
                self.plaintext_pending = state.plaintext_bytes_to_read();
                self.peer_closed |= state.peer_has_closed();
                Ok(())
            }
            Err(err) => {
                // Records before the bad one were authenticated: keep their plaintext.
                let mut chunk = [0u8; 4096];
                while let Ok(n @ 1..) = self.conn.reader().read(&mut chunk) {
                    self.salvaged.extend_from_slice(&chunk[..n]);
                }
                self.plaintext_pending = self.salvaged.len() - self.salvaged_start;
                Err(map_error(err))
            }
        }
    }
}

impl Engine for RustlsEngine {
    fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    fn feed_ciphertext(&mut self, data: &[u8]) -> Result<usize, Error> {
        debug_assert!(!data.is_empty(), "an empty read means EOF to rustls");
        if data.is_empty() || self.peer_closed || self.plaintext_pending >= RUSTLS_PLAINTEXT_LIMIT {
            return Ok(0);
        }
        let mut reader = data;
        let taken = match self.conn.read_tls(&mut reader) {
            Ok(n) => n,
            // rustls signals a full internal buffer with `Other`; with the checks above this
            // means an oversized handshake message from the peer.
            Err(e) => {
                return Err(Error::protocol(format!(
                    "peer overran the TLS buffers: {e}"
                )))
            }
        };
        self.process()?;
        Ok(taken)
    }

    fn feed_eof(&mut self) {
        let _ = self.conn.read_tls(&mut io::empty());
    }

    fn read_plaintext(&mut self, buf: &mut [u8]) -> Result<PlainRead, Error> {
        if self.salvaged_start < self.salvaged.len() {
            let rest = &self.salvaged[self.salvaged_start..];
            let n = rest.len().min(buf.len());
            buf[..n].copy_from_slice(&rest[..n]);
            self.salvaged_start += n;
            self.plaintext_pending = self.salvaged.len() - self.salvaged_start;
            return Ok(PlainRead::Data(n));
        }
        match self.conn.reader().read(buf) {
            Ok(0) if !buf.is_empty() => {
                self.peer_closed = true;
                Ok(PlainRead::Closed)
            }
            Ok(n) => {
                self.plaintext_pending = self.plaintext_pending.saturating_sub(n);
                Ok(PlainRead::Data(n))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(PlainRead::Empty),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(Error::Truncated),
            Err(e) => Err(Error::protocol(e.to_string())),
        }
    }

    fn plaintext_pending(&self) -> usize {
        self.plaintext_pending
    }

    fn write_plaintext(&mut self, data: &[u8]) -> Result<usize, Error> {
        self.conn
            .writer()
            .write(data)
            .map_err(|e| Error::protocol(format!("rustls refused plaintext: {e}")))
    }

    fn take_ciphertext(&mut self, out: &mut Vec<u8>) {
        while self.conn.wants_write() {
            // Writing into a Vec cannot fail.
            if self.conn.write_tls(out).is_err() {
                break;
            }
        }
    }

    fn has_ciphertext(&self) -> bool {
        self.conn.wants_write()
    }

    fn send_close_notify(&mut self) {
        self.conn.send_close_notify();
    }

    fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    fn refresh_traffic_keys(&mut self) -> Result<(), Error> {
        self.conn
            .refresh_traffic_keys()
            .map_err(|e| Error::config(format!("key update not possible: {e}")))
    }

    fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.conn.protocol_version().map(|v| match v {
            rustls::ProtocolVersion::TLSv1_2 => ProtocolVersion::Tls12,
            rustls::ProtocolVersion::TLSv1_3 => ProtocolVersion::Tls13,
            other => ProtocolVersion::Other(u16::from(other)),
        })
    }

    fn cipher_suite(&self) -> Option<String> {
        self.conn
            .negotiated_cipher_suite()
            .map(|s| format!("{:?}", s.suite()))
    }

    fn alpn_protocol(&self) -> Option<Vec<u8>> {
        self.conn.alpn_protocol().map(<[u8]>::to_vec)
    }

    fn server_name(&self) -> Option<String> {
        match &self.conn {
            Connection::Client(_) => self.server_name.clone(),
            Connection::Server(s) => s.server_name().map(str::to_owned),
        }
    }

    fn peer_certificates(&self) -> Option<Vec<Vec<u8>>> {
        self.conn
            .peer_certificates()
            .map(|certs| certs.iter().map(|c| c.as_ref().to_vec()).collect())
    }

    fn is_client(&self) -> bool {
        matches!(self.conn, Connection::Client(_))
    }
}

/// Maps a rustls error onto tlsflow's error type, keeping rustls's explanation.
pub(crate) fn map_error(err: rustls::Error) -> Error {
    match err {
        rustls::Error::InvalidCertificate(e) => Error::Certificate {
            reason: describe_certificate_error(&e),
        },
        rustls::Error::NoCertificatesPresented => Error::Certificate {
            reason: "the peer presented no certificate, but one is required".into(),
        },
        rustls::Error::AlertReceived(alert) => Error::PeerAlert {
            alert: alert_name(u8::from(alert)),
        },
        rustls::Error::General(msg) => Error::config(msg),
        other => Error::protocol(other.to_string()),
    }
}

fn describe_certificate_error(err: &rustls::CertificateError) -> String {
    use rustls::CertificateError as E;
    match err {
        E::UnknownIssuer => "issued by an unknown certificate authority (UnknownIssuer)".into(),
        E::Expired => "the certificate has expired (Expired)".into(),
        E::NotValidYet => "the certificate is not valid yet (NotValidYet)".into(),
        E::NotValidForName => {
            "the certificate is not valid for this server name (NotValidForName)".into()
        }
        other => format!("{other}"),
    }
}

/// The name the TLS specifications (RFC 8446 and the IANA registry) give an alert.
fn alert_name(code: u8) -> String {
    let name = match code {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        21 => "decryption_failed",
        22 => "record_overflow",
        30 => "decompression_failure",
        40 => "handshake_failure",
        41 => "no_certificate",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        49 => "access_denied",
        50 => "decode_error",
        51 => "decrypt_error",
        60 => "export_restriction",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        86 => "inappropriate_fallback",
        90 => "user_canceled",
        100 => "no_renegotiation",
        109 => "missing_extension",
        110 => "unsupported_extension",
        111 => "certificate_unobtainable",
        112 => "unrecognized_name",
        113 => "bad_certificate_status_response",
        114 => "bad_certificate_hash_value",
        115 => "unknown_psk_identity",
        116 => "certificate_required",
        120 => "no_application_protocol",
        121 => "ech_required",
        other => return format!("alert {other}"),
    };
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_names_follow_the_specification() {
        assert_eq!(alert_name(40), "handshake_failure");
        assert_eq!(alert_name(48), "unknown_ca");
        assert_eq!(alert_name(112), "unrecognized_name");
        assert_eq!(alert_name(200), "alert 200");
        let rustls_name = u8::from(rustls::AlertDescription::UnknownPSKIdentity);
        assert_eq!(alert_name(rustls_name), "unknown_psk_identity");
    }
}
