//! What the async drivers (tokio, futures-io) share, written once: the same loops as the std
//! driver, with the transport's `Pending` (and its registered waker) in place of
//! `WouldBlock`. The two runtimes' traits differ only in names and in how a read hands over
//! its buffer, so each driver states its names and how it reads, and this macro writes
//! the rest.

/// Writes an async driver: the transport adapter's write side, `handshake_*`/`close_*`,
/// `AsyncRead` and `AsyncWrite` for the stream and its halves (reads through `$read`, which
/// takes the runtime's read buffer `$Buf`), the split halves' links, and
/// `connect_*`/`accept_*` on the configs. The invoking module imports its runtime's
/// `AsyncRead` and `AsyncWrite`, and writes the `PollRead` impl of `$Io`; the macro brings
/// `io`, `Pin`, `Context`, `Poll`, `ready` and `driver` into scope for it.
macro_rules! async_driver {
    (
        runtime: $runtime:literal, shutdown: $shutdown:ident, read: ($Buf:ty => $Out:ty, $read:path),
        io: $Io:ident, links: ($link:ident, $half_link:ident),
        stream: ($handshake:ident, $close:ident), configs: ($connect:ident, $accept:ident),
        write_extra: [$($vectored:tt)*],
    ) => {
        use std::io;
        use std::pin::Pin;
        use std::task::{ready, Context, Poll};

        use crate::driver::{self, IoLink, PollIo, PollRead};
        use crate::split::{FlushFn, Half, ReadLink, WriteFn, WriteLink};
        use crate::{ClientConfig, ReadHalf, ServerConfig, TlsStream, WriteHalf};

        /// The transport seen through the poll interface.
        pub(crate) struct $Io<'a, T>(pub(crate) &'a mut T);

        impl<T: AsyncRead + AsyncWrite + Unpin> PollIo for $Io<'_, T> {
            fn poll_write(
                &mut self,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                Pin::new(&mut *self.0).poll_write(cx, buf)
            }

            fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Pin::new(&mut *self.0).poll_flush(cx)
            }
        }

        impl<T: AsyncRead + AsyncWrite + Unpin> TlsStream<T> {
            fn $link(&mut self) -> IoLink<'_, $Io<'_, T>> {
                let (io, session) = self.parts_mut();
                IoLink::new($Io(io), session)
            }

            #[doc = concat!("Drives the handshake (", $runtime, "), sending this side's last flight.")]
            ///
            /// # Errors
            ///
            /// The handshake's failure, or the transport's.
            ///
            /// # Cancel safety
            ///
            /// Cancel safe: dropping the future loses nothing; poll it again (or read or
            /// write) to go on.
            pub async fn $handshake(&mut self) -> io::Result<()> {
                std::future::poll_fn(|cx| driver::poll_handshake_flushed(&mut self.$link(), cx))
                    .await
            }

            #[doc = concat!("Closes gracefully (", $runtime, "): `close_notify`, then reads and discards until")]
            /// the peer's `close_notify` or end-of-file, within the drain limit. See
            /// [`TlsStream::close`].
            ///
            /// # Errors
            ///
            /// As [`TlsStream::close`].
            pub async fn $close(&mut self) -> io::Result<()> {
                std::future::poll_fn(|cx| {
                    let (mut drained, limit) = self.close_progress();
                    let result = driver::poll_close(&mut self.$link(), cx, &mut drained, limit);
                    self.set_close_progress(drained);
                    result
                })
                .await
            }
        }

        impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsStream<T> {
            /// Reads plaintext. Ends (no bytes read) only after the peer's `close_notify`; a
            /// bare end-of-file is an `UnexpectedEof` error.
            fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: $Buf) -> Poll<io::Result<$Out>> {
                $read(&mut self.get_mut().$link(), cx, buf)
            }
        }

        impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsStream<T> {
            /// Accepts plaintext: `Ready(Ok(n))` with `n >= 1` once the bytes are sealed, or
            /// `Pending` with nothing accepted. Accepted bytes are delivered even if the
            /// caller's future is dropped afterwards; flush to know they reached the
            /// transport.
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                driver::poll_write(&mut self.get_mut().$link(), cx, buf)
            }

            /// Seals records straight from the slices; the count is of the bytes accepted
            /// from the start of their concatenation, across slices.
            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[io::IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                driver::poll_write_vectored(&mut self.get_mut().$link(), cx, bufs)
            }

            $($vectored)*

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                driver::poll_flush(&mut self.get_mut().$link(), cx)
            }

            /// Sends `close_notify` once, flushes it, then shuts down the transport's write
            /// side. Reading goes on (half-close).
            fn $shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                let this = self.get_mut();
                ready!(driver::poll_shutdown(&mut this.$link(), cx))?;
                Pin::new(this.get_mut()).$shutdown(cx)
            }
        }

        impl ClientConfig {
            #[doc = concat!("Connects over a ", $runtime, " transport and completes the handshake.")]
            ///
            /// # Errors
            ///
            /// An invalid server name, the handshake's failure, or the transport's.
            pub async fn $connect<T: AsyncRead + AsyncWrite + Unpin>(
                &self,
                server_name: &str,
                io: T,
            ) -> io::Result<TlsStream<T>> {
                let mut stream = self.connect(server_name, io)?;
                stream.$handshake().await?;
                Ok(stream)
            }
        }

        impl ServerConfig {
            #[doc = concat!("Accepts over a ", $runtime, " transport and completes the handshake.")]
            ///
            /// # Errors
            ///
            /// The handshake's failure, or the transport's.
            pub async fn $accept<T: AsyncRead + AsyncWrite + Unpin>(
                &self,
                io: T,
            ) -> io::Result<TlsStream<T>> {
                let mut stream = self.accept(io)?;
                stream.$handshake().await?;
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

        fn flush_of<W: AsyncWrite + Unpin>(
            io: &mut W,
            cx: &mut Context<'_>,
        ) -> Poll<io::Result<()>> {
            Pin::new(io).poll_flush(cx)
        }

        impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> ReadHalf<R, W> {
            fn $half_link(&mut self) -> ReadLink<'_, $Io<'_, R>, W, WriteFn<W>> {
                ReadLink {
                    io: $Io(&mut self.io),
                    shared: &self.shared,
                    buf: &mut self.buf,
                    direct: &mut self.direct,
                    poll_write: write_to::<W>,
                }
            }
        }

        impl<R, W: AsyncWrite + Unpin> WriteHalf<R, W> {
            fn $half_link(&self) -> WriteLink<'_, W, WriteFn<W>, FlushFn<W>> {
                WriteLink::new(&self.shared, write_to::<W>, flush_of::<W>)
            }
        }

        impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> AsyncRead for ReadHalf<R, W> {
            fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: $Buf) -> Poll<io::Result<$Out>> {
                $read(&mut self.get_mut().$half_link(), cx, buf)
            }
        }

        impl<R: Unpin, W: AsyncWrite + Unpin> AsyncWrite for WriteHalf<R, W> {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                driver::poll_write(&mut self.get_mut().$half_link(), cx, buf)
            }

            /// Seals records straight from the slices; the count is of the bytes accepted
            /// from the start of their concatenation, across slices.
            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[io::IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                driver::poll_write_vectored(&mut self.get_mut().$half_link(), cx, bufs)
            }

            $($vectored)*

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                driver::poll_flush(&mut self.get_mut().$half_link(), cx)
            }

            /// Sends `close_notify` once and flushes it, then shuts down the transport's
            /// write side. The read half goes on reading (half-close).
            fn $shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                let this = self.get_mut();
                ready!(driver::poll_shutdown(&mut this.$half_link(), cx))?;
                let mut sender = this
                    .shared
                    .sender
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                sender.poll_io(Half::Write, cx, |io, cx| Pin::new(io).$shutdown(cx))
            }
        }
    };
}

pub(crate) use async_driver;
