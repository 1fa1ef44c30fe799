//! The futures-io driver: [`TlsStream`] as `futures_io::AsyncRead` and `AsyncWrite` (smol,
//! async-std); the shared part is in [`io_async`](crate::io_async).

use ::futures_io::{AsyncRead, AsyncWrite};

crate::io_async::async_driver! {
    runtime: "futures-io", shutdown: poll_close, read: (&mut [u8] => usize, driver::poll_read),
    io: FuturesIo, links: (futures_link, futures_half_link),
    stream: (handshake_futures, close_futures), configs: (connect_futures, accept_futures),
    write_extra: [],
}

impl<T: AsyncRead + Unpin> PollRead for FuturesIo<'_, T> {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}
