//! The contenders: which library drives each end of a connection, in which I/O model.

use crate::cli::Measure;

/// How the application waits for its socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Model {
    /// Blocking std sockets, one thread per end (or per half).
    Blocking,
    /// Non-blocking sockets, each thread with its own mio `Poll`.
    Nonblocking,
    /// tokio.
    Tokio,
}

impl Model {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Model::Blocking => "blocking",
            Model::Nonblocking => "non-blocking",
            Model::Tokio => "tokio",
        }
    }

    /// The plain-TCP contender of this model.
    pub(crate) fn baseline(self) -> &'static str {
        match self {
            Model::Blocking => "tcp-blocking",
            Model::Nonblocking => "tcp-nonblocking",
            Model::Tokio => "tcp-tokio",
        }
    }
}

/// tlsflow's TLS engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Engine {
    Rustls,
    Openssl,
}

/// The library on both ends of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stack {
    /// Plain TCP, no TLS.
    Tcp,
    /// tlsflow's `TlsStream` with this engine.
    Tlsflow(Engine),
    /// The tokio-rustls crate.
    TokioRustls,
    /// The tokio-openssl crate.
    TokioOpenssl,
    /// rustls's own `StreamOwned` over a blocking `TcpStream`.
    RustlsStream,
}

impl Stack {
    /// The stack of a contender's handshake and memory clients, which run on tokio: the
    /// contender's own library where it has a tokio form, tokio-rustls for rustls's
    /// blocking stream.
    pub(crate) fn tokio_client(self) -> Stack {
        match self {
            Stack::RustlsStream => Stack::TokioRustls,
            other => other,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Contender {
    pub(crate) name: &'static str,
    pub(crate) model: Model,
    pub(crate) stack: Stack,
}

const fn contender(name: &'static str, model: Model, stack: Stack) -> Contender {
    Contender { name, model, stack }
}

/// Every contender, in report order.
pub(crate) static ALL: [Contender; 12] = [
    contender("tcp-blocking", Model::Blocking, Stack::Tcp),
    contender("tcp-nonblocking", Model::Nonblocking, Stack::Tcp),
    contender("tcp-tokio", Model::Tokio, Stack::Tcp),
    contender(
        "tlsflow-blocking-rustls",
        Model::Blocking,
        Stack::Tlsflow(Engine::Rustls),
    ),
    contender(
        "tlsflow-nonblocking-rustls",
        Model::Nonblocking,
        Stack::Tlsflow(Engine::Rustls),
    ),
    contender(
        "tlsflow-tokio-rustls",
        Model::Tokio,
        Stack::Tlsflow(Engine::Rustls),
    ),
    contender(
        "tlsflow-blocking-openssl",
        Model::Blocking,
        Stack::Tlsflow(Engine::Openssl),
    ),
    contender(
        "tlsflow-nonblocking-openssl",
        Model::Nonblocking,
        Stack::Tlsflow(Engine::Openssl),
    ),
    contender(
        "tlsflow-tokio-openssl",
        Model::Tokio,
        Stack::Tlsflow(Engine::Openssl),
    ),
    contender("rustls-stream", Model::Blocking, Stack::RustlsStream),
    contender("tokio-rustls", Model::Tokio, Stack::TokioRustls),
    contender("tokio-openssl", Model::Tokio, Stack::TokioOpenssl),
];

/// The peer every TLS contender is compared with.
pub(crate) const REFERENCE: &str = "tokio-rustls";

impl Contender {
    pub(crate) fn by_name(name: &str) -> Option<&'static Contender> {
        ALL.iter().find(|c| c.name == name)
    }

    pub(crate) fn is_tls(&self) -> bool {
        self.stack != Stack::Tcp
    }

    pub(crate) fn is_tlsflow(&self) -> bool {
        matches!(self.stack, Stack::Tlsflow(_))
    }

    /// Whether this contender is measured by `measure`.
    pub(crate) fn takes_part_in(&self, measure: Measure) -> bool {
        match measure {
            Measure::Oneway | Measure::Rtt | Measure::Handshake => true,
            // Split halves: tokio tasks or std threads; rustls's stream cannot be split.
            Measure::Duplex => match self.model {
                Model::Tokio => true,
                Model::Blocking => self.stack != Stack::RustlsStream,
                Model::Nonblocking => false,
            },
            // An idle tokio server in a child process; tokio tasks.
            Measure::Memory | Measure::Scaling => self.model == Model::Tokio,
        }
    }
}
