//! The handshake phase, and the traffic phase of connections tlsflow's record layer does not
//! take: rustls's unbuffered state machine, run over the engine's input buffer one pass per
//! operation (process input, open records into a reader's buffer, seal, close, key update),
//! record by record while the connection may still move to tlsflow's record layer.

use std::num::NonZeroUsize;
use std::sync::Arc;

use rustls::client::UnbufferedClientConnection;
use rustls::pki_types::ServerName;
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncryptError, InsufficientSizeError, WriteTraffic,
};
use rustls::SupportedCipherSuite;

use super::{implemented, Held, PlainRead, Records, Shared, RECORD_OVERHEAD};
use crate::buf::Output;
use crate::wire::content::APPLICATION_DATA;
use crate::wire::{MAX_FRAGMENT, RECORD_HEADER};
use crate::Error;

/// rustls's connection, client or server.
pub(super) enum Conn {
    Client(Box<UnbufferedClientConnection>),
    Server(Box<UnbufferedServerConnection>),
}

impl Conn {
    fn common(&self) -> &rustls::CommonState {
        match self {
            Conn::Client(c) => c,
            Conn::Server(s) => s,
        }
    }
}

/// What a pass over rustls's state machine is for.
pub(super) enum Op<'a> {
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

/// Where rustls's state machine stands, as the passes saw it.
struct Buffers {
    /// Length of the decrypted record rustls holds (at most one at a time).
    record_pending: usize,
    peer_closed: bool,
    /// The last pass ended with rustls ready to send application data.
    at_rest: bool,
    sent_close: bool,
    /// rustls has encoded handshake messages to send (for a server: its first flight).
    spoken: bool,
    /// rustls is given one record at a time (`seen` and `waits` below), unless it once took
    /// more than it was given. While the connection may move to tlsflow's record layer, this
    /// keeps rustls from seeing a record sent after the handshake (it would answer a key
    /// update request only with its next write, and that answer would be lost in the
    /// move); a TLS 1.3 server needs it to charge declined early data once; and a write,
    /// which must first move aside the plaintext rustls has opened, moves aside at most one
    /// record, whatever else has arrived.
    whole: bool,
    /// `seen` bytes at the front of the input buffer are rustls's already...
    seen: usize,
    /// ...and rustls asked for more (it has nothing of its own to emit first).
    waits: bool,
}

/// A connection run by rustls's unbuffered API.
pub(super) struct Unbuffered {
    conn: Conn,
    bufs: Buffers,
    /// Whether the connection may still move to tlsflow's record layer.
    hand_over: bool,
    /// The configuration's `max_fragment_size`.
    #[cfg_attr(not(feature = "aws-lc-rs"), allow(dead_code))]
    max_record: Option<usize>,
}

impl Unbuffered {
    /// A client connection to `server_name`, its ClientHello encoded into `shared`.
    pub(super) fn client(
        config: Arc<rustls::ClientConfig>,
        server_name: &str,
        shared: &mut Shared,
    ) -> Result<Self, Error> {
        let name = ServerName::try_from(server_name.to_owned())
            .map_err(|_| Error::config(format!("invalid server name {server_name:?}")))?;
        let hand_over = config.enable_secret_extraction && ours(config.crypto_provider());
        let max_record = config.max_fragment_size;
        let conn = UnbufferedClientConnection::new(config, name).map_err(Error::from)?;
        let mut unbuffered = Unbuffered::new(Conn::Client(Box::new(conn)), hand_over, max_record);
        // The client speaks first: encode the ClientHello now.
        unbuffered.pass(shared, Op::Flush)?;
        Ok(unbuffered)
    }

    /// A server connection.
    pub(super) fn server(config: Arc<rustls::ServerConfig>) -> Result<Self, Error> {
        let hand_over = config.enable_secret_extraction && ours(config.crypto_provider());
        let max_record = config.max_fragment_size;
        let conn = UnbufferedServerConnection::new(config).map_err(Error::from)?;
        Ok(Unbuffered::new(
            Conn::Server(Box::new(conn)),
            hand_over,
            max_record,
        ))
    }

    fn new(conn: Conn, hand_over: bool, max_record: Option<usize>) -> Self {
        Unbuffered {
            conn,
            bufs: Buffers {
                record_pending: 0,
                peer_closed: false,
                at_rest: false,
                sent_close: false,
                spoken: false,
                whole: true,
                seen: 0,
                waits: true,
            },
            hand_over,
            max_record,
        }
    }

    pub(super) fn is_server(&self) -> bool {
        matches!(self.conn, Conn::Server(_))
    }

    /// Whether rustls can hand the connection over to tlsflow's record layer now: a TLS 1.3
    /// handshake is over with a suite the record layer implements, rustls is ready to send
    /// application data and holds nothing (no decrypted record, no part of a handshake
    /// message: what rustls has worked on stays at the front of the input buffer until it is
    /// complete, so the front must not hold a complete record). Once the handshake is over
    /// and it cannot, it never will: rustls runs the records from then on.
    pub(super) fn ready(&mut self, shared: &Shared) -> bool {
        let common = self.conn.common();
        let ready = self.hand_over
            && self.bufs.at_rest
            && self.bufs.record_pending == 0
            && self.bufs.seen == 0
            && !self.bufs.peer_closed
            && !self.bufs.sent_close
            && shared.failure.is_none()
            && !common.is_handshaking()
            && common.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3)
            && common.negotiated_cipher_suite().is_some_and(implemented);
        if !ready && !common.is_handshaking() {
            self.hand_over = false;
        }
        ready
    }

    /// Whether the connection may still move to tlsflow's record layer.
    pub(super) fn may_hand_over(&self) -> bool {
        self.hand_over
    }

    /// Gives up the connection: rustls's state and the configured record size.
    #[cfg(feature = "aws-lc-rs")]
    pub(super) fn into_parts(self) -> (Conn, Option<usize>) {
        (self.conn, self.max_record)
    }

    /// Runs rustls's state machine until `op` is done or needs more input.
    pub(super) fn pass(&mut self, shared: &mut Shared, mut op: Op<'_>) -> Result<usize, Error> {
        if let Some(err) = &shared.failure {
            return Err(err.clone());
        }
        let result = self.run(shared, &mut op);
        let filled = match op {
            Op::Read(_, filled) => filled,
            _ => 0,
        };
        match result {
            Ok(n) => Ok(n.max(filled)),
            Err(err) => {
                shared.failure = Some(err.clone());
                // rustls queues an alert for the peer; plaintext it authenticated before the
                // failure stays readable, and the error comes after it.
                let _ = self.run(shared, &mut Op::Flush);
                if filled > 0 {
                    Ok(filled)
                } else {
                    Err(err)
                }
            }
        }
    }

    fn run(&mut self, shared: &mut Shared, op: &mut Op<'_>) -> Result<usize, Error> {
        let Unbuffered {
            conn,
            bufs,
            hand_over,
            ..
        } = self;
        let Shared { inbox, held, .. } = shared;
        bufs.at_rest = false;
        // Each pass consumes input or reaches a state that ends it; the bound only guards
        // against a state machine that stops doing either.
        for _ in 0..1_000_000 {
            let one_by_one = bufs.whole;
            let next = whole_record(inbox.data().get(bufs.seen..).unwrap_or_default());
            // A write (or a close, or a key update) that finds plaintext opened and not read
            // takes no new record: it would have to move that one aside too. A record rustls
            // holds opened is given out before it reads another.
            let starved = !matches!(op, Op::Read(..) | Op::Input)
                && (held.staged() > 0 || bufs.record_pending > 0);
            let extends =
                one_by_one && bufs.waits && next > 0 && !starved && bufs.record_pending == 0;
            let end = if !one_by_one {
                bufs.seen = 0;
                inbox.len()
            } else if extends {
                bufs.seen + next
            } else if next > 0 || starved {
                bufs.seen
            } else {
                // No whole record to come: rustls may still check the header of a partial one.
                inbox.len()
            };
            let input = &mut inbox.data_mut()[..end];
            let (discard, flow) = match conn {
                Conn::Client(c) => {
                    let status = c.process_tls_records(input);
                    (status.discard, step(status.state, bufs, held, op))
                }
                Conn::Server(s) => {
                    let status = s.process_tls_records(input);
                    (status.discard, step(status.state, bufs, held, op))
                }
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
                        bufs.whole = false;
                        0
                    }
                };
            }
            let handshaking = conn.common().is_handshaking();
            let zeroes_failures = match conn {
                Conn::Server(s) => s.negotiated_cipher_suite().is_some_and(zeroes_failures),
                Conn::Client(_) => false,
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
                // again and again. Only the built-in providers' suites (aws-lc-rs's and
                // ring's) are known to clear a failed decryption, which `skipped` relies on.
                inbox.consume(next);
                bufs.seen = 0;
            }
            match flow? {
                Flow::Continue => {}
                // More of the handshake, or records to read, have arrived: give rustls the
                // next record.
                Flow::Done(0)
                    if one_by_one
                        && (handshaking
                            || (!*hand_over && matches!(op, Op::Read(..) | Op::Input)))
                        && bufs.waits
                        && bufs.record_pending == 0
                        && whole_record(inbox.data().get(bufs.seen..).unwrap_or_default()) > 0 => {}
                Flow::Done(n) => return Ok(n),
            }
        }
        Err(Error::protocol("rustls made no progress"))
    }
}

impl Records for Unbuffered {
    fn is_handshaking(&self) -> bool {
        self.conn.common().is_handshaking()
    }

    fn process(&mut self, shared: &mut Shared) -> Result<(), Error> {
        if self.bufs.record_pending > 0 || shared.inbox.len() == 0 {
            return Ok(());
        }
        let before = shared.inbox.len();
        self.pass(shared, Op::Input)?;
        // A full buffer that yields nothing holds part of a message larger than the buffer
        // (a fragmented handshake message): waiting for more could never help.
        if before >= shared.input_capacity
            && shared.inbox.len() == before
            && self.bufs.record_pending == 0
            && shared.held.staged() == 0
        {
            let err = Error::protocol(
                "peer overran the TLS buffers: a handshake message larger than the receive buffer",
            );
            shared.failure = Some(err.clone());
            return Err(err);
        }
        Ok(())
    }

    fn read(&mut self, shared: &mut Shared, buf: &mut [u8]) -> Result<PlainRead, Error> {
        if self.bufs.record_pending > 0 || shared.inbox.len() > 0 {
            let n = self.pass(shared, Op::Read(buf, 0))?;
            if n > 0 {
                return Ok(PlainRead::Data(n));
            }
        }
        shared.nothing_read(self.bufs.peer_closed)
    }

    fn plaintext_pending(&self, _: &Shared) -> usize {
        self.bufs.record_pending
    }

    fn write(&mut self, shared: &mut Shared, buf: &[u8], out: &mut Output) -> Result<usize, Error> {
        self.pass(shared, Op::Seal(buf, out))
    }

    fn close_notify(&mut self, shared: &mut Shared) {
        let _ = self.pass(shared, Op::CloseNotify);
    }

    fn peer_closed(&self) -> bool {
        self.bufs.peer_closed
    }

    fn refresh_keys(&mut self, shared: &mut Shared) -> Result<(), Error> {
        // A refusal (TLS 1.2, handshake not done) leaves the connection usable.
        self.run(shared, &mut Op::KeyUpdate).map(|_| ())
    }

    fn protocol_version(&self) -> Option<rustls::ProtocolVersion> {
        self.conn.common().protocol_version()
    }

    fn suite(&self) -> Option<SupportedCipherSuite> {
        self.conn.common().negotiated_cipher_suite()
    }

    fn alpn(&self) -> Option<Vec<u8>> {
        self.conn.common().alpn_protocol().map(<[u8]>::to_vec)
    }

    fn resumed(&self) -> Option<bool> {
        let kind = self.conn.common().handshake_kind()?;
        Some(kind == rustls::HandshakeKind::Resumed)
    }

    fn peer_certificates(&self) -> Option<Vec<Vec<u8>>> {
        self.conn
            .common()
            .peer_certificates()
            .map(|certs| certs.iter().map(|c| c.as_ref().to_vec()).collect())
    }
}

/// Whether tlsflow's record layer could take over connections of `provider`: it offers a
/// suite the record layer implements.
fn ours(provider: &rustls::crypto::CryptoProvider) -> bool {
    provider
        .cipher_suites
        .iter()
        .any(|suite| implemented(*suite))
}

/// Handles one state of rustls's state machine.
fn step<Data>(
    state: Result<ConnectionState<'_, '_, Data>, rustls::Error>,
    bufs: &mut Buffers,
    held: &mut Held,
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
                    if held.staging_start == held.staging.len() {
                        held.staging.clear();
                        held.staging_start = 0;
                    }
                    held.staging.extend_from_slice(&payload[direct..]);
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
            let start = held.out.len();
            let mut need = 4096;
            loop {
                held.out.resize(start + need, 0);
                match encode.encode(&mut held.out[start..]) {
                    Ok(n) => {
                        held.out.truncate(start + n);
                        break;
                    }
                    Err(EncodeError::InsufficientSize(InsufficientSizeError { required_size }))
                        if required_size > need =>
                    {
                        need = required_size
                    }
                    Err(e) => {
                        held.out.truncate(start);
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
                out.extend_from_slice(&held.out);
                held.out.clear();
                seal(&mut traffic, data, out)?;
                bufs.waits = true;
                bufs.at_rest = true;
                Ok(Flow::Done(data.len()))
            }
            Op::CloseNotify => {
                let start = held.out.len();
                held.out.resize(start + 256, 0);
                bufs.sent_close = true;
                bufs.waits = true;
                match traffic.queue_close_notify(&mut held.out[start..]) {
                    Ok(n) => held.out.truncate(start + n),
                    Err(e) => {
                        held.out.truncate(start);
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

/// Whether `record` (whole, header included), given to rustls alone with nothing of rustls's
/// own before it, was skipped rather than kept: aws-lc-rs and ring clear what they
/// decrypted when authentication fails, so the ciphertext of a record that failed trial decryption reads
/// as zeros, while a record rustls decrypted and keeps (the first part of a fragmented
/// message) holds its non-zero content type there.
fn skipped(record: &[u8]) -> bool {
    const TAG: usize = 16;
    // Early data is protected (outer type application_data), and a record that could not
    // hold a tag was never decrypted: rustls may be keeping it as the start of a message.
    let Some((&[APPLICATION_DATA, ..], body)) = record.split_at_checked(RECORD_HEADER) else {
        return false;
    };
    body.len() > TAG && body[..body.len() - TAG].iter().all(|&b| b == 0)
}

/// Whether `suite` is one of the built-in providers' (aws-lc-rs's or ring's), whose AEADs
/// overwrite the plaintext with zeros when authentication fails; see [`skipped`].
fn zeroes_failures(suite: SupportedCipherSuite) -> bool {
    #[cfg(feature = "ring")]
    {
        use rustls::crypto::ring::{
            cipher_suite as ring, ALL_CIPHER_SUITES, DEFAULT_CIPHER_SUITES,
        };
        let named = [
            ring::TLS13_AES_128_GCM_SHA256,
            ring::TLS13_AES_256_GCM_SHA384,
            ring::TLS13_CHACHA20_POLY1305_SHA256,
        ];
        if super::one_of(suite, &[&named, DEFAULT_CIPHER_SUITES, ALL_CIPHER_SUITES]) {
            return true;
        }
    }
    implemented(suite)
}

/// The size of the TLS record at the front of `data` (header included) once all of it has
/// arrived; 0 before.
fn whole_record(data: &[u8]) -> usize {
    match data.get(..RECORD_HEADER) {
        Some(header) => {
            let size = RECORD_HEADER + usize::from(u16::from_be_bytes([header[3], header[4]]));
            if data.len() >= size {
                size
            } else {
                0
            }
        }
        None => 0,
    }
}
