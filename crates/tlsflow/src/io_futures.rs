//! The futures-io driver: [`TlsStream`] as `futures_io::AsyncRead` and `AsyncWrite` (smol, async-std).
//!
//! The same loops as the std driver, with the transport's `Pending` (and its registered
//! waker) in place of `WouldBlock`.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use ::futures_io::{AsyncRead, AsyncWrite};

use crate::driver::{self, IoLink, PollIo, PollRead};
use crate::split::{FlushFn, Half, ReadLink, WriteFn, WriteLink};
use crate::{ClientConfig, ServerConfig, TlsStream};
use crate::{ReadHalf, WriteHalf};

/// A futures-io transport seen through the poll interface.
pub(crate) struct FuturesIo<'a, T>(pub(crate) &'a mut T);

impl<T: AsyncRead + Unpin> PollRead for FuturesIo<'_, T> {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> PollIo for FuturesIo<'_, T> {
    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> TlsStream<T> {
    fn futures_link(&mut self) -> IoLink<'_, FuturesIo<'_, T>> {
        let (io, session) = self.parts_mut();
        IoLink::new(FuturesIo(io), session)
    }

    /// Drives the handshake (futures-io), sending this side's last flight.
    ///
    /// # Errors
    ///
    /// The handshake's failure, or the transport's.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future loses nothing; poll it again (or read or write) to
    /// go on.
    pub async fn handshake_futures(&mut self) -> io::Result<()> {
        std::future::poll_fn(|cx| driver::poll_handshake_flushed(&mut self.futures_link(), cx))
            .await
    }

    /// Closes gracefully (futures-io): `close_notify`, then reads and discards until the peer's
    /// `close_notify` or end-of-file, within the drain limit. See [`TlsStream::close`].
    ///
    /// # Errors
    ///
    /// As [`TlsStream::close`].
    pub async fn close_futures(&mut self) -> io::Result<()> {
        std::future::poll_fn(|cx| {
            let (mut drained, limit) = self.close_progress();
            let result = driver::poll_close(&mut self.futures_link(), cx, &mut drained, limit);
            self.set_close_progress(drained);
            result
        })
        .await
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsStream<T> {
    /// Reads plaintext. Returns 0 only after the peer's `close_notify`; a bare end-of-file
    /// is an `UnexpectedEof` error.
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        driver::poll_read(&mut self.get_mut().futures_link(), cx, buf)
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsStream<T> {
    /// Accepts plaintext: `Ready(Ok(n))` with `n >= 1` once the bytes are sealed, or
    /// `Pending` with nothing accepted. Accepted bytes are delivered even if the caller's
    /// future is dropped afterwards; flush to know they reached the transport.
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        driver::poll_write(&mut self.get_mut().futures_link(), cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        driver::poll_flush(&mut self.get_mut().futures_link(), cx)
    }

    /// Sends `close_notify` once, flushes it, then closes the transport (for TCP, its write side).
    /// Reading goes on (half-close).
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(driver::poll_shutdown(&mut this.futures_link(), cx))?;
        Pin::new(this.get_mut()).poll_close(cx)
    }
}

impl ClientConfig {
    /// Connects over a futures-io transport and completes the handshake.
    ///
    /// # Errors
    ///
    /// An invalid server name, the handshake's failure, or the transport's.
    pub async fn connect_futures<T: AsyncRead + AsyncWrite + Unpin>(
        &self,
        server_name: &str,
        io: T,
    ) -> io::Result<TlsStream<T>> {
        let mut stream = self.connect(server_name, io)?;
        stream.handshake_futures().await?;
        Ok(stream)
    }
}

impl ServerConfig {
    /// Accepts over a futures-io transport and completes the handshake.
    ///
    /// # Errors
    ///
    /// The handshake's failure, or the transport's.
    pub async fn accept_futures<T: AsyncRead + AsyncWrite + Unpin>(
        &self,
        io: T,
    ) -> io::Result<TlsStream<T>> {
        let mut stream = self.accept(io)?;
        stream.handshake_futures().await?;
        Ok(stream)
    }
}

// ---- split halves ----

fn write_to<W: AsyncWrite + Unpin>(
    io: &mut W,
    cx: &mut Context<'_>,
    buf: &[u8],
) -> Poll<io::Result<usize>> {
    Pin::new(io).poll_write(cx, buf)
}

fn flush_of<W: AsyncWrite + Unpin>(io: &mut W, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    Pin::new(io).poll_flush(cx)
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> ReadHalf<R, W> {
    fn futures_half_link(&mut self) -> ReadLink<'_, FuturesIo<'_, R>, W, WriteFn<W>> {
        ReadLink {
            io: FuturesIo(&mut self.io),
            shared: &self.shared,
            buf: &mut self.buf,
            poll_write: write_to::<W>,
        }
    }
}

impl<R, W: AsyncWrite + Unpin> WriteHalf<R, W> {
    fn futures_half_link(&self) -> WriteLink<'_, W, WriteFn<W>, FlushFn<W>> {
        WriteLink::new(&self.shared, write_to::<W>, flush_of::<W>)
    }
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> AsyncRead for ReadHalf<R, W> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        driver::poll_read(&mut self.get_mut().futures_half_link(), cx, buf)
    }
}

impl<R: Unpin, W: AsyncWrite + Unpin> AsyncWrite for WriteHalf<R, W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        driver::poll_write(&mut self.get_mut().futures_half_link(), cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        driver::poll_flush(&mut self.get_mut().futures_half_link(), cx)
    }

    /// Sends `close_notify` once and flushes it, then closes the transport's write half.
    /// The read half goes on reading (half-close).
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(driver::poll_shutdown(&mut this.futures_half_link(), cx))?;
        let mut sender = this
            .shared
            .sender
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        sender.poll_io(Half::Write, cx, |io, cx| Pin::new(io).poll_close(cx))
    }
}
