//! The receiving direction of the record layer: records opened from the input buffer, into
//! the reader's buffer when a whole record fits there and in place otherwise.
//!
//! [`Opening`] holds all that opening application data needs, and nothing of the sending
//! direction or the key schedule, so that a split stream's read half can hold it on its own
//! and open records without the session's lock. It stops at the first record that is not
//! application data (an alert, a post-handshake message) and gives it to its caller opened:
//! the record layer handles those ([`Traffic`](super::Traffic)).

use aws_lc_rs::aead::Aad;

use super::protection::{complete_record, inner_type, Protection};
use super::{fatal, Fatal, HEADER, TAG};
use crate::buf::Inbox;
use crate::wire::alert::{BAD_RECORD_MAC, UNEXPECTED_MESSAGE};
use crate::wire::content::APPLICATION_DATA;

/// The receiving key and the position in the input buffer.
pub(crate) struct Opening {
    pub(super) open: Protection,
    /// Opened plaintext at the front of the input buffer...
    plain: usize,
    /// ...followed by this much of its record to drop once the plaintext is read.
    plain_tail: usize,
    /// Application data records opened so far (empty ones too).
    pub(super) data_records: u64,
}

/// An opened record that is not application data, already removed from the input buffer.
pub(crate) struct Control {
    pub(super) kind: u8,
    pub(super) content: Vec<u8>,
}

/// What a refused record or failed opening ends with: the error and the alert that says
/// why, for the record layer to raise.
pub(crate) struct Refusal(pub(super) Fatal);

impl Opening {
    pub(super) fn new(open: Protection) -> Self {
        Opening {
            open,
            plain: 0,
            plain_tail: 0,
            data_records: 0,
        }
    }

    /// Opened plaintext waiting to be read.
    pub(crate) fn plain(&self) -> usize {
        self.plain
    }

    /// Bytes at the front of the input buffer that belong to an opened record.
    pub(crate) fn opened(&self) -> usize {
        self.plain + self.plain_tail
    }

    /// Opened plaintext waiting to be read, or else an upper bound for the record at the
    /// front of `inbox`, which is opened when read.
    pub(crate) fn plaintext_pending(&self, inbox: &Inbox) -> usize {
        if self.plain > 0 {
            return self.plain;
        }
        match complete_record(inbox.data()) {
            Ok(Some(len)) => len - TAG,
            _ => 0,
        }
    }

    /// Whether a read would deliver plaintext or find a record to open without more input.
    pub(crate) fn has_record(&self, inbox: &Inbox) -> bool {
        self.plain > 0 || !matches!(complete_record(inbox.data()), Ok(None))
    }

    /// Reads plaintext into `buf[*filled..]`: what is opened, then records opened while they
    /// hold application data and `buf` has room. Returns the first record of another kind
    /// (`Some`), or `None` when `buf` is full or no whole record is left. `data_allowed`
    /// false makes application data a failure (it may not come inside a fragmented
    /// handshake message).
    ///
    /// # Errors
    ///
    /// A record that is malformed or fails authentication; nothing unauthenticated is left
    /// in `buf`.
    pub(crate) fn read(
        &mut self,
        inbox: &mut Inbox,
        buf: &mut [u8],
        filled: &mut usize,
        data_allowed: bool,
    ) -> Result<Option<Control>, Refusal> {
        loop {
            if self.plain > 0 {
                let n = self.plain.min(buf.len() - *filled);
                buf[*filled..*filled + n].copy_from_slice(&inbox.data()[..n]);
                inbox.consume(n);
                self.plain -= n;
                *filled += n;
                if self.plain == 0 {
                    inbox.consume(self.plain_tail);
                    self.plain_tail = 0;
                }
            }
            if *filled == buf.len() {
                return Ok(None);
            }
            let Some(len) = complete_record(inbox.data()).map_err(Refusal)? else {
                return Ok(None);
            };
            let control = if len - TAG <= buf.len() - *filled {
                let (n, control) = self.open_into(inbox, len, &mut buf[*filled..], data_allowed)?;
                *filled += n;
                control
            } else {
                self.open_in_place(inbox, len, data_allowed)?
            };
            if control.is_some() {
                return Ok(control);
            }
        }
    }

    /// Opens the record of body length `len` at the front of `inbox` in place. Application
    /// data stays there as plaintext to be read; anything else is returned and dropped.
    pub(crate) fn open_in_place(
        &mut self,
        inbox: &mut Inbox,
        len: usize,
        data_allowed: bool,
    ) -> Result<Option<Control>, Refusal> {
        let nonce = self.open.nonce().map_err(Refusal)?;
        let record = &mut inbox.data_mut()[..HEADER + len];
        let (header, body) = record.split_at_mut(HEADER);
        let plaintext = self
            .open
            .key
            .open_in_place(nonce, Aad::from(&header[..]), body)
            .map_err(|_| Refusal(fatal(BAD_RECORD_MAC, "a record failed authentication")))?;
        let (kind, content) = inner_type(plaintext).map_err(Refusal)?;
        if kind == APPLICATION_DATA {
            self.application_data(data_allowed)?;
            inbox.consume(HEADER);
            self.plain = content;
            self.plain_tail = len - content;
            if content == 0 {
                inbox.consume(self.plain_tail);
                self.plain_tail = 0;
            }
            return Ok(None);
        }
        let control = Control {
            kind,
            content: plaintext[..content].to_vec(),
        };
        inbox.consume(HEADER + len);
        Ok(Some(control))
    }

    /// Opens the record at the front of `inbox` into the front of `out`, which has room for
    /// its whole body: the bytes of application data it holds, or the record of another
    /// kind (then nothing is left in `out`).
    fn open_into(
        &mut self,
        inbox: &mut Inbox,
        len: usize,
        out: &mut [u8],
        data_allowed: bool,
    ) -> Result<(usize, Option<Control>), Refusal> {
        let nonce = self.open.nonce().map_err(Refusal)?;
        let record = &inbox.data()[..HEADER + len];
        let (header, body) = record.split_at(HEADER);
        let (ciphertext, tag) = body.split_at(len - TAG);
        let out = &mut out[..len - TAG];
        let opened =
            self.open
                .key
                .open_separate_gather(nonce, Aad::from(header), ciphertext, tag, out);
        inbox.consume(HEADER + len);
        let checked = match opened {
            Ok(()) => inner_type(out).map_err(Refusal),
            Err(_) => Err(Refusal(fatal(
                BAD_RECORD_MAC,
                "a record failed authentication",
            ))),
        };
        let result = match checked {
            Ok((APPLICATION_DATA, content)) => match self.application_data(data_allowed) {
                Ok(()) => return Ok((content, None)),
                Err(refusal) => Err(refusal),
            },
            Ok((kind, content)) => Ok((
                0,
                Some(Control {
                    kind,
                    content: out[..content].to_vec(),
                }),
            )),
            Err(refusal) => Err(refusal),
        };
        // Nothing unauthenticated, and nothing but application data, is left in the
        // reader's buffer.
        out.fill(0);
        result
    }

    fn application_data(&mut self, allowed: bool) -> Result<(), Refusal> {
        if !allowed {
            return Err(Refusal(fatal(
                UNEXPECTED_MESSAGE,
                "application data inside a fragmented handshake message",
            )));
        }
        self.data_records += 1;
        Ok(())
    }
}
