//! Receiving: ciphertext read from the transport, and plaintext read out of the engine.

use super::{ReadOutcome, Session, State};
use crate::engine::rustls::{Lending, Lent};
use crate::engine::PlainRead;
use crate::Error;

impl Session {
    /// Space to read ciphertext into. Empty when the session cannot take input now (its
    /// buffers are full until plaintext is read, answers to the peer wait for the transport,
    /// or the peer has closed).
    pub fn input_buffer(&mut self) -> &mut [u8] {
        if self.failure.is_some()
            || self.transport_eof
            || self.engine.peer_closed()
            || self.answers_full()
        {
            self.input_space = 0;
            return &mut [];
        }
        let space = self.engine.input_space(self.limits.receive);
        self.input_space = space.len();
        space
    }

    /// Reports that `n` bytes were read into [`input_buffer`](Self::input_buffer); `n == 0`
    /// reports the transport's end-of-file.
    ///
    /// # Errors
    ///
    /// A TLS failure caused by the input (the session is then failed, and may hold an alert
    /// for the peer in [`pending_output`](Self::pending_output)); [`Error::HandshakeEof`] for
    /// an end-of-file during the handshake.
    ///
    /// # Panics
    ///
    /// If `n` exceeds the buffer last handed out (a driver bug).
    pub fn input_received(&mut self, n: usize) -> Result<(), Error> {
        if let Some(err) = &self.failure {
            return Err(err.clone());
        }
        if n == 0 {
            self.transport_eof = true;
            self.engine.feed_eof();
            if self.state == State::Handshaking {
                let err = self.send_failure.clone().unwrap_or(Error::HandshakeEof);
                return Err(self.fail(err));
            }
            return Ok(());
        }
        assert!(
            n <= self.input_space,
            "transport reported more bytes read than the buffer holds"
        );
        self.input_space = 0;
        self.counters.ciphertext_received += n as u64;
        let processed = self.engine.input_filled(n);
        self.after_input(processed)
    }

    /// Lets the engine process the ciphertext it holds, as far as its plaintext limit allows.
    pub(super) fn pump_input(&mut self) -> Result<(), Error> {
        let processed = self.engine.process_input();
        self.after_input(processed)
    }

    pub(super) fn after_input(&mut self, processed: Result<(), Error>) -> Result<(), Error> {
        if let Err(e) = processed {
            let err = self.fail_tls(e);
            // Plaintext authenticated before the failure is read first; the (sticky) error
            // comes after it.
            return if self.engine.plaintext_pending() > 0 {
                Ok(())
            } else {
                Err(err)
            };
        }
        self.collect_output(true);
        self.update_state();
        Ok(())
    }

    /// Copies received plaintext into `buf`.
    ///
    /// Plaintext that was authenticated before a fatal error is still delivered; the error
    /// is returned once it has been read.
    ///
    /// # Errors
    ///
    /// The sticky error if the session failed; [`Error::Truncated`] when the transport ended
    /// without the peer's `close_notify` (unless the lenient policy is on).
    pub fn read_plaintext(&mut self, buf: &mut [u8]) -> Result<ReadOutcome, Error> {
        if let Some(err) = &self.failure {
            // Plaintext authenticated before the failure is still delivered, then the error.
            if self.engine.plaintext_pending() == 0 || buf.is_empty() {
                return Err(err.clone());
            }
            return match self.engine.read_plaintext(buf) {
                Ok(PlainRead::Data(n)) => {
                    self.counters.plaintext_delivered += n as u64;
                    Ok(ReadOutcome::Data(n))
                }
                _ => Err(err.clone()),
            };
        }
        if buf.is_empty() {
            return Ok(ReadOutcome::Data(0));
        }
        loop {
            let before = self.engine.input_pending();
            let read = self.engine.read_plaintext(buf);
            // Engines answer post-handshake messages (key updates) while they open records.
            self.collect_output(true);
            match read {
                Ok(PlainRead::Data(n)) => return Ok(ReadOutcome::Data(self.read_more(buf, n))),
                Ok(PlainRead::Closed) => {
                    self.update_state();
                    return Ok(ReadOutcome::Closed);
                }
                Ok(PlainRead::Empty) => {}
                Err(Error::Truncated) => return self.transport_ended(),
                Err(e) => return Err(self.fail_tls(e)),
            }
            if self.answers_full() {
                return Ok(ReadOutcome::NeedOutput);
            }
            // Go on while the engine makes progress through what it holds.
            let mut progressed = self.engine.input_pending() < before;
            if self.engine.input_pending() > 0 && self.engine.plaintext_pending() == 0 {
                let held = self.engine.input_pending();
                self.pump_input()?;
                progressed |=
                    self.engine.input_pending() < held || self.engine.plaintext_pending() > 0;
            }
            if progressed {
                continue;
            }
            if self.engine.peer_closed() {
                self.update_state();
                return Ok(ReadOutcome::Closed);
            }
            if self.transport_eof {
                return self.transport_ended();
            }
            return Ok(ReadOutcome::NeedInput);
        }
    }

    /// Fills the rest of `buf` (which holds `n` bytes) from what was already received:
    /// engines open buffered records as they read. A failure found on the way is recorded
    /// now and returned by the next call, after these bytes.
    pub(super) fn read_more(&mut self, buf: &mut [u8], mut n: usize) -> usize {
        while n < buf.len()
            && (self.engine.plaintext_pending() > 0 || self.engine.input_pending() > 0)
            && !self.answers_full()
        {
            let read = self.engine.read_plaintext(&mut buf[n..]);
            self.collect_output(true);
            match read {
                Ok(PlainRead::Data(more)) => n += more,
                Ok(_) | Err(Error::Truncated) => break,
                Err(e) => {
                    self.fail_tls(e);
                    break;
                }
            }
        }
        self.counters.plaintext_delivered += n as u64;
        self.update_state();
        n
    }

    /// Lends a split stream's read half the engine's receiving direction and input buffer,
    /// so that it opens application data without this session (see [`Lent`]): only on an
    /// open connection whose answers to the peer do not fill the send queue.
    pub(crate) fn lend_receiving(&mut self) -> Lending {
        if self.failure.is_some()
            || self.transport_eof
            || self.answers_full()
            || !matches!(self.state, State::Open | State::WriteClosed)
        {
            return Lending::NotNow;
        }
        match self.engine.as_rustls_mut() {
            Some(engine) => engine.lend(),
            None => Lending::Never,
        }
    }

    /// Takes back what [`lend_receiving`](Self::lend_receiving) gave, with the bytes the
    /// read half received and delivered since it last reported them, and handles what ended
    /// its run as if it had been received here.
    ///
    /// # Errors
    ///
    /// As [`input_received`](Self::input_received).
    pub(crate) fn give_back_receiving(
        &mut self,
        lent: Lent,
        received: u64,
        delivered: u64,
    ) -> Result<(), Error> {
        self.count_received(received, delivered);
        let given = match self.engine.as_rustls_mut() {
            Some(engine) => engine.give_back(lent),
            None => unreachable!("only the rustls engine lends"),
        };
        self.after_input(given)
    }

    /// Counts bytes that a read half holding the receiving direction received (ciphertext)
    /// and delivered (plaintext).
    pub(crate) fn count_received(&mut self, received: u64, delivered: u64) {
        self.counters.ciphertext_received += received;
        self.counters.plaintext_delivered += delivered;
    }

    /// The transport ended without the peer's `close_notify`.
    pub(super) fn transport_ended(&mut self) -> Result<ReadOutcome, Error> {
        if let Some(err) = self.send_failure.clone() {
            // The write side failed first, and the peer sent no alert to say why.
            return Err(self.fail(err));
        }
        if self.lenient_eof {
            Ok(ReadOutcome::Closed)
        } else {
            // Sticky for reading only: the write side may still be used.
            Err(Error::Truncated)
        }
    }
}
