//! Full-duplex split: a read half and a write half that work at the same time.
//!
//! The halves share the [`Session`] behind a mutex that is held only for CPU work (sealing
//! and opening records, accounting); it is never held across a transport call. Ciphertext
//! leaves through one *sender*: the write transport plus the bytes in flight, behind a
//! second mutex so that records go out whole and in order. Either half may send: the write
//! half sends what it sealed, and the read half sends what reading produced (tickets,
//! alerts) when the sender is free. Whoever releases the sender looks once more for queued
//! output, so nothing queued by the other half is left behind.
//!
//! Where the engine allows (tlsflow's record layer), the read half goes further: it borrows
//! the receiving direction and the input buffer from the session ([`Direct`]) and reads and
//! opens application data on its own, without the session's lock, so that it never waits
//! for a write half that is sealing. It gives them back when a record of another kind (an
//! alert, a key update, a ticket) or a failure ends its run, and the session handles that
//! record as if it had received it itself.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};

use crate::driver::{Link, PollRead};
use crate::engine::rustls::{Lending, Lent};
use crate::session::{Output, Session};
use crate::Error;

/// Locks a mutex whose holder cannot have left it half-updated: every critical section
/// here is a sequence of session calls that each keep the session consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Locks a mutex if nobody holds it.
fn try_lock<T>(mutex: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    match mutex.try_lock() {
        Ok(guard) => Some(guard),
        Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    }
}

/// The write transport and the ciphertext taken from the session but not yet written.
pub(crate) struct Sender<W> {
    pub(crate) io: W,
    pub(crate) in_flight: Output,
    wakers: Arc<WriteWakers>,
    waker: Waker,
}

/// The tasks waiting for the write transport: each half's latest waker.
///
/// Async transports keep one waker per direction, so a half that polls the write side
/// would replace the other half's waker there, and that task would never wake. Instead the
/// transport is always polled with this set's own waker, which wakes both halves.
#[derive(Default)]
struct WriteWakers {
    slots: Mutex<[Option<Waker>; 2]>,
}

impl WriteWakers {
    fn register(&self, half: Half, waker: &Waker) {
        let mut slots = lock(&self.slots);
        let slot = &mut slots[half as usize];
        if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *slot = Some(waker.clone());
        }
    }

    /// Wakes `half`, if it waits.
    fn wake_slot(&self, half: Half) {
        let waker = lock(&self.slots)[half as usize].take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl Wake for WriteWakers {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let taken = std::mem::take(&mut *lock(&self.slots));
        for waker in taken.into_iter().flatten() {
            waker.wake();
        }
    }
}

impl<W> Sender<W> {
    /// Polls the write transport on behalf of `half`, with the shared waker.
    pub(crate) fn poll_io<R>(
        &mut self,
        half: Half,
        cx: &mut Context<'_>,
        op: impl FnOnce(&mut W, &mut Context<'_>) -> Poll<R>,
    ) -> Poll<R> {
        self.wakers.register(half, cx.waker());
        op(&mut self.io, &mut Context::from_waker(&self.waker))
    }
}

pub(crate) struct Shared<W> {
    pub(crate) session: Mutex<Session>,
    pub(crate) sender: Mutex<Sender<W>>,
    /// Write-half operations in progress. While the write half is busy, the read half
    /// leaves queued ciphertext to it: a read half that took over the write half's records
    /// could block in a send on a blocking socket while nobody reads, on both peers.
    writer_busy: AtomicUsize,
}

impl<W> Shared<W> {
    pub(crate) fn new(session: Session, io: W) -> Arc<Self> {
        let wakers = Arc::new(WriteWakers::default());
        Arc::new(Shared {
            writer_busy: AtomicUsize::new(0),
            session: Mutex::new(session),
            sender: Mutex::new(Sender {
                io,
                in_flight: Output::default(),
                waker: Waker::from(wakers.clone()),
                wakers,
            }),
        })
    }
}

/// How a driver writes to its write transport.
pub(crate) type WriteFn<W> = fn(&mut W, &mut Context<'_>, &[u8]) -> Poll<io::Result<usize>>;
/// How a driver flushes its write transport.
pub(crate) type FlushFn<W> = fn(&mut W, &mut Context<'_>) -> Poll<io::Result<()>>;

/// Which half of a split stream is sending.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Half {
    /// The write half.
    Write = 0,
    /// The read half, sending what reading produced.
    Read = 1,
}

/// Sends all queued ciphertext through the shared sender on behalf of `half`. When the other
/// half holds the sender, `wait` says whether to wait for it; a half that does not wait
/// leaves its output to the holder, which looks for queued output when it lets go.
pub(crate) fn poll_send_shared<W, F>(
    shared: &Shared<W>,
    cx: &mut Context<'_>,
    half: Half,
    wait: bool,
    mut poll_write: F,
) -> Poll<io::Result<()>>
where
    F: FnMut(&mut W, &mut Context<'_>, &[u8]) -> Poll<io::Result<usize>>,
{
    loop {
        let mut sender = if wait {
            lock(&shared.sender)
        } else {
            match try_lock(&shared.sender) {
                Some(guard) => guard,
                None => return Poll::Ready(Ok(())),
            }
        };
        let mut progressed = false;
        let result = loop {
            if sender.in_flight.is_empty() {
                let mut session = lock(&shared.session);
                session.take_output(&mut sender.in_flight);
                if sender.in_flight.is_empty() {
                    // All sent: the connection may now wait idle for long (a write half is
                    // not told when its peer goes quiet), so keep no send buffer. A busy
                    // writer gets it back from the thread's pool with its next record.
                    sender.in_flight.release();
                    session.release_send_buffer();
                    break Poll::Ready(Ok(()));
                }
            }
            let Sender {
                io,
                in_flight,
                wakers,
                waker,
            } = &mut *sender;
            wakers.register(half, cx.waker());
            match poll_write(io, &mut Context::from_waker(waker), in_flight.pending()) {
                Poll::Pending => break Poll::Pending,
                Poll::Ready(Ok(0)) => {
                    break Poll::Ready(Err(fail(shared, &mut sender, Error::WriteZero)))
                }
                Poll::Ready(Ok(n)) => {
                    let n = n.min(in_flight.len());
                    in_flight.consume(n);
                    progressed = true;
                    lock(&shared.session).in_flight_sent(n);
                }
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Poll::Ready(Err(e)) => {
                    break Poll::Ready(Err(fail(shared, &mut sender, Error::from(e))))
                }
            }
        };
        if progressed && half == Half::Read {
            // The write half may be waiting for room that this send just made, on a
            // readiness registration that a successful write can cancel (or that an
            // edge-triggered transport will not repeat): wake it to look again.
            sender.wakers.wake_slot(Half::Write);
        }
        drop(sender);
        // Output queued by the other half while we held the sender is ours to send now.
        if matches!(result, Poll::Ready(Ok(())))
            && !lock(&shared.session).pending_output().is_empty()
        {
            continue;
        }
        return result;
    }
}

fn fail<W>(shared: &Shared<W>, sender: &mut Sender<W>, err: Error) -> io::Error {
    // The rest of the record in flight can never be sent: drop it with the session's queue.
    sender.in_flight.clear();
    lock(&shared.session).fail_send(err).into()
}

/// Whether a read half holds the session's receiving direction.
#[derive(Default)]
pub(crate) enum Direct {
    /// No: it asks the session at its next read.
    #[default]
    Idle,
    Held(Box<Held>),
    /// The session never lends it on this connection.
    Never,
}

/// The receiving direction a read half holds, and what it has not reported yet.
pub(crate) struct Held {
    lent: Lent,
    /// Ciphertext received and plaintext delivered since the session was last told.
    received: u64,
    delivered: u64,
    /// The session's receive limit.
    capacity: usize,
}

impl Direct {
    fn held(&self) -> Option<&Held> {
        match self {
            Direct::Held(held) => Some(held),
            _ => None,
        }
    }

    /// Received ciphertext and opened plaintext the read half holds.
    pub(crate) fn pending(&self) -> (usize, usize) {
        self.held().map_or((0, 0), |h| h.lent.pending())
    }

    /// Whether a read would find plaintext or a record without reading the transport.
    pub(crate) fn has_record(&self) -> bool {
        self.held().is_some_and(|h| h.lent.has_record())
    }

    /// Bytes received and delivered that the session has not counted yet.
    pub(crate) fn uncounted(&self) -> (u64, u64) {
        self.held().map_or((0, 0), |h| (h.received, h.delivered))
    }

    pub(crate) fn capacity(&self) -> usize {
        self.held().map_or(0, |h| h.lent.capacity())
    }

    /// Gives what the read half holds back to `session`, and handles what ended its run.
    pub(crate) fn give_back(&mut self, session: &mut Session) -> Result<(), Error> {
        match std::mem::take(self) {
            Direct::Held(held) => {
                session.give_back_receiving(held.lent, held.received, held.delivered)
            }
            other => {
                *self = other;
                Ok(())
            }
        }
    }
}

impl Held {
    /// Tells the session what was received and delivered since the last report.
    fn report(&mut self, session: &mut Session) {
        session.count_received(self.received, self.delivered);
        (self.received, self.delivered) = (0, 0);
    }
}

/// Frees what a read half going idle holds apart from what it borrowed: its read buffer, the
/// session's idle buffers, and the sender's spent one (unless the write half is using it).
fn release_idle<W>(shared: &Shared<W>, buf: &mut Vec<u8>, session: &mut Session) {
    crate::buf::give_back(std::mem::take(buf));
    session.release_idle_buffers();
    if let Some(mut sender) = try_lock(&shared.sender) {
        sender.in_flight.release();
    }
}

/// The read half's view: its own read transport, the shared session, and the sender for
/// output that reading produces.
pub(crate) struct ReadLink<'a, R, W, F> {
    pub(crate) io: R,
    pub(crate) shared: &'a Shared<W>,
    pub(crate) buf: &'a mut Vec<u8>,
    pub(crate) direct: &'a mut Direct,
    pub(crate) poll_write: F,
}

impl<R: PollRead, W, F> ReadLink<'_, R, W, F> {
    /// Borrows the receiving direction when the session lends it; whether the read half
    /// holds it now.
    fn borrow(&mut self) -> bool {
        if matches!(self.direct, Direct::Idle) {
            let mut session = lock(&self.shared.session);
            match session.lend_receiving() {
                Lending::Lent(lent) => {
                    *self.direct = Direct::Held(Box::new(Held {
                        lent,
                        received: 0,
                        delivered: 0,
                        capacity: session.limits().receive,
                    }));
                }
                Lending::NotNow => {}
                Lending::Never => *self.direct = Direct::Never,
            }
        }
        matches!(self.direct, Direct::Held(_))
    }

    /// Gives the receiving direction back after a read that delivered `filled` bytes: the
    /// result of the read, or `None` when the session's own loop is to go on with it.
    fn give_back(&mut self, filled: usize) -> Option<Poll<io::Result<usize>>> {
        if let Direct::Held(held) = self.direct {
            held.delivered += filled as u64;
        }
        let given = self.direct.give_back(&mut lock(&self.shared.session));
        match given {
            // A failure is sticky: the next read reports it, after these bytes.
            _ if filled > 0 => Some(Poll::Ready(Ok(filled))),
            Ok(()) => None,
            Err(e) => Some(Poll::Ready(Err(e.into()))),
        }
    }

    /// Reads and opens application data with the receiving direction the read half holds,
    /// without the session's lock (but to report counts when nobody else holds it, and when
    /// the transport has nothing). `None` when the session's own loop is to do the read:
    /// the direction is not lent, or was given back with nothing delivered.
    fn poll_read_direct(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Option<Poll<io::Result<usize>>> {
        if matches!(self.direct, Direct::Never) || !self.borrow() {
            return None;
        }
        let mut filled = 0;
        loop {
            let Direct::Held(held) = self.direct else {
                unreachable!("borrowed above, given back only on the way out")
            };
            if held.lent.read(buf, &mut filled) {
                // A record of another kind, or a failure: the session handles it.
                return self.give_back(filled);
            }
            if filled > 0 {
                held.delivered += filled as u64;
                if let Some(mut session) = try_lock(&self.shared.session) {
                    held.report(&mut session);
                }
                return Some(Poll::Ready(Ok(filled)));
            }
            let space = held.lent.spare(held.capacity);
            if space.is_empty() {
                return self.give_back(0);
            }
            match self.io.poll_read(cx, space) {
                Poll::Pending => {
                    // Possibly idle for long: keep no buffers meanwhile.
                    if held.lent.pending() == (0, 0) {
                        held.lent.release();
                    }
                    // A write half holding the session is busy, not idle: its buffers stay,
                    // and the counts wait for the next report.
                    if let Some(mut session) = try_lock(&self.shared.session) {
                        held.report(&mut session);
                        release_idle(self.shared, self.buf, &mut session);
                    }
                    return Some(Poll::Pending);
                }
                Poll::Ready(Ok(0)) => {
                    // The session's loop reports the end of the stream.
                    let mut session = lock(&self.shared.session);
                    let given = self.direct.give_back(&mut session);
                    let ended = given.and_then(|()| session.input_received(0));
                    return ended.err().map(|e| Poll::Ready(Err(e.into())));
                }
                Poll::Ready(Ok(n)) => {
                    held.lent.filled(n);
                    held.received += n as u64;
                }
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Poll::Ready(Err(e)) => {
                    let mut session = lock(&self.shared.session);
                    let _ = self.direct.give_back(&mut session);
                    return Some(Poll::Ready(Err(session.fail(Error::from(e)).into())));
                }
            }
        }
    }
}

impl<R, W, F> Link for ReadLink<'_, R, W, F>
where
    R: PollRead,
    F: FnMut(&mut W, &mut Context<'_>, &[u8]) -> Poll<io::Result<usize>>,
{
    type Guard<'g>
        = MutexGuard<'g, Session>
    where
        Self: 'g;

    fn session(&mut self) -> MutexGuard<'_, Session> {
        lock(&self.shared.session)
    }

    fn poll_read_direct(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Option<Poll<io::Result<usize>>> {
        ReadLink::poll_read_direct(self, cx, buf)
    }

    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.shared.writer_busy.load(Ordering::Acquire) > 0 {
            // The write half sends everything queued before it returns.
            return Poll::Ready(Ok(()));
        }
        poll_send_shared(self.shared, cx, Half::Read, false, &mut self.poll_write)
    }

    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Reading cannot go on until the answers leave: wait for the sender if need be.
        poll_send_shared(self.shared, cx, Half::Read, true, &mut self.poll_write)
    }

    fn poll_farewell(&mut self, cx: &mut Context<'_>) {
        // The write half may hold the sender for a flush or a shutdown, after which it does
        // not look for queued output: wait for it (it holds the sender only for one
        // transport call), so that the alert leaves now rather than with a write that may
        // never come.
        let _ = poll_send_shared(self.shared, cx, Half::Read, true, &mut self.poll_write);
    }

    fn poll_receive(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Only this half feeds the session, so the space seen here can only grow before the
        // bytes are handed over.
        let space = lock(&self.shared.session).input_buffer().len();
        if space == 0 {
            return Poll::Ready(Err(Error::protocol(
                "the session cannot take input in its current state",
            )
            .into()));
        }
        crate::buf::grow(self.buf, space);
        loop {
            match self.io.poll_read(cx, &mut self.buf[..space]) {
                Poll::Pending => {
                    // Possibly idle for long: keep no buffers meanwhile.
                    release_idle(self.shared, self.buf, &mut lock(&self.shared.session));
                    return Poll::Pending;
                }
                Poll::Ready(Ok(n)) => {
                    let mut session = lock(&self.shared.session);
                    let input = session.input_buffer();
                    let n = n.min(input.len());
                    input[..n].copy_from_slice(&self.buf[..n]);
                    return Poll::Ready(session.input_received(n).map_err(io::Error::from));
                }
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Poll::Ready(Err(e)) => {
                    return Poll::Ready(Err(lock(&self.shared.session).fail(Error::from(e)).into()))
                }
            }
        }
    }

    fn poll_flush_transport(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The write half's view: the shared session and the sender. It marks the write half
/// busy for as long as it lives (one call, or one poll).
pub(crate) struct WriteLink<'a, W, F, G> {
    shared: &'a Shared<W>,
    poll_write: F,
    poll_flush: G,
}

impl<'a, W, F, G> WriteLink<'a, W, F, G> {
    pub(crate) fn new(shared: &'a Shared<W>, poll_write: F, poll_flush: G) -> Self {
        shared.writer_busy.fetch_add(1, Ordering::AcqRel);
        WriteLink {
            shared,
            poll_write,
            poll_flush,
        }
    }
}

impl<W, F, G> Drop for WriteLink<'_, W, F, G> {
    fn drop(&mut self) {
        self.shared.writer_busy.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<W, F, G> Link for WriteLink<'_, W, F, G>
where
    F: FnMut(&mut W, &mut Context<'_>, &[u8]) -> Poll<io::Result<usize>>,
    G: FnMut(&mut W, &mut Context<'_>) -> Poll<io::Result<()>>,
{
    type Guard<'g>
        = MutexGuard<'g, Session>
    where
        Self: 'g;

    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        poll_send_shared(self.shared, cx, Half::Write, true, &mut self.poll_write)
    }

    fn poll_receive(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Streams split only after the handshake, and afterwards writing never needs input.
        Poll::Ready(Err(Error::protocol("the write half cannot read").into()))
    }

    fn poll_flush_transport(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut sender = lock(&self.shared.sender);
        loop {
            match sender.poll_io(Half::Write, cx, &mut self.poll_flush) {
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Poll::Ready(Err(e)) => {
                    return Poll::Ready(Err(lock(&self.shared.session)
                        .fail_send(Error::from(e))
                        .into()))
                }
                other => return other,
            }
        }
    }

    fn session(&mut self) -> MutexGuard<'_, Session> {
        lock(&self.shared.session)
    }
}

/// Runs a shared loop on a std half: `Pending` (only from the transport) becomes
/// `WouldBlock`.
pub(crate) fn run_std<L: Link, R>(
    link: &mut L,
    op: impl FnOnce(&mut L, &mut Context<'_>) -> Poll<io::Result<R>>,
) -> io::Result<R> {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    match op(link, &mut cx) {
        Poll::Ready(result) => result,
        Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
    }
}
