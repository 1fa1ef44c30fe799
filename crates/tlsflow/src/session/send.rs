//! Sending: plaintext sealed into the send queue, and what the transport takes from it.

use std::io::IoSlice;

use super::{Session, State};
use crate::buf::Output;
use crate::wire::MAX_FRAGMENT;
use crate::Error;

/// The most slices [`Session::write_plaintext_vectored`] takes in one call (as `writev`'s
/// `IOV_MAX` bounds a system call); the rest wait for the next call.
pub const MAX_WRITE_SLICES: usize = 64;

impl Session {
    /// Seals plaintext and returns how many bytes were accepted.
    ///
    /// `Ok(0)` for a non-empty `data` means "nothing accepted now": the handshake is not over
    /// or the outbox is full. Send [`pending_output`](Self::pending_output) and try again; a
    /// driver never reports this `Ok(0)` to its user. Accepted bytes are sealed at once and
    /// their ciphertext queued, so the caller never resubmits them.
    ///
    /// # Errors
    ///
    /// The sticky error if the session failed; [`Error::WriteAfterShutdown`] after
    /// [`close_write`](Self::close_write).
    pub fn write_plaintext(&mut self, data: &[u8]) -> Result<usize, Error> {
        let Some(offer) = self.offer(data.len())? else {
            return Ok(0);
        };
        let accepted = self
            .engine
            .write_plaintext(&data[..offer], &mut self.outbox);
        self.sealed(accepted)
    }

    /// Seals plaintext gathered from `bufs`, in order, and returns how many bytes were
    /// accepted: always a prefix of the concatenation (every byte of the first slices, then
    /// part of the next), as [`write_plaintext`](Self::write_plaintext) on their
    /// concatenation would. The rustls engine's TLS 1.3 record layer seals records straight
    /// from the slices; the other engines gather up to a record's worth first. At most
    /// [`MAX_WRITE_SLICES`] slices are taken per call.
    ///
    /// # Errors
    ///
    /// As [`write_plaintext`](Self::write_plaintext).
    pub fn write_plaintext_vectored(&mut self, bufs: &[IoSlice<'_>]) -> Result<usize, Error> {
        let bufs = &bufs[..bufs.len().min(MAX_WRITE_SLICES)];
        let total = bufs.iter().map(|b| b.len()).sum();
        let Some(mut offer) = self.offer(total)? else {
            return Ok(0);
        };
        let mut trimmed = [IoSlice::new(&[]); MAX_WRITE_SLICES];
        let mut count = 0;
        for buf in bufs {
            if offer == 0 {
                break;
            }
            let take = buf.len().min(offer);
            if take > 0 {
                trimmed[count] = IoSlice::new(&buf[..take]);
                count += 1;
                offer -= take;
            }
        }
        let accepted = self
            .engine
            .write_plaintext_vectored(&trimmed[..count], &mut self.outbox);
        self.sealed(accepted)
    }

    /// How much of a write of `len` bytes to offer the engine now: `None` when nothing may
    /// be accepted yet (the handshake is not over, or the outbox is full).
    fn offer(&mut self, len: usize) -> Result<Option<usize>, Error> {
        self.check()?;
        if self.close_notify_queued {
            return Err(Error::WriteAfterShutdown);
        }
        if len == 0 || self.state == State::Handshaking {
            return Ok(None);
        }
        let queued = self.outbox.len() + self.in_flight;
        // The limit counts plaintext: the framing of queued records (at most 32 bytes each)
        // does not take room from the next record, so a 64 KiB limit holds four full records.
        let framing = queued / MAX_FRAGMENT * 32;
        let space = (self.limits.send + framing).saturating_sub(queued);
        // Sealing a sliver into a tiny record wastes bytes and CPU: below a record's worth of
        // space (or what is asked, or the limit itself), wait for the transport instead.
        let worth = len.min(MAX_FRAGMENT).min(self.limits.send);
        if queued > 0 && space < worth {
            return Ok(None);
        }
        Ok(Some(len.min(space.max(worth))))
    }

    /// Accounts for what the engine accepted.
    fn sealed(&mut self, accepted: Result<usize, Error>) -> Result<usize, Error> {
        let accepted = match accepted {
            Ok(n) => n,
            Err(e) => return Err(self.fail_tls(e)),
        };
        self.collect_output(false);
        self.counters.plaintext_accepted += accepted as u64;
        Ok(accepted)
    }

    /// The ciphertext to send next, in order. Empty when nothing is queued.
    pub fn pending_output(&self) -> &[u8] {
        self.outbox.pending()
    }

    /// Reports that the transport took the first `n` bytes of
    /// [`pending_output`](Self::pending_output).
    ///
    /// # Panics
    ///
    /// If `n` exceeds what was pending: that is a driver bug, and going on would corrupt the
    /// stream.
    pub fn output_sent(&mut self, n: usize) {
        assert!(
            n <= self.outbox.len(),
            "transport reported {n} bytes sent of {} pending",
            self.outbox.len()
        );
        self.outbox.consume(n);
        self.counters.ciphertext_sent += n as u64;
        self.after_sent();
    }

    /// Moves all queued ciphertext to the end of `out`, for a sender that writes it without
    /// holding the session (a split stream). The bytes stay counted against the send limit
    /// until reported with [`in_flight_sent`](Self::in_flight_sent).
    pub fn take_output(&mut self, out: &mut Output) {
        let n = self.outbox.len();
        if n == 0 {
            return;
        }
        if out.is_empty() {
            // Hand over the whole buffer and keep the sender's spent one for reuse.
            std::mem::swap(out, &mut self.outbox);
        } else {
            out.extend_from_slice(self.outbox.pending());
            self.outbox.consume(n);
        }
        self.in_flight += n;
    }

    /// Reports that the transport took `n` bytes of ciphertext handed out by
    /// [`take_output`](Self::take_output).
    ///
    /// # Panics
    ///
    /// If `n` exceeds what is in flight (a driver bug). After a failure, which forgets what
    /// was in flight, counts are only added up.
    pub fn in_flight_sent(&mut self, n: usize) {
        if self.failure.is_none() && self.send_failure.is_none() {
            assert!(
                n <= self.in_flight,
                "transport reported {n} bytes sent of {} in flight",
                self.in_flight
            );
        }
        self.in_flight = self.in_flight.saturating_sub(n);
        self.counters.ciphertext_sent += n as u64;
        self.after_sent();
    }

    pub(super) fn after_sent(&mut self) {
        // What was sent may have been answers: at most what is still queued can be.
        self.answers = self.answers.min(self.outbox.len() + self.in_flight);
    }

    /// Puts ciphertext handed out by [`take_output`](Self::take_output) and not sent back at
    /// the front of the queue (when a split stream is reunited).
    pub(crate) fn restore_in_flight(&mut self, unsent: &[u8]) {
        let mut queue = Output::default();
        queue.extend_from_slice(unsent);
        queue.extend_from_slice(self.outbox.pending());
        self.outbox = queue;
        self.in_flight = self.in_flight.saturating_sub(unsent.len());
    }
}
