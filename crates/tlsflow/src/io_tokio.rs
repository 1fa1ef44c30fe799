//! The tokio driver: [`TlsStream`] as `tokio::io::AsyncRead` and `AsyncWrite`.
//!
//! The same loops as the std driver, with the transport's `Pending` (and its registered
//! waker) in place of `WouldBlock`.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use ::tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::driver::{self, IoLink, PollIo, PollRead};
use crate::{ClientConfig, ServerConfig, TlsStream};

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
