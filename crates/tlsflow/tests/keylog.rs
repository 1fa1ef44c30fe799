//! Key logs: each connection's secrets in the NSS key log format, the same on both engines,
//! and a real tshark (Debian's `tshark`) decrypting a loopback capture with them.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use tlsflow::testing::engine_pairs;
use tlsflow::{ClientConfig, EngineKind, SelfSigned, ServerConfig};

/// The secrets a TLS 1.3 connection logs on both engines.
const LABELS: [&str; 4] = [
    "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
    "SERVER_HANDSHAKE_TRAFFIC_SECRET",
    "CLIENT_TRAFFIC_SECRET_0",
    "SERVER_TRAFFIC_SECRET_0",
];

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tlsflow-keylog-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Connects `client` to `server` over loopback on `listener`, sends `message`, and closes.
fn exchange(client: ClientConfig, server: ServerConfig, listener: TcpListener, message: &[u8]) {
    let addr = listener.local_addr().unwrap();
    let serving = thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut tls = server.accept(tcp).unwrap();
        let mut got = Vec::new();
        tls.read_to_end(&mut got).unwrap();
        tls.close().unwrap();
        got
    });
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut tls = client.connect("localhost", tcp).unwrap();
    tls.write_all(message).unwrap();
    tls.close().unwrap();
    assert_eq!(serving.join().unwrap(), message);
}

fn configs(
    cert: &SelfSigned,
    engines: (EngineKind, EngineKind),
    logs: (Option<&Path>, Option<&Path>),
) -> (ClientConfig, ServerConfig) {
    let mut client = ClientConfig::builder()
        .ca_certificate(cert.cert_der())
        .engine(engines.0);
    if let Some(path) = logs.0 {
        client = client.key_log_file(path);
    }
    let mut server = ServerConfig::builder().self_signed(cert).engine(engines.1);
    if let Some(path) = logs.1 {
        server = server.key_log_file(path);
    }
    (client.build().unwrap(), server.build().unwrap())
}

/// The lines of a key log with the labels of [`LABELS`], checked for the NSS format: the
/// label, the 32-byte client random and the secret, in lowercase hex.
fn secrets(path: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = BTreeSet::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields.len(), 3, "{line}");
        assert_eq!(fields[1].len(), 64, "client random: {line}");
        let hex = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        assert!(
            hex(fields[1]) && hex(fields[2]) && fields[2].len() >= 64,
            "{line}"
        );
        if LABELS.contains(&fields[0]) {
            lines.insert(line.to_owned());
        }
    }
    lines
}

#[test]
fn both_ends_log_the_same_secrets_on_every_pairing_of_engines() {
    let cert = SelfSigned::generate(&["localhost"]).unwrap();
    for engines in engine_pairs() {
        let dir = temp_dir(&format!("{}-{}", engines.0, engines.1));
        let (client_log, server_log) = (dir.join("client.log"), dir.join("server.log"));
        let (client, server) = configs(&cert, engines, (Some(&client_log), Some(&server_log)));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        exchange(client, server, listener, b"logged");
        let (client_lines, server_lines) = (secrets(&client_log), secrets(&server_log));
        let labels: BTreeSet<&str> = client_lines
            .iter()
            .map(|line| line.split(' ').next().unwrap())
            .collect();
        assert_eq!(labels, LABELS.into_iter().collect(), "{engines:?}");
        assert_eq!(client_lines, server_lines, "{engines:?}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&client_log).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "a key log is for its owner only");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn an_unwritable_key_log_is_a_configuration_error() {
    let err = ClientConfig::builder()
        .key_log_file("/nonexistent/dir/keys.log")
        .build()
        .unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/dir/keys.log"),
        "{err}"
    );
}

fn tshark_available() -> bool {
    match Command::new("tshark").arg("--version").output() {
        Ok(out) if out.status.success() => true,
        _ if std::env::var_os("TLSFLOW_SKIP_PEERS").is_some() => false,
        _ => panic!(
            "the `tshark` command is required (Debian: apt-get install tshark), or set \
             TLSFLOW_SKIP_PEERS=1"
        ),
    }
}

/// What tshark shows of the first TLS stream's application data in `capture`, decrypted
/// with `key_log` when given.
fn follow(capture: &Path, key_log: Option<&Path>) -> String {
    let mut command = Command::new("tshark");
    command.arg("-r").arg(capture);
    if let Some(path) = key_log {
        command
            .arg("-o")
            .arg(format!("tls.keylog_file:{}", path.display()));
    }
    let out = command
        .args(["-q", "-z", "follow,tls,ascii,0"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tshark -r failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A connection captured on the loopback interface by tshark, its client logging keys:
/// tshark decrypts the capture with the key log, and sees nothing of the message without.
#[test]
fn tshark_decrypts_a_captured_connection_with_the_key_log() {
    if !tshark_available() {
        eprintln!("skipping: tshark not installed and TLSFLOW_SKIP_PEERS is set");
        return;
    }
    let cert = SelfSigned::generate(&["localhost"]).unwrap();
    for client_engine in [EngineKind::Rustls, EngineKind::Openssl] {
        let dir = temp_dir(&format!("tshark-{client_engine}"));
        let (capture, key_log) = (dir.join("capture.pcapng"), dir.join("keys.log"));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut tshark = Command::new("tshark")
            .args(["-i", "lo", "-f", &format!("tcp port {port}"), "-w"])
            .arg(&capture)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // tshark says "Capturing on" on stderr as it opens the interface, and "Capture
        // started" once packets are written; wait for that, 15 s at most.
        let stderr = BufReader::new(tshark.stderr.take().unwrap());
        let (lines, said) = std::sync::mpsc::channel();
        thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match said.recv_timeout(left) {
                Ok(line) if line.contains("Capture started") => break,
                Ok(_) => {}
                Err(_) => panic!("tshark did not start capturing within 15 s"),
            }
        }
        thread::sleep(Duration::from_millis(200));
        let engines = (client_engine, EngineKind::Rustls);
        let (client, server) = configs(&cert, engines, (Some(&key_log), None));
        let message = format!("the secret handshake of {client_engine}, decrypted");
        exchange(client, server, listener, message.as_bytes());
        thread::sleep(Duration::from_secs(1)); // the last packets reach the file
        let stopped = Command::new("kill")
            .args(["-INT", &tshark.id().to_string()])
            .status()
            .unwrap();
        assert!(stopped.success());
        tshark.wait().unwrap();

        let decrypted = follow(&capture, Some(&key_log));
        assert!(decrypted.contains(&message), "{client_engine}: {decrypted}");
        let opaque = follow(&capture, None);
        assert!(!opaque.contains(&message), "{client_engine}: {opaque}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
