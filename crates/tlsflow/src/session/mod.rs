//! The sans-I/O session core: connection state, byte accounting and bounded buffers.

pub use crate::buf::Output;
use crate::engine::{Engine, ProtocolVersion};
pub use crate::wire::MAX_RECORD_WIRE_SIZE;
use crate::Error;

mod receive;
mod send;
mod types;

pub use self::send::MAX_WRITE_SLICES;
pub use self::types::{Buffered, Counters, Interest, Limits, ReadOutcome, State};

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
    pub fn cipher_suite(&self) -> Option<crate::CipherSuite> {
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

    /// Whether the handshake resumed an earlier session (a ticket or the server's session
    /// cache), once the handshake is over.
    pub fn is_resumed(&self) -> Option<bool> {
        self.engine.is_resumed()
    }

    /// Fills `out` with keying material exported from the connection for `label` and
    /// `context` (RFC 5705; RFC 8446 section 7.5), once the handshake is over: both sides get
    /// the same bytes, bound to this connection, for protocols that authenticate through it.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] on the rustls engine (rustls's unbuffered API has no exporter);
    /// [`Error::Protocol`] before the handshake is over, or for an empty `out`.
    pub fn export_keying_material(
        &self,
        out: &mut [u8],
        label: &str,
        context: Option<&[u8]>,
    ) -> Result<(), Error> {
        self.engine.export_keying_material(out, label, context)
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

#[cfg(all(test, feature = "testing"))]
mod tests;
