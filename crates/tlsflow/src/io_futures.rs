//! The futures-io driver: [`TlsStream`] as `futures_io::AsyncRead` and `AsyncWrite` (smol,
//! async-std); the shared part is in [`io_async`](crate::io_async).

use ::futures_io::{AsyncRead, AsyncWrite};

crate::io_async::async_driver! {
    runtime: "futures-io",
    io: FuturesIo,
    links: (futures_link, futures_half_link),
    stream: (handshake_futures, close_futures),
    configs: (connect_futures, accept_futures),
    shutdown: poll_close,
}

impl<T: AsyncRead + Unpin> PollRead for FuturesIo<'_, T> {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
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

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> AsyncRead for ReadHalf<R, W> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        driver::poll_read(&mut self.get_mut().futures_half_link(), cx, buf)
    }
}
