//! The tokio driver: [`TlsStream`] as `tokio::io::AsyncRead` and `AsyncWrite`; the shared
//! part is in [`io_async`](crate::io_async).

use ::tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

crate::io_async::async_driver! {
    runtime: "tokio", shutdown: poll_shutdown, read: (&mut ReadBuf<'_> => (), read_into),
    io: TokioIo, links: (tokio_link, tokio_half_link),
    stream: (handshake_tokio, close_tokio), configs: (connect_tokio, accept_tokio),
    write_extra: [
        /// Yes: vectored writes are sealed straight from the slices.
        fn is_write_vectored(&self) -> bool {
            true
        }
    ],
}

impl<T: AsyncRead + Unpin> PollRead for TokioIo<'_, T> {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut read_buf = ReadBuf::new(buf);
        ready!(Pin::new(&mut *self.0).poll_read(cx, &mut read_buf))?;
        Poll::Ready(Ok(read_buf.filled().len()))
    }
}

/// Reads plaintext through `link` into the unfilled part of `buf`.
fn read_into<L: driver::Link>(
    link: &mut L,
    cx: &mut Context<'_>,
    buf: &mut ReadBuf<'_>,
) -> Poll<io::Result<()>> {
    let n = ready!(driver::poll_read(link, cx, buf.initialize_unfilled()))?;
    buf.advance(n);
    Poll::Ready(Ok(()))
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
