//! The pump that runs rustls's unbuffered state machine over the engine's input buffer:
//! one pass per operation (process input, open records into a reader's buffer, seal, close,
//! key update), record by record while the connection may still move to tlsflow's record
//! layer.

use std::num::NonZeroUsize;

use rustls::unbuffered::{
    ConnectionState, EncodeError, EncryptError, InsufficientSizeError, WriteTraffic,
};

use super::{Conn, RustlsEngine, RECORD_OVERHEAD};
use crate::buf::Output;
use crate::wire::content::APPLICATION_DATA;
use crate::wire::{MAX_FRAGMENT, RECORD_HEADER};
use crate::Error;

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
pub(super) enum Flow {
    Continue,
    Done(usize),
}

/// The engine's state, apart from the connection and its input buffer.
#[derive(Default)]
pub(super) struct Buffers {
    /// Handshake messages and alerts, encoded and waiting to be taken.
    pub(super) out: Vec<u8>,
    /// Plaintext taken out of rustls and not read yet (the rest of a record larger than the
    /// reader's buffer, or records moved aside so that a write could proceed).
    pub(super) staging: Vec<u8>,
    pub(super) staging_start: usize,
    /// Length of the decrypted record rustls holds (at most one at a time).
    pub(super) record_pending: usize,
    pub(super) peer_closed: bool,
    /// The last pass ended with rustls ready to send application data.
    pub(super) at_rest: bool,
    pub(super) sent_close: bool,
    /// rustls has encoded handshake messages to send (for a server: its first flight).
    pub(super) spoken: bool,
    /// While the connection may move to tlsflow's record layer, rustls is given one record
    /// at a time, so that it never sees a record sent after the handshake (it would answer
    /// a key update request only with its next write, and that answer would be lost in the
    /// move). `seen` bytes at the front of the input buffer are rustls's already...
    pub(super) seen: usize,
    /// ...and rustls asked for more (it has nothing of its own to emit first).
    pub(super) waits: bool,
}

impl RustlsEngine {
    /// Runs rustls's state machine until `op` is done or needs more input.
    pub(super) fn pass(&mut self, mut op: Op<'_>) -> Result<usize, Error> {
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

    pub(super) fn run(&mut self, op: &mut Op<'_>) -> Result<usize, Error> {
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

    /// Lets rustls process buffered input.
    pub(super) fn pass_input(&mut self) -> Result<(), Error> {
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

    pub(super) fn staged(&self) -> usize {
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

/// Whether a failed decryption under `suite` leaves zeros where the ciphertext was, which
/// [`skipped`] relies on: aws-lc-rs's suites, whose AEAD clears its output on failure.
fn zeroes_failures(suite: rustls::SupportedCipherSuite) -> bool {
    #[cfg(feature = "aws-lc-rs")]
    return crate::engine::tls13::implements(suite);
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
    let Some((&[APPLICATION_DATA, ..], body)) = record.split_at_checked(RECORD_HEADER) else {
        return false;
    };
    body.len() > TAG && body[..body.len() - TAG].iter().all(|&b| b == 0)
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
