//! The sans-I/O session core: connection state, byte accounting and bounded buffers.

pub use crate::buf::Output;
use crate::engine::{Engine, PlainRead, ProtocolVersion};
use crate::wire::MAX_FRAGMENT;
pub use crate::wire::MAX_RECORD_WIRE_SIZE;
use crate::Error;

/// Upper bounds on what a [`Session`] buffers in each direction.
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
    /// record ([`MAX_RECORD_WIRE_SIZE`]) so a record always fits.
    pub receive: usize,
}

impl Default for Limits {
    /// 64 KiB to send (four full records), 72 KiB to receive (four full records as sent, so
    /// that one read can take a whole burst).
    fn default() -> Self {
        Limits {
            send: 64 * 1024,
            receive: 72 * 1024,
        }
    }
}

/// The connection state of a [`Session`].
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
/// ([`Session::fail_send`]) ends writing at once, while reads go on through what the peer
/// sent before it, so that the peer's alert is reported rather than a broken pipe.
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

/// The outcome of [`Session::read_plaintext`].
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

/// The sans-I/O core of a TLS stream.
///
/// A session owns a TLS [`Engine`] (which buffers received ciphertext, bounded by the
/// session, and may decrypt it in place), a bounded queue of ciphertext to send (the
/// *outbox*), the connection [`State`] and the
/// byte [`Counters`]. It never touches a socket: a driver asks it what to do, does exactly
/// that I/O, and reports the exact count back.
///
/// # Methods, by role
///
/// - Getters: [`state`](Self::state), [`is_handshaking`](Self::is_handshaking),
///   [`interest`](Self::interest), [`buffered`](Self::buffered), [`counters`](Self::counters),
///   [`check`](Self::check) and the negotiated parameters.
/// - Application data: [`write_plaintext`](Self::write_plaintext),
///   [`read_plaintext`](Self::read_plaintext), [`close_write`](Self::close_write).
/// - Transport output: [`pending_output`](Self::pending_output) gives the ciphertext to send;
///   [`output_sent`](Self::output_sent) reports how much the transport took.
/// - Transport input: [`input_buffer`](Self::input_buffer) gives space to read into;
///   [`input_received`](Self::input_received) reports how much was read (0 for end-of-file).
/// - Failures: [`fail`](Self::fail) records a transport failure, [`fail_send`](Self::fail_send)
///   a failure of the transport's write side alone; [`abort`](Self::abort) ends the
///   connection on purpose, with an alert where the engine can send one.
///
/// # The rule it keeps
///
/// Once plaintext is sealed, its ciphertext sits in the outbox until the transport reports
/// taking it; only [`output_sent`](Self::output_sent) removes bytes from the outbox. A write
/// either accepts bytes (whose ciphertext is then owned here) or accepts none.
pub struct Session {
    engine: Box<dyn Engine>,
    state: State,
    /// Why the session failed: every later operation returns it.
    failure: Option<Error>,
    /// Why the transport's write side failed, when that is all that failed: writing is over,
    /// but reading goes on through what the peer sent before, so that its alert (the likely
    /// reason for the failure) is reported rather than "broken pipe".
    send_failure: Option<Error>,
    outbox: Output,
    /// The size of the input space last handed out (received ciphertext itself lives in the
    /// engine, which decrypts it in place).
    input_space: usize,
    limits: Limits,
    counters: Counters,
    close_notify_queued: bool,
    transport_eof: bool,
    lenient_eof: bool,
    /// Ciphertext handed to a sender by [`take_output`](Session::take_output) and not yet
    /// reported sent: still counted against the send limit.
    in_flight: usize,
    /// Ciphertext queued in answer to the peer and (as far as the count can tell: answers
    /// and records interleave) not sent yet.
    answers: usize,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("state", &self.state)
            .field("buffered", &self.buffered())
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session over `engine`, buffering at most what `limits` allow.
    pub fn new(engine: Box<dyn Engine>, limits: Limits) -> Session {
        let limits = Limits {
            send: limits.send.max(1),
            receive: limits.receive.max(MAX_RECORD_WIRE_SIZE),
        };
        let mut session = Session {
            state: State::Handshaking,
            failure: None,
            outbox: Output::default(),
            input_space: 0,
            limits,
            counters: Counters::default(),
            close_notify_queued: false,
            transport_eof: false,
            lenient_eof: false,
            in_flight: 0,
            answers: 0,
            send_failure: None,
            engine,
        };
        // A client speaks first: its ClientHello is ready at once.
        session.collect_output(false);
        session.update_state();
        session
    }

    /// Treats a transport end-of-file without `close_notify` as a clean close instead of
    /// [`Error::Truncated`]. Off by default; only for peers known to close this way, on
    /// protocols that detect truncation themselves.
    pub fn set_lenient_eof(&mut self, lenient: bool) {
        self.lenient_eof = lenient;
    }

    /// The current connection state.
    pub fn state(&self) -> State {
        if self.send_failure.is_some() {
            return State::Failed;
        }
        self.state
    }

    /// The effective limits (after raising `receive` to one full record if needed).
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Whether the handshake is still in progress.
    pub fn is_handshaking(&self) -> bool {
        self.state == State::Handshaking
    }

    /// Whether the handshake completed (even if the session failed afterwards).
    pub fn is_handshake_complete(&self) -> bool {
        self.state != State::Handshaking && !self.engine.is_handshaking()
    }

    /// The sticky error, if the session failed.
    ///
    /// After a failure of the transport's write side alone, reading goes on (see
    /// [`fail_send`](Self::fail_send)); this still reports that failure.
    ///
    /// # Errors
    ///
    /// The error that made the session fail, every time.
    pub fn check(&self) -> Result<(), Error> {
        match self.failure.as_ref().or(self.send_failure.as_ref()) {
            Some(err) => Err(err.clone()),
            None => Ok(()),
        }
    }

    /// What transport I/O would make progress now.
    ///
    /// `write` is set while ciphertext is queued. `read` is set while the session can use
    /// ciphertext: during the handshake, and afterwards until the peer closes, as long as no
    /// plaintext is waiting to be read and answers to the peer do not fill the send queue.
    /// After a TLS failure only `write` can be set: the alert that tells the peer why, while
    /// it waits for the transport.
    pub fn interest(&self) -> Interest {
        if self.failure.is_some() {
            return Interest {
                read: false,
                write: self.has_farewell(),
            };
        }
        let write = self.outbox.len() + self.in_flight > 0;
        let read = match self.state {
            State::Handshaking => true,
            State::Open | State::WriteClosed => {
                !self.transport_eof && self.engine.plaintext_pending() == 0 && !self.answers_full()
            }
            _ => false,
        };
        Interest { read, write }
    }

    /// Whether answers to the peer fill the send queue: input waits until they leave.
    fn answers_full(&self) -> bool {
        self.answers > self.limits.send.max(MAX_RECORD_WIRE_SIZE)
    }

    /// Bytes of buffer memory the session holds for queues (allocated capacity, whatever it
    /// contains; the TLS library's own state is not counted). Zero for a connection that
    /// waits idle after an async or non-blocking read found no data.
    pub fn buffer_capacity(&self) -> usize {
        self.outbox.capacity() + self.engine.buffer_capacity()
    }

    /// The byte counters.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// What the session buffers right now.
    pub fn buffered(&self) -> Buffered {
        Buffered {
            outgoing_ciphertext: self.outbox.len() + self.in_flight,
            incoming_ciphertext: self.engine.input_pending(),
            incoming_plaintext: self.engine.plaintext_pending(),
        }
    }

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
        self.check()?;
        if self.close_notify_queued {
            return Err(Error::WriteAfterShutdown);
        }
        if data.is_empty() || self.state == State::Handshaking {
            return Ok(0);
        }
        let queued = self.outbox.len() + self.in_flight;
        // The limit counts plaintext: the framing of queued records (at most 32 bytes each)
        // does not take room from the next record, so a 64 KiB limit holds four full records.
        let framing = queued / MAX_FRAGMENT * 32;
        let space = (self.limits.send + framing).saturating_sub(queued);
        // Sealing a sliver into a tiny record wastes bytes and CPU: below a record's worth of
        // space (or what is asked, or the limit itself), wait for the transport instead.
        let worth = data.len().min(MAX_FRAGMENT).min(self.limits.send);
        if queued > 0 && space < worth {
            return Ok(0);
        }
        let offer = &data[..data.len().min(space.max(worth))];
        let accepted = match self.engine.write_plaintext(offer, &mut self.outbox) {
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

    fn after_sent(&mut self) {
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
    fn pump_input(&mut self) -> Result<(), Error> {
        let processed = self.engine.process_input();
        self.after_input(processed)
    }

    fn after_input(&mut self, processed: Result<(), Error>) -> Result<(), Error> {
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

    /// Frees the buffers that hold nothing, for a connection about to wait idle: its memory
    /// then shrinks to the TLS state alone. Drivers call this when the transport has no input.
    pub fn release_idle_buffers(&mut self) {
        self.release_send_buffer();
        self.engine.release_buffers();
    }

    /// Frees the send queue's buffer when nothing is queued or in flight.
    pub(crate) fn release_send_buffer(&mut self) {
        if self.in_flight == 0 {
            self.outbox.release();
        }
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
    fn read_more(&mut self, buf: &mut [u8], mut n: usize) -> usize {
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

    /// The transport ended without the peer's `close_notify`.
    fn transport_ended(&mut self) -> Result<ReadOutcome, Error> {
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

    /// Queues `close_notify`, once. Later calls do nothing. During the handshake it has no
    /// effect yet (returns `Ok(false)`): finish the handshake first.
    ///
    /// Returns whether `close_notify` is queued.
    ///
    /// # Errors
    ///
    /// The sticky error if the session failed.
    pub fn close_write(&mut self) -> Result<bool, Error> {
        self.check()?;
        if self.state == State::Handshaking {
            return Ok(false);
        }
        if !self.close_notify_queued {
            self.close_notify_queued = true;
            self.engine.send_close_notify();
            self.collect_output(false);
            self.update_state();
        }
        Ok(true)
    }

    /// Ends the connection on purpose, telling the peer it is over: with the fatal alert
    /// `alert` where the engine can send one of the application's choosing (tlsflow's TLS 1.3
    /// record layer), and with `close_notify` where it cannot (OpenSSL, rustls's own record
    /// layer). Returns whether the alert was queued. After an alert the session is failed:
    /// the next operation sends it and returns an error naming it; after `close_notify`,
    /// reading goes on as after [`close_write`](Self::close_write).
    ///
    /// For example `internal_error` from a server whose backend is down, so the client
    /// learns the connection ended on purpose rather than being cut.
    ///
    /// # Errors
    ///
    /// The sticky error if the session failed already, or is still in its handshake. After
    /// `close_notify` it does nothing and returns `Ok(false)`: the peer has been told.
    pub fn abort(&mut self, alert: rustls::AlertDescription) -> Result<bool, Error> {
        self.check()?;
        if self.close_notify_queued {
            // The peer has been told already.
            return Ok(false);
        }
        if self.state == State::Handshaking {
            return Err(Error::config(
                "the connection cannot be aborted with an alert during its handshake",
            ));
        }
        match self.engine.abort(u8::from(alert)) {
            Some(err) => {
                self.fail_tls(err);
                Ok(true)
            }
            None => {
                self.close_write()?;
                Ok(false)
            }
        }
    }

    /// Whether `close_notify` has been queued.
    pub fn is_write_closed(&self) -> bool {
        self.close_notify_queued
    }

    /// Whether the transport reported end-of-file.
    pub fn transport_eof(&self) -> bool {
        self.transport_eof
    }

    /// Asks for a TLS 1.3 key update; the message is queued in the outbox.
    ///
    /// # Errors
    ///
    /// The sticky error, or [`Error::Config`] when the connection cannot update keys.
    pub fn refresh_traffic_keys(&mut self) -> Result<(), Error> {
        self.check()?;
        self.engine.refresh_traffic_keys()?;
        self.collect_output(false);
        Ok(())
    }

    /// Records a fatal failure (for drivers: a failure of the transport's read side, or of
    /// both). Every later operation returns it. Queued ciphertext is dropped: after a
    /// transport failure the stream cannot know where the last record was cut, and sending
    /// more would tear it.
    pub fn fail(&mut self, err: Error) -> Error {
        if self.failure.is_none() {
            self.failure = Some(err.clone());
        }
        self.drop_output();
        self.state = State::Failed;
        self.failure.clone().unwrap_or(err)
    }

    /// Records a failure of the transport's write side. Writing is over at once: queued
    /// ciphertext is dropped (the last record may be torn, so nothing more is ever sent),
    /// and writes, flushes and shutdowns return this error. Reading goes on through what the
    /// peer sent before: a peer that closed the connection on purpose usually said why in an
    /// alert, and that alert is the error reads report (and, from then on, every operation).
    /// A read that meets the end of the transport instead reports this error.
    pub fn fail_send(&mut self, err: Error) -> Error {
        self.drop_output();
        if let Some(failure) = &self.failure {
            return failure.clone();
        }
        self.send_failure.get_or_insert(err).clone()
    }

    fn drop_output(&mut self) {
        self.outbox.clear();
        self.in_flight = 0;
        self.answers = 0;
    }

    /// Records a TLS failure. The engine may have produced an alert for the peer; it stays
    /// queued, behind the records queued before it, and drivers make one attempt to send it
    /// before they return the error (and again with every later operation until it is gone).
    fn fail_tls(&mut self, err: Error) -> Error {
        if self.failure.is_none() {
            self.failure = Some(err.clone());
        }
        self.collect_output(false);
        self.state = State::Failed;
        err
    }

    /// Whether the session failed with ciphertext still queued for the peer: the alert that
    /// tells it why, behind what was queued before.
    pub(crate) fn has_farewell(&self) -> bool {
        self.failure.is_some() && (!self.outbox.is_empty() || self.in_flight > 0)
    }

    /// Moves the engine's ciphertext to the send queue; `answer` when it answers the peer's
    /// input (counted against the send limit apart from what the user wrote).
    fn collect_output(&mut self, answer: bool) {
        if !self.engine.has_ciphertext() {
            return;
        }
        if self.send_failure.is_some() {
            // Nothing is sent after a failed send: it could follow a torn record.
            let mut discard = Output::default();
            self.engine.take_ciphertext(&mut discard);
            return;
        }
        let before = self.outbox.len();
        self.engine.take_ciphertext(&mut self.outbox);
        if answer && self.state != State::Handshaking {
            self.answers += self.outbox.len() - before;
        }
    }

    fn update_state(&mut self) {
        let next = match (self.state, self.engine.is_handshaking()) {
            (State::Failed, _) => State::Failed,
            (State::Handshaking, true) => State::Handshaking,
            _ => match (self.close_notify_queued, self.engine.peer_closed()) {
                (false, false) => State::Open,
                (true, false) => State::WriteClosed,
                (false, true) => State::ReadClosed,
                (true, true) => State::Closed,
            },
        };
        self.state = next;
    }

    /// The negotiated protocol version, once known.
    pub fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.engine.protocol_version()
    }

    /// The negotiated cipher suite, once known.
    pub fn cipher_suite(&self) -> Option<String> {
        self.engine.cipher_suite()
    }

    /// The negotiated ALPN protocol, if any.
    pub fn alpn_protocol(&self) -> Option<Vec<u8>> {
        self.engine.alpn_protocol()
    }

    /// The server name (SNI) of this connection, if any.
    pub fn server_name(&self) -> Option<String> {
        self.engine.server_name()
    }

    /// The peer's certificate chain, DER-encoded, end-entity first.
    pub fn peer_certificates(&self) -> Option<Vec<Vec<u8>>> {
        self.engine.peer_certificates()
    }

    /// Whether this is the client side.
    pub fn is_client(&self) -> bool {
        self.engine.is_client()
    }
}

#[cfg(test)]
mod tests;
