//! Reading a client's ClientHello before choosing the server's configuration: per-name
//! certificates, ALPN and client-authentication policy for multi-tenant servers.
//!
//! rustls's [`Acceptor`](rustls::server::Acceptor) reassembles and checks the ClientHello (a
//! malformed one is answered with its alert); the protocol versions, which rustls does not
//! expose, are read from the same, already checked, bytes with `tls-parser`. The bytes read
//! are then given to a session of whichever configuration was chosen, on either engine, so
//! nothing the client sent is lost.

use std::io::{self, Read, Write};

use rustls::server::Acceptor;
use rustls::{NamedGroup, SignatureScheme};

use crate::{CipherSuite, Error, ProtocolVersion, ServerConfig, TlsStream};

/// What a client offered in its ClientHello.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientHello {
    /// The name the client asked for (SNI), in lower case, if any.
    pub server_name: Option<String>,
    /// The ALPN protocols offered, in the client's order (empty when it offered none).
    pub alpn: Vec<Vec<u8>>,
    /// The signature schemes the client accepts, in its order.
    pub signature_schemes: Vec<SignatureScheme>,
    /// The cipher suites offered, in the client's order (GREASE values included, as sent).
    pub cipher_suites: Vec<CipherSuite>,
    /// The protocol versions offered: the `supported_versions` extension, in the client's
    /// order (GREASE values included as [`ProtocolVersion::Other`]), or, without that
    /// extension, the ClientHello's own version.
    pub versions: Vec<ProtocolVersion>,
    /// The key-exchange groups offered (`supported_groups`), in the client's order.
    pub named_groups: Vec<NamedGroup>,
}

impl ClientHello {
    /// Whether the client offers TLS 1.3.
    pub fn offers_tls13(&self) -> bool {
        self.versions.contains(&ProtocolVersion::Tls13)
    }
}

/// Reads a ClientHello from bytes as they arrive, without doing I/O: the sans-I/O part of
/// [`StartHandshake`], for drivers of their own (non-blocking sockets, other runtimes).
#[derive(Default)]
pub struct ClientHelloReader {
    acceptor: Acceptor,
    received: Vec<u8>,
    alert: Vec<u8>,
    hello: Option<ClientHello>,
}

impl std::fmt::Debug for ClientHelloReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientHelloReader")
            .field("received", &self.received.len())
            .field("hello", &self.hello)
            .finish_non_exhaustive()
    }
}

/// The most bytes a ClientHello may take on the wire: a handshake message is at most 64 KiB,
/// in records of at most 16 KiB plus their headers.
const MAX_HELLO_WIRE: usize = 0x1_0000 + 5 * 5;

impl ClientHelloReader {
    /// A reader that has seen nothing yet.
    pub fn new() -> ClientHelloReader {
        ClientHelloReader::default()
    }

    /// Takes the next bytes received from the client. Returns the ClientHello once it is
    /// complete (the bytes after it are kept too, for the session).
    ///
    /// # Errors
    ///
    /// The client's first flight is not a valid ClientHello (or is longer than any can be).
    /// [`alert`](Self::alert) then holds the alert record to send before closing.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Option<&ClientHello>, Error> {
        if self.hello.is_some() {
            self.received.extend_from_slice(bytes);
            return Ok(self.hello.as_ref());
        }
        if self.received.len() + bytes.len() > MAX_HELLO_WIRE {
            return Err(Error::Protocol {
                reason: format!("the client's first flight exceeds {MAX_HELLO_WIRE} bytes"),
                source: None,
            });
        }
        self.received.extend_from_slice(bytes);
        let mut rest = bytes;
        while !rest.is_empty() {
            self.acceptor
                .read_tls(&mut rest)
                .map_err(|e| Error::Protocol {
                    reason: format!("cannot take the client's first flight: {e}"),
                    source: None,
                })?;
            match self.acceptor.accept() {
                Ok(None) => {}
                Ok(Some(accepted)) => {
                    let hello = accepted.client_hello();
                    self.hello = Some(ClientHello {
                        server_name: hello.server_name().map(str::to_ascii_lowercase),
                        alpn: hello
                            .alpn()
                            .map(|offers| offers.map(<[u8]>::to_vec).collect())
                            .unwrap_or_default(),
                        signature_schemes: hello.signature_schemes().to_vec(),
                        cipher_suites: hello
                            .cipher_suites()
                            .iter()
                            .map(|s| CipherSuite::from_code(u16::from(*s)))
                            .collect(),
                        versions: offered_versions(&self.received),
                        named_groups: hello.named_groups().unwrap_or_default().to_vec(),
                    });
                    return Ok(self.hello.as_ref());
                }
                Err((err, mut alert)) => {
                    let mut wire = Vec::new();
                    let _ = alert.write_all(&mut wire);
                    self.alert = wire;
                    return Err(Error::from(err));
                }
            }
        }
        Ok(None)
    }

    /// The alert to send the client after [`feed`](Self::feed) failed (empty otherwise).
    pub fn alert(&self) -> &[u8] {
        &self.alert
    }

    /// The ClientHello, once complete.
    pub fn client_hello(&self) -> Option<&ClientHello> {
        self.hello.as_ref()
    }

    /// Every byte received so far, ClientHello included.
    pub fn received(&self) -> &[u8] {
        &self.received
    }

    /// A stream of `config` over `io` that starts from the bytes received, as if it had read
    /// them itself. No I/O happens here; the handshake goes on with the stream's
    /// `handshake` (or `handshake_tokio`, ...).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if the configuration cannot make a session. A ClientHello the
    /// configuration refuses (no common suite or version, ...) is not an error here: the
    /// stream's handshake sends the alert that answers it, then returns the failure.
    pub fn into_stream<T>(self, io: T, config: &ServerConfig) -> Result<TlsStream<T>, Error> {
        let mut session = config.session()?;
        let mut rest = &self.received[..];
        while !rest.is_empty() {
            let space = session.input_buffer();
            if space.is_empty() {
                session.check()?;
                return Err(Error::Protocol {
                    reason: "the session cannot take the client's first flight".into(),
                    source: None,
                });
            }
            let n = space.len().min(rest.len());
            space[..n].copy_from_slice(&rest[..n]);
            if session.input_received(n).is_err() {
                // The configuration refuses this ClientHello (no common suite, version, ...):
                // the session keeps the failure and the alert that answers it, and the
                // stream's handshake sends the alert before it returns the error.
                break;
            }
            rest = &rest[n..];
        }
        Ok(TlsStream::new(io, session))
    }
}

/// The versions offered in the ClientHello at the start of `wire` (which rustls has already
/// accepted as one), read with `tls-parser`.
fn offered_versions(wire: &[u8]) -> Vec<ProtocolVersion> {
    use tls_parser::{
        parse_tls_client_hello_extensions, parse_tls_message_handshake, parse_tls_raw_record,
        TlsExtension, TlsMessage, TlsMessageHandshake, TlsRecordType,
    };
    let version = |code: u16| match code {
        0x0304 => ProtocolVersion::Tls13,
        0x0303 => ProtocolVersion::Tls12,
        other => ProtocolVersion::Other(other),
    };
    // The handshake message may span records: join their contents until it parses.
    let mut message = Vec::new();
    let mut rest = wire;
    while let Ok((after, record)) = parse_tls_raw_record(rest) {
        if record.hdr.record_type != TlsRecordType::Handshake {
            break;
        }
        message.extend_from_slice(record.data);
        rest = after;
        let Ok((_, TlsMessage::Handshake(TlsMessageHandshake::ClientHello(hello)))) =
            parse_tls_message_handshake(&message)
        else {
            continue;
        };
        let extensions = hello
            .ext
            .and_then(|ext| parse_tls_client_hello_extensions(ext).ok())
            .map(|(_, list)| list)
            .unwrap_or_default();
        for extension in extensions {
            if let TlsExtension::SupportedVersions(list) = extension {
                return list.iter().map(|v| version(v.0)).collect();
            }
        }
        return vec![version(hello.version.0)];
    }
    Vec::new()
}

/// A connection whose ClientHello has been read, waiting for the server to choose its
/// configuration: tlsflow's `tokio_rustls::StartHandshake`, for both engines and for
/// blocking and tokio transports.
///
/// ```no_run
/// # fn demo(default: tlsflow::ServerConfig, tenant: tlsflow::ServerConfig) -> std::io::Result<()> {
/// use tlsflow::StartHandshake;
///
/// let listener = std::net::TcpListener::bind("127.0.0.1:8443")?;
/// let (tcp, _) = listener.accept()?;
/// let start = StartHandshake::read(tcp)?;
/// let config = match start.client_hello().server_name.as_deref() {
///     Some("tenant.example") => &tenant,
///     _ => &default,
/// };
/// let mut tls = start.into_stream(config)?;
/// tls.handshake()?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct StartHandshake<T> {
    io: T,
    reader: ClientHelloReader,
}

impl<T> StartHandshake<T> {
    /// What the client offered.
    pub fn client_hello(&self) -> &ClientHello {
        self.reader
            .client_hello()
            .expect("a StartHandshake holds a complete ClientHello")
    }

    /// Goes on with `config`: a stream over the transport that has taken the bytes read so
    /// far. No I/O happens here; finish with the stream's `handshake` (or
    /// `handshake_tokio`, `handshake_tokio_within`).
    ///
    /// # Errors
    ///
    /// As [`ClientHelloReader::into_stream`].
    pub fn into_stream(self, config: &ServerConfig) -> Result<TlsStream<T>, Error> {
        self.reader.into_stream(self.io, config)
    }

    /// The transport, to close or hand elsewhere (the bytes read stay in
    /// [`received`](Self::received)).
    pub fn into_inner(self) -> T {
        self.io
    }

    /// Every byte read from the client so far.
    pub fn received(&self) -> &[u8] {
        self.reader.received()
    }
}

/// What a read from the client means for [`ClientHelloReader`].
enum Next {
    /// Read again.
    Read,
    /// The ClientHello is complete.
    Done,
    /// The transport failed, or the client closed first.
    Failed(io::Error),
    /// The ClientHello is at fault: send [`ClientHelloReader::alert`], then fail.
    Refused(Error),
}

impl ClientHelloReader {
    /// Takes the outcome of a read into `buf`.
    fn after_read(&mut self, read: io::Result<usize>, buf: &[u8]) -> Next {
        match read {
            Ok(0) => Next::Failed(Error::HandshakeEof.into()),
            Ok(n) => match self.feed(&buf[..n]) {
                Ok(Some(_)) => Next::Done,
                Ok(None) => Next::Read,
                Err(err) => Next::Refused(err),
            },
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Next::Read,
            Err(e) => Next::Failed(e),
        }
    }
}

/// How much one read from the client asks for.
const READ_SIZE: usize = 8192;

impl<T: Read + Write> StartHandshake<T> {
    /// Reads the client's ClientHello from a blocking transport. (On a non-blocking one it
    /// returns `WouldBlock` and what was read is lost: drive a [`ClientHelloReader`]
    /// instead.)
    ///
    /// # Errors
    ///
    /// The transport's error, [`Error::HandshakeEof`] if the client closes first, or the
    /// ClientHello's fault (its alert is sent first).
    pub fn read(mut io: T) -> io::Result<StartHandshake<T>> {
        let mut reader = ClientHelloReader::new();
        let mut buf = vec![0u8; READ_SIZE];
        loop {
            match reader.after_read(io.read(&mut buf), &buf) {
                Next::Read => {}
                Next::Done => return Ok(StartHandshake { io, reader }),
                Next::Failed(e) => return Err(e),
                Next::Refused(err) => {
                    let _ = io.write_all(reader.alert()).and_then(|()| io.flush());
                    return Err(err.into());
                }
            }
        }
    }
}

#[cfg(feature = "tokio")]
impl<T: ::tokio::io::AsyncRead + ::tokio::io::AsyncWrite + Unpin> StartHandshake<T> {
    /// Reads the client's ClientHello from a tokio transport. Cancel-safe only in the
    /// sense that dropping the future drops the transport; wrap it in a timeout (or use
    /// [`TlsAcceptor::start`](crate::TlsAcceptor::start), which has one).
    ///
    /// # Errors
    ///
    /// As [`read`](Self::read).
    pub async fn read_tokio(mut io: T) -> io::Result<StartHandshake<T>> {
        use ::tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut reader = ClientHelloReader::new();
        let mut buf = vec![0u8; READ_SIZE];
        loop {
            let read = io.read(&mut buf).await;
            match reader.after_read(read, &buf) {
                Next::Read => {}
                Next::Done => return Ok(StartHandshake { io, reader }),
                Next::Failed(e) => return Err(e),
                Next::Refused(err) => {
                    let _ = io.write_all(reader.alert()).await;
                    let _ = io.flush().await;
                    return Err(err.into());
                }
            }
        }
    }
}
