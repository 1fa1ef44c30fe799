//! The OpenSSL engine: an `SSL` object on memory buffers, the Asio model done right.
//!
//! OpenSSL reads ciphertext from, and writes ciphertext to, an in-memory transport
//! ([`MemoryIo`]) that never blocks writes and answers reads with `WouldBlock` when empty. It
//! never sees a socket, and no task context or raw pointer is handed into it. OpenSSL's own
//! retry rules stay inside: writes into memory always complete, so `SSL_write` accepts
//! everything it is given (in whole records) or fails; renegotiation, the one case where a
//! write would have to wait for a read, is disabled.

use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::sync::Arc;

use openssl::ssl::{ErrorCode, NameType, ShutdownState, Ssl, SslContext, SslStream, SslVersion};
use openssl::x509::X509VerifyResult;
use rustls::AlertDescription;

use super::{CipherSuite, Engine, Output, PlainRead, ProtocolVersion};
use crate::buf::Inbox;
use crate::error::{CertificateErrorKind, EngineError};
use crate::Error;

/// Where OpenSSL numbers the reasons that report a peer's alert (`SSL_AD_REASON_OFFSET`).
const SSL_AD_REASON_OFFSET: i32 = 1000;
/// OpenSSL's number for its SSL library, in error codes (`ERR_LIB_SSL`).
const ERR_LIB_SSL: i32 = 20;

/// The memory "socket" OpenSSL talks to: it reads the engine's input buffer and writes into
/// an output queue (the session's own, during a write).
#[derive(Debug, Default)]
pub(crate) struct MemoryIo {
    /// Ciphertext received and not yet read by OpenSSL.
    inbox: Inbox,
    outgoing: Output,
    eof: bool,
    /// While OpenSSL reads records for the application, it gets no more input once it has
    /// written an answer (a key update reply): the session moves the answer to its send
    /// queue, counted against its limit, before OpenSSL reads on.
    hold_after_answer: bool,
}

impl Read for MemoryIo {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.hold_after_answer && !self.outgoing.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let rest = self.inbox.data();
        if rest.is_empty() {
            return if self.eof {
                Ok(0)
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            };
        }
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.inbox.consume(n);
        Ok(n)
    }
}

impl Write for MemoryIo {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.outgoing.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Gives OpenSSL's own record buffers (about 17 KiB to read and 17 KiB to write, kept for
/// the life of a connection once used) back to the allocator while they hold nothing, as
/// `SSL_MODE_RELEASE_BUFFERS` would after every record; OpenSSL allocates them again when
/// the connection next reads or writes. With pending data in them, OpenSSL keeps them.
fn free_ssl_buffers(ssl: &openssl::ssl::SslRef) {
    use foreign_types_shared::ForeignTypeRef;

    extern "C" {
        // OpenSSL 1.1.0 and later (`ssl.h`); libssl is linked through `openssl-sys`.
        fn SSL_free_buffers(ssl: *mut openssl_sys::SSL) -> std::ffi::c_int;
    }
    // SAFETY: `ssl.as_ptr()` is the live `SSL` object this engine owns, borrowed for the
    // call; `SSL_free_buffers` only frees buffers that hold no data (it returns 0 and does
    // nothing otherwise) and keeps no pointer. An idle connection otherwise holds about
    // 34 KB of buffers: see docs/bench/memory.md.
    #[allow(unsafe_code)]
    let _ = unsafe { SSL_free_buffers(ssl.as_ptr()) };
}

/// A TLS engine backed by an OpenSSL `SSL` object on memory buffers.
pub struct OpensslEngine {
    stream: SslStream<MemoryIo>,
    client: bool,
    handshaking: bool,
    peer_closed: bool,
    server_name: Option<String>,
}

impl std::fmt::Debug for OpensslEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpensslEngine")
            .field("client", &self.client)
            .field("handshaking", &self.handshaking)
            .finish_non_exhaustive()
    }
}

impl OpensslEngine {
    /// A client engine from `context`, verifying the server as `server_name` (a DNS name,
    /// also sent as SNI, or an IP address) when the context verifies peers.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when OpenSSL rejects the name or the context.
    pub fn client(context: &SslContext, server_name: &str) -> Result<Self, Error> {
        let mut ssl = Ssl::new(context)
            .map_err(|e| Error::config(format!("cannot create an SSL object: {e}")))?;
        ssl.set_connect_state();
        let param = ssl.param_mut();
        match server_name.parse::<IpAddr>() {
            Ok(ip) => param.set_ip(ip),
            Err(_) => param.set_host(server_name),
        }
        .map_err(|e| Error::config(format!("invalid server name {server_name:?}: {e}")))?;
        if server_name.parse::<IpAddr>().is_err() {
            ssl.set_hostname(server_name)
                .map_err(|e| Error::config(format!("invalid server name {server_name:?}: {e}")))?;
        }
        let mut engine = OpensslEngine::wrap(ssl, true, Some(server_name.to_owned()))?;
        // The client speaks first: produce the ClientHello now.
        engine.drive_handshake()?;
        Ok(engine)
    }

    /// A server engine from `context`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when OpenSSL rejects the context.
    pub fn server(context: &SslContext) -> Result<Self, Error> {
        let mut ssl = Ssl::new(context)
            .map_err(|e| Error::config(format!("cannot create an SSL object: {e}")))?;
        ssl.set_accept_state();
        OpensslEngine::wrap(ssl, false, None)
    }

    fn wrap(ssl: Ssl, client: bool, server_name: Option<String>) -> Result<Self, Error> {
        let stream = SslStream::new(ssl, MemoryIo::default())
            .map_err(|e| Error::config(format!("cannot set up OpenSSL: {e}")))?;
        Ok(OpensslEngine {
            stream,
            client,
            handshaking: true,
            peer_closed: false,
            server_name,
        })
    }

    fn drive_handshake(&mut self) -> Result<(), Error> {
        match self.stream.do_handshake() {
            Ok(()) => {
                self.handshaking = false;
                Ok(())
            }
            Err(e) if e.code() == ErrorCode::WANT_READ => Ok(()),
            Err(e) => Err(self.map_error(&e)),
        }
    }

    /// Translates an OpenSSL failure, naming the certificate problem or the peer's alert
    /// when there is one.
    fn map_error(&self, err: &openssl::ssl::Error) -> Error {
        let verify = self.stream.ssl().verify_result();
        if verify != X509VerifyResult::OK {
            return Error::Certificate {
                kind: CertificateErrorKind::of_openssl(verify.as_raw()),
                reason: format!(
                    "{} (OpenSSL verify error {})",
                    verify.error_string(),
                    verify.as_raw()
                ),
                source: Some(Arc::new(verify)),
            };
        }
        // The peer's fatal alert: OpenSSL reports it with the alert's number above
        // SSL_AD_REASON_OFFSET (1000), and names only the alerts it knows.
        let peer_alert = err.ssl_error().and_then(|stack| {
            stack.errors().iter().find_map(|e| {
                if e.library_code() != ERR_LIB_SSL {
                    return None;
                }
                let alert = e.reason_code().checked_sub(SSL_AD_REASON_OFFSET)?;
                u8::try_from(alert).ok()
            })
        });
        if let Some(alert) = peer_alert {
            return Error::PeerAlert {
                alert: AlertDescription::from(alert),
            };
        }
        let stack = err.ssl_error();
        let source = || stack.map(|stack| Arc::new(stack.clone()) as EngineError);
        let reasons: Vec<String> = stack
            .map(|stack| {
                stack
                    .errors()
                    .iter()
                    .filter_map(|e| e.reason().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if reasons
            .iter()
            .any(|r| r.contains("peer did not return a certificate"))
        {
            return Error::Certificate {
                kind: CertificateErrorKind::NotPresented,
                reason: "the peer presented no certificate, but one is required".into(),
                source: source(),
            };
        }
        if reasons.iter().any(|r| r.contains("unexpected eof")) {
            return if self.handshaking {
                Error::HandshakeEof
            } else {
                Error::Truncated
            };
        }
        Error::Protocol {
            reason: if reasons.is_empty() {
                err.to_string()
            } else {
                reasons.join("; ")
            },
            source: source(),
        }
    }
}

impl Engine for OpensslEngine {
    fn is_handshaking(&self) -> bool {
        self.handshaking
    }

    fn input_space(&mut self, capacity: usize) -> &mut [u8] {
        self.stream.get_mut().inbox.spare(capacity)
    }

    fn input_filled(&mut self, n: usize) -> Result<(), Error> {
        let inbox = &mut self.stream.get_mut().inbox;
        assert!(inbox.can_fill(n), "more input reported than space given");
        inbox.filled(n);
        self.process_input()
    }

    /// During the handshake OpenSSL takes what it can; afterwards records stay in the input
    /// buffer until a read pulls them through OpenSSL, straight into the caller's buffer.
    fn process_input(&mut self) -> Result<(), Error> {
        if self.handshaking && self.stream.get_ref().inbox.len() > 0 {
            self.drive_handshake()?;
        }
        Ok(())
    }

    fn buffer_capacity(&self) -> usize {
        let io = self.stream.get_ref();
        io.inbox.capacity() + io.outgoing.capacity()
    }

    fn input_pending(&self) -> usize {
        self.stream.get_ref().inbox.len()
    }

    fn release_buffers(&mut self) {
        let io = self.stream.get_mut();
        io.inbox.release();
        io.outgoing.release();
        free_ssl_buffers(self.stream.ssl());
    }

    fn feed_eof(&mut self) {
        self.stream.get_mut().eof = true;
    }

    fn read_plaintext(&mut self, buf: &mut [u8]) -> Result<PlainRead, Error> {
        if self.peer_closed {
            return Ok(PlainRead::Closed);
        }
        self.stream.get_mut().hold_after_answer = true;
        let read = self.stream.ssl_read(buf);
        self.stream.get_mut().hold_after_answer = false;
        match read {
            Ok(n) => Ok(PlainRead::Data(n)),
            Err(e) if e.code() == ErrorCode::ZERO_RETURN => {
                self.peer_closed = true;
                Ok(PlainRead::Closed)
            }
            Err(e) if e.code() == ErrorCode::WANT_READ => {
                // OpenSSL may stop with input left (held after writing an answer): the
                // transport's end matters only once OpenSSL has read all of it.
                let io = self.stream.get_ref();
                if io.eof && io.inbox.len() == 0 {
                    Err(Error::Truncated)
                } else {
                    Ok(PlainRead::Empty)
                }
            }
            Err(e) => {
                // OpenSSL also marks a fatal alert as "shutdown received": only an error
                // with nothing on the error stack is the peer's close_notify.
                let has_reason = e
                    .ssl_error()
                    .is_some_and(|stack| !stack.errors().is_empty());
                if !has_reason && self.stream.get_shutdown().contains(ShutdownState::RECEIVED) {
                    self.peer_closed = true;
                    return Ok(PlainRead::Closed);
                }
                if self.stream.get_ref().eof && e.ssl_error().is_none() {
                    return Err(Error::Truncated);
                }
                Err(self.map_error(&e))
            }
        }
    }

    fn plaintext_pending(&self) -> usize {
        self.stream.ssl().pending()
    }

    fn write_plaintext(&mut self, data: &[u8], out: &mut Output) -> Result<usize, Error> {
        // OpenSSL writes the records straight into the session's queue, after whatever the
        // engine still holds.
        self.take_ciphertext(out);
        std::mem::swap(out, &mut self.stream.get_mut().outgoing);
        let written = self.stream.ssl_write(data);
        std::mem::swap(out, &mut self.stream.get_mut().outgoing);
        match written {
            Ok(n) => Ok(n),
            // Only renegotiation could make a write wait for a read, and it is disabled;
            // should it happen anyway, nothing was accepted.
            Err(e) if e.code() == ErrorCode::WANT_READ => Ok(0),
            Err(e) => Err(self.map_error(&e)),
        }
    }

    fn take_ciphertext(&mut self, out: &mut Output) {
        let io = self.stream.get_mut();
        if io.outgoing.is_empty() {
            return;
        }
        if out.is_empty() {
            std::mem::swap(out, &mut io.outgoing);
        } else {
            out.extend_from_slice(io.outgoing.pending());
            io.outgoing.clear();
        }
    }

    fn has_ciphertext(&self) -> bool {
        !self.stream.get_ref().outgoing.is_empty()
    }

    fn send_close_notify(&mut self) {
        // Queues close_notify into the memory transport; the answer does not matter here.
        let _ = self.stream.shutdown();
    }

    fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    fn refresh_traffic_keys(&mut self) -> Result<(), Error> {
        Err(Error::config(
            "key updates are not available on the OpenSSL engine (the openssl crate has no SSL_key_update)",
        ))
    }

    fn protocol_version(&self) -> Option<ProtocolVersion> {
        if self.handshaking {
            return None;
        }
        self.stream.ssl().version2().map(|v| {
            if v == SslVersion::TLS1_3 {
                ProtocolVersion::Tls13
            } else if v == SslVersion::TLS1_2 {
                ProtocolVersion::Tls12
            } else {
                ProtocolVersion::Other(0)
            }
        })
    }

    fn cipher_suite(&self) -> Option<CipherSuite> {
        if self.handshaking {
            return None;
        }
        let cipher = self.stream.ssl().current_cipher()?;
        Some(CipherSuite::from_code(u16::from_be_bytes(
            cipher.protocol_id(),
        )))
    }

    fn is_resumed(&self) -> Option<bool> {
        (!self.handshaking).then(|| self.stream.ssl().session_reused())
    }

    fn export_keying_material(
        &self,
        out: &mut [u8],
        label: &str,
        context: Option<&[u8]>,
    ) -> Result<(), Error> {
        if self.handshaking {
            return Err(Error::protocol(
                "keying material can be exported only once the handshake is over",
            ));
        }
        if out.is_empty() {
            return Err(Error::protocol(
                "no room for keying material: `out` is empty",
            ));
        }
        self.stream
            .ssl()
            .export_keying_material(out, label, context)
            .map_err(|e| Error::Protocol {
                reason: format!("exporting keying material failed: {e}"),
                source: Some(std::sync::Arc::new(e) as crate::EngineError),
            })
    }

    fn alpn_protocol(&self) -> Option<Vec<u8>> {
        self.stream
            .ssl()
            .selected_alpn_protocol()
            .map(<[u8]>::to_vec)
    }

    fn server_name(&self) -> Option<String> {
        if self.client {
            self.server_name.clone()
        } else {
            self.stream
                .ssl()
                .servername(NameType::HOST_NAME)
                .map(str::to_owned)
        }
    }

    fn peer_certificates(&self) -> Option<Vec<Vec<u8>>> {
        let ssl = self.stream.ssl();
        let mut chain = Vec::new();
        if !self.client {
            // A server's view of the peer chain leaves out the client's own certificate.
            chain.extend(ssl.peer_certificate().and_then(|c| c.to_der().ok()));
        }
        if let Some(stack) = ssl.peer_cert_chain() {
            chain.extend(stack.iter().filter_map(|c| c.to_der().ok()));
        }
        if chain.is_empty() {
            None
        } else {
            Some(chain)
        }
    }

    fn is_client(&self) -> bool {
        self.client
    }
}
