//! The independent peers, as processes on 127.0.0.1: how each is started for a case, how data
//! reaches it and leaves it, how its connection ends, and what it reports.
//!
//! Every peer sends and receives at the same time. What it received is hashed here (from its
//! stdout) or reported by it; what it sent is generated here (fed to its stdin), reported by
//! it, or, for the echo server, what tlsflow sent.

use std::io::{self, BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

use tlsflow::ProtocolVersion;

use crate::common::pki::ServerPki;
use crate::common::process::{
    accept_from_child, collect_text, connect_to_child, feed_in_thread, free_port, hash_in_thread,
    peer_available, Digest256, Feeding, Reaped,
};

/// How long a peer may take to start, and to finish after tlsflow is done.
const START: Duration = Duration::from_secs(10);
const FINISH: Duration = Duration::from_secs(20);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Peer {
    /// `openssl s_server` / `openssl s_client` (Debian's OpenSSL 3.0 CLI).
    Openssl,
    /// `gnutls-serv --echo` / `gnutls-cli` (GnuTLS 3.7).
    Gnutls,
    /// `tests/peers/tls_peer.py` on Python 3's `ssl` module.
    Python,
}

impl Peer {
    pub(crate) const ALL: [Peer; 3] = [Peer::Openssl, Peer::Gnutls, Peer::Python];

    pub(crate) fn name(self, tlsflow: Role) -> &'static str {
        match (self, tlsflow) {
            (Peer::Openssl, Role::Client) => "openssl s_server",
            (Peer::Openssl, Role::Server) => "openssl s_client",
            (Peer::Gnutls, Role::Client) => "gnutls-serv --echo",
            (Peer::Gnutls, Role::Server) => "gnutls-cli",
            (Peer::Python, Role::Client) => "python ssl server",
            (Peer::Python, Role::Server) => "python ssl client",
        }
    }

    /// Whether the peer's programs run; a missing one fails unless `TLSFLOW_SKIP_PEERS=1`.
    pub(crate) fn available(self) -> bool {
        match self {
            Peer::Openssl => peer_available("openssl", &["version"], "openssl"),
            Peer::Gnutls => {
                peer_available("gnutls-cli", &["--version"], "gnutls-bin")
                    && peer_available("gnutls-serv", &["--version"], "gnutls-bin")
            }
            Peer::Python => peer_available(
                "python3",
                &["-c", "import ssl; assert ssl.HAS_TLSv1_3"],
                "python3",
            ),
        }
    }
}

/// tlsflow's role in a case.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Role {
    Client,
    Server,
}

/// The suite the peer is limited to: an AES-GCM one or ChaCha20-Poly1305.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Suite {
    AesGcm,
    Chacha,
}

impl Suite {
    pub(crate) const ALL: [Suite; 2] = [Suite::AesGcm, Suite::Chacha];

    /// The IANA name, as tlsflow reports it (after normalising rustls's `TLS13_` prefix).
    pub(crate) fn iana(self, version: ProtocolVersion) -> &'static str {
        match (version, self) {
            (ProtocolVersion::Tls13, Suite::AesGcm) => "TLS_AES_128_GCM_SHA256",
            (ProtocolVersion::Tls13, Suite::Chacha) => "TLS_CHACHA20_POLY1305_SHA256",
            (_, Suite::AesGcm) => "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            (_, Suite::Chacha) => "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        }
    }

    /// OpenSSL's name (also Python's, which uses OpenSSL).
    fn openssl(self, version: ProtocolVersion) -> &'static str {
        match (version, self) {
            (ProtocolVersion::Tls13, _) => self.iana(version),
            (_, Suite::AesGcm) => "ECDHE-ECDSA-AES128-GCM-SHA256",
            (_, Suite::Chacha) => "ECDHE-ECDSA-CHACHA20-POLY1305",
        }
    }

    /// A GnuTLS priority string allowing only this version and this suite's cipher.
    fn gnutls_priority(self, version: ProtocolVersion) -> String {
        let version = if version == ProtocolVersion::Tls13 {
            "TLS1.3"
        } else {
            "TLS1.2"
        };
        let cipher = match self {
            Suite::AesGcm => "AES-128-GCM",
            Suite::Chacha => "CHACHA20-POLY1305",
        };
        format!("NORMAL:-VERS-ALL:+VERS-{version}:-CIPHER-ALL:+{cipher}")
    }
}

/// What the peer sends comes from its stdin, which is closed at the end or kept open; or it
/// has no stdin.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Stdin {
    KeepOpen,
    Close,
    None,
}

/// Who sends the first close_notify, and when: each peer's own habit (see `start`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Ending {
    /// tlsflow half-closes as soon as it has sent everything, while the peer still sends.
    TlsflowHalfCloses,
    /// tlsflow closes once it has received everything; the peer answers with its own.
    TlsflowClosesLast,
    /// The peer closes first; tlsflow answers.
    PeerCloses,
}

/// How tlsflow's side of the connection is made (plain, or the smallest buffers).
pub(crate) trait Net {
    fn connect(&self, port: u16) -> io::Result<TcpStream>;
    fn listen(&self) -> TcpListener;
}

/// A peer running one case, with the TCP connection tlsflow uses.
pub(crate) struct Running {
    pub(crate) ending: Ending,
    child: Reaped,
    stdin: Option<Feeding>,
    stdout: Option<JoinHandle<Digest256>>,
    report: Option<JoinHandle<Vec<String>>>,
    stderr: JoinHandle<String>,
    /// The peer echoes what it receives, and only line-based text survives it.
    pub(crate) echo: bool,
}

/// What the peer sent and received, as far as it can be known.
pub(crate) struct PeerView {
    /// `None` for the echo server: it sends back what it receives.
    pub(crate) sent: Option<Digest256>,
    pub(crate) received: Option<Digest256>,
    pub(crate) status: Option<ExitStatus>,
    pub(crate) log: String,
}

fn openssl_suite_args(cmd: &mut Command, version: ProtocolVersion, suite: Suite) {
    match version {
        ProtocolVersion::Tls13 => cmd.args(["-tls1_3", "-ciphersuites", suite.openssl(version)]),
        _ => cmd.args(["-tls1_2", "-cipher", suite.openssl(version)]),
    };
}

fn python_peer() -> Command {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/tls_peer.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script);
    cmd
}

/// What the peer is told to do in a case.
pub(crate) struct Plan<'a> {
    pub(crate) peer: Peer,
    pub(crate) tlsflow: Role,
    pub(crate) version: ProtocolVersion,
    pub(crate) suite: Suite,
    pub(crate) pki: &'a ServerPki,
    /// Bytes each way.
    pub(crate) len: u64,
    /// Seed of what the peer sends.
    pub(crate) seed: u64,
}

/// Starts the peer for `plan` and connects it to tlsflow's side, made by `net`.
pub(crate) fn start(plan: &Plan<'_>, net: &dyn Net) -> Result<(Running, TcpStream), String> {
    let mut failures = Vec::new();
    // A server peer may lose the race for a free port: try a few.
    for _ in 0..3 {
        match start_once(plan, net) {
            Ok(running) => return Ok(running),
            Err(e) => failures.push(e),
        }
        if plan.tlsflow == Role::Server {
            break;
        }
    }
    Err(failures.join("\n"))
}

fn start_once(plan: &Plan<'_>, net: &dyn Net) -> Result<(Running, TcpStream), String> {
    let (pki, version, suite) = (plan.pki, plan.version, plan.suite);
    let listener = (plan.tlsflow == Role::Server).then(|| net.listen());
    let port = match &listener {
        Some(l) => l.local_addr().unwrap().port(),
        None => free_port(),
    };
    let mut echo = false;
    let (mut cmd, ending, feed) = match (plan.peer, plan.tlsflow) {
        (Peer::Openssl, Role::Client) => {
            let mut cmd = Command::new("openssl");
            cmd.args(["s_server", "-quiet", "-naccept", "1", "-accept"])
                .arg(format!("127.0.0.1:{port}"))
                .arg("-cert")
                .arg(&pki.cert_file)
                .arg("-key")
                .arg(&pki.key_file);
            openssl_suite_args(&mut cmd, version, suite);
            // s_server ends the connection when its stdin ends, and when it reads our
            // close_notify (it answers with its own): its stdin stays open until it is done,
            // and tlsflow closes only after receiving everything.
            (cmd, Ending::TlsflowClosesLast, Stdin::KeepOpen)
        }
        (Peer::Openssl, Role::Server) => {
            let mut cmd = Command::new("openssl");
            cmd.args(["s_client", "-connect"])
                .arg(format!("127.0.0.1:{port}"))
                // -no_ign_eof must follow -quiet (which implies -ign_eof); -nocommands keeps
                // lines starting with Q, R, K or k from being taken as commands.
                .args([
                    "-quiet",
                    "-no_ign_eof",
                    "-nocommands",
                    "-verify_return_error",
                ])
                .args(["-servername", "localhost", "-verify_hostname", "localhost"])
                .arg("-CAfile")
                .arg(&pki.ca_file);
            openssl_suite_args(&mut cmd, version, suite);
            // At the end of its stdin s_client sends close_notify and exits at once, and it
            // ends the connection when it reads close_notify (answering with its own): so
            // its stdin stays open, and tlsflow closes once it has received everything.
            (cmd, Ending::TlsflowClosesLast, Stdin::KeepOpen)
        }
        (Peer::Gnutls, Role::Client) => {
            echo = true;
            let mut cmd = Command::new("gnutls-serv");
            // The echo server is line-based C-string code, observed with GnuTLS 3.7.9: it
            // gathers what it receives until a line feed, then sends the gathered text back
            // as a C string (cut at the first NUL), after turning CR LF into LF (unless
            // --crlf) and treating a line starting with `**` as a command; it prints every
            // line it receives to stderr. So tlsflow sends `Generator::lines`: random bytes
            // without NUL, CR or `*`, ending in a line feed. It also reads 1 KiB at a time
            // and does not read while it answers.
            cmd.args(["--echo", "--crlf", "--quiet", "--port"])
                .arg(port.to_string())
                .arg("--x509certfile")
                .arg(&pki.cert_file)
                .arg("--x509keyfile")
                .arg(&pki.key_file)
                .arg("--priority")
                .arg(suite.gnutls_priority(version));
            (cmd, Ending::TlsflowClosesLast, Stdin::None)
        }
        (Peer::Gnutls, Role::Server) => {
            let mut cmd = Command::new("gnutls-cli");
            // Its informational messages go to stdout with the data unless --logfile.
            let log = pki.dir.path().join("gnutls-cli.log");
            cmd.args(["127.0.0.1", "--port"])
                .arg(port.to_string())
                .args([
                    "--verify-hostname",
                    "localhost",
                    "--sni-hostname",
                    "localhost",
                ])
                .arg("--x509cafile")
                .arg(&pki.ca_file)
                .arg("--priority")
                .arg(suite.gnutls_priority(version))
                .arg(format!("--logfile={}", log.display()));
            // Observed with GnuTLS 3.7.9 (and in its source): at the end of its stdin
            // gnutls-cli sends close_notify and goes on reading (a true half-close) until
            // ours, then exits 0. It writes every byte it receives with its own write(2)
            // (strace: 1,048,577 writes for 1 MiB), about 1.4 MB/s; and it reads its stdin
            // only when no network input is waiting, so while tlsflow sends it sends
            // nothing: the two directions run one after the other (see interop.rs for the
            // size it receives, and the longer socket timeout).
            (cmd, Ending::PeerCloses, Stdin::Close)
        }
        (Peer::Python, role) => {
            let mut cmd = python_peer();
            cmd.arg(if role == Role::Client {
                "server"
            } else {
                "client"
            })
            .arg("--port")
            .arg(port.to_string())
            .args([
                "--send",
                &plan.len.to_string(),
                "--seed",
                &plan.seed.to_string(),
            ])
            .args([
                "--version",
                if version == ProtocolVersion::Tls13 {
                    "1.3"
                } else {
                    "1.2"
                },
            ])
            .args(["--ciphers", suite.openssl(version)]);
            if role == Role::Client {
                cmd.arg("--cert")
                    .arg(&pki.cert_file)
                    .arg("--key")
                    .arg(&pki.key_file);
            } else {
                cmd.arg("--ca").arg(&pki.ca_file);
            }
            // The script sends while it receives, even after our close_notify.
            (cmd, Ending::TlsflowHalfCloses, Stdin::None)
        }
    };
    let stdin = if feed == Stdin::None {
        Stdio::null()
    } else {
        Stdio::piped()
    };
    let child = cmd
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", plan.peer.name(plan.tlsflow)))?;
    let mut child = Reaped(child);
    let stderr = collect_text(child.0.stderr.take().unwrap());
    let keep_open = feed == Stdin::KeepOpen;
    let stdin = (child.0.stdin.take()).map(|s| feed_in_thread(s, plan.seed, plan.len, keep_open));
    let stdout = child.0.stdout.take().unwrap();
    let (stdout, report, tcp) = if plan.peer == Peer::Python {
        let mut lines = BufReader::new(stdout);
        let tcp = if plan.tlsflow == Role::Client {
            let mut first = String::new();
            let _ = lines.read_line(&mut first);
            let port = first
                .strip_prefix("listening ")
                .and_then(|p| p.trim().parse::<u16>().ok())
                .ok_or_else(|| format!("python peer did not listen: {first:?}"));
            port.and_then(|p| connect_to_child(&mut child, p, START, &|p| net.connect(p)))
        } else {
            accept_from_child(listener.as_ref().unwrap(), &mut child, START)
        };
        let report = std::thread::spawn(move || lines.lines().map_while(Result::ok).collect());
        (None, Some(report), tcp)
    } else {
        let tcp = match &listener {
            Some(l) => accept_from_child(l, &mut child, START),
            None => connect_to_child(&mut child, port, START, &|p| net.connect(p)),
        };
        if echo {
            // Only its messages: kept for the log.
            let text = collect_text(stdout);
            let lines = std::thread::spawn(move || vec![text.join().unwrap_or_default()]);
            (None, Some(lines), tcp)
        } else {
            (Some(hash_in_thread(stdout)), None, tcp)
        }
    };
    let tcp = match tcp {
        Ok(tcp) => tcp,
        Err(e) => {
            drop(child);
            let log = stderr.join().unwrap_or_default();
            return Err(format!(
                "{}: {e}; stderr: {log}",
                plan.peer.name(plan.tlsflow)
            ));
        }
    };
    let running = Running {
        ending,
        child,
        stdin,
        stdout,
        report,
        stderr,
        echo,
    };
    Ok((running, tcp))
}

impl Running {
    /// Waits (bounded) for the peer to finish and collects what it sent and received.
    /// `abort` kills it at once (tlsflow failed: the peer may wait forever).
    pub(crate) fn finish(mut self, abort: bool) -> PeerView {
        if abort {
            let _ = self.child.0.kill();
        }
        // An echo server never exits by itself: it serves the next client.
        let status = if self.echo {
            let _ = self.child.0.kill();
            None
        } else {
            self.child.wait_bounded(FINISH)
        };
        let _ = self.child.0.kill(); // so that stdout and stderr end
        let received = self.stdout.map(|h| h.join().unwrap());
        let sent = self.stdin.map(|h| {
            let (result, stdin, digest) = h.join().unwrap();
            drop(stdin);
            result.map(|()| digest)
        });
        let report = self.report.map(|h| h.join().unwrap()).unwrap_or_default();
        let mut log = self.stderr.join().unwrap_or_default();
        let mut view = PeerView {
            sent: None,
            received,
            status,
            log: String::new(),
        };
        match sent {
            Some(Ok(digest)) => view.sent = Some(digest),
            Some(Err(e)) => log.push_str(&format!("\n[feeding the peer's stdin failed: {e}]")),
            None => {}
        }
        if let Some(line) = report.iter().find(|l| l.starts_with('{')) {
            view.sent = json_digest(line, "sent");
            view.received = json_digest(line, "received");
        }
        if !report.is_empty() {
            log.push_str(&format!("\n[stdout: {report:?}]"));
        }
        view.log = log;
        view
    }
}

/// `{"KEY": N, "KEY_sha256": "HEX", ...}` from the Python peer's report line.
fn json_digest(line: &str, key: &str) -> Option<Digest256> {
    let field = |name: &str| {
        let start = line.find(&format!("\"{name}\": "))? + name.len() + 4;
        let rest = line[start..].trim_start_matches('"');
        let end = rest.find(['"', ',', '}'])?;
        Some(rest[..end].to_owned())
    };
    let len = field(key)?.parse().ok()?;
    let hex = field(&format!("{key}_sha256"))?;
    let mut sha = [0u8; 32];
    for (i, byte) in sha.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(Digest256 { len, sha })
}
