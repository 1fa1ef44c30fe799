//! Promise 11: the user's choice of crypto is kept. tlsflow's own TLS 1.3 record layer
//! (aws-lc-rs) replaces rustls's only for suites of rustls's built-in aws-lc-rs provider;
//! a configuration with any other provider (ring, a FIPS build, a custom one) has every
//! record sealed and opened by that provider, before and after the handshake.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use rustls::crypto::cipher::{
    AeadKey, InboundOpaqueMessage, InboundPlainMessage, Iv, MessageDecrypter, MessageEncrypter,
    OutboundOpaqueMessage, OutboundPlainMessage, Tls13AeadAlgorithm, UnsupportedOperationError,
};
use rustls::crypto::CryptoProvider;
use rustls::{ConnectionTrafficSecrets, ContentType, SupportedCipherSuite, Tls13CipherSuite};
use tlsflow::{ClientConfig, ProtocolVersion, SelfSigned, ServerConfig};

/// Records of application data sealed and opened by one provider.
#[derive(Default)]
struct Counts {
    sealed: AtomicUsize,
    opened: AtomicUsize,
}

/// aws-lc-rs's AES-128-GCM, counting the application data it seals and opens: a provider
/// that is not the built-in one, and can say what it did.
struct CountingAead {
    inner: &'static dyn Tls13AeadAlgorithm,
    counts: &'static Counts,
}

struct Sealing(Box<dyn MessageEncrypter>, &'static Counts);
struct Opening(Box<dyn MessageDecrypter>, &'static Counts);

impl MessageEncrypter for Sealing {
    fn encrypt(
        &mut self,
        msg: OutboundPlainMessage<'_>,
        seq: u64,
    ) -> Result<OutboundOpaqueMessage, rustls::Error> {
        if msg.typ == ContentType::ApplicationData {
            self.1.sealed.fetch_add(1, Ordering::Relaxed);
        }
        self.0.encrypt(msg, seq)
    }

    fn encrypted_payload_len(&self, payload_len: usize) -> usize {
        self.0.encrypted_payload_len(payload_len)
    }
}

impl MessageDecrypter for Opening {
    fn decrypt<'a>(
        &mut self,
        msg: InboundOpaqueMessage<'a>,
        seq: u64,
    ) -> Result<InboundPlainMessage<'a>, rustls::Error> {
        let plain = self.0.decrypt(msg, seq)?;
        if plain.typ == ContentType::ApplicationData {
            self.1.opened.fetch_add(1, Ordering::Relaxed);
        }
        Ok(plain)
    }
}

impl Tls13AeadAlgorithm for CountingAead {
    fn encrypter(&self, key: AeadKey, iv: Iv) -> Box<dyn MessageEncrypter> {
        Box::new(Sealing(self.inner.encrypter(key, iv), self.counts))
    }

    fn decrypter(&self, key: AeadKey, iv: Iv) -> Box<dyn MessageDecrypter> {
        Box::new(Opening(self.inner.decrypter(key, iv), self.counts))
    }

    fn key_len(&self) -> usize {
        self.inner.key_len()
    }

    fn extract_keys(
        &self,
        key: AeadKey,
        iv: Iv,
    ) -> Result<ConnectionTrafficSecrets, UnsupportedOperationError> {
        self.inner.extract_keys(key, iv)
    }
}

/// A provider whose only suite is TLS_AES_128_GCM_SHA256 through [`CountingAead`].
fn counting_provider() -> (Arc<CryptoProvider>, &'static Counts) {
    let counts: &'static Counts = Box::leak(Box::default());
    let SupportedCipherSuite::Tls13(aws) =
        rustls::crypto::aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256
    else {
        unreachable!("a TLS 1.3 suite")
    };
    let aead: &'static CountingAead = Box::leak(Box::new(CountingAead {
        inner: aws.aead_alg,
        counts,
    }));
    let suite: &'static Tls13CipherSuite = Box::leak(Box::new(Tls13CipherSuite {
        common: rustls::CipherSuiteCommon {
            suite: aws.common.suite,
            hash_provider: aws.common.hash_provider,
            confidentiality_limit: aws.common.confidentiality_limit,
        },
        hkdf_provider: aws.hkdf_provider,
        aead_alg: aead,
        quic: None,
    }));
    let provider = CryptoProvider {
        cipher_suites: vec![SupportedCipherSuite::Tls13(suite)],
        ..rustls::crypto::aws_lc_rs::default_provider()
    };
    (Arc::new(provider), counts)
}

/// Moves `size` bytes each way between a client and a server over loopback TCP; returns the
/// records the counting provider of `side` sealed and opened.
fn transfer(provider_on_server: bool, size: usize) -> (usize, usize) {
    let (provider, counts) = counting_provider();
    let cert = SelfSigned::generate(&["localhost"]).unwrap();
    let mut server = ServerConfig::builder()
        .self_signed(&cert)
        .versions(&[ProtocolVersion::Tls13]);
    let mut client = ClientConfig::builder()
        .ca_certificate(cert.cert_der())
        .versions(&[ProtocolVersion::Tls13]);
    if provider_on_server {
        server = server.crypto_provider(provider);
    } else {
        client = client.crypto_provider(provider);
    }
    let (server, client) = (server.build().unwrap(), client.build().unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let echo = thread::spawn(move || {
        let mut tls = server.accept(listener.accept().unwrap().0).unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = tls.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            tls.write_all(&buf[..n]).unwrap();
            tls.flush().unwrap();
        }
        tls.shutdown().unwrap();
    });
    let mut tls = client
        .connect("localhost", TcpStream::connect(addr).unwrap())
        .unwrap();
    let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let mut echoed = Vec::new();
    for chunk in data.chunks(60_000) {
        tls.write_all(chunk).unwrap();
        tls.flush().unwrap();
        let mut got = 0;
        while got < chunk.len() {
            let mut buf = vec![0u8; chunk.len() - got];
            let n = tls.read(&mut buf).unwrap();
            echoed.extend_from_slice(&buf[..n]);
            got += n;
        }
    }
    tls.shutdown().unwrap();
    assert_eq!(tls.read(&mut [0u8; 1]).unwrap(), 0);
    echo.join().unwrap();
    assert!(echoed == data, "the echo differs");
    (
        counts.sealed.load(Ordering::Relaxed),
        counts.opened.load(Ordering::Relaxed),
    )
}

#[test]
fn a_custom_provider_seals_and_opens_every_record_after_the_handshake() {
    let size = 1 << 20;
    let records = size / (16 * 1024);
    for on_server in [true, false] {
        let (sealed, opened) = transfer(on_server, size);
        let side = if on_server { "server" } else { "client" };
        assert!(
            sealed >= records && opened >= records,
            "the {side}'s provider sealed {sealed} and opened {opened} records of \
             application data; at least {records} each way went through it"
        );
    }
}
