//! One-line errors for people: what failed, naming the file or address, and why.
//!
//! Every command returns a [`Failure`]; `main` prints it as `tlsflow: error: ...` and exits
//! with 2 for a usage mistake or 1 for anything that went wrong at run time. Nothing a user
//! can cause ends in a panic or a backtrace.

use std::fmt;
use std::io;

use tlsflow::{AlertDescription, CertificateErrorKind};

/// Exit status of a usage mistake (clap uses the same for the ones it catches).
pub(crate) const EXIT_USAGE: u8 = 2;
/// Exit status of a failure at run time.
pub(crate) const EXIT_RUNTIME: u8 = 1;

/// Why a command failed, already worded for the user.
#[derive(Debug)]
pub(crate) struct Failure {
    message: String,
    usage: bool,
}

/// The result of a command.
pub(crate) type Outcome<T = ()> = Result<T, Failure>;

impl Failure {
    /// A failure at run time (exit status 1).
    pub(crate) fn runtime(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            usage: false,
        }
    }

    /// A mistake in the command line (exit status 2).
    pub(crate) fn usage(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            usage: true,
        }
    }

    /// The exit status for this failure.
    pub(crate) fn exit_code(&self) -> u8 {
        if self.usage {
            EXIT_USAGE
        } else {
            EXIT_RUNTIME
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Adds what we were doing to an error: `cannot listen on 127.0.0.1:8443: address in use`.
pub(crate) trait Context<T> {
    /// Wraps the error as a runtime [`Failure`] whose message starts with `what()`.
    fn context(self, what: impl FnOnce() -> String) -> Outcome<T>;
}

impl<T> Context<T> for io::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Outcome<T> {
        self.map_err(|e| Failure::runtime(format!("{}: {}", what(), describe_io(&e))))
    }
}

impl<T> Context<T> for Result<T, tlsflow::Error> {
    fn context(self, what: impl FnOnce() -> String) -> Outcome<T> {
        self.map_err(|e| Failure::runtime(format!("{}: {}", what(), describe_tls(&e))))
    }
}

/// An I/O error in words, with the TLS error inside it (if any) explained.
pub(crate) fn describe_io(err: &io::Error) -> String {
    if let Some(tls) = tlsflow::Error::from_io(err) {
        return describe_tls(tls);
    }
    let plain = match err.kind() {
        io::ErrorKind::AddrInUse => "address already in use",
        io::ErrorKind::AddrNotAvailable => "address not available on this machine",
        io::ErrorKind::ConnectionRefused => "connection refused",
        io::ErrorKind::ConnectionReset => "connection reset by peer",
        io::ErrorKind::ConnectionAborted => "connection aborted",
        io::ErrorKind::BrokenPipe => "connection closed by peer (broken pipe)",
        io::ErrorKind::NotFound => "no such file or directory",
        io::ErrorKind::PermissionDenied => "permission denied",
        io::ErrorKind::AlreadyExists => "already exists",
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "timed out",
        io::ErrorKind::UnexpectedEof => "connection closed unexpectedly",
        _ => return strip_os_code(&err.to_string()),
    };
    plain.to_owned()
}

/// `Connection refused (os error 111)` reads better without the code.
fn strip_os_code(text: &str) -> String {
    match text.find(" (os error ") {
        Some(at) => text[..at].to_owned(),
        None => text.to_owned(),
    }
}

/// A TLS error in words, with a hint at the usual cause when there is one.
pub(crate) fn describe_tls(err: &tlsflow::Error) -> String {
    if let tlsflow::Error::Io(inner) = err {
        return format!("transport error: {}", describe_io(inner));
    }
    let hint = match err {
        tlsflow::Error::Certificate { kind, .. } => certificate_hint(*kind),
        tlsflow::Error::PeerAlert { alert } => alert_hint(*alert),
        tlsflow::Error::Protocol { reason, .. } => protocol_hint(reason),
        tlsflow::Error::Config { reason } if reason.contains("KeyMismatch") => {
            Some("the private key does not match the certificate")
        }
        tlsflow::Error::HandshakeEof => {
            Some("is the peer speaking TLS, and does it accept our certificate and versions?")
        }
        _ => None,
    };
    match hint {
        Some(hint) => format!("{err} ({hint})"),
        None => err.to_string(),
    }
}

fn certificate_hint(kind: CertificateErrorKind) -> Option<&'static str> {
    match kind {
        CertificateErrorKind::UnknownIssuer => Some("unknown CA: trust the issuer with --ca FILE"),
        // A trusted certificate has the issuer's name but did not sign this one: usually
        // another self-signed certificate with the same subject.
        CertificateErrorKind::BadSignature => {
            Some("unknown CA: not signed by the trusted certificate of that name; check --ca")
        }
        CertificateErrorKind::WrongName => {
            Some("hostname mismatch: the certificate does not name this host; see --sni")
        }
        CertificateErrorKind::Expired => Some("the certificate has expired"),
        CertificateErrorKind::NotYetValid => Some("the certificate is not valid yet"),
        CertificateErrorKind::NotPresented => Some("client certificate required"),
        _ => None,
    }
}

fn alert_hint(alert: AlertDescription) -> Option<&'static str> {
    use AlertDescription as A;
    match alert {
        A::ProtocolVersion => Some("no shared protocol version"),
        A::HandshakeFailure | A::InsufficientSecurity => {
            Some("no shared cipher suite or parameters")
        }
        A::CertificateRequired => Some("client certificate required: give --cert and --key"),
        A::UnknownCA => Some("the peer does not trust our certificate's issuer"),
        A::BadCertificate | A::CertificateUnknown | A::UnsupportedCertificate => {
            Some("the peer rejected our certificate")
        }
        A::CertificateExpired => Some("the peer says our certificate has expired"),
        A::NoApplicationProtocol => Some("no shared ALPN protocol"),
        A::UnrecognisedName => Some("the server does not serve this name (SNI)"),
        A::InternalError => Some(
            "the peer failed on its side; `tlsflow serve --forward` says so when the service \
             it forwards to is down",
        ),
        _ => None,
    }
}

fn protocol_hint(reason: &str) -> Option<&'static str> {
    let lower = reason.to_ascii_lowercase();
    if lower.contains("ciphersuite") || lower.contains("cipher suite") {
        Some("no shared cipher suite")
    } else if lower.contains("version") || lower.contains("notoffered") {
        Some("no shared protocol version")
    } else if lower.contains("incompatible") {
        Some("no shared parameters")
    } else if lower.contains("corrupt message") || lower.contains("invalid") {
        Some("is the peer speaking TLS?")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_read_as_words() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        let failure: Outcome<()> = Err(refused).context(|| "cannot connect to 127.0.0.1:9".into());
        let failure = failure.unwrap_err();
        assert_eq!(
            failure.to_string(),
            "cannot connect to 127.0.0.1:9: connection refused"
        );
        assert_eq!(failure.exit_code(), EXIT_RUNTIME);
        assert_eq!(strip_os_code("Boom (os error 5)"), "Boom");
    }

    #[test]
    fn tls_errors_carry_hints() {
        let alert = tlsflow::Error::PeerAlert {
            alert: AlertDescription::CertificateRequired,
        };
        assert!(describe_tls(&alert).contains("client certificate required"));
        let wrapped = io::Error::from(tlsflow::Error::Certificate {
            kind: CertificateErrorKind::UnknownIssuer,
            reason: "issued by an unknown certificate authority (UnknownIssuer)".into(),
            source: None,
        });
        assert!(describe_io(&wrapped).contains("unknown CA"));
        assert_eq!(Failure::usage("x").exit_code(), EXIT_USAGE);
    }
}
