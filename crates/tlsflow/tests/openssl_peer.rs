//! tlsflow against an independent TLS implementation: Debian's `openssl` CLI (OpenSSL 3.0),
//! run as real processes on 127.0.0.1. Each direction moves 16 MiB and checks it by SHA-256.
//!
//! `openssl` must be installed; set `TLSFLOW_SKIP_PEERS=1` to skip these tests without it.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use sha2::{Digest, Sha256};
use tlsflow::testing::Rng;
use tlsflow::{ClientConfig, ProtocolVersion, ServerConfig};

const PAYLOAD: usize = 16 << 20;
const TIMEOUT: Duration = Duration::from_secs(60);

/// Whether `openssl` can run. Missing is a failure unless `TLSFLOW_SKIP_PEERS=1`.
fn openssl_available() -> bool {
    match Command::new("openssl").arg("version").output() {
        Ok(out) if out.status.success() => true,
        other => {
            if std::env::var("TLSFLOW_SKIP_PEERS").as_deref() == Ok("1") {
                eprintln!("skipping: `openssl` is not usable ({other:?}) and TLSFLOW_SKIP_PEERS=1");
                false
            } else {
                panic!(
                    "the `openssl` command is required for these tests but is not usable \
                     ({other:?}); install it (Debian: apt-get install openssl) or set \
                     TLSFLOW_SKIP_PEERS=1 to skip"
                );
            }
        }
    }
}

/// A test CA and a server certificate for `localhost` it signed, as PEM files in a fresh
/// directory that is removed on drop.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new(tag: &str) -> Pki {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "tlsflow-openssl-{tag}-{}-{nanos}",
            std::process::id()
        ));
        fs::create_dir_all(&dir).unwrap();

        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "tlsflow test CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);

        let key = KeyPair::generate().unwrap();
        let mut leaf = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        leaf.distinguished_name
            .push(DnType::CommonName, "localhost");
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = leaf.signed_by(&key, &issuer).unwrap();

        fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
        fs::write(dir.join("server.pem"), cert.pem()).unwrap();
        fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A child process that is killed and reaped when dropped, so no test leaves one behind.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn random_payload(seed: u64) -> Vec<u8> {
    let mut data = vec![0u8; PAYLOAD];
    Rng::new(seed).fill(&mut data);
    data
}

/// Collects a child's stderr in a thread, for failure messages.
fn collect(mut from: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut text = Vec::new();
        let _ = from.read_to_end(&mut text);
        String::from_utf8_lossy(&text).into_owned()
    })
}

/// Reads to end-of-file, returning the SHA-256 and count of the bytes.
fn hash_stream(mut from: impl Read) -> ([u8; 32], usize) {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    loop {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buf[..n]);
                total += n;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    (hasher.finalize().into(), total)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn_s_server(pki: &Pki, port: u16, version: ProtocolVersion) -> Reaped {
    let mut cmd = Command::new("openssl");
    cmd.arg("s_server")
        .arg("-accept")
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(pki.path("server.pem"))
        .arg("-key")
        .arg(pki.path("server.key"))
        .args(["-quiet", "-naccept", "1"]);
    if version == ProtocolVersion::Tls12 {
        cmd.arg("-tls1_2");
    }
    // stdin stays open (and empty) until the transfer ends: s_server ends the connection
    // when its stdin reaches end-of-file.
    let child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Reaped(child)
}

/// Starts `s_server` and connects to it, retrying while it starts (and on a new port if the
/// chosen one was taken). The connection made is the one `-naccept 1` serves.
fn start_s_server(pki: &Pki, version: ProtocolVersion) -> (Reaped, TcpStream) {
    let mut failures = Vec::new();
    for _attempt in 0..3 {
        let port = free_port();
        let mut server = spawn_s_server(pki, port, version);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(tcp) = TcpStream::connect(("127.0.0.1", port)) {
                return (server, tcp);
            }
            if let Some(status) = server.0.try_wait().unwrap() {
                let err = collect(server.0.stderr.take().unwrap()).join().unwrap();
                failures.push(format!("port {port}: s_server exited with {status}: {err}"));
                break;
            }
            if Instant::now() > deadline {
                failures.push(format!("port {port}: s_server did not listen within 10 s"));
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
    panic!("could not start openssl s_server: {failures:#?}");
}

/// tlsflow client -> `openssl s_server`: 16 MiB, hashed on the server side.
fn client_to_s_server(version: ProtocolVersion, seed: u64) {
    if !openssl_available() {
        return;
    }
    let pki = Pki::new("s_server");
    let data = random_payload(seed);
    let (mut server, tcp) = start_s_server(&pki, version);
    let stdin = server.0.stdin.take().unwrap(); // held open until the end
    let stderr = collect(server.0.stderr.take().unwrap());
    let stdout = server.0.stdout.take().unwrap();
    let (done_tx, done_rx) = mpsc::channel();
    let hasher = thread::spawn(move || {
        let result = hash_stream(stdout);
        let _ = done_tx.send(());
        result
    });

    tcp.set_nodelay(true).unwrap();
    tcp.set_read_timeout(Some(TIMEOUT)).unwrap();
    tcp.set_write_timeout(Some(TIMEOUT)).unwrap();
    let config = ClientConfig::builder()
        .ca_file(pki.path("ca.pem"))
        .build()
        .unwrap();
    let mut tls = config.connect("localhost", tcp).unwrap();
    let sent = (|| -> io::Result<()> {
        tls.handshake()?;
        assert_eq!(tls.protocol_version(), Some(version));
        tls.write_all(&data)?;
        // Graceful: close_notify, then wait for s_server's (it answers with one).
        tls.close()
    })();

    // s_server -quiet writes exactly the received plaintext to stdout. Observed with OpenSSL
    // 3.0: it answers our close_notify with its own (so close() returns Ok) and, with
    // -naccept 1, exits with status 0 about 0.5 s later. So stdout is read to end-of-file,
    // and extra bytes would fail the test too.
    // Never wait forever: on timeout the kill makes the hasher see end-of-file.
    if done_rx.recv_timeout(TIMEOUT).is_err() {
        let _ = server.0.kill();
    }
    let (digest, count) = hasher.join().unwrap();
    let status = wait_bounded(&mut server, Duration::from_secs(10));
    drop(stdin);
    drop(server);
    let err = stderr.join().unwrap();
    eprintln!("s_server ({version:?}) exit {status:?}, stderr: {err:?}");
    if let Err(e) = sent {
        panic!(
            "tlsflow client failed: {e} ({:?}); s_server stderr: {err}",
            e.kind()
        );
    }
    assert_eq!(
        count, PAYLOAD,
        "s_server printed {count} bytes; stderr: {err}"
    );
    let expected: [u8; 32] = Sha256::digest(&data).into();
    assert_eq!(digest, expected, "SHA-256 mismatch; s_server stderr: {err}");
    let status = status.unwrap_or_else(|| panic!("s_server did not exit; stderr: {err}"));
    assert!(status.success(), "s_server exited with {status}: {err}");
}

#[test]
fn client_sends_16_mib_to_openssl_s_server_tls13() {
    client_to_s_server(ProtocolVersion::Tls13, 1);
}

#[test]
fn client_sends_16_mib_to_openssl_s_server_tls12() {
    client_to_s_server(ProtocolVersion::Tls12, 2);
}

/// Waits for `child` to exit, killing it after `timeout`.
fn wait_bounded(child: &mut Reaped, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.0.kill();
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Accepts one connection, giving up after `timeout` or if `child` exits first.
fn accept_bounded(listener: &TcpListener, child: &mut Reaped, timeout: Duration) -> TcpStream {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + timeout;
    loop {
        match listener.accept() {
            Ok((tcp, _)) => {
                tcp.set_nonblocking(false).unwrap();
                return tcp;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("accept failed: {e}"),
        }
        if let Some(status) = child.0.try_wait().unwrap() {
            let err = collect(child.0.stderr.take().unwrap()).join().unwrap();
            panic!("s_client exited ({status}) before connecting: {err}");
        }
        assert!(
            Instant::now() < deadline,
            "s_client did not connect in time"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// `openssl s_client` -> tlsflow server: 16 MiB fed to s_client's stdin, hashed on the
/// tlsflow side.
///
/// Observed with OpenSSL 3.0: at the end of its stdin, `s_client -quiet -no_ign_eof` prints
/// "DONE" to stderr and sends close_notify before closing, so the tlsflow server's
/// read_to_end ends with Ok (a truncation would be an UnexpectedEof error); s_client then
/// exits with status 0 after our close_notify.
fn s_client_to_server(version: ProtocolVersion, seed: u64) {
    if !openssl_available() {
        return;
    }
    let pki = Pki::new("s_client");
    let data = random_payload(seed);
    let expected: [u8; 32] = Sha256::digest(&data).into();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();

    let mut cmd = Command::new("openssl");
    cmd.arg("s_client")
        .arg("-connect")
        .arg(format!("127.0.0.1:{port}"))
        // -no_ign_eof must follow -quiet (which implies -ign_eof); -nocommands keeps lines
        // starting with Q, R, K or k from being taken as commands.
        .args([
            "-quiet",
            "-no_ign_eof",
            "-nocommands",
            "-verify_return_error",
        ])
        .args(["-servername", "localhost", "-verify_hostname", "localhost"])
        .arg("-CAfile")
        .arg(pki.path("ca.pem"));
    if version == ProtocolVersion::Tls12 {
        cmd.arg("-tls1_2");
    }
    let mut client = Reaped(
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = collect(client.0.stderr.take().unwrap());
    let mut stdin = client.0.stdin.take().unwrap();
    let feed = data.clone();
    let writer = thread::spawn(move || {
        let result = stdin.write_all(&feed);
        drop(stdin); // end of input: s_client closes the connection
        result
    });

    let tcp = accept_bounded(&listener, &mut client, Duration::from_secs(10));
    tcp.set_read_timeout(Some(TIMEOUT)).unwrap();
    tcp.set_write_timeout(Some(TIMEOUT)).unwrap();
    let config = ServerConfig::builder()
        .cert_files(pki.path("server.pem"), pki.path("server.key"))
        .build()
        .unwrap();
    let mut tls = config.accept(tcp).unwrap();
    let mut received = Vec::with_capacity(PAYLOAD);
    let outcome = (|| -> io::Result<usize> {
        tls.handshake()?;
        assert_eq!(tls.protocol_version(), Some(version));
        assert_eq!(tls.server_name().as_deref(), Some("localhost"));
        let n = tls.read_to_end(&mut received)?;
        tls.shutdown()?;
        Ok(n)
    })();
    let _ = tls.get_ref().shutdown(Shutdown::Both);
    drop(tls);

    let status = wait_bounded(&mut client, Duration::from_secs(10));
    let fed = writer.join().unwrap();
    let err = stderr.join().unwrap();
    eprintln!("s_client ({version:?}) exit {status:?}, stderr: {err:?}");
    match outcome {
        Ok(n) => assert_eq!(n, PAYLOAD, "s_client stderr: {err}"),
        Err(e) => panic!(
            "tlsflow server failed after {} bytes: {e} ({:?}); s_client stderr: {err}",
            received.len(),
            e.kind()
        ),
    }
    fed.unwrap();
    let digest: [u8; 32] = Sha256::digest(&received).into();
    assert_eq!(digest, expected, "SHA-256 mismatch; s_client stderr: {err}");
    let status = status.unwrap_or_else(|| panic!("s_client did not exit; stderr: {err}"));
    assert!(status.success(), "s_client exited with {status}: {err}");
}

#[test]
fn openssl_s_client_sends_16_mib_to_server_tls13() {
    s_client_to_server(ProtocolVersion::Tls13, 3);
}

#[test]
fn openssl_s_client_sends_16_mib_to_server_tls12() {
    s_client_to_server(ProtocolVersion::Tls12, 4);
}
