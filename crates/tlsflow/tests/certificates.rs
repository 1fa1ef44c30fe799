//! Certificates a client must refuse, on every client engine × server engine pair and both
//! TLS versions: expired, not yet valid, issued for another name, self-signed, issued by an
//! untrusted CA, sent without its intermediate. And the other way round: a server that
//! requires a client certificate refuses a client without one, or with one from an
//! untrusted CA. The verifying side must fail its handshake with an error naming the
//! reason; the other side must get the matching alert. A control case shows the same
//! fixtures connect when nothing is wrong.
//!
//! Real loopback TCP, blocking sockets with timeouts, the server in a thread.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::thread;
use std::time::Duration;

use rcgen::ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
use tlsflow::testing::engine_pairs;
use tlsflow::{
    CertificateErrorKind, ClientConfig, EngineKind, Error, ProtocolVersion, ServerConfig,
};

use common::pki::{self_signed_leaf, Ca, Issued, TempDir, Validity};

const TIMEOUT: Duration = Duration::from_secs(10);
const VERSIONS: [ProtocolVersion; 2] = [ProtocolVersion::Tls13, ProtocolVersion::Tls12];

/// What is wrong with the server's certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Expired,
    NotYetValid,
    /// Valid for `www.example.com`; the client connects to `localhost`.
    WrongName,
    /// A self-signed leaf the client does not trust.
    SelfSigned,
    UntrustedCa,
    /// Issued by an intermediate the server does not send; the client trusts only the root.
    MissingIntermediate,
}

/// A trusted root with an intermediate, and a CA nobody trusts, as files.
struct Pki {
    dir: TempDir,
    root: Ca,
    intermediate: Ca,
    untrusted: Ca,
    root_file: PathBuf,
}

impl Pki {
    fn new() -> Pki {
        let dir = TempDir::new("certificates");
        let root = Ca::new("tlsflow test root");
        let intermediate = root.intermediate("tlsflow test intermediate");
        let root_file = dir.write("root.pem", &root.cert_pem);
        Pki {
            dir,
            root,
            intermediate,
            untrusted: Ca::new("untrusted CA"),
            root_file,
        }
    }

    /// The server's chain and key files: a sound chain (leaf and intermediate) without a
    /// fault, else one with `fault`.
    fn server_files(&self, fault: Option<Fault>) -> (PathBuf, PathBuf) {
        let current = Validity::Current;
        let (leaf, chain_extra): (Issued, &str) = match fault {
            None => (
                self.intermediate.leaf("localhost", ServerAuth, current),
                &self.intermediate.cert_pem,
            ),
            Some(Fault::Expired) => (
                self.root.leaf("localhost", ServerAuth, Validity::Expired),
                "",
            ),
            Some(Fault::NotYetValid) => (
                self.root
                    .leaf("localhost", ServerAuth, Validity::NotYetValid),
                "",
            ),
            Some(Fault::WrongName) => (self.root.leaf("www.example.com", ServerAuth, current), ""),
            Some(Fault::SelfSigned) => (self_signed_leaf("localhost"), ""),
            Some(Fault::UntrustedCa) => (self.untrusted.leaf("localhost", ServerAuth, current), ""),
            Some(Fault::MissingIntermediate) => {
                (self.intermediate.leaf("localhost", ServerAuth, current), "")
            }
        };
        let tag = format!("{fault:?}").to_lowercase();
        let chain = format!("{}{chain_extra}", leaf.cert_pem);
        (
            self.dir.write(&format!("{tag}.pem"), &chain),
            self.dir.write(&format!("{tag}.key"), &leaf.key_pem),
        )
    }
}

/// How a connection attempt ended on each side.
struct Outcome {
    client_handshake: io::Result<()>,
    client: io::Result<Vec<u8>>,
    server: io::Result<()>,
}

/// A server that handshakes, says "welcome" and closes; a client that handshakes and reads
/// to the end.
fn exchange(client: &ClientConfig, server: ServerConfig) -> Outcome {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || -> io::Result<()> {
        let tcp = with_timeouts(listener.accept()?.0);
        let mut tls = server.accept(tcp)?;
        tls.handshake()?;
        tls.write_all(b"welcome")?;
        tls.shutdown()?;
        tls.read_to_end(&mut Vec::new()).map(drop)
    });
    let tcp = with_timeouts(TcpStream::connect(addr).unwrap());
    let mut tls = client.connect("localhost", tcp).unwrap();
    let client_handshake = tls.handshake();
    let mut got = Vec::new();
    // After a failed handshake this returns the same (sticky) error.
    let client = tls.read_to_end(&mut got).map(|_| got);
    if client.is_ok() {
        let _ = tls.shutdown(); // the server reads to our close_notify
    }
    drop(tls);
    Outcome {
        client_handshake,
        client,
        server: server.join().unwrap(),
    }
}

fn with_timeouts(tcp: TcpStream) -> TcpStream {
    tcp.set_read_timeout(Some(TIMEOUT)).unwrap();
    tcp.set_write_timeout(Some(TIMEOUT)).unwrap();
    tcp
}

/// The tlsflow error inside `result`'s error, as text for failure messages when missing.
fn tls_error<T: std::fmt::Debug>(result: &io::Result<T>) -> Result<Error, String> {
    match result {
        Ok(value) => Err(format!("succeeded with {value:?}")),
        Err(e) => Error::from_io(e)
            .cloned()
            .ok_or_else(|| format!("not a tlsflow error: {e} ({:?})", e.kind())),
    }
}

fn configs(
    pki: &Pki,
    (client_engine, server_engine): (EngineKind, EngineKind),
    version: ProtocolVersion,
    server_files: (PathBuf, PathBuf),
) -> (tlsflow::ClientConfigBuilder, tlsflow::ServerConfigBuilder) {
    let client = (ClientConfig::builder().ca_file(&pki.root_file))
        .engine(client_engine)
        .versions(&[version]);
    let server = (ServerConfig::builder().cert_files(server_files.0, server_files.1))
        .engine(server_engine)
        .versions(&[version]);
    (client, server)
}

/// Words the verifying engine's reason must contain, for each fault.
fn reason_words(fault: Fault, verifier: EngineKind) -> &'static [&'static str] {
    use Fault::*;
    match (verifier, fault) {
        (EngineKind::Openssl, Expired) => &["certificate has expired"],
        (EngineKind::Openssl, NotYetValid) => &["certificate is not yet valid"],
        (EngineKind::Openssl, WrongName) => &["hostname mismatch"],
        (EngineKind::Openssl, SelfSigned) => &["self-signed certificate"],
        (EngineKind::Openssl, UntrustedCa | MissingIntermediate) => {
            &["unable to get local issuer certificate"]
        }
        (_, Expired) => &["certificate expired", "not valid after"],
        (_, NotYetValid) => &["certificate not valid yet", "not valid before"],
        (_, WrongName) => &["not valid for name", "localhost", "www.example.com"],
        // rustls (webpki) does not single out a self-signed certificate: to it, that is an
        // unknown issuer like any other.
        (_, SelfSigned | UntrustedCa | MissingIntermediate) => {
            &["unknown certificate authority", "UnknownIssuer"]
        }
    }
}

/// The kind of certificate error each fault is, the same on both engines.
fn kind(fault: Fault) -> CertificateErrorKind {
    use Fault::*;
    match fault {
        Expired => CertificateErrorKind::Expired,
        NotYetValid => CertificateErrorKind::NotYetValid,
        WrongName => CertificateErrorKind::WrongName,
        SelfSigned | UntrustedCa | MissingIntermediate => CertificateErrorKind::UnknownIssuer,
    }
}

/// The alert the verifying engine sends for each fault.
fn alert(fault: Fault, verifier: EngineKind) -> &'static str {
    use Fault::*;
    match (verifier, fault) {
        (_, Expired) => "certificate_expired",
        // RFC 8446 says certificate_expired is for "expired or not currently valid"; rustls
        // follows it, OpenSSL sends bad_certificate.
        (EngineKind::Openssl, NotYetValid) => "bad_certificate",
        (_, NotYetValid) => "certificate_expired",
        (_, WrongName) => "bad_certificate",
        (_, SelfSigned | UntrustedCa | MissingIntermediate) => "unknown_ca",
    }
}

/// Checks that every engine pair and version refuses `fault`, and fails listing every
/// combination that did not (printing each outcome on the way).
fn refused(fault: Fault) {
    let pki = Pki::new();
    let mut wrong = Vec::new();
    for pair in engine_pairs() {
        for version in VERSIONS {
            let (client, server) = configs(&pki, pair, version, pki.server_files(Some(fault)));
            let outcome = exchange(&client.build().unwrap(), server.build().unwrap());
            let label = format!("{fault:?} {} -> {} {version:?}", pair.0, pair.1);
            let client_err = tls_error(&outcome.client_handshake);
            let server_err = tls_error(&outcome.server);
            eprintln!("{label}: client: {client_err:?}; server: {server_err:?}");
            let (words, kind) = (reason_words(fault, pair.0), kind(fault));
            match client_err {
                Ok(Error::Certificate {
                    reason, kind: got, ..
                }) if got == kind && words.iter().all(|w| reason.contains(w)) => {}
                other => wrong.push(format!("{label}: client: {other:?}, expected {words:?}")),
            }
            let expected = alert(fault, pair.0);
            match server_err {
                Ok(e @ Error::PeerAlert { .. })
                    if e.to_string().ends_with(&format!(": {expected}")) => {}
                other => wrong.push(format!("{label}: server: {other:?}, expected {expected}")),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn expired_certificate_is_refused() {
    refused(Fault::Expired);
}

#[test]
fn not_yet_valid_certificate_is_refused() {
    refused(Fault::NotYetValid);
}

#[test]
fn certificate_for_another_name_is_refused() {
    refused(Fault::WrongName);
}

#[test]
fn self_signed_certificate_is_refused() {
    refused(Fault::SelfSigned);
}

#[test]
fn certificate_from_an_untrusted_ca_is_refused() {
    refused(Fault::UntrustedCa);
}

#[test]
fn certificate_without_its_intermediate_is_refused() {
    refused(Fault::MissingIntermediate);
}

/// The control: the same fixtures with nothing wrong connect on every pair, so the refusals
/// above are for the fault and nothing else.
#[test]
fn sound_chain_with_intermediate_is_accepted() {
    let pki = Pki::new();
    for pair in engine_pairs() {
        for version in VERSIONS {
            let (client, server) = configs(&pki, pair, version, pki.server_files(None));
            let outcome = exchange(&client.build().unwrap(), server.build().unwrap());
            let label = format!("{} -> {} {version:?}", pair.0, pair.1);
            let (client, server) = (outcome.client, outcome.server);
            eprintln!(
                "{label}: handshake {:?}; client {client:?}; server {server:?}",
                outcome.client_handshake
            );
            assert_eq!(client.unwrap(), b"welcome", "{label}");
            server.unwrap();
        }
    }
}

/// A server requiring a client certificate from the root, and a client that has `identity`
/// (or none): the server refuses with a reason containing `server_words(server engine)` and
/// the client gets `alert(server engine, version)`.
fn client_refused(
    identity: Option<(PathBuf, PathBuf)>,
    server_words: fn(EngineKind) -> &'static [&'static str],
    alert: fn(EngineKind, ProtocolVersion) -> &'static str,
) {
    let pki = Pki::new();
    let mut wrong = Vec::new();
    for pair in engine_pairs() {
        for version in VERSIONS {
            let (client, server) = configs(&pki, pair, version, pki.server_files(None));
            let server = server.client_ca_file(&pki.root_file);
            let client = match &identity {
                Some((cert, key)) => client.client_cert_files(cert, key),
                None => client,
            };
            let outcome = exchange(&client.build().unwrap(), server.build().unwrap());
            let label = format!("{} -> {} {version:?}", pair.0, pair.1);
            // TLS 1.3: the client's handshake is over once it sends Finished; it learns of
            // the refusal on its next read. TLS 1.2: the server refuses before that.
            let handshake_ok = outcome.client_handshake.is_ok();
            let client_err = tls_error(&outcome.client);
            let server_err = tls_error(&outcome.server);
            eprintln!(
                "{label}: handshake ok {handshake_ok}; client: {client_err:?}; \
                 server: {server_err:?}"
            );
            if handshake_ok != (version == ProtocolVersion::Tls13) {
                wrong.push(format!("{label}: client handshake ok: {handshake_ok}"));
            }
            let words = server_words(pair.1);
            match &server_err {
                Ok(Error::Certificate { reason, .. })
                    if words.iter().all(|w| reason.contains(w)) => {}
                other => wrong.push(format!("{label}: server: {other:?}, expected {words:?}")),
            }
            let expected = alert(pair.1, version);
            match client_err {
                Ok(e @ Error::PeerAlert { .. })
                    if e.to_string().ends_with(&format!(": {expected}")) => {}
                other => wrong.push(format!("{label}: client: {other:?}, expected {expected}")),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn missing_client_certificate_is_refused() {
    // TLS 1.3 has certificate_required; in TLS 1.2 OpenSSL sends handshake_failure, rustls
    // still sends certificate_required.
    let alert = |server, version| match (server, version) {
        (EngineKind::Openssl, ProtocolVersion::Tls12) => "handshake_failure",
        _ => "certificate_required",
    };
    // Both engines name it the same way.
    let words = |_server| &["presented no certificate"][..];
    client_refused(None, words, alert);
}

#[test]
fn client_certificate_from_an_untrusted_ca_is_refused() {
    let pki = Pki::new();
    let leaf = pki.untrusted.leaf("client", ClientAuth, Validity::Current);
    let identity = (
        pki.dir.write("client.pem", &leaf.cert_pem),
        pki.dir.write("client.key", &leaf.key_pem),
    );
    let words = |server| match server {
        EngineKind::Openssl => &["unable to get local issuer certificate"][..],
        _ => &["UnknownIssuer"][..],
    };
    client_refused(Some(identity), words, |_, _| "unknown_ca");
}
