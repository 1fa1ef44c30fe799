//! tlsflow's TLS 1.3 record layer (RFC 8446, section 5), which the rustls engine moves to
//! once the handshake is over.
//!
//! rustls keeps what only it can do, through its [`KernelConnection`]: the key schedule (new
//! traffic secrets at a key update) and the session tickets a client receives. Records are
//! sealed and opened here, with aws-lc-rs:
//!
//! - application data is sealed straight from the caller's buffer into the send queue;
//! - a record is opened straight from the input buffer into the caller's buffer when the whole
//!   record fits there, and in place in the input buffer otherwise ([`Opening`], which a split
//!   stream's read half may hold on its own);
//! - alerts, key updates (asked for by either side, and before the cipher suite's
//!   confidentiality limit), session tickets (joined across records), and the checks of the
//!   record format that the specification requires.
//!
//! Every failure sends the peer the alert the specification names, and is final.

use std::io::IoSlice;

#[cfg(feature = "testing")]
use aws_lc_rs::aead::Aad;
use rustls::{ExtractedSecrets, SupportedCipherSuite};

use super::Output;
use crate::buf::Inbox;
use crate::wire::alert::{
    CLOSE_NOTIFY, DECODE_ERROR, FATAL, ILLEGAL_PARAMETER, INTERNAL_ERROR, UNEXPECTED_MESSAGE,
    USER_CANCELED, WARNING,
};
use crate::wire::content::{ALERT, APPLICATION_DATA, HANDSHAKE};
use crate::wire::handshake::{KEY_UPDATE, NEW_SESSION_TICKET};
use crate::wire::{alert_name, MAX_FRAGMENT, RECORD_HEADER};
use crate::Error;

mod opening;
mod protection;
#[cfg(all(test, feature = "testing"))]
mod tests;

pub(crate) use self::opening::{Control, Opening, Refusal};
use self::protection::{complete_record, Direction, Protection};
pub(crate) use self::protection::{implements, Keys};

const HEADER: usize = RECORD_HEADER;
const TAG: usize = 16;
/// The largest plaintext of one record.
const MAX_PLAINTEXT: usize = MAX_FRAGMENT;
/// The largest encrypted record body (RFC 8446, 5.2).
const MAX_CIPHERTEXT: usize = MAX_PLAINTEXT + 256;
/// Records with a body at most this long are opened as soon as they arrive: alerts, key
/// updates and session tickets are this small. Longer ones wait for a read, so that they can
/// be opened straight into the reader's buffer.
const EAGER: usize = 512;
/// The largest post-handshake message accepted (what rustls accepts too).
const MAX_HANDSHAKE: usize = 0xffff;
/// Key updates accepted in a row without application data between them.
const KEY_UPDATES_IN_A_ROW: u8 = 32;
/// `user_canceled` warnings accepted in a connection's life.
const WARNING_ALERTS: u8 = 4;

/// A failure: the error to report, and the alert that tells the peer (none when the peer
/// sent the fatal alert).
struct Fatal {
    alert: Option<u8>,
    error: Error,
}

fn fatal(alert: u8, reason: impl std::fmt::Display) -> Fatal {
    Fatal {
        alert: Some(alert),
        error: Error::protocol(format!("{reason} ({})", alert_name(alert))),
    }
}

/// What receiving finds while a read half holds the receiving direction (never, as the read
/// half is the only reader and gives it back before it reads through the session).
fn lent_out() -> Error {
    Error::protocol("the receiving direction is held by a split stream's read half")
}

/// The record layer of an established TLS 1.3 connection.
pub(super) struct Traffic {
    keys: Keys,
    seal: Protection,
    /// The receiving direction; `None` while a split stream's read half holds it.
    opening: Option<Opening>,
    /// [`Opening::data_records`] when a post-handshake message was last handled.
    data_records_seen: u64,
    /// Records sealed under one key before it is replaced (the suite's confidentiality limit).
    limit: u64,
    /// The most plaintext sealed into one record.
    max_fragment: usize,
    /// Alerts and key updates sealed here, waiting to be taken.
    control: Output,
    /// A post-handshake message received in part.
    handshake: Vec<u8>,
    key_updates_in_a_row: u8,
    /// The peer asked for a key update that is not answered yet. The answer goes out before
    /// the next application data (RFC 8446, 4.6.3), and one answers every request received
    /// until then, as rustls's own record layer does: a peer that floods us with requests
    /// costs us one KeyUpdate per write of ours, not one per request.
    answer_owed: bool,
    warnings: u8,
    peer_closed: bool,
    sent_close: bool,
}

impl Traffic {
    /// Takes over from rustls with the secrets and sequence numbers it hands over, sealing
    /// records of at most `max_record` bytes (header included, as rustls's
    /// `max_fragment_size` counts them) when given.
    pub(super) fn new(
        keys: Keys,
        secrets: &ExtractedSecrets,
        max_record: Option<usize>,
    ) -> Result<Self, Error> {
        let limit = match keys.suite() {
            SupportedCipherSuite::Tls13(suite) => suite.common.confidentiality_limit,
            #[allow(unreachable_patterns)]
            _ => return Err(Error::protocol("the record layer is for TLS 1.3 only")),
        };
        let seal = Protection::new(&secrets.tx.1, secrets.tx.0).map_err(|f| f.error)?;
        let open = Protection::new(&secrets.rx.1, secrets.rx.0).map_err(|f| f.error)?;
        Ok(Traffic {
            keys,
            seal,
            opening: Some(Opening::new(open)),
            data_records_seen: 0,
            limit,
            max_fragment: max_record.map_or(MAX_PLAINTEXT, |n| {
                n.saturating_sub(HEADER).clamp(1, MAX_PLAINTEXT)
            }),
            control: Output::default(),
            handshake: Vec::new(),
            key_updates_in_a_row: 0,
            answer_owed: false,
            warnings: 0,
            peer_closed: false,
            sent_close: false,
        })
    }

    pub(super) fn suite(&self) -> SupportedCipherSuite {
        self.keys.suite()
    }

    /// Reports a failure: queues its alert for the peer and returns the error.
    fn raise(&mut self, fatal: Fatal) -> Error {
        if let Some(alert) = fatal.alert {
            let _ = self.seal_control(ALERT, &[FATAL, alert]);
        }
        fatal.error
    }

    /// Ends the connection with the fatal alert `alert`, of this side's choosing.
    pub(super) fn abort(&mut self, alert: u8) -> Error {
        self.sent_close = true;
        self.raise(fatal(alert, "the connection was aborted"))
    }

    fn seal_control(&mut self, kind: u8, content: &[u8]) -> Result<(), Fatal> {
        let dst = self.control.spare(HEADER + content.len() + 1 + TAG);
        let n = self.seal.seal(kind, content, dst)?;
        self.control.commit(n);
        Ok(())
    }

    /// Sends a KeyUpdate under the current key, then moves to the next one. Any KeyUpdate
    /// of ours answers the peer's requests so far.
    fn update_sending_key(&mut self, request: bool) -> Result<(), Fatal> {
        self.seal_control(HANDSHAKE, &[KEY_UPDATE, 0, 0, 1, u8::from(request)])?;
        self.seal = self.keys.next(Direction::Send)?;
        self.answer_owed = false;
        Ok(())
    }

    /// Seals the concatenation of `bufs` as application data records appended to `out`,
    /// each record straight from the slices: a record within one slice is sealed from it, a
    /// record across slices is gathered into its place in `out` and sealed there.
    pub(super) fn write_vectored(
        &mut self,
        bufs: &[IoSlice<'_>],
        out: &mut Output,
    ) -> Result<(), Error> {
        if self.sent_close {
            return Err(Error::WriteAfterShutdown);
        }
        if self.answer_owed {
            self.update_sending_key(false).map_err(|f| f.error)?;
        }
        self.take_control(out);
        let mut left: usize = bufs.iter().map(|b| b.len()).sum();
        let mut slices = bufs.iter().map(|b| &**b);
        let mut current: &[u8] = &[];
        while left > 0 {
            if self.seal.seq >= self.limit {
                self.update_sending_key(false).map_err(|f| f.error)?;
                self.take_control(out);
            }
            let len = left.min(self.max_fragment);
            while current.is_empty() {
                current = slices.next().unwrap_or_default();
            }
            let dst = out.spare(HEADER + len + 1 + TAG);
            let sealed = if current.len() >= len {
                let (chunk, rest) = current.split_at(len);
                current = rest;
                self.seal.seal(APPLICATION_DATA, chunk, dst)
            } else {
                let fill = |content: &mut [u8]| {
                    let mut filled = 0;
                    while filled < len {
                        while current.is_empty() {
                            current = slices.next().unwrap_or_default();
                        }
                        let take = current.len().min(len - filled);
                        content[filled..filled + take].copy_from_slice(&current[..take]);
                        current = &current[take..];
                        filled += take;
                    }
                };
                self.seal.seal_filled(APPLICATION_DATA, len, fill, dst)
            };
            out.commit(sealed.map_err(|f| f.error)?);
            left -= len;
        }
        Ok(())
    }

    /// Seals a `close_notify` alert (once).
    pub(super) fn close_notify(&mut self) {
        if !self.sent_close {
            self.sent_close = true;
            let _ = self.seal_control(ALERT, &[WARNING, CLOSE_NOTIFY]);
        }
    }

    /// Sends a KeyUpdate that asks the peer to update its keys too.
    pub(super) fn refresh_keys(&mut self) -> Result<(), Error> {
        if self.sent_close {
            return Err(Error::config(
                "key update not possible: close_notify was sent",
            ));
        }
        self.update_sending_key(true).map_err(|f| f.error)
    }

    pub(super) fn take_control(&mut self, out: &mut Output) {
        if !self.control.is_empty() {
            out.extend_from_slice(self.control.pending());
            self.control.consume(self.control.len());
        }
    }

    pub(super) fn has_control(&self) -> bool {
        !self.control.is_empty()
    }

    pub(super) fn release_buffers(&mut self) {
        self.control.release();
        if self.handshake.is_empty() {
            self.handshake = Vec::new();
        }
    }

    pub(super) fn buffer_capacity(&self) -> usize {
        self.control.capacity() + self.handshake.capacity()
    }

    /// Bytes at the front of the input buffer that belong to an opened record.
    pub(super) fn opened(&self) -> usize {
        self.opening.as_ref().map_or(0, Opening::opened)
    }

    pub(super) fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    /// Opened (authenticated) plaintext waiting to be read.
    pub(super) fn opened_plaintext(&self) -> usize {
        self.opening.as_ref().map_or(0, Opening::plain)
    }

    /// Opened plaintext waiting to be read, or else an upper bound for the record at the
    /// front of the input buffer, which is opened when read.
    pub(super) fn plaintext_pending(&self, inbox: &Inbox) -> usize {
        match &self.opening {
            Some(opening) if !self.peer_closed => opening.plaintext_pending(inbox),
            Some(opening) => opening.plain(),
            None => 0,
        }
    }

    /// The receiving direction, for a read half to open application data on its own: only
    /// between records of application data (no post-handshake message in part, the peer not
    /// closed). [`give_back`](Self::give_back) returns it.
    pub(super) fn lend(&mut self) -> Option<Opening> {
        if self.peer_closed || !self.handshake.is_empty() {
            return None;
        }
        self.opening.take()
    }

    /// Takes the receiving direction back, with what ended the read half's run: a record
    /// that is not application data (handled here now, as if opened here), or a refusal
    /// (raised here now). Then opens what `inbox` holds as far as
    /// [`process`](Self::process) does.
    ///
    /// # Errors
    ///
    /// The failure the record or the refusal is, with its alert queued for the peer.
    pub(super) fn give_back(
        &mut self,
        opening: Opening,
        ended: Option<Result<Control, Refusal>>,
        inbox: &mut Inbox,
    ) -> Result<(), Error> {
        self.opening = Some(opening);
        match ended {
            None => {}
            Some(Ok(control)) => self.handle(control)?,
            Some(Err(Refusal(f))) => return Err(self.raise(f)),
        }
        self.process(inbox)
    }

    /// Opens the small records at the front of the input buffer (alerts, key updates,
    /// tickets, small application data), up to the first application data.
    pub(super) fn process(&mut self, inbox: &mut Inbox) -> Result<(), Error> {
        while !self.peer_closed {
            let data_allowed = self.handshake.is_empty();
            let opening = self.opening.as_mut().ok_or_else(lent_out)?;
            if opening.plain() > 0 {
                break;
            }
            let opened = match complete_record(inbox.data()) {
                Ok(Some(len)) if len <= EAGER => opening.open_in_place(inbox, len, data_allowed),
                Ok(_) => break,
                Err(f) => return Err(self.raise(f)),
            };
            match opened {
                Ok(None) => {}
                Ok(Some(control)) => self.handle(control)?,
                Err(Refusal(f)) => return Err(self.raise(f)),
            }
        }
        Ok(())
    }

    /// Reads plaintext into `buf[*filled..]`, opening as many records as fit.
    pub(super) fn read(
        &mut self,
        inbox: &mut Inbox,
        buf: &mut [u8],
        filled: &mut usize,
    ) -> Result<(), Error> {
        while !self.peer_closed {
            let data_allowed = self.handshake.is_empty();
            let opening = self.opening.as_mut().ok_or_else(lent_out)?;
            match opening.read(inbox, buf, filled, data_allowed) {
                Ok(None) => return Ok(()),
                Ok(Some(control)) => self.handle(control)?,
                Err(Refusal(f)) => return Err(self.raise(f)),
            }
        }
        Ok(())
    }

    fn opening(&mut self) -> Result<&mut Opening, Fatal> {
        self.opening.as_mut().ok_or_else(|| Fatal {
            alert: Some(INTERNAL_ERROR),
            error: lent_out(),
        })
    }

    /// Handles an opened record that is not application data (raising its failure).
    fn handle(&mut self, control: Control) -> Result<(), Error> {
        let records = self.opening.as_ref().map_or(0, |o| o.data_records);
        if records != self.data_records_seen {
            // Application data came between this and the last post-handshake message.
            self.data_records_seen = records;
            self.key_updates_in_a_row = 0;
        }
        self.control(control.kind, &control.content)
            .map_err(|f| self.raise(f))
    }

    /// Handles an alert or post-handshake messages.
    fn control(&mut self, kind: u8, content: &[u8]) -> Result<(), Fatal> {
        match kind {
            ALERT => self.alert(content),
            HANDSHAKE => {
                if content.is_empty() {
                    return Err(fatal(UNEXPECTED_MESSAGE, "an empty handshake record"));
                }
                self.handshake.extend_from_slice(content);
                self.handshake_messages()
            }
            other => Err(fatal(
                UNEXPECTED_MESSAGE,
                format!("a record of content type {other} after the handshake"),
            )),
        }
    }

    fn alert(&mut self, content: &[u8]) -> Result<(), Fatal> {
        if !self.handshake.is_empty() {
            return Err(fatal(
                UNEXPECTED_MESSAGE,
                "an alert inside a fragmented handshake message",
            ));
        }
        // An alert record holds exactly one alert (RFC 8446, 5.1); an empty one is refused
        // as unexpected_message, like any record without content (5.4).
        let &[level, description] = content else {
            return Err(if content.is_empty() {
                fatal(UNEXPECTED_MESSAGE, "an empty alert record")
            } else {
                fatal(DECODE_ERROR, "an alert record that is not one alert")
            });
        };
        if description == CLOSE_NOTIFY {
            self.peer_closed = true;
            return Ok(());
        }
        match level {
            WARNING if description == USER_CANCELED && self.warnings < WARNING_ALERTS => {
                self.warnings += 1;
                Ok(())
            }
            WARNING => Err(fatal(
                DECODE_ERROR,
                format!("a warning alert {} in TLS 1.3", alert_name(description)),
            )),
            FATAL => Err(Fatal {
                alert: None,
                error: Error::PeerAlert {
                    alert: rustls::AlertDescription::from(description),
                },
            }),
            _ => Err(fatal(ILLEGAL_PARAMETER, "an alert of unknown level")),
        }
    }

    /// Handles the complete messages in the handshake buffer, keeping a partial one.
    fn handshake_messages(&mut self) -> Result<(), Fatal> {
        let mut at = 0;
        let result = loop {
            let Some(head) = self.handshake.get(at..at + 4) else {
                break Ok(());
            };
            let (kind, len) = (head[0], u32::from_be_bytes([0, head[1], head[2], head[3]]));
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            if len > MAX_HANDSHAKE {
                break Err(fatal(
                    DECODE_ERROR,
                    format!("a handshake message of {len} bytes"),
                ));
            }
            let Some(body) = self.handshake.get(at + 4..at + 4 + len) else {
                break Ok(());
            };
            at += 4 + len;
            let handled = match kind {
                NEW_SESSION_TICKET => self.keys.ticket(body),
                KEY_UPDATE => {
                    let request = match *body {
                        [request @ (0 | 1)] => request == 1,
                        [_] => break Err(fatal(ILLEGAL_PARAMETER, "a KeyUpdate of unknown kind")),
                        _ => break Err(fatal(DECODE_ERROR, "a malformed KeyUpdate")),
                    };
                    // A key change must end its record (RFC 8446, 5.1).
                    if at != self.handshake.len() {
                        break Err(fatal(
                            UNEXPECTED_MESSAGE,
                            "a KeyUpdate not at the end of its record",
                        ));
                    }
                    self.key_update(request)
                }
                other => Err(fatal(
                    UNEXPECTED_MESSAGE,
                    format!("handshake message {other} after the handshake"),
                )),
            };
            if let Err(f) = handled {
                break Err(f);
            }
        };
        self.handshake.drain(..at.min(self.handshake.len()));
        result
    }

    fn key_update(&mut self, request: bool) -> Result<(), Fatal> {
        if self.key_updates_in_a_row == KEY_UPDATES_IN_A_ROW {
            return Err(fatal(
                UNEXPECTED_MESSAGE,
                "too many KeyUpdates without application data",
            ));
        }
        self.key_updates_in_a_row += 1;
        let next = self.keys.next(Direction::Receive)?;
        self.opening()?.open = next;
        self.answer_owed |= request && !self.sent_close;
        Ok(())
    }

    /// Seals `inner` as the inner plaintext of one record, as it is (content type and
    /// padding included, or missing), for tests that play a hostile peer; then moves to
    /// the next sending key when `next_key` (after a crafted KeyUpdate).
    #[cfg(feature = "testing")]
    pub(super) fn seal_inner(
        &mut self,
        inner: &[u8],
        next_key: bool,
        out: &mut Output,
    ) -> Result<(), Error> {
        let header = protection::record_header(inner.len() + TAG);
        let nonce = self.seal.nonce().map_err(|f| f.error)?;
        let dst = out.spare(HEADER + inner.len() + TAG);
        let (head, rest) = dst.split_at_mut(HEADER);
        head.copy_from_slice(&header);
        let (ciphertext, rest) = rest.split_at_mut(inner.len());
        self.seal
            .key
            .seal_out_of_place_scatter(
                nonce,
                Aad::from(header),
                inner,
                ciphertext,
                &[],
                &mut rest[..TAG],
            )
            .map_err(|_| Error::protocol("sealing a record failed"))?;
        out.commit(HEADER + inner.len() + TAG);
        if next_key {
            self.seal = self.keys.next(Direction::Send).map_err(|f| f.error)?;
        }
        Ok(())
    }

    /// Lowers the number of records sealed under one key (tests of the key update at the
    /// confidentiality limit).
    #[cfg(all(test, feature = "testing"))]
    pub(super) fn set_limit(&mut self, limit: u64) {
        self.limit = limit;
    }

    #[cfg(all(test, feature = "testing"))]
    pub(super) fn sealed(&self) -> u64 {
        self.seal.seq
    }
}
