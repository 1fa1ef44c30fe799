//! TLS engines: the cryptographic protocol on memory buffers only.
//!
//! An [`Engine`] takes ciphertext in and gives plaintext out, takes plaintext in and gives
//! ciphertext out, and reports handshake and close state. It never sees a socket and never
//! calls back into I/O; the [`Session`](crate::Session) decides when bytes move and the
//! drivers move them. Engines are values: build one (for example with
//! [`RustlsEngine::client`]) and hand it to a session or stream.

#[cfg(feature = "openssl")]
mod openssl;
pub(crate) mod rustls;

#[cfg(feature = "openssl")]
pub use self::openssl::OpensslEngine;
pub use self::rustls::RustlsEngine;

use crate::Error;

/// The outcome of asking an engine for plaintext.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlainRead {
    /// This many bytes were copied into the buffer (at least one).
    Data(usize),
    /// No plaintext is available until more ciphertext arrives.
    Empty,
    /// The peer sent `close_notify`: no more plaintext will ever arrive.
    Closed,
}

/// A negotiated TLS protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolVersion {
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
    /// Another version, by its wire code.
    Other(u16),
}

impl std::fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProtocolVersion::Tls12 => f.write_str("TLSv1.2"),
            ProtocolVersion::Tls13 => f.write_str("TLSv1.3"),
            ProtocolVersion::Other(code) => write!(f, "0x{code:04x}"),
        }
    }
}

/// A TLS engine working on memory buffers.
///
/// The contract, which [`Session`](crate::Session) relies on:
///
/// - [`feed_ciphertext`](Engine::feed_ciphertext) takes a prefix of the bytes offered and
///   processes every complete record in it. It returns `Ok(0)` when it can take nothing now
///   (its plaintext buffer is full, or the peer's `close_notify` has arrived); it is never
///   offered an empty slice.
/// - [`write_plaintext`](Engine::write_plaintext) is only called once the handshake is over.
///   Accepted plaintext is sealed at once: after the call, its ciphertext is available from
///   [`take_ciphertext`](Engine::take_ciphertext).
/// - [`take_ciphertext`](Engine::take_ciphertext) moves *all* pending ciphertext (handshake
///   messages, records, alerts) out of the engine, in order. After it returns, the engine owns
///   no unsent ciphertext.
/// - An `Err` from any method is fatal; the session never calls the engine again except to
///   take ciphertext (an alert telling the peer why).
pub trait Engine: Send + 'static {
    /// Whether the handshake is still in progress.
    fn is_handshaking(&self) -> bool;

    /// Offers ciphertext received from the peer; returns how many bytes were taken.
    ///
    /// # Errors
    ///
    /// A TLS failure caused by the ciphertext (bad record, failed decryption, rejected
    /// certificate, fatal alert).
    fn feed_ciphertext(&mut self, data: &[u8]) -> Result<usize, Error>;

    /// Tells the engine that the transport reached end-of-file.
    fn feed_eof(&mut self);

    /// Copies decrypted plaintext into `buf` (which is not empty).
    ///
    /// # Errors
    ///
    /// [`Error::Truncated`] when end-of-file was fed without a `close_notify` and no
    /// plaintext remains.
    fn read_plaintext(&mut self, buf: &mut [u8]) -> Result<PlainRead, Error>;

    /// Bytes of decrypted plaintext waiting to be read.
    fn plaintext_pending(&self) -> usize;

    /// Seals plaintext; returns how many bytes were accepted.
    ///
    /// # Errors
    ///
    /// A TLS failure (for example, sealing after the connection failed).
    fn write_plaintext(&mut self, data: &[u8]) -> Result<usize, Error>;

    /// Appends all pending ciphertext to `out`.
    fn take_ciphertext(&mut self, out: &mut Vec<u8>);

    /// Whether ciphertext is waiting to be taken.
    fn has_ciphertext(&self) -> bool;

    /// Queues a `close_notify` alert.
    fn send_close_notify(&mut self);

    /// Whether the peer's `close_notify` has been received.
    fn peer_closed(&self) -> bool;

    /// Asks for a TLS 1.3 key update (both directions). Engines and versions that cannot do
    /// it return an error and remain usable.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when key updates are not possible on this connection.
    fn refresh_traffic_keys(&mut self) -> Result<(), Error>;

    /// The negotiated protocol version, once known.
    fn protocol_version(&self) -> Option<ProtocolVersion>;

    /// The negotiated cipher suite, by its IANA name, once known.
    fn cipher_suite(&self) -> Option<String>;

    /// The negotiated ALPN protocol, if any.
    fn alpn_protocol(&self) -> Option<Vec<u8>>;

    /// The server name: the one this client asked for, or the one this server was asked for.
    fn server_name(&self) -> Option<String>;

    /// The peer's certificate chain (DER, end-entity first), once known.
    fn peer_certificates(&self) -> Option<Vec<Vec<u8>>>;

    /// Whether this engine is the client side.
    fn is_client(&self) -> bool;
}
