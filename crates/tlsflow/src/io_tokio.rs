//! The tokio driver: [`TlsStream`] as `tokio::io::AsyncRead` and `AsyncWrite`.
//!
//! The same loops as the std driver, with the transport's `Pending` (and its registered
//! waker) in place of `WouldBlock`.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use ::tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::driver::{self, IoLink, PollIo, PollRead};
use crate::split::{FlushFn, Half, ReadLink, WriteFn, WriteLink};
use crate::{ClientConfig, ServerConfig, TlsStream};
use crate::{ReadHalf, WriteHalf};

/// A tokio transport seen through the poll interface.
pub(crate) struct TokioIo<'a, T>(pub(crate) &'a mut T);

impl<T: AsyncRead + Unpin> PollRead for TokioIo<'_, T> {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut read_buf = ReadBuf::new(buf);
        ready!(Pin::new(&mut *self.0).poll_read(cx, &mut read_buf))?;
        Poll::Ready(Ok(read_buf.filled().len()))
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> PollIo for TokioIo<'_, T> {
    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> TlsStream<T> {
    fn tokio_link(&mut self) -> IoLink<'_, TokioIo<'_, T>> {
        let (io, session) = self.parts_mut();
        IoLink::new(TokioIo(io), session)
    }

    /// Drives the handshake (tokio), sending this side's last flight.
    ///
    /// # Errors
    ///
    /// The handshake's failure, or the transport's.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future loses nothing; poll it again (or read or write) to
    /// go on.
    pub async fn handshake_tokio(&mut self) -> io::Result<()> {
        std::future::poll_fn(|cx| driver::poll_handshake_flushed(&mut self.tokio_link(), cx)).await
    }

    /// Closes gracefully (tokio): `close_notify`, then reads and discards until the peer's
    /// `close_notify` or end-of-file, within the drain limit. See [`TlsStream::close`].
    ///
    /// # Errors
    ///
    /// As [`TlsStream::close`].
    pub async fn close_tokio(&mut self) -> io::Result<()> {
        std::future::poll_fn(|cx| {
            let (mut drained, limit) = self.close_progress();
            let result = driver::poll_close(&mut self.tokio_link(), cx, &mut drained, limit);
            self.set_close_progress(drained);
            result
        })
        .await
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsStream<T> {
    /// Reads plaintext. Ends (no bytes read) only after the peer's `close_notify`; a bare
    /// end-of-file is an `UnexpectedEof` error.
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let n = ready!(driver::poll_read(
            &mut this.tokio_link(),
            cx,
            buf.initialize_unfilled()
        ))?;
        buf.advance(n);
        Poll::Ready(Ok(()))
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
        driver::poll_write(&mut self.get_mut().tokio_link(), cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        driver::poll_flush(&mut self.get_mut().tokio_link(), cx)
    }

    /// Sends `close_notify` once, flushes it, then shuts down the transport's write side.
    /// Reading goes on (half-close).
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(driver::poll_shutdown(&mut this.tokio_link(), cx))?;
        Pin::new(this.get_mut()).poll_shutdown(cx)
    }
}

impl ClientConfig {
    /// Connects over a tokio transport and completes the handshake.
    ///
    /// # Errors
    ///
    /// An invalid server name, the handshake's failure, or the transport's.
    pub async fn connect_tokio<T: AsyncRead + AsyncWrite + Unpin>(
        &self,
        server_name: &str,
        io: T,
    ) -> io::Result<TlsStream<T>> {
        let mut stream = self.connect(server_name, io)?;
        stream.handshake_tokio().await?;
        Ok(stream)
    }
}

impl ServerConfig {
    /// Accepts over a tokio transport and completes the handshake.
    ///
    /// # Errors
    ///
    /// The handshake's failure, or the transport's.
    pub async fn accept_tokio<T: AsyncRead + AsyncWrite + Unpin>(
        &self,
        io: T,
    ) -> io::Result<TlsStream<T>> {
        let mut stream = self.accept(io)?;
        stream.handshake_tokio().await?;
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
    fn tokio_half_link(&mut self) -> ReadLink<'_, TokioIo<'_, R>, W, WriteFn<W>> {
        ReadLink {
            io: TokioIo(&mut self.io),
            shared: &self.shared,
            buf: &mut self.buf,
            poll_write: write_to::<W>,
        }
    }
}

impl<R, W: AsyncWrite + Unpin> WriteHalf<R, W> {
    fn tokio_half_link(&self) -> WriteLink<'_, W, WriteFn<W>, FlushFn<W>> {
        WriteLink::new(&self.shared, write_to::<W>, flush_of::<W>)
    }
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> AsyncRead for ReadHalf<R, W> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let n = ready!(driver::poll_read(
            &mut this.tokio_half_link(),
            cx,
            buf.initialize_unfilled()
        ))?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<R: Unpin, W: AsyncWrite + Unpin> AsyncWrite for WriteHalf<R, W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        driver::poll_write(&mut self.get_mut().tokio_half_link(), cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        driver::poll_flush(&mut self.get_mut().tokio_half_link(), cx)
    }

    /// Sends `close_notify` once and flushes it, then shuts down the transport's write
    /// side. The read half goes on reading (half-close).
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(driver::poll_shutdown(&mut this.tokio_half_link(), cx))?;
        let mut sender = this
            .shared
            .sender
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        sender.poll_io(Half::Write, cx, |io, cx| Pin::new(io).poll_shutdown(cx))
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> TlsStream<T> {
    /// Splits an established tokio stream into owned halves for two tasks, over
    /// `tokio::io::split`. For a `tokio::net::TcpStream`,
    /// `split_with(|tcp| tcp.into_split())` avoids the transport lock of `tokio::io::split`.
    ///
    /// # Errors
    ///
    /// The stream itself, when the handshake is not complete.
    #[allow(clippy::type_complexity, clippy::result_large_err)]
    pub fn into_split_tokio(
        self,
    ) -> Result<
        (
            ReadHalf<::tokio::io::ReadHalf<T>, ::tokio::io::WriteHalf<T>>,
            WriteHalf<::tokio::io::ReadHalf<T>, ::tokio::io::WriteHalf<T>>,
        ),
        TlsStream<T>,
    > {
        self.split_with(::tokio::io::split)
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin>
    ReadHalf<::tokio::io::ReadHalf<T>, ::tokio::io::WriteHalf<T>>
{
    /// Joins the halves of [`TlsStream::into_split_tokio`] back into one stream.
    ///
    /// # Errors
    ///
    /// The halves, when they come from different streams.
    #[allow(clippy::result_large_err)]
    pub fn reunite_tokio(
        self,
        write: WriteHalf<::tokio::io::ReadHalf<T>, ::tokio::io::WriteHalf<T>>,
    ) -> Result<
        TlsStream<T>,
        crate::ReuniteError<::tokio::io::ReadHalf<T>, ::tokio::io::WriteHalf<T>>,
    > {
        self.reunite_with(write, |read, write| read.unsplit(write))
    }
}
