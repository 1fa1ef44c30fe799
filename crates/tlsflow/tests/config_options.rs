//! Configuration options on both engines: password-protected keys, CA directories, cipher
//! suites, verify depth, optional client authentication; clear errors when misused.

#![cfg(feature = "openssl")]
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::thread;
use std::time::Duration;

use tlsflow::{
    CipherSuite, ClientConfig, EngineKind, Error, ProtocolVersion, SelfSigned, ServerConfig,
};

const ENGINES: [EngineKind; 2] = [EngineKind::Rustls, EngineKind::Openssl];

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tlsflow-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs a handshake and a short exchange; returns the client's negotiated suite, or the
/// client's and server's errors.
fn exchange(
    client: ClientConfig,
    server: ServerConfig,
) -> Result<Option<CipherSuite>, (String, String)> {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || -> Result<(), String> {
        let (tcp, _) = listener.accept().unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut tls = server.accept(tcp).map_err(|e| e.to_string())?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).map_err(|e| e.to_string())?;
        tls.write_all(&buf).map_err(|e| e.to_string())?;
        tls.close().map_err(|e| e.to_string())
    });
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let client_result = (|| -> Result<Option<CipherSuite>, String> {
        let mut tls = client
            .connect("localhost", tcp)
            .map_err(|e| e.to_string())?;
        tls.write_all(b"ping").map_err(|e| e.to_string())?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).map_err(|e| e.to_string())?;
        assert_eq!(&buf, b"ping");
        let suite = tls.cipher_suite();
        tls.close().map_err(|e| e.to_string())?;
        Ok(suite)
    })();
    let server_result = server.join().unwrap();
    match (client_result, server_result) {
        (Ok(suite), Ok(())) => Ok(suite),
        (c, s) => Err((c.err().unwrap_or_default(), s.err().unwrap_or_default())),
    }
}

fn config_error(result: Result<impl std::fmt::Debug, Error>) -> String {
    match result {
        Err(e @ Error::Config { .. }) => e.to_string(),
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

#[test]
fn password_protected_keys_work_on_both_engines() {
    use openssl::pkey::PKey;
    use openssl::symm::Cipher;

    let cert = SelfSigned::generate(&["localhost"]).unwrap();
    let dir = temp_dir("password-key");
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, cert.cert_pem()).unwrap();
    let key = PKey::private_key_from_pem(cert.key_pem().as_bytes()).unwrap();
    let encrypted = key
        .private_key_to_pem_pkcs8_passphrase(Cipher::aes_256_cbc(), b"s3cret")
        .unwrap();
    std::fs::write(&key_path, encrypted).unwrap();
    for engine in ENGINES {
        let server = ServerConfig::builder()
            .cert_files(&cert_path, &key_path)
            .key_password("s3cret")
            .engine(engine)
            .build()
            .unwrap();
        let client = ClientConfig::builder()
            .ca_file(&cert_path)
            .engine(engine)
            .build()
            .unwrap();
        exchange(client, server).unwrap();

        let no_password = ServerConfig::builder()
            .cert_files(&cert_path, &key_path)
            .engine(engine)
            .build();
        let message = config_error(no_password);
        assert!(
            message.contains("password-protected") && message.contains("key.pem"),
            "{message}"
        );

        let wrong = ServerConfig::builder()
            .cert_files(&cert_path, &key_path)
            .key_password("wrong")
            .engine(engine)
            .build();
        let message = config_error(wrong);
        assert!(
            message.contains("wrong password") && message.contains("key.pem"),
            "{message}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ca_directories_are_trusted_and_empty_ones_named() {
    let cert = SelfSigned::generate(&["localhost"]).unwrap();
    let dir = temp_dir("ca-dir");
    std::fs::write(dir.join("a1b2c3d4.0"), cert.cert_pem()).unwrap();
    std::fs::write(dir.join("README"), "not a certificate").unwrap();
    let empty = temp_dir("ca-dir-empty");
    for engine in ENGINES {
        let server = ServerConfig::builder()
            .self_signed(&cert)
            .engine(engine)
            .build()
            .unwrap();
        let client = ClientConfig::builder()
            .ca_dir(&dir)
            .engine(engine)
            .build()
            .unwrap();
        exchange(client, server).unwrap();
        let message = config_error(
            ClientConfig::builder()
                .ca_dir(&empty)
                .engine(engine)
                .build(),
        );
        assert!(
            message.contains("no certificate found") && message.contains("ca-dir-empty"),
            "{message}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&empty);
}

#[test]
fn cipher_suites_are_chosen_by_iana_name() {
    let cert = SelfSigned::generate(&["localhost"]).unwrap();
    for client_engine in ENGINES {
        for server_engine in ENGINES {
            for (version, suite, code) in [
                (
                    ProtocolVersion::Tls13,
                    "TLS_CHACHA20_POLY1305_SHA256",
                    0x1303,
                ),
                (ProtocolVersion::Tls13, "TLS_AES_128_GCM_SHA256", 0x1301),
                (ProtocolVersion::Tls13, "TLS_AES_256_GCM_SHA384", 0x1302),
                (
                    ProtocolVersion::Tls12,
                    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
                    0xcca9,
                ),
                (
                    ProtocolVersion::Tls12,
                    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
                    0xc02b,
                ),
            ] {
                let server = ServerConfig::builder()
                    .self_signed(&cert)
                    .cipher_suites(&[suite])
                    .versions(&[version])
                    .engine(server_engine)
                    .build()
                    .unwrap();
                let client = ClientConfig::builder()
                    .ca_certificate(cert.cert_der())
                    .engine(client_engine)
                    .build()
                    .unwrap();
                let negotiated = exchange(client, server)
                    .unwrap_or_else(|e| panic!("{client_engine}->{server_engine} {suite}: {e:?}"));
                // The same typed suite, IANA code and name, from both engines.
                let negotiated = negotiated.unwrap();
                let pair = format!("{client_engine}->{server_engine}");
                assert_eq!(negotiated, CipherSuite::from_code(code), "{pair}");
                assert_eq!(negotiated.code(), code, "{pair}");
                assert_eq!(negotiated.name(), Some(suite), "{pair}");
                assert_eq!(negotiated.to_string(), suite, "{pair}");
                assert!(negotiated == suite, "{pair}");
            }
        }
    }
    for engine in ENGINES {
        let message = config_error(
            ServerConfig::builder()
                .self_signed(&cert)
                .cipher_suites(&["TLS_NO_SUCH_SUITE"])
                .engine(engine)
                .build(),
        );
        assert!(message.contains("TLS_NO_SUCH_SUITE"), "{message}");
    }
}

#[test]
fn verify_depth_is_an_openssl_option() {
    let message = config_error(ClientConfig::builder().verify_depth(2).build());
    assert!(message.contains("OpenSSL"), "{message}");
    ClientConfig::builder()
        .verify_depth(2)
        .engine(EngineKind::Openssl)
        .build()
        .unwrap();
}

#[test]
fn optional_client_authentication_accepts_clients_without_a_certificate() {
    let cert = SelfSigned::generate(&["localhost"]).unwrap();
    let client_ca = SelfSigned::generate(&["client"]).unwrap();
    for client_engine in ENGINES {
        for server_engine in ENGINES {
            let server = ServerConfig::builder()
                .self_signed(&cert)
                .client_ca_certificate(client_ca.cert_der())
                .client_auth_optional()
                .engine(server_engine)
                .build()
                .unwrap();
            let client = ClientConfig::builder()
                .ca_certificate(cert.cert_der())
                .engine(client_engine)
                .build()
                .unwrap();
            exchange(client, server)
                .unwrap_or_else(|e| panic!("{client_engine}->{server_engine}: {e:?}"));
        }
    }
    let message = config_error(
        ServerConfig::builder()
            .self_signed(&cert)
            .client_auth_optional()
            .build(),
    );
    assert!(message.contains("client CA"), "{message}");
}

/// Connects as `name` and returns the leaf certificate the server presented.
fn leaf_for(client: ClientConfig, server: ServerConfig, name: &str) -> Result<Vec<u8>, String> {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut tls = server.accept(tcp).unwrap();
        let _ = tls.handshake();
        let _ = tls.close();
    });
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut tls = client.connect(name, tcp).unwrap();
    let result = tls.handshake().map_err(|e| e.to_string());
    let leaf = tls.peer_certificates().and_then(|c| c.first().cloned());
    let _ = tls.close();
    server.join().unwrap();
    result.map(|()| leaf.unwrap_or_default())
}

#[test]
fn servers_pick_the_certificate_the_client_names() {
    let default = SelfSigned::generate(&["default.test"]).unwrap();
    let other = SelfSigned::generate(&["other.test"]).unwrap();
    for server_engine in ENGINES {
        for client_engine in ENGINES {
            let server = ServerConfig::builder()
                .self_signed(&default)
                .sni_cert("other.test", vec![other.cert_der()], other.key_der())
                .engine(server_engine)
                .build()
                .unwrap();
            let client = ClientConfig::builder()
                .ca_certificate(default.cert_der())
                .ca_certificate(other.cert_der())
                .engine(client_engine)
                .build()
                .unwrap();
            let pair = format!("{client_engine}->{server_engine}");
            let leaf = leaf_for(client.clone(), server.clone(), "other.test").expect(&pair);
            assert_eq!(leaf, other.cert_der().as_ref(), "{pair}");
            let leaf = leaf_for(client, server, "default.test").expect(&pair);
            assert_eq!(leaf, default.cert_der().as_ref(), "{pair}");
        }
    }
}

#[test]
fn verification_callbacks_see_the_chain_and_can_refuse_it() {
    let cert = SelfSigned::generate(&["localhost"]).unwrap();
    let pinned = cert.cert_der().as_ref().to_vec();
    for engine in ENGINES {
        let server = ServerConfig::builder()
            .self_signed(&cert)
            .engine(engine)
            .build()
            .unwrap();
        let expected = pinned.clone();
        let accepting = ClientConfig::builder()
            .ca_certificate(cert.cert_der())
            .verify_callback(move |chain| {
                if chain.first().map(|c| c.as_ref()) == Some(&expected[..]) {
                    Ok(())
                } else {
                    Err("not the pinned certificate".into())
                }
            })
            .engine(engine)
            .build()
            .unwrap();
        leaf_for(accepting, server.clone(), "localhost").unwrap();
        let refusing = ClientConfig::builder()
            .ca_certificate(cert.cert_der())
            .verify_callback(|_| Err("pin mismatch".into()))
            .engine(engine)
            .build()
            .unwrap();
        let message = leaf_for(refusing, server, "localhost").unwrap_err();
        assert!(
            message.contains("peer certificate rejected"),
            "{engine}: {message}"
        );
        assert!(
            message.contains("pin mismatch") || message.contains("application verification"),
            "{engine}: {message}"
        );
    }
}
