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

use std::num::NonZeroUsize;
use std::sync::Arc;

use rustls::client::UnbufferedClientConnection;
use rustls::pki_types::ServerName;
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncryptError, InsufficientSizeError, WriteTraffic,
};

use super::{Engine, Output, PlainRead, ProtocolVersion};
use crate::buf::Inbox;
use crate::wire::MAX_FRAGMENT;
use crate::Error;

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

/// What a pass over rustls's state machine is for.
enum Op<'a> {
    /// Process received ciphertext, up to the first record of application data.
    Input,
    /// Open records into this buffer (the count filled so far), as many as fit.
    Read(&'a mut [u8], usize),
    /// Seal this plaintext into this output buffer.
    Seal(&'a [u8], &'a mut Output),
    /// Seal a `close_notify` alert.
    CloseNotify,
    /// Ask for a TLS 1.3 key update.
    KeyUpdate,
    /// Only emit what rustls has queued (after a failure, or a key update request).
    Flush,
}

/// What the pass did.
enum Flow {
    Continue,
    Done(usize),
}

/// The engine's state, apart from the connection and its input buffer.
#[derive(Default)]
struct Buffers {
    /// Handshake messages and alerts, encoded and waiting to be taken.
    out: Vec<u8>,
    /// Plaintext taken out of rustls and not read yet (the rest of a record larger than the
    /// reader's buffer, or records moved aside so that a write could proceed).
    staging: Vec<u8>,
    staging_start: usize,
    /// Length of the decrypted record rustls holds (at most one at a time).
    record_pending: usize,
    peer_closed: bool,
    /// The last pass ended with rustls ready to send application data.
    at_rest: bool,
    sent_close: bool,
    /// rustls has encoded handshake messages to send (for a server: its first flight).
    spoken: bool,
    /// While the connection may move to tlsflow's record layer, rustls is given one record
    /// at a time, so that it never sees a record sent after the handshake (it would answer
    /// a key update request only with its next write, and that answer would be lost in the
    /// move). `seen` bytes at the front of the input buffer are rustls's already...
    seen: usize,
    /// ...and rustls asked for more (it has nothing of its own to emit first).
    waits: bool,
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

    /// Runs rustls's state machine until `op` is done or needs more input.
    fn pass(&mut self, mut op: Op<'_>) -> Result<usize, Error> {
        if let Some(err) = &self.failure {
            return Err(err.clone());
        }
        let result = self.run(&mut op);
        let filled = match op {
            Op::Read(_, filled) => filled,
            _ => 0,
        };
        match result {
            Ok(n) => {
                #[cfg(feature = "aws-lc-rs")]
                self.hand_over();
                Ok(n.max(filled))
            }
            Err(err) => {
                self.failure = Some(err.clone());
                // rustls queues an alert for the peer; plaintext it authenticated before the
                // failure stays readable, and the error comes after it.
                let _ = self.run(&mut Op::Flush);
                if filled > 0 {
                    Ok(filled)
                } else {
                    Err(err)
                }
            }
        }
    }

    fn run(&mut self, op: &mut Op<'_>) -> Result<usize, Error> {
        let RustlsEngine {
            conn,
            inbox,
            bufs,
            hand_over,
            ..
        } = self;
        bufs.at_rest = false;
        // Each pass consumes input or reaches a state that ends it; the bound only guards
        // against a state machine that stops doing either.
        for _ in 0..1_000_000 {
            let version = match conn {
                Conn::Client(c) => c.protocol_version(),
                Conn::Server(s) => s.protocol_version(),
                #[cfg(feature = "aws-lc-rs")]
                _ => return Err(Error::protocol("rustls no longer runs this connection")),
            };
            let one_by_one = *hand_over && version != Some(rustls::ProtocolVersion::TLSv1_2);
            let next = whole_record(inbox.data().get(bufs.seen..).unwrap_or_default());
            let extends = one_by_one && bufs.waits && next > 0;
            let end = if !one_by_one {
                bufs.seen = 0;
                inbox.len()
            } else if extends {
                bufs.seen + next
            } else if next > 0 {
                bufs.seen
            } else {
                // No whole record to come: rustls may still check the header of a partial one.
                inbox.len()
            };
            let input = &mut inbox.data_mut()[..end];
            let (discard, flow) = match conn {
                Conn::Client(c) => {
                    let status = c.process_tls_records(input);
                    (status.discard, step(status.state, bufs, op))
                }
                Conn::Server(s) => {
                    let status = s.process_tls_records(input);
                    (status.discard, step(status.state, bufs, op))
                }
                #[cfg(feature = "aws-lc-rs")]
                _ => unreachable!("matched above"),
            };
            inbox.consume(discard);
            if one_by_one {
                // rustls, having asked for more, reads the record it was given first.
                if extends {
                    bufs.seen += next;
                }
                bufs.seen = match bufs.seen.checked_sub(discard) {
                    Some(seen) => seen,
                    None => {
                        // rustls took more than it was given to read: stay with it.
                        *hand_over = false;
                        0
                    }
                };
            }
            let handshaking = match conn {
                Conn::Client(c) => c.is_handshaking(),
                Conn::Server(s) => s.is_handshaking(),
                #[cfg(feature = "aws-lc-rs")]
                _ => unreachable!("matched above"),
            };
            let zeroes_failures = match conn {
                Conn::Server(s) => s.negotiated_cipher_suite().is_some_and(zeroes_failures),
                _ => false,
            };
            if extends
                && bufs.seen == next
                && handshaking
                && zeroes_failures
                && bufs.spoken
                && skipped(inbox.data().get(..next).unwrap_or_default())
            {
                // The server skipped the record as early data it declines (the client tried
                // 0-RTT; tlsflow never accepts it). rustls charges a skipped record against
                // its budget of 16 KiB each time it is presented, so it is dropped here, once
                // charged: presented one at a time, records would otherwise be charged
                // again and again.
                inbox.consume(next);
                bufs.seen = 0;
            }
            match flow? {
                Flow::Continue => {}
                // More of the handshake has arrived: give rustls the next record.
                Flow::Done(_)
                    if one_by_one
                        && handshaking
                        && bufs.waits
                        && whole_record(inbox.data().get(bufs.seen..).unwrap_or_default()) > 0 => {}
                Flow::Done(n) => return Ok(n),
            }
        }
        Err(Error::protocol("rustls made no progress"))
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

    /// Lets rustls process buffered input.
    fn pass_input(&mut self) -> Result<(), Error> {
        let before = self.inbox.len();
        self.pass(Op::Input)?;
        // A full buffer that yields nothing holds part of a message larger than the buffer
        // (a fragmented handshake message): waiting for more could never help.
        if self.common().is_some()
            && before >= self.input_capacity
            && self.inbox.len() == before
            && self.bufs.record_pending == 0
            && self.staged() == 0
        {
            let err = Error::protocol(
                "peer overran the TLS buffers: a handshake message larger than the receive buffer",
            );
            self.failure = Some(err.clone());
            return Err(err);
        }
        Ok(())
    }

    fn staged(&self) -> usize {
        self.bufs.staging.len() - self.bufs.staging_start
    }
}

/// Handles one state of rustls's state machine.
fn step<Data>(
    state: Result<ConnectionState<'_, '_, Data>, rustls::Error>,
    bufs: &mut Buffers,
    op: &mut Op<'_>,
) -> Result<Flow, Error> {
    match state.map_err(Error::from)? {
        ConnectionState::ReadTraffic(mut traffic) => {
            let full = match op {
                Op::Input => true,
                Op::Read(buf, filled) => *filled == buf.len(),
                _ => false,
            };
            if full {
                // Leave the record with rustls until a read has room for it.
                if let Some(len) = traffic.peek_len() {
                    bufs.record_pending = NonZeroUsize::get(len);
                    return Ok(Flow::Done(0));
                }
            }
            let mut split = false;
            while let Some(record) = traffic.next_record() {
                let payload = record.map_err(Error::from)?.payload;
                let direct = match op {
                    Op::Read(buf, filled) => {
                        let n = payload.len().min(buf.len() - *filled);
                        buf[*filled..*filled + n].copy_from_slice(&payload[..n]);
                        *filled += n;
                        n
                    }
                    _ => 0,
                };
                if direct < payload.len() {
                    if bufs.staging_start == bufs.staging.len() {
                        bufs.staging.clear();
                        bufs.staging_start = 0;
                    }
                    bufs.staging.extend_from_slice(&payload[direct..]);
                    split = true;
                }
            }
            bufs.record_pending = 0;
            // A read goes on opening records while its buffer has room.
            Ok(match op {
                Op::Read(..) if split => Flow::Done(0),
                _ => Flow::Continue,
            })
        }
        ConnectionState::EncodeTlsData(mut encode) => {
            bufs.waits = false;
            bufs.spoken = true;
            let start = bufs.out.len();
            let mut need = 4096;
            loop {
                bufs.out.resize(start + need, 0);
                match encode.encode(&mut bufs.out[start..]) {
                    Ok(n) => {
                        bufs.out.truncate(start + n);
                        break;
                    }
                    Err(EncodeError::InsufficientSize(InsufficientSizeError { required_size }))
                        if required_size > need =>
                    {
                        need = required_size
                    }
                    Err(e) => {
                        bufs.out.truncate(start);
                        return Err(Error::protocol(format!("cannot encode a TLS message: {e}")));
                    }
                }
            }
            Ok(Flow::Continue)
        }
        // Encoded messages are in `out`, which the session sends in order before anything
        // sealed later: for rustls they count as transmitted.
        ConnectionState::TransmitTlsData(transmit) => {
            bufs.waits = false;
            transmit.done();
            Ok(Flow::Continue)
        }
        ConnectionState::BlockedHandshake => {
            bufs.waits = true;
            match op {
                Op::KeyUpdate => Err(Error::config(
                    "key update not possible: the handshake is not complete",
                )),
                _ => Ok(Flow::Done(0)),
            }
        }
        ConnectionState::WriteTraffic(mut traffic) => match op {
            Op::Input | Op::Read(..) | Op::Flush => {
                bufs.waits = true;
                bufs.at_rest = true;
                Ok(Flow::Done(0))
            }
            Op::Seal(data, out) => {
                out.extend_from_slice(&bufs.out);
                bufs.out.clear();
                seal(&mut traffic, data, out)?;
                bufs.waits = true;
                bufs.at_rest = true;
                Ok(Flow::Done(data.len()))
            }
            Op::CloseNotify => {
                let start = bufs.out.len();
                bufs.out.resize(start + 256, 0);
                bufs.sent_close = true;
                bufs.waits = true;
                match traffic.queue_close_notify(&mut bufs.out[start..]) {
                    Ok(n) => bufs.out.truncate(start + n),
                    Err(e) => {
                        bufs.out.truncate(start);
                        return Err(Error::protocol(format!("cannot seal close_notify: {e}")));
                    }
                }
                Ok(Flow::Done(0))
            }
            Op::KeyUpdate => {
                traffic
                    .refresh_traffic_keys()
                    .map_err(|e| Error::config(format!("key update not possible: {e}")))?;
                // The next pass encodes the KeyUpdate message.
                bufs.waits = false;
                *op = Op::Flush;
                Ok(Flow::Continue)
            }
        },
        ConnectionState::PeerClosed => {
            bufs.peer_closed = true;
            Ok(Flow::Continue)
        }
        ConnectionState::Closed => {
            bufs.peer_closed = true;
            match op {
                Op::Seal(..) => Err(Error::WriteAfterShutdown),
                _ => Ok(Flow::Done(0)),
            }
        }
        ConnectionState::ReadEarlyData(_) => Err(Error::protocol(
            "the peer sent 0-RTT early data, which this stream does not accept",
        )),
        other => Err(Error::protocol(format!(
            "unexpected rustls connection state {other:?}"
        ))),
    }
}

/// Seals all of `data` into records appended to `out`.
fn seal<Data>(
    traffic: &mut WriteTraffic<'_, Data>,
    data: &[u8],
    out: &mut Output,
) -> Result<(), Error> {
    let mut need = data.len() + (data.len() / MAX_FRAGMENT + 1) * RECORD_OVERHEAD;
    loop {
        match traffic.encrypt(data, out.spare(need)) {
            Ok(n) => {
                out.commit(n);
                return Ok(());
            }
            Err(EncryptError::InsufficientSize(InsufficientSizeError { required_size }))
                if required_size > need =>
            {
                need = required_size;
            }
            Err(e) => {
                return Err(Error::protocol(format!(
                    "cannot seal application data: {e}"
                )))
            }
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

/// Whether a failed decryption under `suite` leaves zeros where the ciphertext was, which
/// [`skipped`] relies on: aws-lc-rs's suites, whose AEAD clears its output on failure.
fn zeroes_failures(suite: rustls::SupportedCipherSuite) -> bool {
    #[cfg(feature = "aws-lc-rs")]
    return super::tls13::implements(suite);
    #[cfg(not(feature = "aws-lc-rs"))]
    {
        let _ = suite;
        false
    }
}

/// Whether `record` (whole, header included), given to rustls alone with nothing of rustls's
/// own before it, was skipped rather than kept: aws-lc-rs clears what it decrypted when
/// authentication fails, so the ciphertext of a record that failed trial decryption reads
/// as zeros, while a record rustls decrypted and keeps (the first part of a fragmented
/// message) holds its non-zero content type there.
fn skipped(record: &[u8]) -> bool {
    const TAG: usize = 16;
    // Early data is protected (outer type application_data), and a record that could not
    // hold a tag was never decrypted: rustls may be keeping it as the start of a message.
    let Some((&[23, ..], body)) = record.split_at_checked(5) else {
        return false;
    };
    body.len() > TAG && body[..body.len() - TAG].iter().all(|&b| b == 0)
}

/// The size of the TLS record at the front of `data` (header included) once all of it has
/// arrived; 0 before.
fn whole_record(data: &[u8]) -> usize {
    match data.get(..5) {
        Some(header) => {
            let size = 5 + usize::from(u16::from_be_bytes([header[3], header[4]]));
            if data.len() >= size {
                size
            } else {
                0
            }
        }
        None => 0,
    }
}

/// The host name a ClientHello asks for (its `server_name` extension), read from the first
/// record of the client's first flight.
///
/// `None` while that record is incomplete; `Some(None)` when the ClientHello has no host name
/// or is not one this parser understands (rustls itself then decides what to do with it).
fn client_hello_sni(data: &[u8]) -> Option<Option<String>> {
    let header = data.get(..5)?;
    let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
    let record = data.get(5..5 + len)?;
    if header[0] != 22 {
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

#[cfg(test)]
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
