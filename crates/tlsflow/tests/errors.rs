//! Every failure is a clear error saying what was wrong, never a panic or a hang: bad
//! certificates, bad configuration files, garbage from the peer, truncation, missing client
//! certificates. Each as a typed error (a certificate error's kind, the peer's alert), the
//! same on both engines. Real loopback TCP, blocking sockets with timeouts, the server in a
//! thread.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::thread::{self, JoinHandle};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::ExtendedKeyUsagePurpose::{self as Usage, ClientAuth, ServerAuth};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use tlsflow::testing::{engine_pairs, Rng};
use tlsflow::{
    AlertDescription, CertificateErrorKind, ClientConfig, EngineKind, Error, ProtocolVersion,
    ServerConfig, TlsStream,
};

const TIMEOUT: Duration = Duration::from_secs(10);

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let pem = params.self_signed(&key).unwrap().pem();
        let issuer = Issuer::new(params, key);
        Ca { issuer, pem }
    }

    /// A leaf certificate and its key (PEM), optionally long expired.
    fn leaf(&self, name: &str, usage: Usage, expired: bool) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// A CA, a server certificate for `localhost` it signed, and their PEM files in a fresh
/// directory (removed on drop).
struct Pki {
    dir: PathBuf,
    ca: Ca,
    ca_file: PathBuf,
    cert_file: PathBuf,
    key_file: PathBuf,
}

impl Pki {
    fn new(tag: &str, expired: bool) -> Pki {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let unique = format!("{}-{}", std::process::id(), nanos.as_nanos());
        let dir = std::env::temp_dir().join(format!("tlsflow-errors-{tag}-{unique}"));
        fs::create_dir_all(&dir).unwrap();
        let ca = Ca::new("tlsflow test CA");
        let (cert, key) = ca.leaf("localhost", ServerAuth, expired);
        let [ca_file, cert_file, key_file] =
            ["ca.pem", "server.pem", "server.key"].map(|name| dir.join(name));
        for (path, text) in [(&ca_file, &ca.pem), (&cert_file, &cert), (&key_file, &key)] {
            fs::write(path, text).unwrap();
        }
        Pki {
            dir,
            ca,
            ca_file,
            cert_file,
            key_file,
        }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.join(name);
        fs::write(&path, text).unwrap();
        path
    }

    fn server_config(&self) -> ServerConfig {
        self.server_on(EngineKind::Rustls)
    }

    fn server_on(&self, engine: EngineKind) -> ServerConfig {
        let builder = ServerConfig::builder().cert_files(&self.cert_file, &self.key_file);
        builder.engine(engine).build().unwrap()
    }

    fn client_config(&self) -> ClientConfig {
        self.client_on(EngineKind::Rustls)
    }

    fn client_on(&self, engine: EngineKind) -> ClientConfig {
        let builder = ClientConfig::builder().ca_file(&self.ca_file);
        builder.engine(engine).build().unwrap()
    }

    /// A client stream for `localhost` to `addr`, trusting this CA.
    fn dial(&self, addr: SocketAddr) -> TlsStream<TcpStream> {
        let tcp = connect(addr);
        self.client_config().connect("localhost", tcp).unwrap()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn with_timeouts(tcp: TcpStream) -> TcpStream {
    tcp.set_read_timeout(Some(TIMEOUT)).unwrap();
    tcp.set_write_timeout(Some(TIMEOUT)).unwrap();
    tcp
}

fn connect(addr: SocketAddr) -> TcpStream {
    with_timeouts(TcpStream::connect(addr).unwrap())
}

/// Runs `serve` in a thread on the first connection to a fresh listener. Every test
/// connects right away; every socket operation after that has a timeout.
fn server<R: Send + 'static>(
    serve: impl FnOnce(TcpStream) -> R + Send + 'static,
) -> (SocketAddr, JoinHandle<R>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = thread::spawn(move || serve(with_timeouts(listener.accept().unwrap().0)));
    (addr, handle)
}

/// The tlsflow error inside an `io::Error`, checking its kind on the way.
fn tls_error(err: &io::Error, kind: ErrorKind) -> Error {
    assert_eq!(err.kind(), kind, "unexpected kind for {err}");
    let inner = Error::from_io(err).unwrap_or_else(|| panic!("no tlsflow::Error in {err:?}"));
    inner.clone()
}

/// Asserts a certificate error of `kind` whose reason contains every one of `words`, with
/// the engine's own error as its source: a `rustls::Error`, or OpenSSL's verify result or
/// error stack.
fn assert_certificate(err: &io::Error, kind: CertificateErrorKind, words: &[&str]) {
    let inner = tls_error(err, ErrorKind::InvalidData);
    let Error::Certificate {
        kind: got,
        reason,
        source,
    } = &inner
    else {
        panic!("expected a certificate error, got {err}");
    };
    assert_eq!(*got, kind, "{reason}");
    assert_eq!(inner.certificate_error(), Some(kind));
    assert!(words.iter().all(|w| reason.contains(w)), "{reason}");
    let source = source.as_deref().expect("the engine's error as the source");
    let engine_error = source.downcast_ref::<rustls::Error>().is_some()
        || source
            .downcast_ref::<openssl::x509::X509VerifyResult>()
            .is_some()
        || source
            .downcast_ref::<openssl::error::ErrorStack>()
            .is_some();
    assert!(engine_error, "{source:?}");
    let via_trait = std::error::Error::source(&inner).expect("source()");
    assert_eq!(via_trait.to_string(), source.to_string());
}

/// Asserts that the peer sent the fatal `alert`; the error's text names it as the
/// specification spells it.
fn assert_peer_alert(err: &io::Error, alert: AlertDescription, name: &str) {
    let inner = tls_error(err, ErrorKind::InvalidData);
    assert!(
        matches!(inner, Error::PeerAlert { alert: got } if got == alert),
        "expected the peer's alert {name}, got {err}"
    );
    assert_eq!(inner.peer_alert(), Some(alert));
    assert_eq!(inner.to_string(), format!("peer sent fatal alert: {name}"));
}

fn assert_protocol(err: &io::Error) {
    let inner = tls_error(err, ErrorKind::InvalidData);
    assert!(matches!(inner, Error::Protocol { .. }), "{inner:?}");
}

/// Reads raw bytes until end-of-file, an error or the timeout.
fn drain(mut tcp: &TcpStream) -> Vec<u8> {
    let (mut got, mut buf) = (Vec::new(), [0u8; 4096]);
    while let Ok(n @ 1..) = tcp.read(&mut buf) {
        got.extend_from_slice(&buf[..n]);
    }
    got
}

/// A plaintext HTTP error followed by random bytes: 1 KiB that is not TLS.
fn garbage(seed: u64) -> Vec<u8> {
    let mut bytes = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n".to_vec();
    let mut tail = vec![0u8; 1024 - bytes.len()];
    Rng::new(seed).fill(&mut tail);
    bytes.extend_from_slice(&tail);
    bytes
}

/// What a failing tlsflow peer sent back, if anything (the connection may also have been
/// reset): a TLS record, an alert (21) in the clear, or application data (23) once encrypted.
fn assert_record(raw: &[u8], content_type: u8) {
    if !raw.is_empty() {
        assert_eq!(raw[..3], [content_type, 3, 3], "not a record: {raw:02x?}");
    }
}

/// A server that handshakes, says "welcome", shuts down and reads up to the client's
/// close_notify. Returns the length of the client's certificate chain, if it sent one.
fn greeter(config: ServerConfig) -> (SocketAddr, JoinHandle<io::Result<Option<usize>>>) {
    server(move |tcp| {
        let mut tls = config.accept(tcp)?;
        tls.handshake()?;
        let client_chain = tls.peer_certificates().map(|chain| chain.len());
        tls.write_all(b"welcome")?;
        tls.shutdown()?;
        assert_eq!(tls.read_to_end(&mut Vec::new())?, 0);
        Ok(client_chain)
    })
}

/// Runs a handshake that is expected to fail against a greeter: the client handshakes, then
/// reads to the end. Returns the client's error, whether its `handshake()` itself
/// succeeded, and the server's result.
fn failed_handshake(
    server_config: ServerConfig,
    client_config: ClientConfig,
    name: &str,
) -> (io::Error, bool, io::Error) {
    let (addr, handle) = greeter(server_config);
    let mut tls = client_config.connect(name, connect(addr)).unwrap();
    let handshake = tls.handshake();
    let handshake_ok = handshake.is_ok();
    let client = handshake.and_then(|()| tls.read_to_end(&mut Vec::new()));
    let client = client.expect_err("the client must fail");
    // Sticky: the stream stays failed, with the same error.
    let again = tls.write(b"more").unwrap_err();
    assert_eq!(again.to_string(), client.to_string());
    drop(tls);
    let server = handle.join().unwrap().expect_err("the server must fail");
    (client, handshake_ok, server)
}

/// A server certificate the client must refuse, on every pairing of engines: the client's
/// error is of `kind` (its reason contains every one of `words` on rustls, whose wording the
/// test knows), and the server gets the client's `alert`.
fn refused(pki: &Pki, client_ca: &Path, name: &str, kind: CertificateErrorKind, words: &[&str]) {
    let (alert, alert_name) = match kind {
        CertificateErrorKind::UnknownIssuer => (AlertDescription::UnknownCA, "unknown_ca"),
        CertificateErrorKind::Expired => {
            (AlertDescription::CertificateExpired, "certificate_expired")
        }
        _ => (AlertDescription::BadCertificate, "bad_certificate"),
    };
    for (client_engine, server_engine) in engine_pairs() {
        let client_config = ClientConfig::builder().ca_file(client_ca);
        let client_config = client_config.engine(client_engine).build().unwrap();
        let (client, handshake_ok, server) =
            failed_handshake(pki.server_on(server_engine), client_config, name);
        assert!(!handshake_ok);
        let words = if client_engine == EngineKind::Rustls {
            words
        } else {
            &[]
        };
        assert_certificate(&client, kind, words);
        let text = client.to_string();
        assert!(text.starts_with("peer certificate rejected: "), "{text}");
        assert_peer_alert(&server, alert, alert_name);
    }
}

#[test]
fn unknown_issuer_is_a_certificate_error() {
    let pki = Pki::new("unknown-issuer", false);
    let other_ca = pki.write("other-ca.pem", &Ca::new("some other CA").pem);
    let words = ["unknown certificate authority", "UnknownIssuer"];
    let kind = CertificateErrorKind::UnknownIssuer;
    refused(&pki, &other_ca, "localhost", kind, &words);
}

#[test]
fn wrong_server_name_is_a_certificate_error() {
    let pki = Pki::new("wrong-name", false);
    let words = ["not valid for name", "example.com", "localhost"];
    let kind = CertificateErrorKind::WrongName;
    refused(&pki, &pki.ca_file, "example.com", kind, &words);
}

#[test]
fn expired_certificate_is_a_certificate_error() {
    let pki = Pki::new("expired", true);
    let words = ["certificate expired", "not valid after"];
    let kind = CertificateErrorKind::Expired;
    refused(&pki, &pki.ca_file, "localhost", kind, &words);
}

/// A configuration error whose message names `path`.
fn assert_config_error<T: std::fmt::Debug>(result: Result<T, Error>, path: &Path) {
    let err = result.expect_err("the configuration must be refused");
    assert!(matches!(err, Error::Config { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert_eq!(io::Error::from(err).kind(), ErrorKind::InvalidInput);
}

#[test]
fn unusable_pem_files_are_config_errors_naming_the_file() {
    let pki = Pki::new("config", false);
    let server = |cert: &Path, key: &Path| ServerConfig::builder().cert_files(cert, key).build();
    let client = |ca: &Path| ClientConfig::builder().ca_file(ca).build();
    let missing = Path::new("/nonexistent/ca.pem");
    assert_config_error(client(missing), missing);
    let missing_key = pki.dir.join("missing.key");
    assert_config_error(server(&pki.cert_file, &missing_key), &missing_key);
    // A key where a certificate should be, and text that is not PEM at all.
    for not_cert in [pki.key_file.clone(), pki.write("junk.pem", "not PEM\n")] {
        assert_config_error(server(&not_cert, &pki.key_file), &not_cert);
        assert_config_error(client(&not_cert), &not_cert);
    }
    // A certificate where the key should be.
    assert_config_error(server(&pki.cert_file, &pki.cert_file), &pki.cert_file);

    // A key that does not belong to the certificate: the message says so, but names no file.
    let other_key = pki.write("other.key", &pki.ca.leaf("localhost", ServerAuth, false).1);
    let mismatched_client = (ClientConfig::builder().ca_file(&pki.ca_file))
        .client_cert_files(&pki.cert_file, &other_key)
        .build();
    let mismatched_server = server(&pki.cert_file, &other_key);
    for err in [
        mismatched_server.unwrap_err(),
        mismatched_client.unwrap_err(),
    ] {
        assert!(matches!(err, Error::Config { .. }), "{err:?}");
        assert!(err.to_string().contains("KeyMismatch"), "{err}");
    }
}

#[test]
fn garbage_instead_of_a_server_hello() {
    let (addr, handle) = server(|tcp| {
        let _client_hello = (&tcp).read(&mut [0u8; 4096]).unwrap();
        (&tcp).write_all(&garbage(1)).unwrap();
        drain(&tcp)
    });
    let pki = Pki::new("garbage-client", false);
    let mut tls = pki.dial(addr);
    let err = tls.handshake().unwrap_err();
    assert_protocol(&err);
    assert_eq!(tls.handshake().unwrap_err().to_string(), err.to_string());
    drop(tls);
    assert_record(&handle.join().unwrap(), 21);
}

#[test]
fn garbage_instead_of_a_client_hello() {
    let pki = Pki::new("garbage-server", false);
    let config = pki.server_config();
    let (addr, handle) = server(move |tcp| config.accept(tcp).unwrap().handshake());
    let tcp = connect(addr);
    (&tcp).write_all(&garbage(2)).unwrap();
    assert_protocol(&handle.join().unwrap().unwrap_err());
    assert_record(&drain(&tcp), 21);
}

/// A server that sends "hello", optionally waits for the client's "ack", then writes 1 KiB
/// of garbage on the raw socket under its TLS stream.
fn hello_then_garbage(pki: &Pki, wait_for_ack: bool) -> (SocketAddr, JoinHandle<Vec<u8>>) {
    let config = pki.server_config();
    server(move |tcp| {
        let raw = tcp.try_clone().unwrap();
        let mut tls = config.accept(tcp).unwrap();
        tls.write_all(b"hello").unwrap();
        tls.flush().unwrap();
        if wait_for_ack {
            tls.read_exact(&mut [0u8; 3]).unwrap();
        }
        (&raw).write_all(&garbage(3)).unwrap();
        drain(&raw)
    })
}

#[test]
fn garbage_after_the_handshake_is_a_sticky_protocol_error() {
    let pki = Pki::new("garbage-after", false);
    let (addr, handle) = hello_then_garbage(&pki, true);
    let mut tls = pki.dial(addr);
    let mut hello = [0u8; 5];
    tls.read_exact(&mut hello).unwrap();
    assert_eq!(&hello, b"hello");
    tls.write_all(b"ack").unwrap();
    tls.flush().unwrap();
    let err = tls.read(&mut [0u8; 64]).unwrap_err();
    assert_protocol(&err);
    let again = tls.read(&mut [0u8; 64]).unwrap_err();
    assert_eq!(again.kind(), ErrorKind::InvalidData);
    assert_eq!(again.to_string(), err.to_string());
    assert_eq!(tls.write(b"x").unwrap_err().to_string(), err.to_string());
    drop(tls);
    assert_record(&handle.join().unwrap(), 23); // the alert, encrypted
}

#[test]
fn end_of_file_without_close_notify_is_truncation() {
    let mut data = vec![0u8; 100_000];
    Rng::new(4).fill(&mut data);
    for (client_engine, server_engine) in engine_pairs() {
        let pki = Pki::new("truncated", false);
        let (config, sent) = (pki.server_on(server_engine), data.clone());
        let (addr, handle) = server(move |tcp| {
            let raw = tcp.try_clone().unwrap();
            let mut tls = config.accept(tcp).unwrap();
            tls.write_all(&sent).unwrap();
            tls.flush().unwrap();
            raw.shutdown(Shutdown::Write).unwrap(); // TCP FIN, no close_notify
            drain(&raw);
        });
        let client = pki.client_on(client_engine);
        let mut tls = client.connect("localhost", connect(addr)).unwrap();
        let mut got = Vec::new();
        let err = tls.read_to_end(&mut got).unwrap_err();
        let inner = tls_error(&err, ErrorKind::UnexpectedEof);
        assert!(
            matches!(inner, Error::Truncated),
            "{client_engine}: {inner:?}"
        );
        assert!(err.to_string().contains("without a TLS close_notify"));
        assert_eq!(got, data, "every byte before the end must be delivered");
        let again = tls.read(&mut [0u8; 16]).unwrap_err();
        assert!(matches!(Error::from_io(&again), Some(Error::Truncated)));
        drop(tls);
        handle.join().unwrap();
    }
}

/// A record that fails to decrypt reaches its reader, who answers with `bad_record_mac`;
/// the writer's next read reports the peer's alert, typed, on every pairing of engines.
#[test]
fn a_forged_record_is_answered_with_bad_record_mac() {
    for (client_engine, server_engine) in engine_pairs() {
        let pki = Pki::new("bad-record-mac", false);
        let config = pki.server_on(server_engine);
        let (addr, handle) = server(move |tcp| {
            let mut tls = config.accept(tcp).unwrap();
            tls.handshake().unwrap();
            tls.read(&mut [0u8; 64]).unwrap_err()
        });
        let client = pki.client_on(client_engine);
        let tcp = connect(addr);
        let raw = tcp.try_clone().unwrap();
        let mut tls = client.connect("localhost", tcp).unwrap();
        tls.handshake().unwrap();
        // An application-data record of the right shape whose tag cannot verify.
        let mut forged = vec![23, 3, 3, 0, 64];
        forged.extend_from_slice(&[0x5a; 64]);
        (&raw).write_all(&forged).unwrap();
        let server = handle.join().unwrap();
        let server_inner = tls_error(&server, ErrorKind::InvalidData);
        assert!(
            matches!(server_inner, Error::Protocol { .. }),
            "{server_engine}: {server_inner:?}"
        );
        let pair = format!("{client_engine}->{server_engine}");
        let err = tls.read(&mut [0u8; 64]).unwrap_err();
        assert_eq!(
            Error::from_io(&err).and_then(Error::peer_alert),
            Some(AlertDescription::BadRecordMac),
            "{pair}: {err}"
        );
        assert_peer_alert(&err, AlertDescription::BadRecordMac, "bad_record_mac");
    }
}

#[test]
fn close_notify_is_a_clean_end() {
    let pki = Pki::new("clean-end", false);
    let (addr, handle) = greeter(pki.server_config());
    let mut tls = pki.dial(addr);
    let mut got = Vec::new();
    assert_eq!(tls.read_to_end(&mut got).unwrap(), 7);
    assert_eq!(got, b"welcome");
    assert_eq!(tls.read(&mut [0u8; 16]).unwrap(), 0);
    tls.shutdown().unwrap();
    assert_eq!(handle.join().unwrap().unwrap(), None);
}

/// A server requiring client certificates from a client CA, and a client CA.
fn mtls(pki: &Pki, version: ProtocolVersion) -> (ServerConfig, Ca) {
    mtls_on(pki, version, EngineKind::Rustls)
}

fn mtls_on(pki: &Pki, version: ProtocolVersion, engine: EngineKind) -> (ServerConfig, Ca) {
    let client_ca = Ca::new("tlsflow client CA");
    let server_config = (ServerConfig::builder().cert_files(&pki.cert_file, &pki.key_file))
        .client_ca_file(pki.write("client-ca.pem", &client_ca.pem))
        .versions(&[version])
        .engine(engine)
        .build()
        .unwrap();
    (server_config, client_ca)
}

/// A client trusting the server's CA and presenting a certificate `issuer` signed.
fn client_with_cert(pki: &Pki, issuer: &Ca) -> ClientConfig {
    let (cert, key) = issuer.leaf("client", ClientAuth, false);
    let files = (
        pki.write("client.pem", &cert),
        pki.write("client.key", &key),
    );
    let builder = ClientConfig::builder().ca_file(&pki.ca_file);
    builder.client_cert_files(files.0, files.1).build().unwrap()
}

#[test]
fn missing_client_certificate_fails_on_both_sides() {
    for (client_engine, server_engine) in engine_pairs() {
        let pki = Pki::new("mtls-missing", false);
        let version = ProtocolVersion::Tls13;
        let server_config = mtls_on(&pki, version, server_engine).0;
        let client_config = pki.client_on(client_engine);
        let (client, handshake_ok, server) =
            failed_handshake(server_config, client_config, "localhost");
        // The client's handshake is over once it sends Finished; it learns on its next read.
        assert!(handshake_ok, "{client_engine}->{server_engine}");
        let required = AlertDescription::CertificateRequired;
        assert_peer_alert(&client, required, "certificate_required");
        let kind = CertificateErrorKind::NotPresented;
        assert_certificate(&server, kind, &["presented no certificate"]);
    }
    // TLS 1.2: the server refuses before the client's handshake ends, with the alert TLS 1.2
    // has for it.
    let pki = Pki::new("mtls-missing-12", false);
    let (server_config, _) = mtls(&pki, ProtocolVersion::Tls12);
    let (client, handshake_ok, server) =
        failed_handshake(server_config, pki.client_config(), "localhost");
    assert!(!handshake_ok);
    assert_peer_alert(
        &client,
        AlertDescription::CertificateRequired,
        "certificate_required",
    );
    let kind = CertificateErrorKind::NotPresented;
    assert_certificate(&server, kind, &["presented no certificate"]);
}

/// Writes until the transport refuses them (the peer has closed its socket).
fn write_until_refused(writer: &mut impl Write) -> io::Error {
    let chunk = [7u8; 16 * 1024];
    for _ in 0..10_000 {
        if let Err(e) = writer.write_all(&chunk).and_then(|()| writer.flush()) {
            return e;
        }
    }
    panic!("the closed connection took 160 MiB");
}

/// A TLS 1.3 server refuses a client without a certificate after the client's handshake is
/// over; the client learns it from the alert waiting in its socket. When a write meets the
/// closed socket first ("broken pipe" or "connection reset"), the read that follows still
/// reports the alert, and from then on every operation does: a failed write does not hide
/// what the peer said. Unsplit and split (the halves share the verdict).
#[test]
fn a_failed_write_does_not_hide_the_alert_waiting_in_the_socket() {
    for split in [false, true] {
        let pki = Pki::new("mtls-write-first", false);
        let (server_config, _) = mtls(&pki, ProtocolVersion::Tls13);
        let (addr, handle) = greeter(server_config);
        let mut tls = pki
            .client_config()
            .connect("localhost", connect(addr))
            .unwrap();
        tls.handshake().unwrap();
        // The server has refused the client and closed its socket.
        let server = handle.join().unwrap().expect_err("the server must fail");
        let kind = CertificateErrorKind::NotPresented;
        assert_certificate(&server, kind, &["presented no certificate"]);
        let (write_failure, read_failure, later) = if split {
            let (mut reader, mut writer) = tls.into_split().unwrap();
            let written = write_until_refused(&mut writer);
            let read = reader.read(&mut [0u8; 64]).unwrap_err();
            (written, read, writer.write(b"more").unwrap_err())
        } else {
            let written = write_until_refused(&mut tls);
            let read = tls.read(&mut [0u8; 64]).unwrap_err();
            (written, read, tls.write(b"more").unwrap_err())
        };
        assert!(
            matches!(
                write_failure.kind(),
                ErrorKind::BrokenPipe | ErrorKind::ConnectionReset
            ),
            "split {split}: {write_failure}"
        );
        let required = AlertDescription::CertificateRequired;
        assert_peer_alert(&read_failure, required, "certificate_required");
        assert_peer_alert(&later, required, "certificate_required");
    }
}

#[test]
fn client_certificate_from_another_ca_is_refused() {
    let pki = Pki::new("mtls-other-ca", false);
    let (server_config, _) = mtls(&pki, ProtocolVersion::Tls13);
    // Signed by the server's CA, which the server does not trust for clients.
    let client_config = client_with_cert(&pki, &pki.ca);
    let (client, _, server) = failed_handshake(server_config, client_config, "localhost");
    assert_peer_alert(&client, AlertDescription::UnknownCA, "unknown_ca");
    let kind = CertificateErrorKind::UnknownIssuer;
    assert_certificate(&server, kind, &["UnknownIssuer"]);
}

#[test]
fn mutual_tls_with_a_client_certificate_works() {
    for version in [ProtocolVersion::Tls13, ProtocolVersion::Tls12] {
        let pki = Pki::new("mtls-ok", false);
        let (server_config, client_ca) = mtls(&pki, version);
        let (addr, handle) = greeter(server_config);
        let client_config = client_with_cert(&pki, &client_ca);
        let mut tls = client_config.connect("localhost", connect(addr)).unwrap();
        let mut got = Vec::new();
        tls.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"welcome");
        assert_eq!(tls.protocol_version(), Some(version));
        tls.shutdown().unwrap();
        assert_eq!(handle.join().unwrap().unwrap(), Some(1), "{version:?}");
    }
}

#[test]
fn alert_names_follow_the_specification() {
    let pki = Pki::new("alert-name", false);
    let other_ca = pki.write("other-ca.pem", &Ca::new("some other CA").pem);
    let client_config = ClientConfig::builder().ca_file(other_ca).build().unwrap();
    let (_, _, server) = failed_handshake(pki.server_config(), client_config, "localhost");
    assert_eq!(server.to_string(), "peer sent fatal alert: unknown_ca");
}

#[test]
fn data_before_a_bad_record_is_delivered() {
    let pki = Pki::new("data-before-garbage", false);
    let (addr, handle) = hello_then_garbage(&pki, false);
    let mut tls = pki.dial(addr);
    tls.handshake().unwrap();
    thread::sleep(Duration::from_millis(200)); // "hello" and the garbage arrive together
    let mut hello = [0u8; 5];
    let first = tls.read_exact(&mut hello);
    drop(tls);
    handle.join().unwrap();
    first.unwrap();
    assert_eq!(&hello, b"hello");
}
