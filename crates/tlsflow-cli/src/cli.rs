//! The command line: every command, option and its help, declared with clap.
//!
//! Values are checked here (sizes, durations, `HOST:PORT`) so that a typo is a usage error
//! (exit status 2) before anything starts.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

use crate::units::{parse_duration, parse_size};

/// Move data over TLS: a client, a server, a tunnel, a benchmark and certificates.
#[derive(Debug, Parser)]
#[command(name = "tlsflow", version, propagate_version = true)]
#[command(
    after_help = "Example:\n  tlsflow cert --name localhost && tlsflow serve --cert cert.pem --key key.pem --sink"
)]
pub(crate) struct Cli {
    /// More log output on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub(crate) verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub(crate) quiet: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Send data over TLS on loopback and check every byte (SHA-256), with no setup.
    #[command(after_help = "Example:\n  tlsflow bench --size 256MiB --io tokio --duplex")]
    Bench(BenchArgs),
    /// Run a TLS server: echo, sink, forward to a TCP service, or send a file.
    #[command(
        after_help = "Examples:\n  tlsflow serve --cert cert.pem --key key.pem --sink\n  \
                      tlsflow serve --listen 0.0.0.0:8443 --cert cert.pem --key key.pem --forward 127.0.0.1:8080\n\n\
                      SIGHUP reloads --cert and --key (new connections get the new certificate; \
                      open ones keep theirs; a bad file is refused and the old one stays)."
    )]
    Serve(ServeArgs),
    /// Connect to a TLS server: stdin goes to the server, what it sends goes to stdout.
    #[command(
        after_help = "Example:\n  tlsflow connect localhost:8443 --ca cert.pem < big.file > echoed.file"
    )]
    Connect(ConnectArgs),
    /// Accept plain TCP locally and carry each connection over TLS to a server.
    #[command(
        after_help = "Example:\n  tlsflow tunnel --listen 127.0.0.1:8080 --to example.com:443 && curl http://127.0.0.1:8080/"
    )]
    Tunnel(TunnelArgs),
    /// Write a self-signed certificate (cert.pem) and its key (key.pem).
    #[command(
        after_help = "Example:\n  tlsflow cert --name localhost --name 127.0.0.1 --out certs/"
    )]
    Cert(CertArgs),
}

/// Which TLS engine runs the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Engine {
    /// rustls (the default).
    Rustls,
    /// OpenSSL on memory buffers (in builds with the `openssl` feature).
    #[cfg_attr(not(feature = "openssl"), value(skip), allow(dead_code))]
    Openssl,
}

/// A TLS protocol version to allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum TlsVersion {
    /// TLS 1.2.
    #[value(name = "1.2")]
    Tls12,
    /// TLS 1.3.
    #[value(name = "1.3")]
    Tls13,
}

/// How the benchmark's client drives its socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum IoModel {
    /// Blocking std sockets, one thread per direction.
    Blocking,
    /// A non-blocking socket on an event loop (mio).
    Nonblocking,
    /// tokio tasks.
    Tokio,
}

impl fmt::Display for IoModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IoModel::Blocking => "blocking",
            IoModel::Nonblocking => "nonblocking",
            IoModel::Tokio => "tokio",
        })
    }
}

/// `bench` options.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Bytes to send per connection and direction (units: B, KB, MB, GB, KiB, MiB, GiB).
    #[arg(long, default_value = "1GiB", value_parser = parse_size)]
    pub(crate) size: u64,
    /// How the client drives its socket.
    #[arg(long, value_enum, default_value_t = IoModel::Nonblocking)]
    pub(crate) io: IoModel,
    /// TLS engine.
    #[arg(long, value_enum, default_value_t = Engine::Rustls)]
    pub(crate) engine: Engine,
    /// Bytes per write call.
    #[arg(long, default_value = "64KiB", value_parser = parse_nonzero_size)]
    pub(crate) write_size: u64,
    /// The sending sockets' SO_SNDBUF (default: the smallest the kernel allows).
    #[arg(long, value_parser = parse_nonzero_size)]
    pub(crate) sndbuf: Option<u64>,
    /// Send both ways at once through split halves (one `intact:` line per direction).
    #[arg(long)]
    pub(crate) duplex: bool,
    /// Parallel connections, each sending --size (one `intact:` line per connection).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub(crate) connections: u16,
    /// The receiving sockets' SO_RCVBUF (default 4KiB, which Linux doubles).
    #[arg(long, value_parser = parse_nonzero_size)]
    pub(crate) rcvbuf: Option<u64>,
    /// Read as fast as possible instead of pausing 1 ms every 4 MiB.
    #[arg(long)]
    pub(crate) no_slow_reader: bool,
}

/// `serve` options.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("mode").multiple(false))]
pub(crate) struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:8443", value_parser = parse_host_port)]
    pub(crate) listen: HostPort,
    /// Certificate chain (PEM), leaf first, read again at each SIGHUP. Without --cert/--key
    /// a self-signed one is made.
    #[arg(long, requires = "key", value_name = "FILE")]
    pub(crate) cert: Option<PathBuf>,
    /// Private key (PEM) of --cert.
    #[arg(long, requires = "cert", value_name = "FILE")]
    pub(crate) key: Option<PathBuf>,
    /// Send back what each client sends (the default mode).
    #[arg(long, group = "mode")]
    pub(crate) echo: bool,
    /// Read and discard; print each connection's byte count and SHA-256 on stderr.
    #[arg(long, group = "mode")]
    pub(crate) sink: bool,
    /// Forward the plaintext both ways to this TCP service (like stunnel).
    #[arg(long, group = "mode", value_name = "HOST:PORT", value_parser = parse_host_port)]
    pub(crate) forward: Option<HostPort>,
    /// Send this file to each client, then close cleanly.
    #[arg(long, group = "mode", value_name = "PATH")]
    pub(crate) file: Option<PathBuf>,
    /// Answer each HTTP request with a page naming the connection's TLS parameters, then
    /// close cleanly (like `openssl s_server -www`).
    #[arg(long, group = "mode")]
    pub(crate) http: bool,
    /// Require client certificates issued by a CA in this PEM file (mutual TLS).
    #[arg(long, value_name = "FILE")]
    pub(crate) client_ca: Option<PathBuf>,
    /// Accept this ALPN protocol (repeatable, in order of preference).
    #[arg(long, value_name = "PROTO")]
    pub(crate) alpn: Vec<String>,
    /// Allow only this TLS version (repeatable; default 1.2 and 1.3).
    #[arg(long, value_enum)]
    pub(crate) tls_version: Vec<TlsVersion>,
    /// Allow only this cipher suite, by IANA name (repeatable), e.g. TLS_AES_128_GCM_SHA256.
    #[arg(long, value_name = "NAME")]
    pub(crate) cipher_suite: Vec<String>,
    /// TLS engine.
    #[arg(long, value_enum, default_value_t = Engine::Rustls)]
    pub(crate) engine: Engine,
    /// Drop a client that has not finished the handshake within this time.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub(crate) handshake_timeout: Duration,
    /// Close an established connection that has moved no data either way for this long.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub(crate) idle_timeout: Duration,
    /// Connections open at once, in their handshake or established. When all are taken,
    /// the oldest connection still in its handshake is closed to admit the new one; when
    /// all are established, new clients wait in the listen queue.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) max_connections: u32,
    /// Connections in their TLS handshake at once. Beyond it the oldest is closed, so that
    /// clients that connect and stay silent (a slowloris) cannot keep others out.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) max_handshakes: u32,
    /// Length of the kernel's queue of connections waiting to be accepted (capped by
    /// /proc/sys/net/core/somaxconn).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=65535))]
    pub(crate) backlog: u32,
    /// After Ctrl-C, how long open connections may take to finish.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub(crate) shutdown_timeout: Duration,
}

/// TLS client options shared by `connect` and `tunnel`.
#[derive(Debug, Args)]
pub(crate) struct ClientTls {
    /// Trust the CA certificates in this PEM file (default: the system's roots).
    #[arg(long, value_name = "FILE")]
    pub(crate) ca: Option<PathBuf>,
    /// Server name to send (SNI) and verify (default: the host of HOST:PORT).
    #[arg(long, value_name = "NAME")]
    pub(crate) sni: Option<String>,
    /// Offer this ALPN protocol (repeatable, in order of preference).
    #[arg(long, value_name = "PROTO")]
    pub(crate) alpn: Vec<String>,
    /// Client certificate (PEM) for mutual TLS.
    #[arg(long, requires = "key", value_name = "FILE")]
    pub(crate) cert: Option<PathBuf>,
    /// Private key (PEM) of --cert.
    #[arg(long, requires = "cert", value_name = "FILE")]
    pub(crate) key: Option<PathBuf>,
    /// Do not verify the server's certificate (encrypted but not authenticated).
    #[arg(long, conflicts_with = "ca")]
    pub(crate) insecure_skip_verify: bool,
    /// Allow only this TLS version (repeatable; default 1.2 and 1.3).
    #[arg(long, value_enum)]
    pub(crate) tls_version: Vec<TlsVersion>,
    /// Allow only this cipher suite, by IANA name (repeatable), e.g. TLS_AES_128_GCM_SHA256.
    #[arg(long, value_name = "NAME")]
    pub(crate) cipher_suite: Vec<String>,
    /// TLS engine.
    #[arg(long, value_enum, default_value_t = Engine::Rustls)]
    pub(crate) engine: Engine,
    /// Give up when connecting and the handshake take longer than this.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub(crate) timeout: Duration,
}

/// `connect` options.
#[derive(Debug, Args)]
pub(crate) struct ConnectArgs {
    /// The server.
    #[arg(value_name = "HOST:PORT", value_parser = parse_host_port)]
    pub(crate) server: HostPort,
    #[command(flatten)]
    pub(crate) tls: ClientTls,
}

/// `tunnel` options.
#[derive(Debug, Args)]
pub(crate) struct TunnelArgs {
    /// Local address for plain TCP clients (port 0 picks a free port).
    #[arg(long, value_parser = parse_host_port)]
    pub(crate) listen: HostPort,
    /// The TLS server to carry each connection to.
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_host_port)]
    pub(crate) to: HostPort,
    #[command(flatten)]
    pub(crate) tls: ClientTls,
    /// Connections carried at once; more wait in the listen queue.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) max_connections: u32,
    /// Length of the kernel's queue of connections waiting to be accepted (capped by
    /// /proc/sys/net/core/somaxconn).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=65535))]
    pub(crate) backlog: u32,
}

/// `cert` options.
#[derive(Debug, Args)]
pub(crate) struct CertArgs {
    /// A DNS name or IP address for the certificate (repeatable).
    #[arg(long = "name", value_name = "NAME", required = true, num_args = 1..)]
    pub(crate) names: Vec<String>,
    /// Directory to write cert.pem and key.pem into (created if missing).
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub(crate) out: PathBuf,
    /// Overwrite existing files.
    #[arg(long)]
    pub(crate) force: bool,
}

/// A `HOST:PORT` pair as typed; resolved when used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostPort {
    /// A name or an address (without brackets for IPv6).
    pub(crate) host: String,
    /// The port.
    pub(crate) port: u16,
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

fn parse_host_port(text: &str) -> Result<HostPort, String> {
    let invalid = || format!("invalid address {text:?}: expected HOST:PORT, e.g. 127.0.0.1:8443");
    let (host, port) = text.rsplit_once(':').ok_or_else(invalid)?;
    let port: u16 = port.parse().map_err(|_| invalid())?;
    // IPv6 addresses need brackets: in `::1:80` the port is ambiguous.
    let host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) if v6.parse::<std::net::Ipv6Addr>().is_ok() => v6,
        Some(_) => return Err(invalid()),
        None if host.is_empty() || host.contains(':') => return Err(invalid()),
        None => host,
    };
    Ok(HostPort {
        host: host.to_owned(),
        port,
    })
}

fn parse_nonzero_size(text: &str) -> Result<u64, String> {
    match parse_size(text)? {
        0 => Err(format!("{text:?} must be at least 1 byte")),
        n => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn host_port_forms() {
        let v6 = parse_host_port("[::1]:8443").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 8443));
        assert_eq!(v6.to_string(), "[::1]:8443");
        assert_eq!(parse_host_port("localhost:0").unwrap().port, 0);
        for bad in ["localhost", "1.2.3.4:99999", ":80", "::1:80", "host:port"] {
            assert!(parse_host_port(bad).is_err(), "{bad}");
        }
    }
}
