//! tokio connections: plain TCP, tlsflow's `TlsStream`, tokio-rustls and tokio-openssl as
//! one `AsyncRead + AsyncWrite` type.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::contender::Stack;
use crate::failure::{Failure, Outcome};
use crate::tls::{Negotiated, Tls, SERVER_NAME};

/// How long a whole transfer of `bytes` may take before it counts as stalled.
pub(crate) fn deadline(bytes: u64) -> Duration {
    crate::blocking::STALL + Duration::from_secs(bytes / 20_000_000)
}

/// `op`, failing with `TimedOut` after `limit`.
pub(crate) async fn bounded<T>(
    limit: Duration,
    op: impl std::future::Future<Output = std::io::Result<T>>,
) -> std::io::Result<T> {
    tokio::time::timeout(limit, op).await.map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no end after {} s", limit.as_secs()),
        )
    })?
}

/// `op`, failing after `limit`.
pub(crate) async fn within<T>(
    limit: Duration,
    op: impl std::future::Future<Output = Outcome<T>>,
) -> Outcome<T> {
    tokio::time::timeout(limit, op)
        .await
        .unwrap_or_else(|_| Err(Failure::io(format!("no end after {} s", limit.as_secs()))))
}

/// The outcome of a finished task; a panic becomes a failure.
pub(crate) fn task<T>(joined: Result<Outcome<T>, tokio::task::JoinError>) -> Outcome<T> {
    joined.unwrap_or_else(|_| Err(Failure::io("a benchmark task panicked")))
}

/// One end of a connection on tokio. Only a few live at a time (the memory measure's
/// server holds its own concrete types), and boxing one variant would give that contender
/// an indirection the others do not pay.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Conn {
    Tcp(TcpStream),
    Tlsflow(tlsflow::TlsStream<TcpStream>),
    Rustls(tokio_rustls::TlsStream<TcpStream>),
    Openssl(tokio_openssl::SslStream<TcpStream>),
}

/// A read half, boxed.
pub(crate) type Reader = Box<dyn AsyncRead + Send + Unpin>;
/// A write half, boxed.
pub(crate) type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// A current-thread runtime with I/O and timers.
pub(crate) fn runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// Adopts a connected std socket (inside a runtime).
pub(crate) fn adopt(tcp: std::net::TcpStream) -> io::Result<TcpStream> {
    tcp.set_nonblocking(true)?;
    TcpStream::from_std(tcp)
}

/// Connects `stack`'s client over `tcp` and completes the handshake.
pub(crate) async fn connect(stack: Stack, tls: &Tls, tcp: TcpStream) -> io::Result<Conn> {
    Ok(match stack {
        Stack::Tcp => Conn::Tcp(tcp),
        Stack::Tlsflow(engine) => Conn::Tlsflow(
            tls.tlsflow_client(engine)
                .connect_tokio(SERVER_NAME, tcp)
                .await?,
        ),
        Stack::TokioRustls | Stack::RustlsStream => {
            let name = SERVER_NAME.try_into().map_err(io::Error::other)?;
            let connector = tokio_rustls::TlsConnector::from(tls.rustls_client.clone());
            Conn::Rustls(connector.connect(name, tcp).await?.into())
        }
        Stack::TokioOpenssl => {
            let ssl = tls.openssl_client_ssl().map_err(io::Error::other)?;
            let mut stream = tokio_openssl::SslStream::new(ssl, tcp).map_err(io::Error::other)?;
            Pin::new(&mut stream)
                .connect()
                .await
                .map_err(openssl_error)?;
            Conn::Openssl(stream)
        }
    })
}

/// Accepts `stack`'s server over `tcp` and completes the handshake.
pub(crate) async fn accept(stack: Stack, tls: &Tls, tcp: TcpStream) -> io::Result<Conn> {
    Ok(match stack {
        Stack::Tcp => Conn::Tcp(tcp),
        Stack::Tlsflow(engine) => {
            Conn::Tlsflow(tls.tlsflow_server(engine).accept_tokio(tcp).await?)
        }
        Stack::TokioRustls | Stack::RustlsStream => {
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.rustls_server.clone());
            Conn::Rustls(acceptor.accept(tcp).await?.into())
        }
        Stack::TokioOpenssl => {
            let ssl = openssl::ssl::Ssl::new(&tls.openssl_server).map_err(io::Error::other)?;
            let mut stream = tokio_openssl::SslStream::new(ssl, tcp).map_err(io::Error::other)?;
            Pin::new(&mut stream)
                .accept()
                .await
                .map_err(openssl_error)?;
            Conn::Openssl(stream)
        }
    })
}

fn openssl_error(e: openssl::ssl::Error) -> io::Error {
    match e.into_io_error() {
        Ok(io) => io,
        Err(e) => io::Error::other(e),
    }
}

/// Ends the connection from the side that finished first: shutdown (`close_notify` and
/// FIN), then read until the peer has ended its side too.
pub(crate) async fn close(conn: &mut (impl AsyncRead + AsyncWrite + Unpin)) -> io::Result<()> {
    conn.shutdown().await?;
    drain(conn).await
}

/// Reads and discards until the peer's end of stream.
pub(crate) async fn drain(conn: &mut (impl AsyncRead + Unpin)) -> io::Result<()> {
    let mut buf = [0u8; 4096];
    while conn.read(&mut buf).await? != 0 {}
    Ok(())
}

impl Conn {
    pub(crate) fn negotiated(&self) -> Option<Negotiated> {
        match self {
            Conn::Tcp(_) => None,
            Conn::Tlsflow(s) => Some(Negotiated::of_tlsflow(s)),
            Conn::Rustls(s) => Some(Negotiated::of_rustls(s.get_ref().1)),
            Conn::Openssl(s) => Some(Negotiated::of_openssl(s.ssl())),
        }
    }

    /// Read and write halves for two tasks: the TCP socket's own halves, tlsflow's
    /// `split_with` over them (as its documentation advises for a `TcpStream`), and
    /// `tokio::io::split` for the peers, which offer no split of their own.
    pub(crate) fn into_halves(self) -> io::Result<(Reader, Writer)> {
        Ok(match self {
            Conn::Tcp(s) => {
                let (r, w) = s.into_split();
                (Box::new(r), Box::new(w))
            }
            Conn::Tlsflow(s) => {
                let (r, w) = s
                    .split_with(|tcp| tcp.into_split())
                    .map_err(|_| io::Error::other("the handshake is not complete"))?;
                (Box::new(r), Box::new(w))
            }
            Conn::Rustls(s) => {
                let (r, w) = tokio::io::split(s);
                (Box::new(r), Box::new(w))
            }
            Conn::Openssl(s) => {
                let (r, w) = tokio::io::split(s);
                (Box::new(r), Box::new(w))
            }
        })
    }
}

macro_rules! each {
    ($conn:expr, $s:ident => $body:expr) => {
        match $conn {
            Conn::Tcp($s) => $body,
            Conn::Tlsflow($s) => $body,
            Conn::Rustls($s) => $body,
            Conn::Openssl($s) => $body,
        }
    };
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        each!(self.get_mut(), s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        each!(self.get_mut(), s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self.get_mut(), s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self.get_mut(), s => Pin::new(s).poll_shutdown(cx))
    }
}
