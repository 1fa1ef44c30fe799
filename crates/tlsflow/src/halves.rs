//! The public halves of a split stream, for each I/O model.

use std::io::{self, Read, Write};
use std::sync::{Arc, PoisonError};
use std::task::{Context, Poll};

use crate::driver;
use crate::session::{Buffered, Counters, State};
use crate::split::{run_std, Direct, FlushFn, ReadLink, Shared, WriteFn, WriteLink};
use crate::stream::StdIo;
use crate::{Error, TlsStream};

/// A transport shared by the two halves of a std split: `Read` and `Write` through `&T`
/// (as `TcpStream` and `UnixStream` allow from several threads at once).
#[derive(Debug)]
pub struct SharedIo<T>(Arc<T>);

impl<T> Clone for SharedIo<T> {
    fn clone(&self) -> Self {
        SharedIo(self.0.clone())
    }
}

impl<T> Read for SharedIo<T>
where
    for<'a> &'a T: Read,
{
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self.0).read(buf)
    }
}

impl<T> Write for SharedIo<T>
where
    for<'a> &'a T: Write,
{
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self.0).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        (&*self.0).flush()
    }
}

/// The reading half of a split [`TlsStream`].
///
/// It reads plaintext and sends what reading produces (tickets, alerts) through the shared
/// sender when the write half is not using it. It never waits for the write half.
pub struct ReadHalf<R, W> {
    pub(crate) shared: Arc<Shared<W>>,
    pub(crate) io: R,
    pub(crate) buf: Vec<u8>,
    /// The session's receiving direction, while this half holds it.
    pub(crate) direct: Direct,
}

/// The writing half of a split [`TlsStream`].
///
/// Its [`shutdown`](WriteHalf::shutdown) is a half-close: the read half goes on reading.
pub struct WriteHalf<R, W> {
    pub(crate) shared: Arc<Shared<W>>,
    _read: std::marker::PhantomData<fn() -> R>,
}

impl<R, W> std::fmt::Debug for ReadHalf<R, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadHalf").finish_non_exhaustive()
    }
}

impl<R, W> std::fmt::Debug for WriteHalf<R, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteHalf").finish_non_exhaustive()
    }
}

/// The halves given to [`ReadHalf::reunite`] came from different streams.
pub struct ReuniteError<R, W>(pub ReadHalf<R, W>, pub WriteHalf<R, W>);

impl<R, W> std::fmt::Debug for ReuniteError<R, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReuniteError(..)")
    }
}

impl<R, W> std::fmt::Display for ReuniteError<R, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the halves belong to different TLS streams")
    }
}

impl<R, W> std::error::Error for ReuniteError<R, W> {}

impl<T> TlsStream<T> {
    /// Splits the stream into a read half and a write half over `f`'s two transport halves.
    /// The halves work at the same time, from different threads or tasks.
    ///
    /// The handshake must be complete (run [`handshake`](TlsStream::handshake) first);
    /// otherwise the stream is given back unchanged.
    ///
    /// # Errors
    ///
    /// The stream itself, when the handshake is not complete.
    #[allow(clippy::type_complexity, clippy::result_large_err)]
    pub fn split_with<R, W>(
        self,
        f: impl FnOnce(T) -> (R, W),
    ) -> Result<(ReadHalf<R, W>, WriteHalf<R, W>), TlsStream<T>> {
        if self.is_handshaking() {
            return Err(self);
        }
        let (io, session) = self.into_parts();
        let (read, write) = f(io);
        let shared = Shared::new(session, write);
        let write_half = WriteHalf {
            shared: shared.clone(),
            _read: std::marker::PhantomData,
        };
        Ok((
            ReadHalf {
                shared,
                io: read,
                buf: Vec::new(),
                direct: Direct::Idle,
            },
            write_half,
        ))
    }
}

impl<T> TlsStream<T>
where
    for<'a> &'a T: Read + Write,
{
    /// Splits a stream over a transport usable from two threads through `&T` (such as
    /// `TcpStream`) into halves for two threads. See [`split_with`](Self::split_with).
    ///
    /// # Errors
    ///
    /// The stream itself, when the handshake is not complete.
    #[allow(clippy::type_complexity, clippy::result_large_err)]
    pub fn into_split(
        self,
    ) -> Result<
        (
            ReadHalf<SharedIo<T>, SharedIo<T>>,
            WriteHalf<SharedIo<T>, SharedIo<T>>,
        ),
        TlsStream<T>,
    > {
        self.split_with(|io| {
            let shared = SharedIo(Arc::new(io));
            (shared.clone(), shared)
        })
    }
}

impl<R, W> ReadHalf<R, W> {
    /// Joins the halves back into one stream, with `f` joining the transport halves.
    ///
    /// # Errors
    ///
    /// The halves, when they come from different streams.
    #[allow(clippy::result_large_err)]
    pub fn reunite_with<T>(
        mut self,
        write: WriteHalf<R, W>,
        f: impl FnOnce(R, W) -> T,
    ) -> Result<TlsStream<T>, ReuniteError<R, W>> {
        if !Arc::ptr_eq(&self.shared, &write.shared) {
            return Err(ReuniteError(self, write));
        }
        drop(write);
        // A failure found on the way is the session's now, and reported by its next read.
        let _ = self.direct.give_back(&mut lock_session(&self.shared));
        let shared = match Arc::try_unwrap(self.shared) {
            Ok(shared) => shared,
            Err(_) => unreachable!("both halves were given, so no other owner exists"),
        };
        let mut session = shared
            .session
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        let sender = shared
            .sender
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        session.restore_in_flight(sender.in_flight.pending());
        Ok(TlsStream::new(f(self.io, sender.io), session))
    }

    /// The connection state.
    pub fn state(&self) -> State {
        lock_session(&self.shared).state()
    }

    /// Byte counters of the whole stream.
    pub fn counters(&self) -> Counters {
        let mut counters = lock_session(&self.shared).counters();
        let (received, delivered) = self.direct.uncounted();
        counters.ciphertext_received += received;
        counters.plaintext_delivered += delivered;
        counters
    }

    /// What the stream buffers now.
    pub fn buffered(&self) -> Buffered {
        let mut buffered = lock_session(&self.shared).buffered();
        let (ciphertext, plaintext) = self.direct.pending();
        buffered.incoming_ciphertext += ciphertext;
        buffered.incoming_plaintext += plaintext;
        buffered
    }

    /// What the stream waits for, as [`TlsStream::interest`] says it for a whole stream:
    /// `read` when this half needs the transport readable to go on, `write` when ciphertext
    /// is queued (whichever half runs next sends it). For event loops that poll the halves'
    /// transports themselves.
    pub fn interest(&self) -> crate::Interest {
        let mut interest = shared_interest(&self.shared);
        interest.read &= !self.direct.has_record();
        interest
    }

    /// Whether this half holds the session's receiving direction now, and so opens
    /// application data without the session's lock (tlsflow's record layer: the rustls
    /// engine on `aws-lc-rs`, TLS 1.3).
    #[cfg(feature = "testing")]
    #[doc(hidden)]
    pub fn holds_receiving(&self) -> bool {
        matches!(self.direct, Direct::Held(_))
    }

    /// The stream's buffer limits.
    pub fn limits(&self) -> crate::Limits {
        lock_session(&self.shared).limits()
    }

    /// Bytes of buffer memory both halves hold (see [`Session::buffer_capacity`]): zero for
    /// a stream that waits idle after a read found no data.
    ///
    /// [`Session::buffer_capacity`]: crate::Session::buffer_capacity
    pub fn buffer_capacity(&self) -> usize {
        self.buf.capacity() + self.direct.capacity() + shared_capacity(&self.shared)
    }
}

/// What a split stream waits for: the session's interest, with ciphertext the shared
/// sender still holds counted as waiting to write.
fn shared_interest<W>(shared: &Shared<W>) -> crate::Interest {
    let mut interest = lock_session(shared).interest();
    let sender = shared.sender.lock().unwrap_or_else(PoisonError::into_inner);
    interest.write |= !sender.in_flight.is_empty();
    interest
}

/// Buffer memory of the shared session and sender.
fn shared_capacity<W>(shared: &Shared<W>) -> usize {
    let sender = shared
        .sender
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .in_flight
        .capacity();
    sender + lock_session(shared).buffer_capacity()
}

impl<T> ReadHalf<SharedIo<T>, SharedIo<T>> {
    /// Joins the halves of [`TlsStream::into_split`] back into one stream.
    ///
    /// # Errors
    ///
    /// The halves, when they come from different streams.
    #[allow(clippy::result_large_err)]
    pub fn reunite(
        self,
        write: WriteHalf<SharedIo<T>, SharedIo<T>>,
    ) -> Result<TlsStream<T>, ReuniteError<SharedIo<T>, SharedIo<T>>> {
        self.reunite_with(write, |read, write| {
            drop(write);
            match Arc::try_unwrap(read.0) {
                Ok(io) => io,
                Err(_) => unreachable!("the two SharedIo handles were the only owners"),
            }
        })
    }
}

impl<R, W> WriteHalf<R, W> {
    /// The connection state.
    pub fn state(&self) -> State {
        lock_session(&self.shared).state()
    }

    /// What the stream waits for (see [`ReadHalf::interest`]); `write` is the one that
    /// concerns this half: ciphertext is queued for the transport.
    pub fn interest(&self) -> crate::Interest {
        shared_interest(&self.shared)
    }

    /// Byte counters of the whole stream.
    pub fn counters(&self) -> Counters {
        lock_session(&self.shared).counters()
    }

    /// Bytes of buffer memory the shared session and sender hold (the read half's own
    /// buffer is counted by [`ReadHalf::buffer_capacity`]).
    pub fn buffer_capacity(&self) -> usize {
        shared_capacity(&self.shared)
    }

    /// Asks for a TLS 1.3 key update, sent before the next record.
    ///
    /// # Errors
    ///
    /// The sticky error, or [`Error::Config`] when the connection cannot update keys.
    pub fn refresh_traffic_keys(&self) -> Result<(), Error> {
        lock_session(&self.shared).refresh_traffic_keys()
    }
}

fn lock_session<W>(shared: &Shared<W>) -> std::sync::MutexGuard<'_, crate::Session> {
    shared
        .session
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

// ---- std ----

fn std_write<W: Write>(io: &mut W, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
    StdIo(io).poll_write_std(buf)
}

fn std_flush<W: Write>(io: &mut W, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    match io.flush() {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Poll::Pending,
        other => Poll::Ready(other),
    }
}

impl<R: Read, W: Write> ReadHalf<R, W> {
    fn std_link(&mut self) -> ReadLink<'_, StdIo<'_, R>, W, WriteFn<W>> {
        ReadLink {
            io: StdIo(&mut self.io),
            shared: &self.shared,
            buf: &mut self.buf,
            direct: &mut self.direct,
            poll_write: std_write::<W>,
        }
    }
}

impl<R: Read, W: Write> Read for ReadHalf<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        run_std(&mut self.std_link(), |link, cx| {
            driver::poll_read(link, cx, buf)
        })
    }
}

impl<R, W: Write> WriteHalf<R, W> {
    fn std_link(&self) -> WriteLink<'_, W, WriteFn<W>, FlushFn<W>> {
        WriteLink::new(&self.shared, std_write::<W>, std_flush::<W>)
    }

    /// Sends `close_notify` (once) and flushes it. The read half goes on reading
    /// (half-close). Restartable after `WouldBlock`. The transport stays open; for TCP and
    /// Unix sockets, [`shutdown_transport`](WriteHalf::shutdown_transport) also closes its
    /// write direction, as tokio's `poll_shutdown` does.
    ///
    /// # Errors
    ///
    /// The sticky error, or the transport's.
    pub fn shutdown(&mut self) -> io::Result<()> {
        run_std(&mut self.std_link(), |link, cx| {
            driver::poll_shutdown(link, cx)
        })
    }
}

impl<R, W: Write> Write for WriteHalf<R, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        run_std(&mut self.std_link(), |link, cx| {
            driver::poll_write(link, cx, buf)
        })
    }

    /// As [`TlsStream`]'s `write_vectored`.
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        run_std(&mut self.std_link(), |link, cx| {
            driver::poll_write_vectored(link, cx, bufs)
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        run_std(&mut self.std_link(), |link, cx| {
            driver::poll_flush(link, cx)
        })
    }
}

/// Transports whose write direction closes on its own, leaving the read direction open:
/// TCP and Unix stream sockets.
pub trait HalfClose {
    /// Closes the write direction (`shutdown(SHUT_WR)`): the peer reads end-of-file.
    ///
    /// # Errors
    ///
    /// The operating system's.
    fn shutdown_write(&self) -> io::Result<()>;
}

impl HalfClose for std::net::TcpStream {
    fn shutdown_write(&self) -> io::Result<()> {
        self.shutdown(std::net::Shutdown::Write)
    }
}

#[cfg(unix)]
impl HalfClose for std::os::unix::net::UnixStream {
    fn shutdown_write(&self) -> io::Result<()> {
        self.shutdown(std::net::Shutdown::Write)
    }
}

impl<R, T: HalfClose> WriteHalf<R, SharedIo<T>>
where
    for<'a> &'a T: Write,
{
    /// [`shutdown`](WriteHalf::shutdown), then closes the socket's write direction, so the
    /// peer reads end-of-file right after our `close_notify`. The read half goes on reading.
    ///
    /// # Errors
    ///
    /// As `shutdown`, or the operating system's refusal to shut the socket.
    pub fn shutdown_transport(&mut self) -> io::Result<()> {
        self.shutdown()?;
        let sender = self
            .shared
            .sender
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        sender.io.0.shutdown_write()
    }
}
