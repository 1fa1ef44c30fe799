//! What can go wrong, as one-line messages.

use std::fmt;
use std::io;

/// A failed run, check or setup step.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Bytes arrived wrong, too few or too many, or a connection negotiated something other
    /// than the shared configuration: the whole run stops.
    Abort(String),
    /// An I/O or TLS error: the contender is dropped from the rest of that measure.
    Io(String),
    /// A mistake on the command line.
    Usage(String),
}

impl Failure {
    pub(crate) fn io(message: impl Into<String>) -> Failure {
        Failure::Io(message.into())
    }

    /// A failed byte check.
    pub(crate) fn corrupt(message: impl std::fmt::Display) -> Failure {
        Failure::Abort(format!("byte check failed: {message}"))
    }

    /// Whether the whole run must stop.
    pub(crate) fn is_abort(&self) -> bool {
        matches!(self, Failure::Abort(_))
    }

    /// The same failure with `context` in front of its message.
    pub(crate) fn context(self, context: &str) -> Failure {
        match self {
            Failure::Abort(m) => Failure::Abort(format!("{context}: {m}")),
            Failure::Io(m) => Failure::Io(format!("{context}: {m}")),
            Failure::Usage(m) => Failure::Usage(format!("{context}: {m}")),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Abort(m) | Failure::Io(m) | Failure::Usage(m) => f.write_str(m),
        }
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Failure {
        Failure::Io(describe(&e))
    }
}

/// An `io::Error` as one line, with its inner error (TLS alerts, OpenSSL reasons) when the
/// outer message does not already say it.
pub(crate) fn describe(e: &io::Error) -> String {
    let outer = e.to_string();
    match e.get_ref().and_then(|inner| inner.source()) {
        Some(source) if !outer.contains(&source.to_string()) => format!("{outer}: {source}"),
        _ => outer,
    }
}

/// Shorthand for results of this crate.
pub(crate) type Outcome<T> = Result<T, Failure>;

/// Adds context to an `io::Result`.
pub(crate) trait Context<T> {
    fn ctx(self, what: &str) -> Outcome<T>;
}

impl<T> Context<T> for io::Result<T> {
    fn ctx(self, what: &str) -> Outcome<T> {
        self.map_err(|e| Failure::Io(format!("{what}: {}", describe(&e))))
    }
}

impl<T> Context<T> for Outcome<T> {
    fn ctx(self, what: &str) -> Outcome<T> {
        self.map_err(|f| f.context(what))
    }
}
