//! Acceptors and connectors for tokio: cheap `Clone` handles around a configuration, with a
//! handshake timeout, for accept loops, hyper-util servers and tower stacks.

use std::future::Future;
use std::io;
use std::time::Duration;

use ::tokio::io::{AsyncRead, AsyncWrite};

use crate::{ClientConfig, Error, ServerConfig, TlsStream};

/// How long an acceptor waits for a client to finish its handshake, unless told otherwise.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `work`, failing with [`Error::TimedOut`] if it takes longer than `limit`.
pub(crate) async fn within<R>(
    limit: Option<Duration>,
    operation: &'static str,
    work: impl Future<Output = io::Result<R>>,
) -> io::Result<R> {
    let Some(limit) = limit else {
        return work.await;
    };
    match ::tokio::time::timeout(limit, work).await {
        Ok(result) => result,
        Err(_) => Err(Error::TimedOut {
            operation,
            after: limit,
        }
        .into()),
    }
}

/// Accepts TLS connections over tokio transports: the server's side of
/// `tokio_rustls::TlsAcceptor` or `tokio_native_tls::TlsAcceptor`.
///
/// Cloning is cheap (the configuration is shared), so each task of an accept loop can own
/// one. A client that does not finish its handshake within the timeout
/// ([`DEFAULT_HANDSHAKE_TIMEOUT`] unless set) is dropped with [`Error::TimedOut`], so a
/// silent or slow peer cannot hold a task forever. The timeout needs a tokio runtime with
/// its timer enabled (`enable_time`, or `enable_all`, as `#[tokio::main]` does).
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// use tlsflow::{SelfSigned, ServerConfig, TlsAcceptor};
/// use tokio::io::AsyncWriteExt;
///
/// let cert = SelfSigned::generate(&["localhost"])?;
/// let acceptor = TlsAcceptor::new(ServerConfig::builder().self_signed(&cert).build()?);
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8443").await?;
/// loop {
///     let (tcp, _) = listener.accept().await?;
///     let acceptor = acceptor.clone();
///     tokio::spawn(async move {
///         let mut tls = acceptor.accept(tcp).await?;
///         tls.write_all(b"hello\n").await?;
///         tls.close_tokio().await
///     });
/// }
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct TlsAcceptor {
    config: ServerConfig,
    handshake_timeout: Option<Duration>,
}

impl TlsAcceptor {
    /// An acceptor for `config`, with the default handshake timeout.
    pub fn new(config: ServerConfig) -> TlsAcceptor {
        TlsAcceptor {
            config,
            handshake_timeout: Some(DEFAULT_HANDSHAKE_TIMEOUT),
        }
    }

    /// How long a handshake may take; `None` waits for ever.
    #[must_use]
    pub fn handshake_timeout(mut self, limit: Option<Duration>) -> TlsAcceptor {
        self.handshake_timeout = limit;
        self
    }

    /// The configuration handshakes use.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Completes the server's handshake over `io`.
    ///
    /// # Errors
    ///
    /// The handshake's failure (a [`tlsflow::Error`](Error) inside the `io::Error`),
    /// the transport's, or [`Error::TimedOut`] (kind `TimedOut`).
    pub async fn accept<T: AsyncRead + AsyncWrite + Unpin>(
        &self,
        io: T,
    ) -> io::Result<TlsStream<T>> {
        within(
            self.handshake_timeout,
            "the TLS handshake",
            self.config.accept_tokio(io),
        )
        .await
    }
}

#[cfg(feature = "client-hello")]
impl TlsAcceptor {
    /// Reads the client's ClientHello, within the handshake timeout, so the server can
    /// choose a configuration for it (by name, ALPN, ...). Go on with
    /// [`StartHandshake::into_stream`](crate::StartHandshake::into_stream) and the stream's
    /// `handshake_tokio_within`.
    ///
    /// # Errors
    ///
    /// As [`StartHandshake::read_tokio`](crate::StartHandshake::read_tokio), or
    /// [`Error::TimedOut`].
    pub async fn start<T: AsyncRead + AsyncWrite + Unpin>(
        &self,
        io: T,
    ) -> io::Result<crate::StartHandshake<T>> {
        within(
            self.handshake_timeout,
            "reading the ClientHello",
            crate::StartHandshake::read_tokio(io),
        )
        .await
    }
}

impl From<ServerConfig> for TlsAcceptor {
    fn from(config: ServerConfig) -> TlsAcceptor {
        TlsAcceptor::new(config)
    }
}

/// Opens TLS connections over tokio transports: the client's side of
/// `tokio_rustls::TlsConnector`. Cheap to clone; no handshake timeout unless set.
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// use std::time::Duration;
/// use tlsflow::{ClientConfig, TlsConnector};
/// use tokio::io::AsyncReadExt;
///
/// let connector = TlsConnector::new(ClientConfig::builder().build()?)
///     .handshake_timeout(Some(Duration::from_secs(5)));
/// let tcp = tokio::net::TcpStream::connect("example.com:443").await?;
/// let mut tls = connector.connect("example.com", tcp).await?;
/// let mut first = [0u8; 1];
/// let _ = tls.read(&mut first).await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct TlsConnector {
    config: ClientConfig,
    handshake_timeout: Option<Duration>,
}

impl TlsConnector {
    /// A connector for `config`, without a handshake timeout.
    pub fn new(config: ClientConfig) -> TlsConnector {
        TlsConnector {
            config,
            handshake_timeout: None,
        }
    }

    /// How long a handshake may take; `None` (the default) waits for ever.
    #[must_use]
    pub fn handshake_timeout(mut self, limit: Option<Duration>) -> TlsConnector {
        self.handshake_timeout = limit;
        self
    }

    /// The configuration handshakes use.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Connects to `server_name` over `io` and completes the handshake.
    ///
    /// # Errors
    ///
    /// An invalid server name, the handshake's failure, the transport's, or
    /// [`Error::TimedOut`] (kind `TimedOut`).
    pub async fn connect<T: AsyncRead + AsyncWrite + Unpin>(
        &self,
        server_name: &str,
        io: T,
    ) -> io::Result<TlsStream<T>> {
        within(
            self.handshake_timeout,
            "the TLS handshake",
            self.config.connect_tokio(server_name, io),
        )
        .await
    }
}

impl From<ClientConfig> for TlsConnector {
    fn from(config: ClientConfig) -> TlsConnector {
        TlsConnector::new(config)
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> TlsStream<T> {
    /// [`handshake_tokio`](TlsStream::handshake_tokio), failing with [`Error::TimedOut`] after
    /// `limit`. The handshake is cancel safe: after a timeout the stream may be driven on.
    ///
    /// # Errors
    ///
    /// As `handshake_tokio`, or the timeout (kind `TimedOut`).
    pub async fn handshake_tokio_within(&mut self, limit: Duration) -> io::Result<()> {
        within(Some(limit), "the TLS handshake", self.handshake_tokio()).await
    }

    /// [`close_tokio`](TlsStream::close_tokio), failing with [`Error::TimedOut`] when the
    /// peer has not closed its side within `limit`. Our `close_notify` may have been sent
    /// by then; dropping the stream afterwards is the usual next step.
    ///
    /// # Errors
    ///
    /// As `close_tokio`, or the timeout (kind `TimedOut`).
    pub async fn close_tokio_within(&mut self, limit: Duration) -> io::Result<()> {
        within(Some(limit), "the TLS close", self.close_tokio()).await
    }
}
