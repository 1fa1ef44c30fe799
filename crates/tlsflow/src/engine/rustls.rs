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
        }
    }

    /// The underlying rustls connection, for what the engine trait does not cover.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    fn process(&mut self) -> Result<(), Error> {
        let state = self.conn.process_new_packets().map_err(map_error)?;
        self.plaintext_pending = state.plaintext_bytes_to_read();
        self.peer_closed |= state.peer_has_closed();
        Ok(())
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
            alert: snake_case(&format!("{alert:?}")),
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

/// `HandshakeFailure` -> `handshake_failure`, as the TLS specification names alerts.
fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, ch) in name.chars().enumerate() {
        if ch.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(ch.to_ascii_lowercase());
        } else {
            out.push(ch);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_names_follow_the_specification() {
        assert_eq!(snake_case("HandshakeFailure"), "handshake_failure");
        assert_eq!(snake_case("BadCertificate"), "bad_certificate");
    }
}
