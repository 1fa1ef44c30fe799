//! The one error type of tlsflow, and its mapping to [`std::io::Error`].

use std::fmt;
use std::io;
use std::sync::Arc;

/// Everything that can go wrong in a TLS stream, its configuration or its transport.
///
/// Errors are *sticky*: once a stream has failed, every later operation returns the same error
/// again (see [`Session`](crate::Session)). When an `Error` crosses an `std::io` interface it
/// becomes an [`io::Error`] whose kind is chosen deliberately (see [`Error::io_kind`]) and whose
/// inner error is this value, so callers can recover it with
/// [`io::Error::get_ref`] and `downcast_ref::<tlsflow::Error>()`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Error {
    /// The peer's certificate was rejected: unknown issuer, expired, wrong name, and so on.
    /// `reason` says which.
    Certificate {
        /// What the verifier objected to.
        reason: String,
    },
    /// The peer sent a fatal TLS alert, such as `handshake_failure` or `bad_certificate`.
    PeerAlert {
        /// The alert's name as the TLS specification spells it.
        alert: String,
    },
    /// The peer broke the TLS protocol: garbage instead of records, a record that fails to
    /// decrypt ("bad record mac"), an unexpected message, no shared version or cipher suite.
    Protocol {
        /// What was wrong.
        reason: String,
    },
    /// The transport reached end-of-file before the handshake finished.
    HandshakeEof,
    /// The transport reached end-of-file without the peer's `close_notify`: the data may have
    /// been cut short by an attacker or a crash (truncation).
    Truncated,
    /// The transport accepted zero bytes of a non-empty write.
    WriteZero,
    /// Plaintext was written after [`shutdown`](crate::TlsStream::shutdown) closed the
    /// write side.
    WriteAfterShutdown,
    /// The transport failed. The stream cannot know how much of the last record reached the
    /// peer, so the connection is over.
    Io(Arc<io::Error>),
    /// A configuration error: an unreadable or malformed PEM file, a key that does not match,
    /// an invalid server name, an unsupported option.
    Config {
        /// What was wrong, naming the file or value.
        reason: String,
    },
}

impl Error {
    /// The [`io::ErrorKind`] this error maps to when it crosses an `std::io` interface.
    ///
    /// | variant | kind |
    /// |---|---|
    /// | `Certificate`, `PeerAlert`, `Protocol` | `InvalidData` |
    /// | `HandshakeEof`, `Truncated` | `UnexpectedEof` |
    /// | `WriteZero` | `WriteZero` |
    /// | `WriteAfterShutdown` | `BrokenPipe` |
    /// | `Io(e)` | `e.kind()` |
    /// | `Config` | `InvalidInput` |
    pub fn io_kind(&self) -> io::ErrorKind {
        match self {
            Error::Certificate { .. } | Error::PeerAlert { .. } | Error::Protocol { .. } => {
                io::ErrorKind::InvalidData
            }
            Error::HandshakeEof | Error::Truncated => io::ErrorKind::UnexpectedEof,
            Error::WriteZero => io::ErrorKind::WriteZero,
            Error::WriteAfterShutdown => io::ErrorKind::BrokenPipe,
            Error::Io(e) => e.kind(),
            Error::Config { .. } => io::ErrorKind::InvalidInput,
        }
    }

    /// Recovers the tlsflow error carried by an [`io::Error`], if it carries one.
    pub fn from_io(err: &io::Error) -> Option<&Error> {
        err.get_ref()
            .and_then(|inner| inner.downcast_ref::<Error>())
    }

    pub(crate) fn config(reason: impl Into<String>) -> Error {
        Error::Config {
            reason: reason.into(),
        }
    }

    pub(crate) fn protocol(reason: impl Into<String>) -> Error {
        Error::Protocol {
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Certificate { reason } => write!(f, "peer certificate rejected: {reason}"),
            Error::PeerAlert { alert } => write!(f, "peer sent fatal alert: {alert}"),
            Error::Protocol { reason } => write!(f, "TLS protocol error: {reason}"),
            Error::HandshakeEof => {
                f.write_str("connection closed by peer during the TLS handshake")
            }
            Error::Truncated => f.write_str(
                "connection closed by peer without a TLS close_notify (data may be truncated)",
            ),
            Error::WriteZero => f.write_str("transport accepted zero bytes of a non-empty write"),
            Error::WriteAfterShutdown => {
                f.write_str("write after the TLS write side was shut down")
            }
            Error::Io(e) => write!(f, "transport error: {e}"),
            Error::Config { reason } => write!(f, "TLS configuration error: {reason}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(&**e),
            _ => None,
        }
    }
}

impl From<Error> for io::Error {
    fn from(err: Error) -> io::Error {
        io::Error::new(err.io_kind(), err)
    }
}

impl From<rustls::Error> for Error {
    /// Keeps rustls's explanation: a rejected certificate names what the verifier objected
    /// to, a peer's alert is named as the specification names it.
    fn from(err: rustls::Error) -> Error {
        match err {
            rustls::Error::InvalidCertificate(e) => Error::Certificate {
                reason: describe_certificate_error(&e),
            },
            rustls::Error::NoCertificatesPresented => Error::Certificate {
                reason: "the peer presented no certificate, but one is required".into(),
            },
            rustls::Error::AlertReceived(alert) => Error::PeerAlert {
                alert: crate::wire::alert_name(u8::from(alert)),
            },
            rustls::Error::General(msg) => Error::config(msg),
            other => Error::protocol(other.to_string()),
        }
    }
}

fn describe_certificate_error(err: &rustls::CertificateError) -> String {
    use rustls::CertificateError as E;
    match err {
        E::UnknownIssuer => "issued by an unknown certificate authority (UnknownIssuer)".into(),
        E::Expired => "the certificate has expired (Expired)".into(),
        E::NotValidYet => "the certificate is not valid yet (NotValidYet)".into(),
        E::NotValidForName => {
            "the certificate is not valid for this server name (NotValidForName)".into()
        }
        other => format!("{other}"),
    }
}

impl From<io::Error> for Error {
    /// Wraps a transport error. An `io::Error` that already carries a tlsflow error is
    /// unwrapped instead of nested.
    fn from(err: io::Error) -> Error {
        match Error::from_io(&err) {
            Some(inner) => inner.clone(),
            None => Error::Io(Arc::new(err)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_mapped_deliberately() {
        let cases = [
            (Error::protocol("x"), io::ErrorKind::InvalidData),
            (Error::Truncated, io::ErrorKind::UnexpectedEof),
            (Error::HandshakeEof, io::ErrorKind::UnexpectedEof),
            (Error::WriteZero, io::ErrorKind::WriteZero),
            (Error::config("x"), io::ErrorKind::InvalidInput),
        ];
        for (err, kind) in cases {
            let io: io::Error = err.into();
            assert_eq!(io.kind(), kind);
        }
    }

    #[test]
    fn round_trips_through_io_error() {
        let io: io::Error = Error::Truncated.into();
        assert!(matches!(Error::from_io(&io), Some(Error::Truncated)));
        assert!(matches!(Error::from(io), Error::Truncated));
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        let wrapped: io::Error = Error::from(reset).into();
        assert_eq!(wrapped.kind(), io::ErrorKind::ConnectionReset);
    }
}
