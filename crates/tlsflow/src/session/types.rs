//! The values a session reports and takes: its limits, state, interest in I/O, the outcome
//! of a read, and its byte counts.

/// Upper bounds on what a [`Session`](super::Session) buffers in each direction.
///
/// - `send`: ciphertext waiting for the transport. The session accepts new plaintext only
///   while less than `send` bytes of ciphertext are queued, and never more than the space that
///   remains, so queued ciphertext stays under `send` plus the per-record overhead of what was
///   sealed (under 1%), plus at most one handshake flight and alerts, which are not
///   application data. Ciphertext the session queues on its own after the handshake, in
///   answer to what the peer sent (key update replies, alerts, OpenSSL's answers), counts
///   against `send` too: while more than `send` bytes of such answers wait for the transport
///   (at least one full record's worth), the session takes no more input until the transport
///   has taken them. A peer that sends requests and never reads what we answer therefore
///   fills its own socket, not our memory. Answers stay a few bytes for an honest peer:
///   tlsflow answers any number of key update requests with one key update, sent before its
///   next application data (RFC 8446, 4.6.3; rustls's record layer does the same, OpenSSL
///   answers each request at once).
/// - `receive`: ciphertext read from the transport and not yet processed. It sits in the
///   engine's input buffer (the rustls engine decrypts records in place there). On top of it
///   an engine holds at most one record of decrypted plaintext (16 KiB), and the OpenSSL
///   engine one record of input inside OpenSSL. While a handshake message may arrive in
///   fragments, the rustls engine raises the input buffer to 72 KiB, the largest handshake
///   message plus its record framing; after the handshake it joins a fragmented
///   post-handshake message (a session ticket) in a buffer of its own, at most 64 KiB and
///   one record.
///
/// Both buffers are allocated when traffic flows and given back when the connection waits
/// with nothing buffered (an async or non-blocking read that finds no data): an idle
/// connection holds only its TLS state.
///
/// A slow or malicious peer therefore cannot make a session grow: when the send queue is full
/// writes return `WouldBlock`, when plaintext is not being read the session stops reading
/// the transport, and when answers to the peer pile up unsent it stops reading until they
/// leave ([`Interest`] then asks for writing only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of ciphertext queued for sending before writes stop accepting plaintext.
    pub send: usize,
    /// Bytes of received ciphertext buffered ahead of the engine. Raised to at least one full
    /// record ([`MAX_RECORD_WIRE_SIZE`](super::MAX_RECORD_WIRE_SIZE)) so a record always fits.
    pub receive: usize,
}

impl Default for Limits {
    /// 256 KiB to send (sixteen full records: a bulk write is sealed and handed to the
    /// transport in one piece), 264 KiB to receive (sixteen full records as sent, so that one
    /// read can take a whole burst). Both are bounds, not allocations: the send queue holds
    /// what is queued, and the receive buffer starts at 72 KiB and grows toward the limit
    /// only while reads fill it.
    fn default() -> Self {
        Limits {
            send: 256 * 1024,
            receive: 264 * 1024,
        }
    }
}

/// The connection state of a [`Session`](super::Session).
///
/// ```text
///                  handshake done
///   Handshaking ───────────────────▶ Open ──── close_write() ────▶ WriteClosed
///        │                            │                                 │
///        │                  peer's close_notify               peer's close_notify
///        │                            ▼                                 ▼
///        │                        ReadClosed ──── close_write() ────▶ Closed
///        │
///        └─────── any state: TLS error, transport failure ───────▶ Failed (sticky)
/// ```
///
/// `close_write()` during the handshake waits for the handshake to finish: the handshake must
/// complete before a `close_notify` can be sent under the negotiated keys.
///
/// A TLS failure queues the alert that tells the peer why; drivers send it before they
/// report the error. A failure of the transport's write side alone
/// ([`Session::fail_send`](super::Session::fail_send)) ends writing at once, while reads go
/// on through what the peer sent before it, so that the peer's alert is reported rather
/// than a broken pipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// The handshake is in progress; no application data moves yet.
    Handshaking,
    /// Application data moves both ways.
    Open,
    /// This side sent `close_notify`; the peer may still send data (half-close).
    WriteClosed,
    /// The peer sent `close_notify`; this side may still send data.
    ReadClosed,
    /// Both sides sent `close_notify`.
    Closed,
    /// A fatal error happened; every operation returns it (after a failure of the
    /// transport's write side alone, reads first deliver what the peer sent before it).
    Failed,
}

/// What the transport must do for a session to make progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Interest {
    /// The transport should be read: the session needs ciphertext.
    pub read: bool,
    /// The transport should be written: ciphertext is queued.
    pub write: bool,
}

/// The outcome of [`Session::read_plaintext`](super::Session::read_plaintext).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadOutcome {
    /// This many plaintext bytes were copied out (at least one).
    Data(usize),
    /// More ciphertext is needed from the transport.
    NeedInput,
    /// Answers to the peer (key update replies and the like) fill the send queue: the
    /// transport must take them before the session takes more input (see [`Limits`]).
    NeedOutput,
    /// The peer closed cleanly (`close_notify`), or the transport ended and the lenient
    /// end-of-file policy is on.
    Closed,
}

/// Byte counters of a session, for observation and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// Plaintext bytes accepted from the application.
    pub plaintext_accepted: u64,
    /// Plaintext bytes delivered to the application.
    pub plaintext_delivered: u64,
    /// Ciphertext bytes the transport reported as taken.
    pub ciphertext_sent: u64,
    /// Ciphertext bytes received from the transport.
    pub ciphertext_received: u64,
}

/// Bytes a session holds right now, by buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Buffered {
    /// Ciphertext queued for the transport.
    pub outgoing_ciphertext: usize,
    /// Received ciphertext not yet taken by the engine.
    pub incoming_ciphertext: usize,
    /// Decrypted plaintext waiting to be read.
    pub incoming_plaintext: usize,
}
