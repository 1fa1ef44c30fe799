//! The `std::io` driver: one stream type for blocking and non-blocking transports.

use std::io::{self, Read, Write};
use std::task::{Context, Poll, Waker};

use crate::driver::{self, IoLink, PollIo, PollRead};
use crate::engine::ProtocolVersion;
use crate::session::{Buffered, Counters, Interest, Session, State};
use crate::Error;

/// How many bytes [`TlsStream::close`] reads and discards, at most, while it waits for the
/// peer's `close_notify`.
pub const DEFAULT_CLOSE_DRAIN_LIMIT: u64 = 1024 * 1024;

/// A TLS stream over any `T: Read + Write`, blocking or non-blocking.
///
/// `TlsStream` implements [`Read`] and [`Write`] and keeps the promises in the crate docs:
///
/// - [`write`](Write::write) returns `Ok(n)` with `n >= 1` once `n` bytes are sealed; their
///   ciphertext is then the stream's to deliver, however little the transport takes at a
///   time. `Err(WouldBlock)` means nothing was accepted. It never returns `Ok(0)` for a
///   non-empty buffer and never asks for the same bytes again. A write smaller than one
///   record (16 KiB) is sent at once as far as the transport takes it; the records of larger
///   (bulk) writes may wait for the next write, up to 64 KiB, so bulk data leaves in fewer,
///   larger sends. [`flush`](Write::flush) sends everything.
/// - [`flush`](Write::flush) succeeds only when every accepted byte has been handed to the
///   transport and the transport has been flushed.
/// - [`read`](Read::read) returns `Ok(0)` only after the peer's `close_notify`; an end-of-file
///   without it is an error of kind `UnexpectedEof`.
/// - `Interrupted` from the transport is retried inside; a transport write of `Ok(0)` is an
///   error of kind `WriteZero`.
///
/// The handshake runs implicitly on the first read or write, or explicitly through
/// [`handshake`](Self::handshake).
///
/// # Non-blocking transports
///
/// Every method may return `WouldBlock`, and only when the transport itself returned it.
/// Every method is restartable: call it again when the transport is ready. Ask
/// [`interest`](Self::interest) what to wait for. When it includes writing and you have
/// nothing to write, call [`flush`](Write::flush): a read can produce output (handshake
/// messages, key updates, alerts) that waits for the transport.
pub struct TlsStream<T> {
    io: T,
    session: Session,
    close_drained: u64,
    close_drain_limit: u64,
}

impl<T: std::fmt::Debug> std::fmt::Debug for TlsStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsStream")
            .field("io", &self.io)
            .field("session", &self.session)
            .finish()
    }
}

impl<T> TlsStream<T> {
    /// A stream over `io`, driven by `session`. Nothing is sent until the first operation.
    pub fn new(io: T, session: Session) -> Self {
        TlsStream {
            io,
            session,
            close_drained: 0,
            close_drain_limit: DEFAULT_CLOSE_DRAIN_LIMIT,
        }
    }

    /// The transport.
    pub fn get_ref(&self) -> &T {
        &self.io
    }

    /// The transport, mutably. Reading or writing it directly corrupts the TLS stream.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.io
    }

    /// The session core.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The session core, mutably (for example, to request a key update).
    pub fn session_mut(&mut self) -> &mut Session {
        &mut self.session
    }

    /// The transport and session, both mutable, for drivers.
    #[cfg(any(feature = "tokio", feature = "futures-io"))]
    pub(crate) fn parts_mut(&mut self) -> (&mut T, &mut Session) {
        (&mut self.io, &mut self.session)
    }

    /// How much [`close`](Self::close) has drained so far, and its limit.
    #[cfg(any(feature = "tokio", feature = "futures-io"))]
    pub(crate) fn close_progress(&self) -> (u64, u64) {
        (self.close_drained, self.close_drain_limit)
    }

    #[cfg(any(feature = "tokio", feature = "futures-io"))]
    pub(crate) fn set_close_progress(&mut self, drained: u64) {
        self.close_drained = drained;
    }

    /// Splits the stream into its transport and session.
    pub fn into_parts(self) -> (T, Session) {
        (self.io, self.session)
    }

    /// Sets how many bytes [`close`](Self::close) may read and discard while waiting for the
    /// peer's `close_notify` ([`DEFAULT_CLOSE_DRAIN_LIMIT`] by default).
    pub fn set_close_drain_limit(&mut self, bytes: u64) {
        self.close_drain_limit = bytes;
    }

    /// What to wait for before calling the stream again (for event loops).
    pub fn interest(&self) -> Interest {
        self.session.interest()
    }

    /// The connection state.
    pub fn state(&self) -> State {
        self.session.state()
    }

    /// Whether the handshake is still in progress.
    pub fn is_handshaking(&self) -> bool {
        self.session.is_handshaking()
    }

    /// The negotiated protocol version, once the handshake is done.
    pub fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.session.protocol_version()
    }

    /// The negotiated cipher suite; its [`Display`](std::fmt::Display) is the IANA name, the
    /// same on both engines.
    pub fn cipher_suite(&self) -> Option<crate::CipherSuite> {
        self.session.cipher_suite()
    }

    /// The negotiated ALPN protocol, if any.
    pub fn alpn_protocol(&self) -> Option<Vec<u8>> {
        self.session.alpn_protocol()
    }

    /// The server name (SNI): the one requested by this client, or from the peer client.
    pub fn server_name(&self) -> Option<String> {
        self.session.server_name()
    }

    /// Whether the handshake resumed an earlier session (a ticket or the server's session
    /// cache); `None` until the handshake is over.
    pub fn is_resumed(&self) -> Option<bool> {
        self.session.is_resumed()
    }

    /// Keying material exported from the connection: see
    /// [`Session::export_keying_material`].
    ///
    /// # Errors
    ///
    /// As [`Session::export_keying_material`].
    pub fn export_keying_material(
        &self,
        out: &mut [u8],
        label: &str,
        context: Option<&[u8]>,
    ) -> Result<(), Error> {
        self.session.export_keying_material(out, label, context)
    }

    /// The peer's certificate chain, DER-encoded, end-entity first.
    pub fn peer_certificates(&self) -> Option<Vec<Vec<u8>>> {
        self.session.peer_certificates()
    }

    /// Byte counters: plaintext accepted and delivered, ciphertext sent and received.
    pub fn counters(&self) -> Counters {
        self.session.counters()
    }

    /// What the stream buffers now.
    pub fn buffered(&self) -> Buffered {
        self.session.buffered()
    }

    /// Bytes of buffer memory the stream holds (see [`Session::buffer_capacity`]).
    pub fn buffer_capacity(&self) -> usize {
        self.session.buffer_capacity()
    }
}

impl<T: Read + Write> TlsStream<T> {
    /// Runs one of the shared loops with this stream's transport, mapping `Pending` (which
    /// only a transport `WouldBlock` produces) back to `WouldBlock`.
    fn run<R>(
        &mut self,
        op: impl FnOnce(&mut IoLink<'_, StdIo<'_, T>>, &mut Context<'_>) -> Poll<io::Result<R>>,
    ) -> io::Result<R> {
        let mut link = IoLink::new(StdIo(&mut self.io), &mut self.session);
        let mut cx = Context::from_waker(Waker::noop());
        match op(&mut link, &mut cx) {
            Poll::Ready(result) => result,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    /// Drives the handshake to completion and sends this side's last handshake messages.
    ///
    /// Restartable: on a non-blocking transport it returns `WouldBlock` whenever the transport
    /// does; call it again when [`interest`](Self::interest) is ready.
    ///
    /// # Errors
    ///
    /// The handshake's failure (an [`Error`](crate::Error) inside the `io::Error`), or the transport's.
    pub fn handshake(&mut self) -> io::Result<()> {
        self.run(|link, cx| driver::poll_handshake_flushed(link, cx))
    }

    /// Sends `close_notify` (once) and flushes it: the write side is closed, the read side
    /// goes on (half-close). Restartable after `WouldBlock`.
    ///
    /// # Errors
    ///
    /// The sticky error, or the transport's.
    pub fn shutdown(&mut self) -> io::Result<()> {
        self.run(|link, cx| driver::poll_shutdown(link, cx))
    }

    /// Closes gracefully: [`shutdown`](Self::shutdown), then reads and discards until the
    /// peer's `close_notify` or end-of-file, at most the drain limit
    /// ([`set_close_drain_limit`](Self::set_close_drain_limit)). Draining keeps the kernel
    /// from answering unread bytes (TLS 1.3 session tickets, late data) with a reset that
    /// would make the peer see "connection reset" instead of a clean end.
    ///
    /// Returns `Ok(())` when the peer closed cleanly or the drain limit was reached.
    /// Restartable after `WouldBlock`.
    ///
    /// # Errors
    ///
    /// The sticky error, the transport's, or [`Error::Truncated`](crate::Error::Truncated) when the transport ended
    /// without the peer's `close_notify`.
    pub fn close(&mut self) -> io::Result<()> {
        let limit = self.close_drain_limit;
        let mut drained = self.close_drained;
        let result = self.run(|link, cx| driver::poll_close(link, cx, &mut drained, limit));
        self.close_drained = drained;
        result
    }
}

/// A std transport seen through the poll interface: `WouldBlock` becomes `Pending`.
pub(crate) struct StdIo<'a, T>(pub(crate) &'a mut T);

impl<T: Read> PollRead for StdIo<'_, T> {
    fn poll_read(&mut self, _cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        would_block_to_pending(self.0.read(buf))
    }
}

impl<T: Read + Write> PollIo for StdIo<'_, T> {
    fn poll_write(&mut self, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        would_block_to_pending(self.0.write(buf))
    }

    fn poll_flush(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        would_block_to_pending(self.0.flush())
    }
}

impl<T: Write> StdIo<'_, T> {
    pub(crate) fn poll_write_std(&mut self, buf: &[u8]) -> Poll<io::Result<usize>> {
        would_block_to_pending(self.0.write(buf))
    }
}

fn would_block_to_pending<R>(result: io::Result<R>) -> Poll<io::Result<R>> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Poll::Pending,
        other => Poll::Ready(other),
    }
}

impl<T: Read + Write> Write for TlsStream<T> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.run(|link, cx| driver::poll_write(link, cx, buf))
    }

    /// Seals records straight from the slices (see
    /// [`Session::write_plaintext_vectored`]); the count is of the bytes accepted from the
    /// start of the concatenation, across slices.
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.run(|link, cx| driver::poll_write_vectored(link, cx, bufs))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.run(|link, cx| driver::poll_flush(link, cx))
    }
}

impl<T: Read + Write> Read for TlsStream<T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.run(|link, cx| driver::poll_read(link, cx, buf))
    }
}

/// The transport's file descriptor, for registering the stream with an event loop or
/// setting socket options. Reading or writing through it directly corrupts the TLS stream.
#[cfg(unix)]
impl<T: std::os::fd::AsRawFd> std::os::fd::AsRawFd for TlsStream<T> {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.get_ref().as_raw_fd()
    }
}

/// The transport's file descriptor (see the `AsRawFd` impl).
#[cfg(unix)]
impl<T: std::os::fd::AsFd> std::os::fd::AsFd for TlsStream<T> {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.get_ref().as_fd()
    }
}

/// The transport's socket, for registering the stream with an event loop or setting socket
/// options. Reading or writing through it directly corrupts the TLS stream.
#[cfg(windows)]
impl<T: std::os::windows::io::AsRawSocket> std::os::windows::io::AsRawSocket for TlsStream<T> {
    fn as_raw_socket(&self) -> std::os::windows::io::RawSocket {
        self.get_ref().as_raw_socket()
    }
}

/// The transport's socket (see the `AsRawSocket` impl).
#[cfg(windows)]
impl<T: std::os::windows::io::AsSocket> std::os::windows::io::AsSocket for TlsStream<T> {
    fn as_socket(&self) -> std::os::windows::io::BorrowedSocket<'_> {
        self.get_ref().as_socket()
    }
}
