//! The rustls engine: rustls 0.23's unbuffered connection API, on buffers the engine owns.
//!
//! Received ciphertext is decrypted in place in the engine's input buffer, and application
//! data is sealed straight into the session's send queue. An idle connection frees its
//! buffers and keeps only the TLS state.
//!
//! Once a TLS 1.3 handshake is over, and when the configuration allows rustls to hand over
//! the traffic secrets (`enable_secret_extraction`, which tlsflow's builders set), the engine
//! moves to tlsflow's own record layer ([`tls13`](super::tls13)): rustls keeps the key
//! schedule and session tickets, and records are sealed from the caller's buffer and opened
//! into it, with no copy of plaintext in between. Other connections stay on rustls's record
//! layer throughout.

use std::sync::Arc;

use rustls::client::UnbufferedClientConnection;
use rustls::pki_types::ServerName;
use rustls::server::UnbufferedServerConnection;

use super::{Engine, Output, PlainRead, ProtocolVersion};
use crate::buf::Inbox;
use crate::Error;

mod pump;
mod sni;

use self::pump::{Buffers, Op};
use self::sni::client_hello_sni;
/// While a handshake message may be in flight, the input buffer holds at least this much:
/// rustls joins a fragmented handshake message (up to 64 KiB) in place in it.
const HANDSHAKE_INPUT: usize = 72 * 1024;

/// Output space reserved per record beyond its plaintext (header, content type, tag, and
/// the explicit nonce of TLS 1.2), before rustls says exactly how much it needs.
const RECORD_OVERHEAD: usize = 64;

enum Conn {
    Client(Box<UnbufferedClientConnection>),
    Server(Box<UnbufferedServerConnection>),
    /// The handshake is over and tlsflow's record layer has taken over.
    #[cfg(feature = "aws-lc-rs")]
    Traffic(Box<Established>),
    /// rustls refused to hand the connection over (only after a failure is recorded).
    #[cfg(feature = "aws-lc-rs")]
    Gone,
}

/// A connection on tlsflow's record layer, and what was negotiated.
#[cfg(feature = "aws-lc-rs")]
struct Established {
    traffic: super::tls13::Traffic,
    alpn: Option<Vec<u8>>,
    peer_certificates: Option<Vec<Vec<u8>>>,
}

/// A TLS engine backed by a rustls connection.
pub struct RustlsEngine {
    conn: Conn,
    inbox: Inbox,
    bufs: Buffers,
    server_name: Option<String>,
    /// Whether the server has looked for the SNI in the ClientHello yet.
    sni_read: bool,
    /// The input buffer's size limit when space was last given.
    input_capacity: usize,
    /// Whether rustls may hand the connection over to tlsflow's record layer.
    #[cfg_attr(not(feature = "aws-lc-rs"), allow(dead_code))]
    hand_over: bool,
    /// The configuration's `max_fragment_size`.
    #[cfg_attr(not(feature = "aws-lc-rs"), allow(dead_code))]
    max_record: Option<usize>,
    client: bool,
    eof: bool,
    failure: Option<Error>,
}

impl std::fmt::Debug for RustlsEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RustlsEngine")
            .field("client", &self.is_client())
            .field("handshaking", &self.is_handshaking())
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
        let hand_over = (
            config.enable_secret_extraction && ours(config.crypto_provider()),
            config.max_fragment_size,
        );
        let conn = UnbufferedClientConnection::new(config, name).map_err(Error::from)?;
        let mut engine = RustlsEngine::wrap(
            Conn::Client(Box::new(conn)),
            Some(server_name.to_owned()),
            hand_over,
        );
        // The client speaks first: encode the ClientHello now.
        engine.pass(Op::Flush)?;
        Ok(engine)
    }

    /// A server engine.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when rustls rejects the configuration.
    pub fn server(config: Arc<rustls::ServerConfig>) -> Result<Self, Error> {
        let hand_over = (
            config.enable_secret_extraction && ours(config.crypto_provider()),
            config.max_fragment_size,
        );
        let conn = UnbufferedServerConnection::new(config).map_err(Error::from)?;
        Ok(RustlsEngine::wrap(
            Conn::Server(Box::new(conn)),
            None,
            hand_over,
        ))
    }

    fn wrap(
        conn: Conn,
        server_name: Option<String>,
        (hand_over, max_record): (bool, Option<usize>),
    ) -> Self {
        RustlsEngine {
            client: matches!(conn, Conn::Client(_)),
            hand_over: hand_over && cfg!(feature = "aws-lc-rs"),
            max_record,
            conn,
            inbox: Inbox::default(),
            server_name,
            sni_read: false,
            input_capacity: HANDSHAKE_INPUT,
            bufs: Buffers {
                waits: true,
                ..Buffers::default()
            },
            eof: false,
            failure: None,
        }
    }

    /// rustls's connection state, while rustls runs the records.
    fn common(&self) -> Option<&rustls::CommonState> {
        match &self.conn {
            Conn::Client(c) => Some(c),
            Conn::Server(s) => Some(s),
            #[cfg(feature = "aws-lc-rs")]
            _ => None,
        }
    }

    /// Moves to tlsflow's record layer when rustls can hand over: a TLS 1.3 handshake is
    /// over, rustls is ready to send application data and holds nothing (no decrypted record,
    /// no part of a handshake message: what rustls has worked on stays at the front of the
    /// input buffer until it is complete, so the front must not hold a complete record).
    #[cfg(feature = "aws-lc-rs")]
    fn hand_over(&mut self) {
        // The record layer replaces rustls's only where it does exactly what the configuration
        // asked for: a TLS 1.3 suite of tlsflow's built-in aws-lc-rs provider. Any other
        // provider (ring, a FIPS or custom one) keeps its own AEAD on rustls's record layer.
        let ready = self.hand_over
            && self.bufs.at_rest
            && self.bufs.record_pending == 0
            && !self.bufs.peer_closed
            && !self.bufs.sent_close
            && self.failure.is_none()
            && self.common().is_some_and(|c| {
                !c.is_handshaking()
                    && c.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3)
                    && c.negotiated_cipher_suite()
                        .is_some_and(super::tls13::implements)
            })
            && self.bufs.seen == 0;
        if !ready {
            if !self.is_handshaking() {
                // Not now, so never: rustls runs the records from here on.
                self.hand_over = false;
            }
            return;
        }
        let common = self.common().expect("checked above");
        let alpn = common.alpn_protocol().map(<[u8]>::to_vec);
        let peer_certificates = common
            .peer_certificates()
            .map(|certs| certs.iter().map(|c| c.as_ref().to_vec()).collect());
        let handed = match std::mem::replace(&mut self.conn, Conn::Gone) {
            Conn::Client(c) => c
                .dangerous_into_kernel_connection()
                .map(|(secrets, k)| (secrets, super::tls13::Keys::Client(k))),
            Conn::Server(s) => s
                .dangerous_into_kernel_connection()
                .map(|(secrets, k)| (secrets, super::tls13::Keys::Server(k))),
            other => {
                self.conn = other;
                return;
            }
        };
        let traffic = handed.map_err(Error::from).and_then(|(secrets, keys)| {
            super::tls13::Traffic::new(keys, &secrets, self.max_record)
        });
        match traffic {
            Ok(traffic) => {
                self.conn = Conn::Traffic(Box::new(Established {
                    traffic,
                    alpn,
                    peer_certificates,
                }));
            }
            Err(e) => {
                self.failure = Some(Error::protocol(format!(
                    "cannot move to the record layer: {e}"
                )));
            }
        }
    }

    /// Seals `inner` as the inner plaintext of one record under the current sending key, as
    /// a hostile peer would (see [`Traffic::seal_inner`](super::tls13::Traffic)). `Ok(false)`
    /// when tlsflow's record layer does not run the connection.
    #[cfg(all(feature = "testing", feature = "aws-lc-rs"))]
    pub(crate) fn seal_inner(
        &mut self,
        inner: &[u8],
        next_key: bool,
        out: &mut Output,
    ) -> Result<bool, Error> {
        match &mut self.conn {
            Conn::Traffic(established) => {
                established.traffic.seal_inner(inner, next_key, out)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Whether tlsflow's record layer runs the connection.
    #[cfg(all(test, feature = "aws-lc-rs"))]
    pub(super) fn traffic(&mut self) -> Option<&mut super::tls13::Traffic> {
        match &mut self.conn {
            Conn::Traffic(established) => Some(&mut established.traffic),
            _ => None,
        }
    }
}

impl Engine for RustlsEngine {
    fn is_handshaking(&self) -> bool {
        self.common().is_some_and(|c| c.is_handshaking())
    }

    fn input_space(&mut self, capacity: usize) -> &mut [u8] {
        // During the handshake a fragmented message (a certificate chain) is joined in place:
        // room for the largest one. Afterwards the session's limit holds.
        let capacity = if self.is_handshaking() {
            capacity.max(HANDSHAKE_INPUT)
        } else {
            capacity
        };
        self.input_capacity = capacity;
        self.inbox.spare(capacity)
    }

    fn input_filled(&mut self, n: usize) -> Result<(), Error> {
        assert!(
            self.inbox.can_fill(n),
            "more input reported than space given"
        );
        self.inbox.filled(n);
        if !self.sni_read && matches!(self.conn, Conn::Server(_)) {
            if let Some(name) = client_hello_sni(self.inbox.data()) {
                self.sni_read = true;
                self.server_name = name;
            }
        }
        self.process_input()
    }

    fn process_input(&mut self) -> Result<(), Error> {
        if let Some(err) = &self.failure {
            return Err(err.clone());
        }
        if self.common().is_some() && self.bufs.record_pending == 0 && self.inbox.len() > 0 {
            self.pass_input()?;
        }
        #[cfg(feature = "aws-lc-rs")]
        if let Conn::Traffic(established) = &mut self.conn {
            // Including what arrived with the handshake's last message.
            established
                .traffic
                .process(&mut self.inbox)
                .inspect_err(|e| self.failure = Some(e.clone()))?;
        }
        Ok(())
    }

    fn input_pending(&self) -> usize {
        match &self.conn {
            #[cfg(feature = "aws-lc-rs")]
            Conn::Traffic(established) => self.inbox.len() - established.traffic.opened(),
            _ => self.inbox.len(),
        }
    }

    fn release_buffers(&mut self) {
        self.inbox.release();
        if self.staged() == 0 {
            self.bufs.staging = Vec::new();
            self.bufs.staging_start = 0;
        }
        if self.bufs.out.is_empty() {
            self.bufs.out = Vec::new();
        }
        #[cfg(feature = "aws-lc-rs")]
        if let Conn::Traffic(established) = &mut self.conn {
            established.traffic.release_buffers();
        }
    }

    fn buffer_capacity(&self) -> usize {
        let own = match &self.conn {
            #[cfg(feature = "aws-lc-rs")]
            Conn::Traffic(established) => established.traffic.buffer_capacity(),
            _ => 0,
        };
        own + self.inbox.capacity() + self.bufs.staging.capacity() + self.bufs.out.capacity()
    }

    fn feed_eof(&mut self) {
        self.eof = true;
    }

    fn read_plaintext(&mut self, buf: &mut [u8]) -> Result<PlainRead, Error> {
        let staged = self.staged();
        if staged > 0 {
            let start = self.bufs.staging_start;
            let n = staged.min(buf.len());
            buf[..n].copy_from_slice(&self.bufs.staging[start..start + n]);
            self.bufs.staging_start += n;
            return Ok(PlainRead::Data(n));
        }
        if let Some(err) = &self.failure {
            return Err(err.clone());
        }
        #[cfg(feature = "aws-lc-rs")]
        if let Conn::Traffic(established) = &mut self.conn {
            let mut filled = 0;
            let read = established.traffic.read(&mut self.inbox, buf, &mut filled);
            let peer_closed = established.traffic.peer_closed();
            if let Err(e) = read {
                // Plaintext authenticated before the failure is delivered first.
                self.failure = Some(e.clone());
                if filled == 0 {
                    return Err(e);
                }
            }
            return Ok(if filled > 0 {
                PlainRead::Data(filled)
            } else if peer_closed {
                PlainRead::Closed
            } else if self.eof {
                return Err(Error::Truncated);
            } else {
                PlainRead::Empty
            });
        }
        if self.bufs.record_pending > 0 || self.inbox.len() > 0 {
            let n = self.pass(Op::Read(buf, 0))?;
            if n > 0 {
                return Ok(PlainRead::Data(n));
            }
            #[cfg(feature = "aws-lc-rs")]
            if matches!(self.conn, Conn::Traffic(_)) {
                // The pass handed the connection over: read on from the record layer.
                return self.read_plaintext(buf);
            }
        }
        if self.bufs.peer_closed {
            Ok(PlainRead::Closed)
        } else if self.eof {
            Err(Error::Truncated)
        } else {
            Ok(PlainRead::Empty)
        }
    }

    fn plaintext_pending(&self) -> usize {
        let engine = match &self.conn {
            // After a failure, only what was opened (authenticated) counts.
            #[cfg(feature = "aws-lc-rs")]
            Conn::Traffic(established) if self.failure.is_some() => {
                established.traffic.opened_plaintext()
            }
            #[cfg(feature = "aws-lc-rs")]
            Conn::Traffic(established) => established.traffic.plaintext_pending(&self.inbox),
            _ => self.bufs.record_pending,
        };
        self.staged() + engine
    }

    fn write_plaintext(&mut self, data: &[u8], out: &mut Output) -> Result<usize, Error> {
        #[cfg(feature = "aws-lc-rs")]
        if let Conn::Traffic(established) = &mut self.conn {
            if let Some(err) = &self.failure {
                return Err(err.clone());
            }
            out.extend_from_slice(&self.bufs.out);
            self.bufs.out.clear();
            return match established.traffic.write(data, out) {
                Ok(()) => Ok(data.len()),
                Err(Error::WriteAfterShutdown) => Err(Error::WriteAfterShutdown),
                Err(e) => {
                    self.failure = Some(e.clone());
                    Err(e)
                }
            };
        }
        self.pass(Op::Seal(data, out))
    }

    fn take_ciphertext(&mut self, out: &mut Output) {
        out.extend_from_slice(&self.bufs.out);
        self.bufs.out.clear();
        #[cfg(feature = "aws-lc-rs")]
        if let Conn::Traffic(established) = &mut self.conn {
            established.traffic.take_control(out);
        }
    }

    fn has_ciphertext(&self) -> bool {
        let control = match &self.conn {
            #[cfg(feature = "aws-lc-rs")]
            Conn::Traffic(established) => established.traffic.has_control(),
            _ => false,
        };
        control || !self.bufs.out.is_empty()
    }

    fn send_close_notify(&mut self) {
        // A failed engine sends no close_notify (its alert is already queued).
        if self.failure.is_some() {
            return;
        }
        #[cfg(feature = "aws-lc-rs")]
        if let Conn::Traffic(established) = &mut self.conn {
            established.traffic.close_notify();
            return;
        }
        let _ = self.pass(Op::CloseNotify);
    }

    fn abort(&mut self, alert: u8) -> Option<Error> {
        // rustls's own record layer sends only the alerts it chooses itself.
        #[cfg(feature = "aws-lc-rs")]
        if let Conn::Traffic(established) = &mut self.conn {
            if self.failure.is_none() {
                let err = established.traffic.abort(alert);
                self.failure = Some(err.clone());
                return Some(err);
            }
        }
        let _ = alert;
        None
    }

    fn peer_closed(&self) -> bool {
        match &self.conn {
            #[cfg(feature = "aws-lc-rs")]
            Conn::Traffic(established) => established.traffic.peer_closed(),
            _ => self.bufs.peer_closed,
        }
    }

    fn refresh_traffic_keys(&mut self) -> Result<(), Error> {
        if let Some(err) = &self.failure {
            return Err(err.clone());
        }
        #[cfg(feature = "aws-lc-rs")]
        if let Conn::Traffic(established) = &mut self.conn {
            return established.traffic.refresh_keys();
        }
        // A refusal (TLS 1.2, handshake not done) leaves the connection usable.
        self.run(&mut Op::KeyUpdate).map(|_| ())
    }

    fn protocol_version(&self) -> Option<ProtocolVersion> {
        match &self.conn {
            #[cfg(feature = "aws-lc-rs")]
            Conn::Traffic(_) => return Some(ProtocolVersion::Tls13),
            _ => {}
        }
        self.common()?.protocol_version().map(|v| match v {
            rustls::ProtocolVersion::TLSv1_2 => ProtocolVersion::Tls12,
            rustls::ProtocolVersion::TLSv1_3 => ProtocolVersion::Tls13,
            other => ProtocolVersion::Other(u16::from(other)),
        })
    }

    fn cipher_suite(&self) -> Option<String> {
        let suite = match &self.conn {
            #[cfg(feature = "aws-lc-rs")]
            Conn::Traffic(established) => Some(established.traffic.suite()),
            _ => self.common()?.negotiated_cipher_suite(),
        };
        suite.map(|s| format!("{:?}", s.suite()))
    }

    fn alpn_protocol(&self) -> Option<Vec<u8>> {
        match &self.conn {
            #[cfg(feature = "aws-lc-rs")]
            Conn::Traffic(established) => established.alpn.clone(),
            _ => self.common()?.alpn_protocol().map(<[u8]>::to_vec),
        }
    }

    fn server_name(&self) -> Option<String> {
        if self.client {
            self.server_name.clone()
        } else if self.is_handshaking() {
            // Reported once the handshake accepted it.
            None
        } else {
            self.server_name.clone()
        }
    }

    fn peer_certificates(&self) -> Option<Vec<Vec<u8>>> {
        match &self.conn {
            #[cfg(feature = "aws-lc-rs")]
            Conn::Traffic(established) => established.peer_certificates.clone(),
            _ => self
                .common()?
                .peer_certificates()
                .map(|certs| certs.iter().map(|c| c.as_ref().to_vec()).collect()),
        }
    }

    fn is_client(&self) -> bool {
        self.client
    }
}

/// Whether the record layer could take over connections of `provider`: it offers a suite
/// the record layer implements.
fn ours(provider: &rustls::crypto::CryptoProvider) -> bool {
    #[cfg(feature = "aws-lc-rs")]
    return provider
        .cipher_suites
        .iter()
        .any(|suite| super::tls13::implements(*suite));
    #[cfg(not(feature = "aws-lc-rs"))]
    {
        let _ = provider;
        false
    }
}
