#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use super::*;
use crate::engine::{Engine, PlainRead, RustlsEngine};
use crate::testing::Rng;
use crate::SelfSigned;

fn configs() -> (rustls::ClientConfig, rustls::ServerConfig) {
    configs_with(rustls::crypto::aws_lc_rs::default_provider())
}

/// rustls configurations from tlsflow's builders, the server's on `provider`.
fn configs_with(
    provider: rustls::crypto::CryptoProvider,
) -> (rustls::ClientConfig, rustls::ServerConfig) {
    let cert = SelfSigned::generate(&["localhost"]).unwrap();
    let server = crate::ServerConfig::builder()
        .self_signed(&cert)
        .crypto_provider(Arc::new(provider))
        .build()
        .unwrap();
    let client = crate::ClientConfig::builder()
        .ca_certificate(cert.cert_der())
        .build()
        .unwrap();
    (
        (**client.rustls().unwrap()).clone(),
        (**server.rustls().unwrap()).clone(),
    )
}

fn engines(client: rustls::ClientConfig, server: rustls::ServerConfig) -> [RustlsEngine; 2] {
    [
        RustlsEngine::client(Arc::new(client), "localhost").unwrap(),
        RustlsEngine::server(Arc::new(server)).unwrap(),
    ]
}

/// The ciphertext `engine` has to send.
fn output(engine: &mut RustlsEngine) -> Vec<u8> {
    let mut out = Output::default();
    engine.take_ciphertext(&mut out);
    out.pending().to_vec()
}

/// Feeds `data` to `engine` in pieces of at most `piece` bytes, as far as it takes them.
fn feed(engine: &mut RustlsEngine, data: &[u8], piece: usize) -> Result<usize, Error> {
    let mut fed = 0;
    while fed < data.len() {
        let space = engine.input_space(72 * 1024);
        let n = space.len().min(piece).min(data.len() - fed);
        if n == 0 {
            break;
        }
        space[..n].copy_from_slice(&data[fed..fed + n]);
        fed += n;
        engine.input_filled(n)?;
    }
    Ok(fed)
}

fn handshake(pair: &mut [RustlsEngine; 2]) {
    while pair[0].is_handshaking() || pair[1].is_handshaking() {
        let [c, s] = pair;
        let (to_server, to_client) = (output(c), output(s));
        assert!(
            !to_server.is_empty() || !to_client.is_empty(),
            "handshake stalled"
        );
        feed(s, &to_server, usize::MAX).unwrap();
        feed(c, &output(s), usize::MAX).unwrap();
        feed(c, &to_client, usize::MAX).unwrap();
    }
    // The client's Finished and the server's tickets.
    let [c, s] = pair;
    feed(s, &output(c), usize::MAX).unwrap();
    feed(c, &output(s), usize::MAX).unwrap();
}

/// Sends `data` from `from` to `to`, reading it with buffers of `read` bytes, the
/// transport moving `piece` bytes at a time.
fn transfer(
    from: &mut RustlsEngine,
    to: &mut RustlsEngine,
    data: &[u8],
    read: usize,
    piece: usize,
) -> Vec<u8> {
    let mut out = Output::default();
    let mut sent = 0;
    while sent < data.len() {
        let n = (data.len() - sent).min(64 * 1024);
        assert_eq!(
            from.write_plaintext(&data[sent..sent + n], &mut out)
                .unwrap(),
            n
        );
        sent += n;
    }
    from.take_ciphertext(&mut out);
    let wire = out.pending().to_vec();
    let mut got = Vec::new();
    let mut buf = vec![0; read];
    let mut at = 0;
    loop {
        while let PlainRead::Data(n) = to.read_plaintext(&mut buf).unwrap() {
            got.extend_from_slice(&buf[..n]);
        }
        if at == wire.len() {
            break;
        }
        at += feed(to, &wire[at..], piece).unwrap();
    }
    got
}

/// A client and a server engine with the default configurations, handshake done.
fn established() -> [RustlsEngine; 2] {
    let (client, server) = configs();
    let mut pair = engines(client, server);
    handshake(&mut pair);
    pair
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[test]
fn the_record_layer_takes_over_and_moves_data_both_ways() {
    let mut pair = established();
    let [c, s] = &mut pair;
    assert!(c.traffic().is_some(), "the client stayed on rustls");
    assert!(s.traffic().is_some(), "the server stayed on rustls");
    assert_eq!(
        c.protocol_version(),
        Some(crate::engine::ProtocolVersion::Tls13)
    );
    assert_eq!(
        c.cipher_suite().unwrap().code() >> 8,
        0x13,
        "a TLS 1.3 suite"
    );
    assert!(c.peer_certificates().is_some());
    let data = pattern(300_000);
    // Reads smaller than a record (opened in place), of exactly a record's plaintext,
    // and larger than several records (opened straight into the buffer).
    for (read, piece) in [
        (1000, 7000),
        (16 * 1024, 70_000),
        (16 * 1024 + 1, 5),
        (200_000, 70_000),
    ] {
        assert!(
            transfer(c, s, &data, read, piece) == data,
            "client to server, reads of {read}"
        );
        assert!(
            transfer(s, c, &data, read, piece) == data,
            "server to client, reads of {read}"
        );
    }
}

/// After a HelloRetryRequest, the client's second ClientHello comes in the clear; cut
/// into records as small as a peer likes (the first with a 4-byte body), it is taken
/// whole, never mistaken for skipped early data, and the connection goes on to the
/// record layer.
#[test]
fn a_second_client_hello_in_tiny_records_after_a_retry_request() {
    // The server offers only P-256, the client's first key share is X25519: a retry.
    let provider = rustls::crypto::CryptoProvider {
        kx_groups: vec![rustls::crypto::aws_lc_rs::kx_group::SECP256R1],
        ..rustls::crypto::aws_lc_rs::default_provider()
    };
    let (client, server) = configs_with(provider);
    let [mut c, mut s] = engines(client, server);
    feed(&mut s, &output(&mut c), usize::MAX).unwrap();
    feed(&mut c, &output(&mut s), usize::MAX).unwrap();
    // The second flight: cut every handshake record into bodies of 4, 5, 6, ... bytes.
    let flight = output(&mut c);
    let mut cut = Vec::new();
    let mut rest = &flight[..];
    while rest.len() >= HEADER {
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        let (record, after) = rest.split_at(HEADER + len);
        if record[0] == HANDSHAKE {
            let mut body = &record[HEADER..];
            let mut size = 4;
            while !body.is_empty() {
                let (piece, left) = body.split_at(size.min(body.len()));
                cut.extend_from_slice(&[HANDSHAKE, 3, 3]);
                cut.extend_from_slice(&u16::try_from(piece.len()).unwrap().to_be_bytes());
                cut.extend_from_slice(piece);
                body = left;
                size += 1;
            }
        } else {
            cut.extend_from_slice(record);
        }
        rest = after;
    }
    feed(&mut s, &cut, 7).unwrap();
    while c.is_handshaking() || s.is_handshaking() {
        feed(&mut c, &output(&mut s), usize::MAX).unwrap();
        feed(&mut s, &output(&mut c), usize::MAX).unwrap();
    }
    feed(&mut c, &output(&mut s), usize::MAX).unwrap();
    let data = pattern(30_000);
    assert!(transfer(&mut c, &mut s, &data, 4096, 5000) == data);
    assert!(transfer(&mut s, &mut c, &data, 4096, 5000) == data);
    assert!(
        s.traffic().is_some(),
        "the server moved to the record layer"
    );
}

#[test]
fn configurations_without_secret_extraction_stay_on_rustls() {
    let (mut client, mut server) = configs();
    client.enable_secret_extraction = false;
    server.enable_secret_extraction = false;
    let mut pair = engines(client, server);
    handshake(&mut pair);
    let [c, s] = &mut pair;
    assert!(c.traffic().is_none() && s.traffic().is_none());
    let data = pattern(100_000);
    assert!(transfer(c, s, &data, 4096, 9000) == data);
}

#[test]
fn a_flipped_bit_is_a_bad_record_mac_and_the_peer_hears_of_it() {
    let mut rng = Rng::new(20);
    for round in 0..40 {
        let mut pair = established();
        let [c, s] = &mut pair;
        let mut out = Output::default();
        c.write_plaintext(&pattern(20_000), &mut out).unwrap();
        let mut wire = out.pending().to_vec();
        // Anywhere in the body or tag of either record.
        let first = HEADER + 16 * 1024 + 1 + TAG;
        let at = if round % 2 == 0 {
            rng.between(HEADER, first)
        } else {
            rng.between(first + HEADER, wire.len())
        };
        wire[at] ^= 1 << rng.below(8);
        feed(s, &wire, usize::MAX).unwrap();
        let mut buf = vec![0; 64 * 1024];
        let mut delivered = 0;
        let err = loop {
            match s.read_plaintext(&mut buf) {
                Ok(PlainRead::Data(n)) => {
                    assert!(buf[..n] == pattern(20_000)[delivered..delivered + n]);
                    delivered += n;
                }
                Ok(other) => panic!("no error after a flipped bit at {at}: {other:?}"),
                Err(e) => break e,
            }
        };
        assert!(err.to_string().contains("bad_record_mac"), "{err}");
        assert_eq!(delivered, if at < first { 0 } else { 16 * 1024 });
        // Sticky, and the alert reaches the client.
        assert!(s.read_plaintext(&mut buf).is_err());
        feed(c, &output(s), usize::MAX).unwrap_or_default();
        let heard = c.read_plaintext(&mut buf).unwrap_err();
        assert!(
            matches!(
                &heard,
                Error::PeerAlert {
                    alert: rustls::AlertDescription::BadRecordMac
                }
            ),
            "{heard}"
        );
    }
}

#[test]
fn keys_are_updated_before_the_confidentiality_limit() {
    let mut pair = established();
    let [c, s] = &mut pair;
    c.traffic().unwrap().set_limit(3);
    let data = pattern(40 * 16 * 1024);
    assert!(transfer(c, s, &data, 50_000, 30_000) == data);
    assert!(c.traffic().unwrap().sealed() <= 3);
}

/// A key update the client asks for at once, arriving with its Finished, is answered
/// whichever record layer the server reads it with: the server's next records use keys
/// the client knows about.
#[test]
fn a_key_update_right_after_the_handshake_is_answered() {
    for tickets in [0, 2] {
        let (client, mut server) = configs();
        server.send_tls13_tickets = tickets;
        let [mut c, mut s] = engines(client, server);
        while c.is_handshaking() {
            feed(&mut s, &output(&mut c), usize::MAX).unwrap();
            feed(&mut c, &output(&mut s), usize::MAX).unwrap();
        }
        // The client's Finished, a key update request and data, in one read.
        c.refresh_traffic_keys().unwrap();
        let mut out = Output::default();
        c.take_ciphertext(&mut out);
        c.write_plaintext(b"after the key update", &mut out)
            .unwrap();
        feed(&mut s, out.pending(), usize::MAX).unwrap();
        let mut buf = [0u8; 100];
        assert_eq!(s.read_plaintext(&mut buf).unwrap(), PlainRead::Data(20));
        let data = pattern(50_000);
        assert!(
            transfer(&mut s, &mut c, &data, 8192, 3000) == data,
            "{tickets} tickets"
        );
        s.send_close_notify();
        feed(&mut c, &output(&mut s), usize::MAX).unwrap();
        assert_eq!(c.read_plaintext(&mut buf).unwrap(), PlainRead::Closed);
    }
}

#[test]
fn key_updates_asked_for_are_answered() {
    let mut pair = established();
    let [c, s] = &mut pair;
    for _ in 0..3 {
        c.refresh_traffic_keys().unwrap();
        let data = pattern(50_000);
        assert!(transfer(c, s, &data, 8192, 3000) == data);
        // The server answers with its own KeyUpdate before its next records.
        assert!(transfer(s, c, &data, 8192, 3000) == data);
        s.refresh_traffic_keys().unwrap();
        assert!(transfer(s, c, &data, 8192, 3000) == data);
        assert!(transfer(c, s, &data, 8192, 3000) == data);
    }
}

#[test]
fn tickets_fragmented_across_records_are_joined_and_stored() {
    let (mut client, mut server) = configs();
    let store = Arc::new(rustls::client::ClientSessionMemoryCache::new(8));
    client.resumption = rustls::client::Resumption::store(store.clone());
    // Records of 32 bytes: every ticket spans several.
    server.max_fragment_size = Some(32);
    server.send_tls13_tickets = 3;
    let mut pair = engines(client, server);
    handshake(&mut pair);
    let [c, s] = &mut pair;
    assert!(c.traffic().is_some() && s.traffic().is_some());
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let stored = std::iter::from_fn(|| {
        rustls::client::ClientSessionStore::take_tls13_ticket(&*store, &name)
    })
    .count();
    assert_eq!(stored, 3);
    // The record layer keeps the configured record size.
    let mut out = Output::default();
    s.write_plaintext(&pattern(1000), &mut out).unwrap();
    let mut wire = out.pending();
    let mut records = 0;
    while !wire.is_empty() {
        let len = usize::from(u16::from_be_bytes([wire[3], wire[4]]));
        assert!(len <= 27 + 1 + TAG, "a record of {len} bytes");
        wire = &wire[HEADER + len..];
        records += 1;
    }
    assert_eq!(records, 1000usize.div_ceil(27));
}

/// A post-handshake message arriving in fragments is held in a bounded buffer: one
/// declared larger than 64 KiB fails at once, and a legal one never holds more than the
/// message and one record.
#[test]
fn fragmented_post_handshake_messages_are_bounded() {
    for declared in [0x1_0000usize, 60_000] {
        let mut pair = established();
        let [c, s] = &mut pair;
        let [_, a, b, d] = u32::try_from(declared).unwrap().to_be_bytes();
        let mut message = vec![NEW_SESSION_TICKET, a, b, d];
        message.resize(4 + declared, 7);
        let mut peak = 0;
        let mut failure = None;
        for fragment in message.chunks(MAX_PLAINTEXT) {
            let traffic = c.traffic().unwrap();
            assert!(traffic.seal_control(HANDSHAKE, fragment).is_ok());
            let wire = output(c);
            let fed = feed(s, &wire, usize::MAX);
            let mut buf = [0u8; 64];
            let read = fed.and_then(|_| s.read_plaintext(&mut buf));
            peak = peak.max(s.traffic().unwrap().buffer_capacity());
            if let Err(e) = read {
                failure = Some(e);
                break;
            }
        }
        let failure = failure.expect("the oversized or misplaced message was accepted");
        if declared > MAX_HANDSHAKE {
            assert!(failure.to_string().contains("decode_error"), "{failure}");
        } else {
            // Complete, it is refused: a client sent a NewSessionTicket.
            assert!(
                failure.to_string().contains("unexpected_message"),
                "{failure}"
            );
        }
        assert!(
            peak <= 2 * (MAX_HANDSHAKE + 4 + MAX_PLAINTEXT),
            "held {peak} bytes"
        );
    }
}

/// A peer that seals any inner plaintext it likes under the real keys: whatever the
/// content types, contents, padding and sizes, the receiver (either engine) delivers
/// only application data, in order, and every failure it detects reaches the peer as
/// the alert it names. The same cases run coverage-guided with `cargo fuzz run
/// crafted` (see `fuzz/`).
#[test]
fn crafted_inner_plaintexts_meet_the_record_checks() {
    let rounds = std::env::var("TLSFLOW_FUZZ_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let mut servers = vec![crate::EngineKind::Rustls];
    if cfg!(feature = "openssl") {
        servers.push(crate::EngineKind::Openssl);
    }
    for server in servers {
        let configs = crate::testing::self_signed_configs_on(
            crate::EngineKind::Rustls,
            server,
            crate::Limits::default(),
        )
        .unwrap();
        // What the fuzzer found: a fatal alert OpenSSL has no name for (36) was
        // reported as a protocol error of the receiver's, not as the peer's alert.
        let found: [&[u8]; 1] = [&[0x28, 0x3d, 0x3b, 0x05, 0x0a, 0x24, 0x15]];
        for input in found {
            if let Err(e) = crate::testing::crafted_records(&configs, input) {
                panic!("{server:?}, found input {input:?}: {e}");
            }
        }
        let mut rng = Rng::new(1414);
        for round in 0..rounds {
            let mut input = vec![0u8; rng.log_between(1, 4000)];
            rng.fill(&mut input);
            if let Err(e) = crate::testing::crafted_records(&configs, &input) {
                panic!("{server:?}, round {round}, input {input:?}: {e}");
            }
        }
    }
}

/// Whatever happens to the records on the way, the reader gets a prefix of what was sent
/// and then an error or the end: never other bytes, never a panic. The same cases run
/// coverage-guided with `cargo fuzz run records` (see `fuzz/`).
#[test]
fn damaged_records_never_yield_forged_plaintext() {
    let configs = crate::testing::self_signed_configs(crate::Limits::default()).unwrap();
    let rounds = std::env::var("TLSFLOW_FUZZ_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let mut rng = Rng::new(1313);
    let mut input = [0u8; 32];
    for round in 0..rounds {
        rng.fill(&mut input);
        if let Err(e) = crate::testing::damaged_records(&configs, &input) {
            panic!("round {round}, input {input:?}: {e}");
        }
    }
}
