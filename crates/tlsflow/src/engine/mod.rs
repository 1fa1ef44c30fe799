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
#[cfg(feature = "aws-lc-rs")]
mod tls13;

#[cfg(feature = "openssl")]
pub use self::openssl::OpensslEngine;
pub use self::rustls::RustlsEngine;

pub use crate::buf::Output;
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

/// A negotiated cipher suite, by its IANA code point; named the same on both engines.
///
/// ```
/// use tlsflow::CipherSuite;
///
/// let suite = CipherSuite::from_code(0x1301);
/// assert_eq!(suite.name(), Some("TLS_AES_128_GCM_SHA256"));
/// assert_eq!(suite.to_string(), "TLS_AES_128_GCM_SHA256");
/// assert_eq!(CipherSuite::from_code(0xc02f).name(), Some("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CipherSuite(u16);

impl CipherSuite {
    /// The suite with this IANA code point.
    pub const fn from_code(code: u16) -> CipherSuite {
        CipherSuite(code)
    }

    /// The IANA code point, as sent on the wire.
    pub const fn code(self) -> u16 {
        self.0
    }

    /// The IANA name (`TLS_AES_128_GCM_SHA256`, `TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`), or
    /// `None` for a code point rustls does not know.
    pub fn name(self) -> Option<&'static str> {
        // rustls spells the TLS 1.3 suites `TLS13_...`; IANA spells them `TLS_...`.
        match self.0 {
            0x1301 => Some("TLS_AES_128_GCM_SHA256"),
            0x1302 => Some("TLS_AES_256_GCM_SHA384"),
            0x1303 => Some("TLS_CHACHA20_POLY1305_SHA256"),
            0x1304 => Some("TLS_AES_128_CCM_SHA256"),
            0x1305 => Some("TLS_AES_128_CCM_8_SHA256"),
            code => ::rustls::CipherSuite::from(code).as_str(),
        }
    }
}

impl std::fmt::Display for CipherSuite {
    /// The IANA name, or the code point in hex (`0x1234`) when it has none known here.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "0x{:04x}", self.0),
        }
    }
}

impl std::fmt::Debug for CipherSuite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CipherSuite({self} = 0x{:04x})", self.0)
    }
}

impl PartialEq<str> for CipherSuite {
    /// Compares with an IANA name.
    fn eq(&self, name: &str) -> bool {
        self.name() == Some(name)
    }
}

impl PartialEq<&str> for CipherSuite {
    fn eq(&self, name: &&str) -> bool {
        self.name() == Some(*name)
    }
}

/// A TLS engine working on memory buffers.
///
/// The contract, which [`Session`](crate::Session) relies on:
///
/// - Received ciphertext goes into the engine's own input buffer: the session asks for
///   [`input_space`](Engine::input_space), the driver reads into it, and
///   [`input_filled`](Engine::input_filled) reports the count. The engine processes complete
///   records as far as its plaintext limit allows (about one record of decrypted plaintext
///   waits at a time) and keeps the rest buffered until
///   [`process_input`](Engine::process_input) is called again. It may decrypt in place.
/// - [`write_plaintext`](Engine::write_plaintext) is only called once the handshake is over.
///   Accepted plaintext is sealed at once and its ciphertext appended to the output buffer
///   given, after any handshake or alert ciphertext the engine was holding.
/// - [`take_ciphertext`](Engine::take_ciphertext) moves *all* pending ciphertext (handshake
///   messages, records, alerts) out of the engine, in order. After it returns, the engine owns
///   no unsent ciphertext.
/// - An `Err` from any method is fatal; the session never calls the engine again except to
///   take ciphertext (an alert telling the peer why).
pub trait Engine: Send + 'static {
    /// Whether the handshake is still in progress.
    fn is_handshaking(&self) -> bool;

    /// Room at the end of the input buffer, such that at most `capacity` bytes are buffered.
    /// Empty when the buffer is full.
    fn input_space(&mut self, capacity: usize) -> &mut [u8];

    /// Reports that `n` bytes were written at the start of the last
    /// [`input_space`](Engine::input_space), and processes them.
    ///
    /// # Errors
    ///
    /// A TLS failure caused by the ciphertext (bad record, failed decryption, rejected
    /// certificate, fatal alert).
    fn input_filled(&mut self, n: usize) -> Result<(), Error>;

    /// Processes buffered input further (called after plaintext was read).
    ///
    /// # Errors
    ///
    /// As for [`input_filled`](Engine::input_filled).
    fn process_input(&mut self) -> Result<(), Error>;

    /// Received ciphertext bytes not yet processed.
    fn input_pending(&self) -> usize;

    /// Frees buffers that hold nothing (the connection is about to wait idle).
    fn release_buffers(&mut self) {}

    /// Bytes of buffer memory the engine holds outside its TLS library (capacity, not
    /// contents).
    fn buffer_capacity(&self) -> usize {
        0
    }

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

    /// Seals plaintext, appending its ciphertext to `out`; returns how many bytes were
    /// accepted.
    ///
    /// # Errors
    ///
    /// A TLS failure (for example, sealing after the connection failed).
    fn write_plaintext(&mut self, data: &[u8], out: &mut Output) -> Result<usize, Error>;

    /// Seals plaintext gathered from `bufs` (in order; none is empty) like
    /// [`write_plaintext`](Self::write_plaintext) on their concatenation, and returns how many
    /// bytes of it were accepted. The default gathers up to a record's worth into one buffer
    /// (or takes the first slice alone when it fills a record or is all there is); an engine
    /// that seals records in place overrides it to seal straight from the slices.
    ///
    /// # Errors
    ///
    /// As [`write_plaintext`](Self::write_plaintext).
    fn write_plaintext_vectored(
        &mut self,
        bufs: &[std::io::IoSlice<'_>],
        out: &mut Output,
    ) -> Result<usize, Error> {
        self.write_plaintext(&gather(bufs, crate::wire::MAX_FRAGMENT), out)
    }

    /// Appends all pending ciphertext to `out`.
    fn take_ciphertext(&mut self, out: &mut Output);

    /// Whether ciphertext is waiting to be taken.
    fn has_ciphertext(&self) -> bool;

    /// Queues a `close_notify` alert.
    fn send_close_notify(&mut self);

    /// Ends the connection with the fatal alert `alert` (by its code), when the engine can
    /// send one of its own choosing: returns the failure the session then reports, or
    /// `None` when it cannot (the session closes with `close_notify` instead).
    fn abort(&mut self, alert: u8) -> Option<Error> {
        let _ = alert;
        None
    }

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

    /// The negotiated cipher suite, once known.
    fn cipher_suite(&self) -> Option<CipherSuite>;

    /// The negotiated ALPN protocol, if any.
    fn alpn_protocol(&self) -> Option<Vec<u8>>;

    /// Whether the handshake resumed an earlier session (`None` until it is over).
    fn is_resumed(&self) -> Option<bool>;

    /// Fills `out` with keying material exported from the connection (RFC 5705, RFC 8446
    /// section 7.5) for `label` and `context`, once the handshake is over. The default says
    /// the engine cannot.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] where the engine cannot; [`Error::Protocol`] before the
    /// handshake is over or for an empty `out`.
    fn export_keying_material(
        &self,
        out: &mut [u8],
        label: &str,
        context: Option<&[u8]>,
    ) -> Result<(), Error> {
        let _ = (out, label, context);
        Err(Error::Unsupported {
            reason: "this engine does not export keying material".into(),
        })
    }

    /// The server name: the one this client asked for, or the one this server was asked for.
    fn server_name(&self) -> Option<String>;

    /// The peer's certificate chain (DER, end-entity first), once known.
    fn peer_certificates(&self) -> Option<Vec<Vec<u8>>>;

    /// Whether this engine is the client side.
    fn is_client(&self) -> bool;

    /// The rustls engine itself, for what the session asks of it alone (lending a split
    /// stream's read half the receiving direction).
    #[doc(hidden)]
    fn as_rustls_mut(&mut self) -> Option<&mut RustlsEngine> {
        None
    }
}

/// The first `limit` bytes of the concatenation of `bufs`: the first slice itself when it
/// holds them all, else a copy.
pub(crate) fn gather<'b>(
    bufs: &'b [std::io::IoSlice<'_>],
    limit: usize,
) -> std::borrow::Cow<'b, [u8]> {
    let total: usize = bufs.iter().map(|b| b.len()).sum();
    let wanted = total.min(limit);
    match bufs.iter().find(|b| !b.is_empty()) {
        None => std::borrow::Cow::Borrowed(&[]),
        Some(first) if first.len() >= wanted => std::borrow::Cow::Borrowed(&first[..wanted]),
        Some(_) => {
            let mut gathered = Vec::with_capacity(wanted);
            for buf in bufs {
                let take = buf.len().min(wanted - gathered.len());
                gathered.extend_from_slice(&buf[..take]);
            }
            std::borrow::Cow::Owned(gathered)
        }
    }
}
