//! The I/O loops, written once for every I/O model.
//!
//! A driver (std, tokio, futures-io, either half of a split stream) implements [`Link`]:
//! access to its [`Session`], and three transport steps that each do exactly one kind of
//! I/O and report the exact count to the session. The functions here combine those steps
//! into handshake, write, flush, read, shutdown and close. `Poll::Pending` comes only from the
//! transport (the std driver maps `WouldBlock` to it and back), so a stream returns
//! `WouldBlock`/`Pending` only when its transport did, with the waker registered by the
//! transport.
//!
//! Every operation that ends in a TLS failure first tries once to send what the session
//! queued for the peer: the records before the failure and the alert that says why
//! (RFC 8446, section 6.2). On a non-blocking or async transport the attempt does not wait
//! when the transport would block; on a blocking one it is a blocking write, like any other
//! (a write timeout bounds it). An alert is sent at most once; later operations, which
//! return the same sticky error, try again with what is left.

use std::io;
use std::ops::DerefMut;
use std::task::{ready, Context, Poll};

use crate::session::{ReadOutcome, Session};
use crate::wire::MAX_FRAGMENT;
use crate::Error;

/// A transport seen through one poll interface, whatever its I/O model. `Pending` means the
/// transport would block (and, in async, has registered the waker); `Interrupted` is passed
/// up and retried by the caller.
pub(crate) trait PollRead {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>>;
}

/// The writing side of [`PollRead`].
pub(crate) trait PollIo: PollRead {
    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>>;
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

/// A transport and the session it carries, owned by one driver: the [`Link`] of every
/// unsplit stream.
pub(crate) struct IoLink<'a, I> {
    io: I,
    session: &'a mut Session,
}

impl<'a, I: PollIo> IoLink<'a, I> {
    pub(crate) fn new(io: I, session: &'a mut Session) -> Self {
        IoLink { io, session }
    }
}

/// Writes `session`'s queued ciphertext to `io` until none is left. Only the counts the
/// transport returns leave the queue.
pub(crate) fn send_all<I: PollIo>(
    io: &mut I,
    session: &mut Session,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    while !session.pending_output().is_empty() {
        match ready!(io.poll_write(cx, session.pending_output())) {
            Ok(0) => return Poll::Ready(Err(session.fail_send(Error::WriteZero).into())),
            Ok(n) => session.output_sent(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Poll::Ready(Err(session.fail_send(Error::from(e)).into())),
        }
    }
    Poll::Ready(Ok(()))
}

/// Reads once from `io` into `session`.
pub(crate) fn receive_once<I: PollIo>(
    io: &mut I,
    session: &mut Session,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    loop {
        let buf = session.input_buffer();
        if buf.is_empty() {
            // The loops only read when the session can take input; anything else would spin.
            return Poll::Ready(Err(Error::protocol(
                "the session cannot take input in its current state",
            )
            .into()));
        }
        let read = match io.poll_read(cx, buf) {
            Poll::Ready(read) => read,
            Poll::Pending => {
                // Nothing to read: the connection may stay idle a long time, without buffers.
                session.release_idle_buffers();
                return Poll::Pending;
            }
        };
        match read {
            Ok(n) => return Poll::Ready(session.input_received(n).map_err(io::Error::from)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Poll::Ready(Err(session.fail(Error::from(e)).into())),
        }
    }
}

/// Flushes `io`, retrying `Interrupted`.
pub(crate) fn flush_transport<I: PollIo>(
    io: &mut I,
    session: &mut Session,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    loop {
        match ready!(io.poll_flush(cx)) {
            Ok(()) => return Poll::Ready(Ok(())),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Poll::Ready(Err(session.fail_send(Error::from(e)).into())),
        }
    }
}

impl<I: PollIo> Link for IoLink<'_, I> {
    type Guard<'g>
        = &'g mut Session
    where
        Self: 'g;

    fn session(&mut self) -> &mut Session {
        self.session
    }

    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        send_all(&mut self.io, self.session, cx)
    }

    fn poll_receive(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        receive_once(&mut self.io, self.session, cx)
    }

    fn poll_flush_transport(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        flush_transport(&mut self.io, self.session, cx)
    }
}

/// What a driver gives the shared loops.
pub(crate) trait Link {
    /// Exclusive access to the session, for CPU work only (never held across I/O).
    type Guard<'a>: DerefMut<Target = Session>
    where
        Self: 'a;

    fn session(&mut self) -> Self::Guard<'_>;

    /// Reads plaintext without going through the session, where the link can (a split
    /// stream's read half holding the receiving direction): `None` when the session's loop
    /// is to read.
    fn poll_read_direct(
        &mut self,
        _cx: &mut Context<'_>,
        _buf: &mut [u8],
    ) -> Option<Poll<io::Result<usize>>> {
        None
    }

    /// Writes queued ciphertext until none is left (`Ready(Ok)`), the transport blocks
    /// (`Pending`), or it fails (the session is then failed).
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;

    /// Like [`poll_send`](Link::poll_send), for a reader that cannot go on until queued
    /// answers leave: it must not leave them to another sender.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_send(cx)
    }

    /// One attempt to send what a failed session queued for the peer (its alert).
    fn poll_farewell(&mut self, cx: &mut Context<'_>) {
        let _ = self.poll_send(cx);
    }

    /// Reads from the transport once and hands what arrived (or end-of-file) to the session.
    fn poll_receive(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;

    /// Flushes the transport.
    fn poll_flush_transport(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

/// Sends what can be sent without waiting: a blocked transport is not an error here, since
/// the data is already the session's to deliver and `interest` reports it.
fn send_opportunistically<L: Link>(link: &mut L, cx: &mut Context<'_>) -> io::Result<()> {
    match link.poll_send(cx) {
        Poll::Ready(Err(e)) => Err(e),
        _ => Ok(()),
    }
}

/// Passes `result` on; when it is a failure, first tries once to send what the session
/// queued for the peer (the alert that says why).
fn farewell<L: Link, T>(
    link: &mut L,
    cx: &mut Context<'_>,
    result: Poll<io::Result<T>>,
) -> Poll<io::Result<T>> {
    if matches!(result, Poll::Ready(Err(_))) && link.session().has_farewell() {
        link.poll_farewell(cx);
    }
    result
}

/// Drives the handshake until it is over (this side's last flight may still be queued).
pub(crate) fn poll_handshake<L: Link>(link: &mut L, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    let result = handshake(link, cx);
    farewell(link, cx, result)
}

fn handshake<L: Link>(link: &mut L, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    loop {
        {
            // A failed session is not handshaking: the operation that follows reports the
            // failure (a read first delivers plaintext that arrived intact before it).
            let session = link.session();
            if session.is_handshake_complete() {
                return Poll::Ready(Ok(()));
            }
            session.check()?;
        }
        // Both peers may have a flight to push into full pipes: reading while our writing is
        // blocked is what lets the other side drain its own.
        match link.poll_send(cx) {
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) | Poll::Pending => ready!(link.poll_receive(cx))?,
        }
    }
}

/// Drives the handshake and sends this side's last flight.
pub(crate) fn poll_handshake_flushed<L: Link>(
    link: &mut L,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    ready!(poll_handshake(link, cx))?;
    let checked = link.session().check();
    let result = match checked {
        Ok(()) => link.poll_send(cx),
        Err(e) => Poll::Ready(Err(e.into())),
    };
    farewell(link, cx, result)
}

/// Accepts plaintext: `Ready(Ok(n))` with `n >= 1` for a non-empty `buf`, or `Pending` with
/// nothing accepted.
pub(crate) fn poll_write<L: Link>(
    link: &mut L,
    cx: &mut Context<'_>,
    buf: &[u8],
) -> Poll<io::Result<usize>> {
    let result = write(link, cx, buf);
    farewell(link, cx, result)
}

/// [`poll_write`] of the concatenation of `bufs`, sealed from the slices: the count is of
/// the bytes accepted from the start of the concatenation, across slices (promise 1).
pub(crate) fn poll_write_vectored<L: Link>(
    link: &mut L,
    cx: &mut Context<'_>,
    bufs: &[io::IoSlice<'_>],
) -> Poll<io::Result<usize>> {
    let result = write_with(link, cx, bufs.iter().any(|b| !b.is_empty()), |session| {
        session.write_plaintext_vectored(bufs)
    });
    farewell(link, cx, result)
}

fn write<L: Link>(link: &mut L, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
    write_with(link, cx, !buf.is_empty(), |session| {
        session.write_plaintext(buf)
    })
}

/// Writes through `seal` (a plaintext write of the session), making room in the outbox
/// until it accepts something.
fn write_with<L: Link>(
    link: &mut L,
    cx: &mut Context<'_>,
    any: bool,
    mut seal: impl FnMut(&mut Session) -> Result<usize, Error>,
) -> Poll<io::Result<usize>> {
    if !any {
        return Poll::Ready(Ok(0));
    }
    ready!(handshake(link, cx))?;
    loop {
        let (accepted, send_now) = {
            let mut session = link.session();
            let accepted = seal(&mut session)?;
            (accepted, !coalesce(&session, accepted))
        };
        if accepted > 0 {
            if send_now {
                send_opportunistically(link, cx)?;
            }
            return Poll::Ready(Ok(accepted));
        }
        // The outbox is full: make room. Pending here means nothing was accepted.
        ready!(link.poll_send(cx))?;
    }
}

/// Bulk writes queue at least this much ciphertext before a send.
const COALESCE_BYTES: usize = 64 * 1024;

/// Whether the records of a write of `accepted` bytes may wait for more: only writes of at
/// least a full record (bulk data) are coalesced, up to [`COALESCE_BYTES`] or the send limit;
/// smaller writes (messages) go out at once. Flush sends everything either way.
fn coalesce(session: &Session, accepted: usize) -> bool {
    let queued = session.buffered().outgoing_ciphertext;
    accepted >= MAX_FRAGMENT && queued < COALESCE_BYTES.min(session.limits().send)
}

/// Succeeds once every accepted byte is with the transport and the transport is flushed.
pub(crate) fn poll_flush<L: Link>(link: &mut L, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    let result = flush(link, cx);
    farewell(link, cx, result)
}

fn flush<L: Link>(link: &mut L, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    link.session().check()?;
    ready!(link.poll_send(cx))?;
    link.poll_flush_transport(cx)
}

/// Reads plaintext; `Ready(Ok(0))` only after the peer's `close_notify` (or a lenient EOF).
pub(crate) fn poll_read<L: Link>(
    link: &mut L,
    cx: &mut Context<'_>,
    buf: &mut [u8],
) -> Poll<io::Result<usize>> {
    let result = read(link, cx, buf);
    farewell(link, cx, result)
}

fn read<L: Link>(link: &mut L, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
    if buf.is_empty() {
        return Poll::Ready(Ok(0));
    }
    if let Some(read) = link.poll_read_direct(cx, buf) {
        return read;
    }
    ready!(handshake(link, cx))?;
    loop {
        let outcome = link.session().read_plaintext(buf)?;
        // Output produced by reading (tickets, alerts, key update replies) goes out first; if
        // the transport cannot take it now, reading goes on and `interest` reports both.
        send_opportunistically(link, cx)?;
        match outcome {
            ReadOutcome::Data(n) => return Poll::Ready(Ok(n)),
            ReadOutcome::Closed => return Poll::Ready(Ok(0)),
            ReadOutcome::NeedInput => ready!(link.poll_receive(cx))?,
            // Answers to the peer fill the send queue: they leave before more input is taken,
            // so a peer that never reads cannot make them grow.
            ReadOutcome::NeedOutput => ready!(link.poll_drain(cx))?,
        }
    }
}

/// Queues `close_notify` once and flushes it. The read side stays open (half-close).
pub(crate) fn poll_shutdown<L: Link>(link: &mut L, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    let result = shutdown(link, cx);
    farewell(link, cx, result)
}

fn shutdown<L: Link>(link: &mut L, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    ready!(handshake(link, cx))?;
    link.session().close_write()?;
    flush(link, cx)
}

/// Shuts down, then reads and discards until the peer's `close_notify` or end-of-file, at
/// most `limit` bytes (counted in `drained` across restarts).
pub(crate) fn poll_close<L: Link>(
    link: &mut L,
    cx: &mut Context<'_>,
    drained: &mut u64,
    limit: u64,
) -> Poll<io::Result<()>> {
    let result = close(link, cx, drained, limit);
    farewell(link, cx, result)
}

fn close<L: Link>(
    link: &mut L,
    cx: &mut Context<'_>,
    drained: &mut u64,
    limit: u64,
) -> Poll<io::Result<()>> {
    ready!(shutdown(link, cx))?;
    let mut scratch = [0u8; 4096];
    while *drained < limit {
        match ready!(read(link, cx, &mut scratch))? {
            0 => return Poll::Ready(Ok(())),
            n => *drained += n as u64,
        }
    }
    Poll::Ready(Ok(()))
}
