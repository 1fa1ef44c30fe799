//! # tlsflow: TLS streams that never lose a byte
//!
//! A TLS stream ([`TlsStream`]) for blocking and non-blocking sockets, tokio and futures-io,
//! on rustls or OpenSSL, with a true full-duplex split. A blocking client and server:
//!
//! ```
//! use std::io::{Read, Write};
//! use std::net::{TcpListener, TcpStream};
//! # #[cfg(feature = "self-signed")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cert = tlsflow::SelfSigned::generate(&["localhost"])?; // feature `self-signed`
//! let server = tlsflow::ServerConfig::builder().self_signed(&cert).build()?;
//! let client = tlsflow::ClientConfig::builder().ca_certificate(cert.cert_der()).build()?;
//!
//! let listener = TcpListener::bind("127.0.0.1:0")?;
//! let addr = listener.local_addr()?;
//! let serving = std::thread::spawn(move || -> std::io::Result<()> {
//!     let mut tls = server.accept(listener.accept()?.0)?;
//!     tls.write_all(b"hello over TLS\n")?;
//!     tls.close() // close_notify, then the client's
//! });
//!
//! let mut tls = client.connect("localhost", TcpStream::connect(addr)?)?;
//! let mut greeting = String::new();
//! tls.read_to_string(&mut greeting)?; // ends at the server's close_notify, never sooner
//! tls.close()?;
//! assert_eq!(greeting, "hello over TLS\n");
//! serving.join().unwrap()?;
//! # Ok(()) }
//! # #[cfg(not(feature = "self-signed"))] fn main() {}
//! ```
//!
//! A tokio server (feature `tokio`): a [`TlsAcceptor`] is cheap to clone into each task,
//! and gives up on a client that has not finished its handshake within 10 seconds. For
//! axum, [`TlsListener`] (feature `axum`) goes straight into `axum::serve`.
//!
//! ```no_run
//! # #[cfg(feature = "tokio")]
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use tokio::io::AsyncWriteExt;
//!
//! let config = tlsflow::ServerConfig::builder().cert_files("cert.pem", "key.pem").build()?;
//! let acceptor = tlsflow::TlsAcceptor::new(config);
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:8443").await?;
//! loop {
//!     let (tcp, _) = listener.accept().await?;
//!     let acceptor = acceptor.clone();
//!     tokio::spawn(async move {
//!         let mut tls = acceptor.accept(tcp).await?;
//!         tls.write_all(b"hello over TLS\n").await?;
//!         tls.close_tokio().await
//!     });
//! }
//! # }
//! ```
//!
//! Errors are one [`Error`] type, typed where a program decides on them: a rejected
//! certificate's [`CertificateErrorKind`], the peer's alert as an [`AlertDescription`],
//! truncation, timeouts; the engine's own error is its `source()`. Inside an `io::Error`,
//! [`Error::from_io`] finds it again.
//!
//! ## How it is built
//!
//! tlsflow keeps one rule above all others: **once plaintext has been sealed into a record,
//! the stream owns that ciphertext until the transport has reported taking all of it.**
//! Ciphertext leaves the stream only by the byte counts the transport itself returns, so a
//! non-blocking socket that takes part of a record never corrupts the connection.
//!
//! ```text
//!   user code (blocking, non-blocking, tokio, futures-io, split halves)
//!                    │
//!             ┌──────┴──────┐
//!             │   drivers   │  one set of I/O loops: exactly the I/O the session asks for
//!             └──────┬──────┘
//!             ┌──────┴──────┐
//!             │   Session   │  sans-I/O core: state, byte accounting, bounded buffers
//!             └──────┬──────┘
//!             ┌──────┴──────┐
//!             │   Engine    │  TLS on memory buffers: rustls, or OpenSSL (feature `openssl`)
//!             └─────────────┘
//! ```
//!
//! ## The promises
//!
//! 1. **write** returns `n >= 1` once `n` plaintext bytes are accepted; their ciphertext is
//!    delivered later, exactly once and in order, unless the stream reports an error. If
//!    nothing can be accepted it returns `WouldBlock` and has accepted nothing. It never
//!    returns `Ok(0)` for a non-empty buffer and never asks for the same bytes again.
//! 2. **flush** succeeds only when every accepted byte has been handed to the transport and
//!    the transport has been flushed.
//! 3. **read** returns `Ok(0)` only after the peer's `close_notify`; a transport end-of-file
//!    without it is an `UnexpectedEof` error ([`Error::Truncated`]), unless the lenient policy
//!    ([`Session::set_lenient_eof`]) is on.
//! 4. **Memory is bounded** per direction by [`Limits`], whatever the peer sends: answers
//!    the peer asks for (key update replies) count against the send limit, and input stops
//!    while they wait.
//! 5. **Errors are sticky**: after a fatal TLS error or a transport failure, every later
//!    operation fails; no operation sends a torn record. A failure of the transport's write
//!    side alone lets reads first take what the peer sent before it, so that the peer's
//!    alert is the error reported rather than "broken pipe".
//! 6. **Progress**: `WouldBlock` is returned only when the transport returned it; reading
//!    sends what reading produced, or reports through [`TlsStream::interest`] that it waits to
//!    write.
//! 7. **Full duplex**: a stream splits into a read half and a write half that work at once,
//!    from two threads or tasks; socket I/O never happens while the shared TLS state is
//!    locked.
//! 8. **Shutdown** sends `close_notify` exactly once, is restartable, and is a half-close:
//!    the read side goes on reading.
//! 9. `Interrupted` from the transport is retried inside; a transport write of `Ok(0)` is a
//!    `WriteZero` error.
//! 10. **Hostile peers** get what RFC 8446 says and nothing more: every fatal error tlsflow
//!     detects is sent to the peer as its alert (once, before the error is returned), one
//!     key update answers any number of requests received before the next application
//!     data, and no peer input panics.
//! 11. **The user's choices are kept**: tlsflow's own record layer replaces rustls's only for
//!     suites of rustls's aws-lc-rs provider; any other provider seals every record itself.
//!
//! ## A client with the system's roots
//!
//! ```no_run
//! use std::io::{Read, Write};
//! use std::net::TcpStream;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = tlsflow::ClientConfig::builder().build()?; // system roots
//! let tcp = TcpStream::connect("example.com:443")?;
//! let mut tls = config.connect("example.com", tcp)?;
//! tls.write_all(b"GET / HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n")?;
//! tls.flush()?;
//! let mut response = Vec::new();
//! tls.read_to_end(&mut response)?; // Ok(0) only after close_notify
//! # Ok(()) }
//! ```
//!
//! ## Non-blocking
//!
//! Every method returns `WouldBlock` when the socket does and can be called again later;
//! [`TlsStream::interest`] says whether to wait for readability, writability or both.
//!
//! ```
//! use std::io::{ErrorKind, Read, Write};
//! use std::net::{TcpListener, TcpStream};
//!
//! # #[cfg(feature = "self-signed")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cert = tlsflow::SelfSigned::generate(&["localhost"])?;
//! let server_config = tlsflow::ServerConfig::builder().self_signed(&cert).build()?;
//! let client_config = tlsflow::ClientConfig::builder().ca_certificate(cert.cert_der()).build()?;
//!
//! let listener = TcpListener::bind("127.0.0.1:0")?;
//! let addr = listener.local_addr()?;
//! let server = std::thread::spawn(move || -> std::io::Result<Vec<u8>> {
//!     let (tcp, _) = listener.accept()?;
//!     let mut tls = server_config.accept(tcp)?; // blocking server
//!     let mut got = Vec::new();
//!     tls.read_to_end(&mut got)?;
//!     tls.shutdown()?;
//!     Ok(got)
//! });
//!
//! let tcp = TcpStream::connect(addr)?;
//! tcp.set_nonblocking(true)?;
//! let mut tls = client_config.connect("localhost", tcp)?;
//! let data = vec![7u8; 1 << 20];
//! let mut sent = 0;
//! while sent < data.len() {
//!     match tls.write(&data[sent..]) {
//!         Ok(n) => sent += n, // accepted: never offered again
//!         Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::yield_now(), // poll here
//!         Err(e) => return Err(e.into()),
//!     }
//! }
//! loop {
//!     match tls.shutdown() {
//!         Ok(()) => break,
//!         Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::yield_now(),
//!         Err(e) => return Err(e.into()),
//!     }
//! }
//! assert_eq!(server.join().unwrap()?, data);
//! # Ok(()) }
//! # #[cfg(not(feature = "self-signed"))] fn main() {}
//! ```

//!
//! ## tokio (feature `tokio`)
//!
//! The same [`TlsStream`] is tokio's `AsyncRead + AsyncWrite` over a tokio transport; the
//! futures-io traits work the same way with feature `futures-io`
//! (`ClientConfig::connect_futures`, `ServerConfig::accept_futures`).
//!
//! ```no_run
//! # #[cfg(feature = "tokio")]
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! let config = tlsflow::ClientConfig::builder().ca_file("ca.pem").build()?;
//! let tcp = tokio::net::TcpStream::connect("127.0.0.1:8443").await?;
//! let mut tls = config.connect_tokio("localhost", tcp).await?;
//! tls.write_all(b"hello").await?;
//! tls.shutdown().await?; // close_notify; reading goes on (half-close)
//! let mut reply = Vec::new();
//! tls.read_to_end(&mut reply).await?;
//! # Ok(()) }
//! ```
//!
//! Like a `BufWriter`, an accepted write may still be queued: flush to know it reached the
//! transport (writes of a full record or more are coalesced into sends of up to 64 KiB;
//! smaller writes go out at once). Dropping a future never loses bytes a write reported as
//! accepted.
//!
//! ## Full duplex
//!
//! [`TlsStream::into_split`] (std, over `&T: Read + Write` such as `TcpStream`) and
//! [`TlsStream::split_with`] (any pair of transport halves, e.g. tokio's `into_split`) give
//! a [`ReadHalf`] and a [`WriteHalf`] that work at the same time from different threads or
//! tasks. The shared session is locked only while records are sealed or opened, never
//! across a socket call.
//!
//! ```no_run
//! use std::io::{Read, Write};
//! # fn demo(mut tls: tlsflow::TlsStream<std::net::TcpStream>) -> Result<(), Box<dyn std::error::Error>> {
//! tls.handshake()?;
//! let (mut reader, mut writer) = tls.into_split().map_err(|_| "handshake not complete")?;
//! let sender = std::thread::spawn(move || -> std::io::Result<()> {
//!     writer.write_all(&vec![0u8; 64 << 20])?;
//!     writer.shutdown() // half-close
//! });
//! let mut received = Vec::new();
//! reader.read_to_end(&mut received)?;
//! sender.join().unwrap()?;
//! # Ok(()) }
//! ```

//!
//! ## Cargo features
//!
#![doc = document_features::document_features!()]
#![doc = ""]
// Links to items of features this build may leave out: docs.rs shows them all.
#![cfg_attr(feature = "tokio", doc = "[`TlsAcceptor`]: crate::TlsAcceptor")]
#![cfg_attr(
    not(feature = "tokio"),
    doc = "[`TlsAcceptor`]: https://docs.rs/tlsflow/latest/tlsflow/struct.TlsAcceptor.html"
)]
#![cfg_attr(feature = "axum", doc = "[`TlsListener`]: crate::TlsListener")]
#![cfg_attr(
    not(feature = "axum"),
    doc = "[`TlsListener`]: https://docs.rs/tlsflow/latest/tlsflow/struct.TlsListener.html"
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "tokio")]
mod acceptor;
mod buf;
mod config;
mod driver;
pub mod engine;
mod error;
mod halves;
#[cfg(feature = "client-hello")]
mod hello;
#[cfg(any(feature = "tokio", feature = "futures-io"))]
mod io_async;
#[cfg(feature = "futures-io")]
mod io_futures;
#[cfg(feature = "tokio")]
mod io_tokio;
#[cfg(feature = "axum")]
mod listener;
#[cfg(feature = "self-signed")]
mod self_signed;
pub mod session;
mod split;
mod stream;
#[cfg(feature = "testing")]
pub mod testing;
mod wire;

#[cfg(feature = "tokio")]
pub use acceptor::{TlsAcceptor, TlsConnector, DEFAULT_HANDSHAKE_TIMEOUT};
pub use config::{
    load_certs, load_private_key, parse_certs, parse_private_key, ClientConfig,
    ClientConfigBuilder, EngineKind, ServerConfig, ServerConfigBuilder,
};
pub use engine::{CipherSuite, Engine, ProtocolVersion, RustlsEngine};
pub use error::{CertificateErrorKind, EngineError, Error};
pub use halves::{HalfClose, ReadHalf, ReuniteError, SharedIo, WriteHalf};
#[cfg(feature = "client-hello")]
pub use hello::{ClientHello, ClientHelloReader, StartHandshake};
#[cfg(feature = "axum")]
pub use listener::{TlsListener, DEFAULT_MAX_HANDSHAKES};
pub use rustls::AlertDescription;
#[cfg(feature = "self-signed")]
pub use self_signed::{fingerprint_sha256, SelfSigned};
pub use session::{Interest, Limits, Session, State};
pub use stream::{TlsStream, DEFAULT_CLOSE_DRAIN_LIMIT};

/// The rustls crate tlsflow is built on, for configuration beyond the builders.
pub use rustls;
