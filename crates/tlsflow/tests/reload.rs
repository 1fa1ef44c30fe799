//! Replacing a running server's certificates ([`ServerConfig::reload_certificates`]) on both
//! engines: new handshakes get the new certificate (with SNI and without), clients that
//! trust only the old one are refused, connections opened before keep working, and a bad
//! new file changes nothing.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;

use common::pki::TempDir;
use tlsflow::{
    CertificateErrorKind, ClientConfig, EngineKind, Error, SelfSigned, ServerConfig, TlsStream,
};

const ENGINES: [EngineKind; 2] = [EngineKind::Rustls, EngineKind::Openssl];

/// An echo server: each connection on its own thread, echoing until the client closes.
fn echo_server(config: ServerConfig) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for tcp in listener.incoming() {
            let config = config.clone();
            thread::spawn(move || {
                let Ok(mut tls) = config.accept(tcp.unwrap()) else {
                    return;
                };
                let mut buf = [0u8; 1024];
                while let Ok(n) = tls.read(&mut buf) {
                    if n == 0 || tls.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = tls.close();
            });
        }
    });
    addr
}

fn trusting(cert: &SelfSigned) -> ClientConfig {
    ClientConfig::builder()
        .ca_certificate(cert.cert_der())
        .build()
        .unwrap()
}

fn connect(
    client: &ClientConfig,
    name: &str,
    addr: SocketAddr,
) -> Result<TlsStream<TcpStream>, Error> {
    let mut tls = client.connect(name, TcpStream::connect(addr).unwrap())?;
    tls.handshake()
        .map_err(|e| Error::from_io(&e).unwrap().clone())?;
    Ok(tls)
}

fn echo(tls: &mut TlsStream<TcpStream>, text: &[u8]) {
    tls.write_all(text).unwrap();
    let mut back = vec![0u8; text.len()];
    tls.read_exact(&mut back).unwrap();
    assert_eq!(back, text);
}

fn refused_as_untrusted(result: Result<TlsStream<TcpStream>, Error>, case: &str) {
    let err = result.err().unwrap_or_else(|| panic!("{case}: connected"));
    // Both certificates are self-signed with the same subject: the old anchor is found for
    // the new certificate's issuer and its signature does not match (rustls), or no anchor
    // is (OpenSSL).
    assert!(
        matches!(
            err.certificate_error(),
            Some(CertificateErrorKind::UnknownIssuer | CertificateErrorKind::BadSignature)
        ),
        "{case}: {err:?}"
    );
}

#[test]
fn new_handshakes_get_the_new_certificates_and_open_connections_keep_theirs() {
    for engine in ENGINES {
        let dir = TempDir::new("reload");
        let names = ["localhost", "127.0.0.1"];
        let old = SelfSigned::generate(&names).unwrap();
        let old_sni = SelfSigned::generate(&["tenant.test"]).unwrap();
        let cert = dir.write("cert.pem", old.cert_pem());
        let key = dir.write("key.pem", old.key_pem());
        let sni_cert = dir.write("sni-cert.pem", old_sni.cert_pem());
        let sni_key = dir.write("sni-key.pem", old_sni.key_pem());
        let config = ServerConfig::builder()
            .cert_files(&cert, &key)
            .sni_cert_files("tenant.test", &sni_cert, &sni_key)
            .engine(engine)
            .build()
            .unwrap();
        assert_eq!(config.certificate(), Some(old.cert_der()));
        let addr = echo_server(config.clone());

        let mut before = connect(&trusting(&old), "localhost", addr).unwrap();
        echo(&mut before, b"before the reload");
        let mut before_sni = connect(&trusting(&old_sni), "tenant.test", addr).unwrap();
        echo(&mut before_sni, b"before the reload, by name");

        // New files in place, then the reload.
        let new = SelfSigned::generate(&names).unwrap();
        let new_sni = SelfSigned::generate(&["tenant.test"]).unwrap();
        dir.write("cert.pem", new.cert_pem());
        dir.write("key.pem", new.key_pem());
        dir.write("sni-cert.pem", new_sni.cert_pem());
        dir.write("sni-key.pem", new_sni.key_pem());
        config.reload_certificates().unwrap();
        assert_eq!(config.certificate(), Some(new.cert_der()), "{engine}");

        for name in ["localhost", "127.0.0.1"] {
            // "127.0.0.1" sends no SNI: the default certificate is swapped too.
            let case = format!("{engine} server, {name}");
            let mut tls = connect(&trusting(&new), name, addr).unwrap();
            echo(&mut tls, b"after the reload");
            tls.close().unwrap();
            refused_as_untrusted(connect(&trusting(&old), name, addr), &case);
        }
        let mut tls = connect(&trusting(&new_sni), "tenant.test", addr).unwrap();
        echo(&mut tls, b"after the reload, by name");
        refused_as_untrusted(
            connect(&trusting(&old_sni), "tenant.test", addr),
            &format!("{engine} server, SNI"),
        );

        // Connections from before go on with what they negotiated.
        echo(&mut before, b"still here");
        echo(&mut before_sni, b"still here, by name");
        before.close().unwrap();
        before_sni.close().unwrap();
    }
}

#[test]
fn a_bad_new_file_is_refused_and_the_old_certificates_stay() {
    for engine in ENGINES {
        let dir = TempDir::new("reload-bad");
        let good = SelfSigned::generate(&["localhost"]).unwrap();
        let other = SelfSigned::generate(&["localhost"]).unwrap();
        let sni = SelfSigned::generate(&["tenant.test"]).unwrap();
        let cert = dir.write("cert.pem", good.cert_pem());
        let key = dir.write("key.pem", good.key_pem());
        let sni_cert = dir.write("sni-cert.pem", sni.cert_pem());
        let sni_key = dir.write("sni-key.pem", sni.key_pem());
        let config = ServerConfig::builder()
            .cert_files(&cert, &key)
            .sni_cert_files("tenant.test", &sni_cert, &sni_key)
            .engine(engine)
            .build()
            .unwrap();
        let addr = echo_server(config.clone());

        let not_pem = "this is not a certificate\n";
        let faults: [(&str, &str, &str); 4] = [
            ("cert.pem", not_pem, "cert.pem"),
            ("key.pem", other.key_pem(), "key"),
            ("sni-key.pem", not_pem, "sni-key.pem"),
            ("cert.pem", "", "cert.pem"),
        ];
        for (file, text, named) in faults {
            let case = format!("{engine} server, {file} = {text:?}");
            let saved = std::fs::read_to_string(dir.path().join(file)).unwrap();
            dir.write(file, text);
            let err = config.reload_certificates().unwrap_err();
            assert!(matches!(err, Error::Config { .. }), "{case}: {err:?}");
            assert!(err.to_string().contains(named), "{case}: {err}");
            assert_eq!(config.certificate(), Some(good.cert_der()), "{case}");
            let mut tls = connect(&trusting(&good), "localhost", addr).unwrap();
            echo(&mut tls, b"the old certificate still serves");
            tls.close().unwrap();
            dir.write(file, &saved);
        }
        // A missing file too.
        std::fs::remove_file(&sni_cert).unwrap();
        let err = config.reload_certificates().unwrap_err();
        assert!(err.to_string().contains("sni-cert.pem"), "{engine}: {err}");
        let mut tls = connect(&trusting(&sni), "tenant.test", addr).unwrap();
        echo(&mut tls, b"the old SNI certificate still serves");
        tls.close().unwrap();
    }
}

#[test]
fn wrapped_configurations_say_they_cannot_reload() {
    let cert = SelfSigned::generate(&["localhost"]).unwrap();
    let built = ServerConfig::builder().self_signed(&cert).build().unwrap();
    let wrapped = ServerConfig::from_rustls(built.rustls().unwrap().clone());
    assert_eq!(wrapped.certificate(), None);
    let err = wrapped.reload_certificates().unwrap_err();
    assert!(err.to_string().contains("ServerConfig::builder"), "{err}");
    // Certificates given as DER are served again as they were.
    built.reload_certificates().unwrap();
    assert_eq!(built.certificate(), Some(cert.cert_der()));
}
