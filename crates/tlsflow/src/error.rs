//! The one error type of tlsflow, and its mapping to [`std::io::Error`].

use std::fmt;
use std::io;
use std::sync::Arc;

use rustls::AlertDescription;

/// The engine's own error behind a tlsflow [`Error`]: a [`rustls::Error`], or OpenSSL's error
/// stack or verify result. Reach it through [`std::error::Error::source`] and downcast it.
pub type EngineError = Arc<dyn std::error::Error + Send + Sync + 'static>;

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
    /// The peer's certificate was rejected (unknown issuer, expired, wrong name, and so on),
    /// or the peer presented none where one is required. `kind` says which check failed, in
    /// the same terms on both engines; `reason` is the engine's own account.
    Certificate {
        /// Which check failed.
        kind: CertificateErrorKind,
        /// What the verifier objected to, in the engine's words.
        reason: String,
        /// The engine's error, also returned by `source()`: a [`rustls::Error`], or OpenSSL's
        /// verify result (`openssl::x509::X509VerifyResult`) or error stack.
        source: Option<EngineError>,
    },
    /// The peer sent a fatal TLS alert, such as `handshake_failure` or `bad_certificate`.
    /// The error's text names it as the TLS specification spells it.
    PeerAlert {
        /// The alert, as rustls's enum (`AlertDescription::Unknown(n)` for one it does not
        /// name).
        alert: AlertDescription,
    },
    /// The peer broke the TLS protocol: garbage instead of records, a record that fails to
    /// decrypt ("bad record mac"), an unexpected message, no shared version or cipher suite.
    Protocol {
        /// What was wrong.
        reason: String,
        /// The engine's error when the engine detected it, also returned by `source()`: a
        /// [`rustls::Error`], or OpenSSL's error stack (`openssl::error::ErrorStack`).
        source: Option<EngineError>,
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
    /// A handshake or a graceful close did not finish in the time it was given (see
    /// `TlsAcceptor` and `TlsStream::handshake_tokio_within`, feature `tokio`).
    TimedOut {
        /// What timed out: "the TLS handshake", "the TLS close".
        operation: &'static str,
        /// The time it was given.
        after: std::time::Duration,
    },
    /// A configuration error: an unreadable or malformed PEM file, a key that does not match,
    /// an invalid server name, an unsupported option.
    Config {
        /// What was wrong, naming the file or value.
        reason: String,
    },
    /// The engine cannot do what was asked (for example, export keying material on the
    /// rustls engine); the connection is unaffected.
    Unsupported {
        /// What cannot be done, and why.
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
    /// | `TimedOut` | `TimedOut` |
    /// | `Config` | `InvalidInput` |
    /// | `Unsupported` | `Unsupported` |
    pub fn io_kind(&self) -> io::ErrorKind {
        match self {
            Error::Certificate { .. } | Error::PeerAlert { .. } | Error::Protocol { .. } => {
                io::ErrorKind::InvalidData
            }
            Error::HandshakeEof | Error::Truncated => io::ErrorKind::UnexpectedEof,
            Error::WriteZero => io::ErrorKind::WriteZero,
            Error::WriteAfterShutdown => io::ErrorKind::BrokenPipe,
            Error::Io(e) => e.kind(),
            Error::TimedOut { .. } => io::ErrorKind::TimedOut,
            Error::Config { .. } => io::ErrorKind::InvalidInput,
            Error::Unsupported { .. } => io::ErrorKind::Unsupported,
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
            source: None,
        }
    }

    /// The alert the peer sent, when this error is a peer's fatal alert.
    pub fn peer_alert(&self) -> Option<AlertDescription> {
        match self {
            Error::PeerAlert { alert } => Some(*alert),
            _ => None,
        }
    }

    /// What was wrong with the peer's certificate, when this error is a certificate error.
    pub fn certificate_error(&self) -> Option<CertificateErrorKind> {
        match self {
            Error::Certificate { kind, .. } => Some(*kind),
            _ => None,
        }
    }
}

/// Which check a peer's certificate failed, in the same terms on both engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CertificateErrorKind {
    /// The chain does not lead to a trusted authority (includes self-signed certificates
    /// that are not trusted themselves).
    UnknownIssuer,
    /// The certificate (or one in its chain) has expired.
    Expired,
    /// The certificate (or one in its chain) is not valid yet.
    NotYetValid,
    /// The certificate does not name the server name (or IP address) that was checked.
    WrongName,
    /// The certificate has been revoked.
    Revoked,
    /// A signature in the chain does not verify: not signed by the trusted certificate of
    /// that name, or damaged.
    BadSignature,
    /// The peer presented no certificate where one is required.
    NotPresented,
    /// The application's verification callback refused it.
    Refused,
    /// Another reason: see the error's `reason`.
    Other,
}

impl CertificateErrorKind {
    /// The kind of a rustls certificate error.
    fn of_rustls(err: &rustls::CertificateError) -> CertificateErrorKind {
        use rustls::CertificateError as E;
        match err {
            E::UnknownIssuer => CertificateErrorKind::UnknownIssuer,
            E::Expired | E::ExpiredContext { .. } => CertificateErrorKind::Expired,
            E::NotValidYet | E::NotValidYetContext { .. } => CertificateErrorKind::NotYetValid,
            E::NotValidForName | E::NotValidForNameContext { .. } => {
                CertificateErrorKind::WrongName
            }
            E::Revoked => CertificateErrorKind::Revoked,
            E::BadSignature => CertificateErrorKind::BadSignature,
            E::Other(other) if other.0.downcast_ref::<CallbackRefusal>().is_some() => {
                CertificateErrorKind::Refused
            }
            _ => CertificateErrorKind::Other,
        }
    }

    /// The kind of an OpenSSL verify result (`X509_V_ERR_*`).
    #[cfg(feature = "openssl")]
    pub(crate) fn of_openssl(code: i32) -> CertificateErrorKind {
        match code {
            // UNABLE_TO_GET_ISSUER_CERT, DEPTH_ZERO_SELF_SIGNED_CERT, SELF_SIGNED_CERT_IN_CHAIN,
            // UNABLE_TO_GET_ISSUER_CERT_LOCALLY, UNABLE_TO_VERIFY_LEAF_SIGNATURE
            2 | 18 | 19 | 20 | 21 => CertificateErrorKind::UnknownIssuer,
            // CERT_HAS_EXPIRED
            10 => CertificateErrorKind::Expired,
            // CERT_NOT_YET_VALID
            9 => CertificateErrorKind::NotYetValid,
            // HOSTNAME_MISMATCH, EMAIL_MISMATCH, IP_ADDRESS_MISMATCH
            62..=64 => CertificateErrorKind::WrongName,
            // CERT_REVOKED
            23 => CertificateErrorKind::Revoked,
            // UNABLE_TO_DECRYPT_CERT_SIGNATURE, CERT_SIGNATURE_FAILURE
            4 | 7 => CertificateErrorKind::BadSignature,
            // APPLICATION_VERIFICATION
            50 => CertificateErrorKind::Refused,
            _ => CertificateErrorKind::Other,
        }
    }
}

/// The application's reason for refusing a certificate, carried inside the rustls error.
#[derive(Debug)]
pub(crate) struct CallbackRefusal(pub(crate) String);

impl fmt::Display for CallbackRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "refused by the verification callback: {}", self.0)
    }
}

impl std::error::Error for CallbackRefusal {}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Certificate { reason, .. } => {
                write!(f, "peer certificate rejected: {reason}")
            }
            Error::PeerAlert { alert } => write!(
                f,
                "peer sent fatal alert: {}",
                crate::wire::alert_name(u8::from(*alert))
            ),
            Error::Protocol { reason, .. } => write!(f, "TLS protocol error: {reason}"),
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
            Error::TimedOut { operation, after } => {
                write!(f, "{operation} timed out after {after:?}")
            }
            Error::Config { reason } => write!(f, "TLS configuration error: {reason}"),
            Error::Unsupported { reason } => write!(f, "not supported: {reason}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(&**e),
            Error::Certificate {
                source: Some(e), ..
            }
            | Error::Protocol {
                source: Some(e), ..
            } => Some(&**e),
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
    /// Keeps rustls's explanation, and the error itself as the `source()`: a rejected
    /// certificate says what the verifier objected to, a peer's alert is named as the
    /// specification names it.
    fn from(err: rustls::Error) -> Error {
        let source = || Some(Arc::new(err.clone()) as EngineError);
        match &err {
            rustls::Error::InvalidCertificate(e) => Error::Certificate {
                kind: CertificateErrorKind::of_rustls(e),
                reason: describe_certificate_error(e),
                source: source(),
            },
            rustls::Error::NoCertificatesPresented => Error::Certificate {
                kind: CertificateErrorKind::NotPresented,
                reason: "the peer presented no certificate, but one is required".into(),
                source: source(),
            },
            rustls::Error::AlertReceived(alert) => Error::PeerAlert { alert: *alert },
            rustls::Error::General(msg) => Error::config(msg.clone()),
            other => Error::Protocol {
                reason: other.to_string(),
                source: source(),
            },
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
