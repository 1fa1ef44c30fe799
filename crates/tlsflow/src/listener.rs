//! An axum 0.8 [`Listener`](axum::serve::Listener) that hands `axum::serve` established TLS
//! streams (feature `axum`).

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::task::{Context, Poll};
use std::time::Duration;

use ::tokio::net::{TcpListener, TcpStream};
use ::tokio::task::JoinSet;

use crate::{TlsAcceptor, TlsStream};

/// How many handshakes a [`TlsListener`] runs at once, unless told otherwise.
pub const DEFAULT_MAX_HANDSHAKES: usize = 1024;

/// A TCP listener whose connections come out as established TLS streams, for
/// `axum::serve`:
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// use axum::{routing::get, Router};
/// use tlsflow::{SelfSigned, ServerConfig, TlsListener};
///
/// let cert = SelfSigned::generate(&["localhost"])?;
/// let config = ServerConfig::builder()
///     .self_signed(&cert)
///     .alpn(["h2", "http/1.1"])
///     .build()?;
/// let tcp = tokio::net::TcpListener::bind("127.0.0.1:8443").await?;
/// let app = Router::new().route("/", get(|| async { "hello over TLS\n" }));
/// axum::serve(TlsListener::new(tcp, config), app).await
/// # }
/// ```
///
/// Handshakes run in their own tasks, at most [`DEFAULT_MAX_HANDSHAKES`] at a time (see
/// [`max_handshakes`](TlsListener::max_handshakes)), each within the acceptor's handshake
/// timeout: a client that stalls its handshake holds one slot for that long and no one else
/// waits on it. A failed handshake is dropped (the client got its alert); failures to accept
/// TCP connections (such as running out of file descriptors) are retried after a pause, as
/// axum's own listener does. Offer `h2` in the ALPN list for HTTP/2.
#[derive(Debug)]
pub struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    handshakes: JoinSet<Option<(TlsStream<TcpStream>, SocketAddr)>>,
    max_handshakes: usize,
    failed: u64,
}

impl TlsListener {
    /// Serves TLS on `tcp` with `acceptor` (a [`TlsAcceptor`] or a `ServerConfig`).
    pub fn new(tcp: TcpListener, acceptor: impl Into<TlsAcceptor>) -> TlsListener {
        TlsListener {
            tcp,
            acceptor: acceptor.into(),
            handshakes: JoinSet::new(),
            max_handshakes: DEFAULT_MAX_HANDSHAKES,
            failed: 0,
        }
    }

    /// How many handshakes may run at once (at least 1); while that many are running, no
    /// new TCP connection is accepted.
    #[must_use]
    pub fn max_handshakes(mut self, limit: usize) -> TlsListener {
        self.max_handshakes = limit.max(1);
        self
    }

    /// How many handshakes have failed or timed out so far.
    pub fn failed_handshakes(&self) -> u64 {
        self.failed
    }

    /// The TCP listener underneath.
    pub fn get_ref(&self) -> &TcpListener {
        &self.tcp
    }

    /// Waits for the next established TLS stream.
    pub async fn accept(&mut self) -> (TlsStream<TcpStream>, SocketAddr) {
        loop {
            match poll_fn(|cx| self.poll_ready(cx)).await {
                Some(ready) => return ready,
                None => ::tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// The next established stream, or `None` when accepting a TCP connection failed.
    #[allow(clippy::type_complexity)]
    fn poll_ready(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<(TlsStream<TcpStream>, SocketAddr)>> {
        loop {
            if let Poll::Ready(Some(done)) = self.handshakes.poll_join_next(cx) {
                match done {
                    Ok(Some(ready)) => return Poll::Ready(Some(ready)),
                    _ => self.failed += 1,
                }
                continue;
            }
            if self.handshakes.len() >= self.max_handshakes {
                return Poll::Pending;
            }
            match self.tcp.poll_accept(cx) {
                Poll::Ready(Ok((tcp, addr))) => {
                    let _ = tcp.set_nodelay(true);
                    let acceptor = self.acceptor.clone();
                    self.handshakes
                        .spawn(async move { acceptor.accept(tcp).await.ok().map(|s| (s, addr)) });
                }
                Poll::Ready(Err(_)) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        TlsListener::accept(self).await
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}
