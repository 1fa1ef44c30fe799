//! Hostile peers (promise 10): a peer that completes a real TLS 1.3 handshake and then sends,
//! under the real traffic keys, records no honest peer sends. Each case asserts, for both
//! engines, the error tlsflow reports and the alert that reaches the peer on the wire
//! (RFC 8446, sections 5 and 6).
//!
//! Where the OpenSSL engine answers differently from the RFC's choice, the case asserts what
//! OpenSSL does (its alerts are OpenSSL's own, see docs/conformance.md).

#![allow(clippy::unwrap_used)]

#[path = "crafted/peer.rs"]
mod peer;

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use peer::{
    handshake_message, key_update, CraftedPeer, Received, ALERT, APPLICATION_DATA,
    CERTIFICATE_REQUEST, CHANGE_CIPHER_SPEC, HANDSHAKE, NEW_SESSION_TICKET,
};
use tlsflow::{EngineKind, Error, Limits, ProtocolVersion, SelfSigned};

const ENGINES: [EngineKind; 2] = [EngineKind::Rustls, EngineKind::Openssl];
const TIMEOUT: Duration = Duration::from_secs(20);

const WARNING: u8 = 1;
const FATAL: u8 = 2;
const CLOSE_NOTIFY: u8 = 0;
const UNEXPECTED_MESSAGE: u8 = 10;
const BAD_RECORD_MAC: u8 = 20;
const RECORD_OVERFLOW: u8 = 22;
const ILLEGAL_PARAMETER: u8 = 47;
const DECODE_ERROR: u8 = 50;
const USER_CANCELED: u8 = 90;

/// How tlsflow's side of a case ended: what it read, and how reading ended.
struct Outcome {
    data: Vec<u8>,
    end: io::Result<()>,
}

/// tlsflow's side of a case, in a thread: a blocking stream that reads until it fails or
/// the peer closes. It keeps its socket open until released, so that the peer reads
/// everything sent before the socket is closed.
struct Tlsflow {
    outcome: mpsc::Receiver<Outcome>,
    release: mpsc::Sender<()>,
}

impl Tlsflow {
    fn spawn(
        connect: impl FnOnce() -> io::Result<tlsflow::TlsStream<TcpStream>> + Send + 'static,
    ) -> Tlsflow {
        let (tx, outcome) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        thread::spawn(move || {
            let mut stream = match connect() {
                Ok(stream) => stream,
                Err(e) => {
                    let _ = tx.send(Outcome {
                        data: Vec::new(),
                        end: Err(e),
                    });
                    return;
                }
            };
            let mut data = Vec::new();
            let mut buf = vec![0u8; 64 * 1024];
            let end = loop {
                match stream.read(&mut buf) {
                    Ok(0) => break Ok(()),
                    Ok(n) => data.extend_from_slice(&buf[..n]),
                    Err(e) => break Err(e),
                }
            };
            let _ = tx.send(Outcome { data, end });
            let _ = released.recv_timeout(TIMEOUT);
        });
        Tlsflow { outcome, release }
    }

    fn outcome(&self) -> Outcome {
        self.outcome
            .recv_timeout(TIMEOUT)
            .expect("tlsflow's side ends in time")
    }
}

impl Drop for Tlsflow {
    fn drop(&mut self) {
        let _ = self.release.send(());
    }
}

/// Reads until the end or an error.
fn read_all(reader: &mut impl Read) -> Outcome {
    let mut data = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let end = loop {
        match reader.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => data.extend_from_slice(&buf[..n]),
            Err(e) => break Err(e),
        }
    };
    Outcome { data, end }
}

async fn read_all_tokio(reader: &mut (impl tokio::io::AsyncRead + Unpin)) -> Outcome {
    use tokio::io::AsyncReadExt;
    let mut data = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let end = loop {
        match reader.read(&mut buf).await {
            Ok(0) => break Ok(()),
            Ok(n) => data.extend_from_slice(&buf[..n]),
            Err(e) => break Err(e),
        }
    };
    Outcome { data, end }
}

async fn read_all_futures(reader: &mut (impl futures_io::AsyncRead + Unpin)) -> Outcome {
    use smol::io::AsyncReadExt;
    let mut data = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let end = loop {
        match reader.read(&mut buf).await {
            Ok(0) => break Ok(()),
            Ok(n) => data.extend_from_slice(&buf[..n]),
            Err(e) => break Err(e),
        }
    };
    Outcome { data, end }
}

/// How tlsflow's side reads in [`against_server_with`].
#[derive(Clone, Copy, Debug)]
enum Driver {
    StdReadHalf,
    Tokio,
    TokioReadHalf,
    Futures,
    FuturesReadHalf,
}

/// A TLS 1.3 tlsflow server config on `engine` with `limits`, and a client config (for the
/// crafted peer) that trusts its certificate.
fn server_configs(
    engine: EngineKind,
    limits: Limits,
) -> (tlsflow::ServerConfig, tlsflow::ClientConfig) {
    let cert = SelfSigned::generate(&["localhost"]).unwrap();
    let server = tlsflow::ServerConfig::builder()
        .self_signed(&cert)
        .limits(limits)
        .versions(&[ProtocolVersion::Tls13])
        .engine(engine)
        .build()
        .unwrap();
    let client = tlsflow::ClientConfig::builder()
        .ca_certificate(cert.cert_der())
        .build()
        .unwrap();
    (server, client)
}

/// A tlsflow server on `engine` read through `driver`, and the crafted peer connected to
/// it as a client.
fn against_server_with(engine: EngineKind, driver: Driver) -> (CraftedPeer, Tlsflow) {
    let (server, client) = server_configs(engine, Limits::default());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, outcome) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    // The peer plays its part once tlsflow's side is reading as `driver` reads: a record
    // that arrived with the handshake's last message would fail the handshake instead.
    let (set, ready) = mpsc::channel::<()>();
    thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        let wait = || {
            let _ = released.recv_timeout(TIMEOUT);
        };
        match driver {
            Driver::StdReadHalf => {
                let mut stream = server.accept(tcp).unwrap();
                stream.handshake().unwrap();
                let (mut reader, _writer) = stream.into_split().unwrap();
                let _ = set.send(());
                let _ = tx.send(read_all(&mut reader));
                wait();
            }
            Driver::Tokio | Driver::TokioReadHalf => {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async move {
                    tcp.set_nonblocking(true).unwrap();
                    let tcp = tokio::net::TcpStream::from_std(tcp).unwrap();
                    let mut stream = server.accept_tokio(tcp).await.unwrap();
                    if let Driver::Tokio = driver {
                        let _ = set.send(());
                        let _ = tx.send(read_all_tokio(&mut stream).await);
                        wait();
                    } else {
                        let (mut reader, _writer) =
                            stream.split_with(|tcp| tcp.into_split()).unwrap();
                        let _ = set.send(());
                        let _ = tx.send(read_all_tokio(&mut reader).await);
                        wait();
                    }
                });
            }
            Driver::Futures | Driver::FuturesReadHalf => {
                smol::block_on(async move {
                    let tcp = smol::net::TcpStream::try_from(tcp).unwrap();
                    let mut stream = server.accept_futures(tcp).await.unwrap();
                    if let Driver::Futures = driver {
                        let _ = set.send(());
                        let _ = tx.send(read_all_futures(&mut stream).await);
                        wait();
                    } else {
                        let (mut reader, _writer) =
                            stream.split_with(|tcp| (tcp.clone(), tcp)).unwrap();
                        let _ = set.send(());
                        let _ = tx.send(read_all_futures(&mut reader).await);
                        wait();
                    }
                });
            }
        }
    });
    let tcp = TcpStream::connect(addr).unwrap();
    let peer = CraftedPeer::connect(tcp, client.rustls().unwrap().clone());
    ready
        .recv_timeout(TIMEOUT)
        .expect("tlsflow's side completes its handshake");
    (peer, Tlsflow { outcome, release })
}

/// A tlsflow server on `engine` and the crafted peer connected to it as a client.
fn against_server(engine: EngineKind) -> (CraftedPeer, Tlsflow) {
    let (server, client) = server_configs(engine, Limits::default());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let side = Tlsflow::spawn(move || {
        let (tcp, _) = listener.accept()?;
        tcp.set_read_timeout(Some(TIMEOUT))?;
        let mut stream = server.accept(tcp)?;
        stream.handshake()?;
        Ok(stream)
    });
    let tcp = TcpStream::connect(addr).unwrap();
    let peer = CraftedPeer::connect(tcp, client.rustls().unwrap().clone());
    (peer, side)
}

/// A tlsflow client on `engine` and the crafted peer as its server.
fn against_client(engine: EngineKind) -> (CraftedPeer, Tlsflow) {
    let cert = SelfSigned::generate(&["localhost"]).unwrap();
    let server = tlsflow::ServerConfig::builder()
        .self_signed(&cert)
        .build()
        .unwrap();
    let mut rustls_server = (**server.rustls().unwrap()).clone();
    // The peer takes its keys as soon as the handshake is over: no tickets in between.
    rustls_server.send_tls13_tickets = 0;
    let client = tlsflow::ClientConfig::builder()
        .ca_certificate(cert.cert_der())
        .versions(&[ProtocolVersion::Tls13])
        .engine(engine)
        .build()
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let side = Tlsflow::spawn(move || {
        let tcp = TcpStream::connect(addr)?;
        tcp.set_read_timeout(Some(TIMEOUT))?;
        let mut stream = client.connect("localhost", tcp)?;
        stream.handshake()?;
        Ok(stream)
    });
    let (tcp, _) = listener.accept().unwrap();
    let peer = CraftedPeer::accept(tcp, Arc::new(rustls_server));
    (peer, side)
}

/// What a case expects of one engine: the alert on the wire (`None`: none at all) and a
/// piece of tlsflow's error message (`None`: reading ends cleanly).
#[derive(Clone, Copy, Debug)]
struct Expect {
    alert: Option<u8>,
    error: Option<&'static str>,
}

const fn fails(alert: u8, error: &'static str) -> Expect {
    Expect {
        alert: Some(alert),
        error: Some(error),
    }
}

const CLEAN: Expect = Expect {
    alert: None,
    error: None,
};

/// Sets up tlsflow's side and the crafted peer for a case.
type Role = fn(EngineKind) -> (CraftedPeer, Tlsflow);

/// A tlsflow server, read whole and through a split stream's read half (which opens
/// application data on its own, and hands every other record to the session).
const SERVER: &[Role] = &[against_server, against_server_read_half];
/// A tlsflow client.
const CLIENT: &[Role] = &[against_client];

fn against_server_read_half(engine: EngineKind) -> (CraftedPeer, Tlsflow) {
    against_server_with(engine, Driver::StdReadHalf)
}

/// Runs a case in each of `roles`: `send` plays the peer after the handshake; the outcome
/// must match `rustls` on the rustls engine and `openssl` on the OpenSSL engine. Returns
/// what tlsflow read, per role and engine.
fn case(
    name: &str,
    roles: &[Role],
    send: impl Fn(&mut CraftedPeer),
    rustls: Expect,
    openssl: Expect,
) -> Vec<Vec<u8>> {
    let mut read = Vec::new();
    let runs = roles.iter().enumerate().flat_map(|(i, role)| {
        ENGINES
            .into_iter()
            .zip([rustls, openssl])
            .map(move |run| (i, role, run))
    });
    for (i, role, (engine, expect)) in runs {
        let name = format!("{name} (role {i})");
        let name = name.as_str();
        let (mut peer, side) = role(engine);
        send(&mut peer);
        let outcome = side.outcome();
        let wire = match expect.alert {
            Some(_) => peer.expect_alert(),
            None => peer.receive(Duration::from_millis(300)),
        };
        let context = format!("{name}, {engine} engine (on the wire: {wire:?})");
        match (&outcome.end, expect.error) {
            (Err(err), Some(piece)) => {
                let inner = Error::from_io(err)
                    .unwrap_or_else(|| panic!("{context}: not a TLS error: {err}"));
                assert!(
                    matches!(inner, Error::Protocol { .. }),
                    "{context}: expected a protocol error, got {inner:?}"
                );
                assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{context}");
                assert!(
                    inner.to_string().contains(piece),
                    "{context}: expected {piece:?} in {inner}"
                );
            }
            (Ok(()), None) => {}
            (end, expected) => {
                panic!("{context}: reading ended with {end:?}, expected {expected:?}")
            }
        }
        match expect.alert {
            Some(alert) => assert_eq!(
                wire,
                Received::Alert(FATAL, alert),
                "{context}: the alert on the wire"
            ),
            None => assert!(
                matches!(wire, Received::Silence | Received::Eof),
                "{context}: expected nothing on the wire, got {wire:?}"
            ),
        }
        read.push(outcome.data);
    }
    read
}

#[test]
fn an_empty_alert_is_an_unexpected_message() {
    case(
        "empty alert",
        SERVER,
        |p| p.send_record(ALERT, &[]),
        fails(UNEXPECTED_MESSAGE, "unexpected_message"),
        fails(UNEXPECTED_MESSAGE, "bad length"),
    );
}

#[test]
fn an_alert_of_the_wrong_length_is_a_decode_error() {
    for content in [&[FATAL][..], &[FATAL, 40, 0]] {
        case(
            "alert of the wrong length",
            SERVER,
            |p| p.send_record(ALERT, content),
            fails(DECODE_ERROR, "decode_error"),
            fails(UNEXPECTED_MESSAGE, "invalid alert"),
        );
    }
}

#[test]
fn two_alerts_in_one_record_are_a_decode_error() {
    case(
        "two alerts in one record",
        SERVER,
        |p| p.send_record(ALERT, &[WARNING, USER_CANCELED, WARNING, USER_CANCELED]),
        fails(DECODE_ERROR, "decode_error"),
        fails(UNEXPECTED_MESSAGE, "invalid alert"),
    );
}

#[test]
fn an_unknown_inner_content_type_is_an_unexpected_message() {
    case(
        "unknown inner content type",
        SERVER,
        |p| {
            let record = p.seal(99, b"what is this", 0);
            p.send(&record).unwrap();
        },
        fails(UNEXPECTED_MESSAGE, "unexpected_message"),
        fails(UNEXPECTED_MESSAGE, "bad record type"),
    );
}

#[test]
fn an_all_zero_inner_plaintext_is_an_unexpected_message() {
    for len in [1, 100] {
        case(
            "all-zero inner plaintext",
            SERVER,
            |p| {
                let record = p.seal_inner(&vec![0; len]);
                p.send(&record).unwrap();
            },
            fails(UNEXPECTED_MESSAGE, "unexpected_message"),
            fails(UNEXPECTED_MESSAGE, "bad record type"),
        );
    }
}

#[test]
fn a_tag_only_record_is_opened_and_refused_for_having_no_content_type() {
    case(
        "record of only a tag",
        SERVER,
        |p| {
            let record = p.seal_inner(&[]);
            p.send(&record).unwrap();
        },
        fails(UNEXPECTED_MESSAGE, "unexpected_message"),
        // OpenSSL refuses the record without looking inside.
        fails(BAD_RECORD_MAC, "bad record mac"),
    );
}

#[test]
fn a_record_shorter_than_a_tag_is_a_bad_record_mac() {
    case(
        "record shorter than a tag",
        SERVER,
        |p| {
            p.send(&[
                APPLICATION_DATA,
                3,
                3,
                0,
                15,
                1,
                2,
                3,
                4,
                5,
                6,
                7,
                8,
                9,
                10,
                11,
                12,
                13,
                14,
                15,
            ])
            .unwrap()
        },
        fails(BAD_RECORD_MAC, "bad_record_mac"),
        fails(BAD_RECORD_MAC, "bad record mac"),
    );
}

#[test]
fn a_flipped_bit_is_a_bad_record_mac() {
    let read = case(
        "flipped bit",
        SERVER,
        |p| {
            p.send_record(APPLICATION_DATA, b"intact");
            let mut record = p.seal(APPLICATION_DATA, b"damaged", 0);
            let last = record.len() - 1;
            record[last] ^= 0x10;
            p.send(&record).unwrap();
        },
        fails(BAD_RECORD_MAC, "bad_record_mac"),
        fails(BAD_RECORD_MAC, "bad record mac"),
    );
    // What was authenticated before the failure is delivered, and nothing else.
    assert_eq!(read, vec![b"intact".to_vec(); 4]);
}

#[test]
fn inner_plaintext_over_the_limit_is_a_record_overflow() {
    case(
        "inner plaintext of 2^14 + 2 bytes",
        SERVER,
        |p| {
            let record = p.seal(APPLICATION_DATA, &vec![b'x'; (1 << 14) + 1], 0);
            p.send(&record).unwrap();
        },
        fails(RECORD_OVERFLOW, "record_overflow"),
        fails(RECORD_OVERFLOW, "data length too long"),
    );
}

#[test]
fn ciphertext_over_the_limit_is_a_record_overflow() {
    case(
        "ciphertext of 2^14 + 257 bytes",
        SERVER,
        |p| {
            let len = (1u16 << 14) + 257;
            let mut record = vec![APPLICATION_DATA, 3, 3];
            record.extend_from_slice(&len.to_be_bytes());
            record.resize(5 + usize::from(len), 7);
            p.send(&record).unwrap();
        },
        fails(RECORD_OVERFLOW, "record_overflow"),
        fails(RECORD_OVERFLOW, "encrypted length too long"),
    );
}

#[test]
fn change_cipher_spec_after_the_handshake_is_an_unexpected_message() {
    case(
        "ChangeCipherSpec after the handshake",
        SERVER,
        |p| p.send(&[CHANGE_CIPHER_SPEC, 3, 3, 0, 1, 1]).unwrap(),
        fails(UNEXPECTED_MESSAGE, "unexpected_message"),
        fails(UNEXPECTED_MESSAGE, "bad record type"),
    );
}

#[test]
fn an_unprotected_record_after_the_handshake_is_an_unexpected_message() {
    for record in [
        &[ALERT, 3, 3, 0, 2, FATAL, 40][..],
        &[HANDSHAKE, 3, 3, 0, 5, 24, 0, 0, 1, 0],
    ] {
        case(
            "unprotected record after the handshake",
            SERVER,
            |p| p.send(record).unwrap(),
            fails(UNEXPECTED_MESSAGE, "unexpected_message"),
            fails(UNEXPECTED_MESSAGE, "bad record type"),
        );
    }
}

#[test]
fn a_key_update_of_unknown_kind_is_an_illegal_parameter() {
    case(
        "KeyUpdate with request_update 2",
        SERVER,
        |p| p.send_record(HANDSHAKE, &key_update(2)),
        fails(ILLEGAL_PARAMETER, "illegal_parameter"),
        fails(ILLEGAL_PARAMETER, "bad key update"),
    );
}

#[test]
fn a_key_update_must_end_its_record() {
    // Followed by a whole message, and by the start of one (a message split across the key
    // change: its rest would come under the next key).
    let followers = [
        key_update(0),
        handshake_message(NEW_SESSION_TICKET, &[0; 8])[..3].to_vec(),
    ];
    for follower in followers {
        case(
            "KeyUpdate not at the end of its record",
            SERVER,
            |p| {
                let mut content = key_update(0);
                content.extend_from_slice(&follower);
                p.send_record(HANDSHAKE, &content);
            },
            fails(UNEXPECTED_MESSAGE, "unexpected_message"),
            fails(UNEXPECTED_MESSAGE, "not on record boundary"),
        );
    }
}

#[test]
fn a_certificate_request_not_offered_is_an_unexpected_message() {
    case(
        "post-handshake CertificateRequest the client did not offer",
        CLIENT,
        |p| {
            p.send_record(
                HANDSHAKE,
                &handshake_message(CERTIFICATE_REQUEST, &[0, 0, 0]),
            )
        },
        fails(UNEXPECTED_MESSAGE, "unexpected_message"),
        fails(UNEXPECTED_MESSAGE, "unexpected message"),
    );
}

#[test]
fn a_session_ticket_sent_to_a_server_is_an_unexpected_message() {
    let ticket = [0, 0, 0, 60, 0, 0, 0, 1, 1, 0, 0, 4, 1, 2, 3, 4, 0, 0];
    case(
        "NewSessionTicket sent to a server",
        SERVER,
        |p| p.send_record(HANDSHAKE, &handshake_message(NEW_SESSION_TICKET, &ticket)),
        fails(UNEXPECTED_MESSAGE, "unexpected_message"),
        fails(UNEXPECTED_MESSAGE, "unexpected message"),
    );
}

#[test]
fn a_post_handshake_message_over_64_kib_is_refused_while_it_arrives() {
    case(
        "fragmented post-handshake message over 64 KiB",
        CLIENT,
        |p| {
            let message = handshake_message(NEW_SESSION_TICKET, &vec![1; 70_000]);
            for fragment in message.chunks(1 << 14) {
                let record = p.seal(HANDSHAKE, fragment, 0);
                if p.send(&record).is_err() {
                    break;
                }
            }
        },
        fails(DECODE_ERROR, "decode_error"),
        fails(DECODE_ERROR, "length mismatch"),
    );
}

#[test]
fn data_after_a_user_canceled_warning_is_delivered() {
    let read = case(
        "user_canceled, then data",
        SERVER,
        |p| {
            p.send_record(ALERT, &[WARNING, USER_CANCELED]);
            p.send_record(APPLICATION_DATA, b"still here");
            p.send_record(ALERT, &[WARNING, CLOSE_NOTIFY]);
        },
        CLEAN,
        CLEAN,
    );
    assert_eq!(read, vec![b"still here".to_vec(); 4]);
}

#[test]
fn data_after_close_notify_is_ignored() {
    let read = case(
        "data after close_notify",
        SERVER,
        |p| {
            p.send_record(APPLICATION_DATA, b"before");
            p.send_record(ALERT, &[WARNING, CLOSE_NOTIFY]);
            p.send_record(APPLICATION_DATA, b"after");
        },
        CLEAN,
        CLEAN,
    );
    assert_eq!(read, vec![b"before".to_vec(); 4]);
}

/// Key update requests, data, `close_notify` and the end of the TCP stream, all in one
/// burst, through every driver: the end of the transport counts only once every byte
/// before it was read, even when the engine stops reading to answer the requests (the
/// OpenSSL engine does) and the driver reads the transport meanwhile.
#[test]
fn the_end_of_the_stream_waits_for_the_records_before_it() {
    let roles: [(&str, Role); 6] = [
        ("std", against_server),
        ("std read half", |e| {
            against_server_with(e, Driver::StdReadHalf)
        }),
        ("tokio", |e| against_server_with(e, Driver::Tokio)),
        ("tokio read half", |e| {
            against_server_with(e, Driver::TokioReadHalf)
        }),
        ("futures-io", |e| against_server_with(e, Driver::Futures)),
        ("futures-io read half", |e| {
            against_server_with(e, Driver::FuturesReadHalf)
        }),
    ];
    for (driver, role) in roles {
        let read = case(
            &format!("key update requests, data, close_notify, FIN; {driver}"),
            &[role],
            |p| {
                let mut burst = Vec::new();
                // 31 requests at a time, then an empty data record: more in a row are
                // refused.
                for _ in 0..10 {
                    for _ in 0..31 {
                        burst.extend_from_slice(&p.seal(HANDSHAKE, &key_update(1), 0));
                        p.next_sending_key();
                    }
                    burst.extend_from_slice(&p.seal(APPLICATION_DATA, &[], 0));
                }
                burst.extend_from_slice(&p.seal(APPLICATION_DATA, b"after the requests", 0));
                burst.extend_from_slice(&p.seal(ALERT, &[WARNING, CLOSE_NOTIFY], 0));
                p.send(&burst).unwrap();
                p.finish();
            },
            CLEAN,
            CLEAN,
        );
        let expected = b"after the requests".to_vec();
        assert_eq!(read, [expected.clone(), expected], "{driver}");
    }
}

/// The same burst given to a [`tlsflow::Session`] directly, with the end of the transport
/// reported before the first read, as a sans-I/O caller may: every record before the end
/// is read (the OpenSSL engine stops after each answer with input left, which is not a
/// truncation), and the stream ends cleanly.
#[test]
fn the_end_of_the_transport_reported_early_still_waits_for_the_records() {
    for engine in ENGINES {
        let (mut peer, stream) = established(engine, Limits::default());
        let (_, mut session) = stream.into_parts();
        let mut burst = Vec::new();
        for _ in 0..3 {
            for _ in 0..31 {
                burst.extend_from_slice(&peer.seal(HANDSHAKE, &key_update(1), 0));
                peer.next_sending_key();
            }
            burst.extend_from_slice(&peer.seal(APPLICATION_DATA, b"data", 0));
        }
        burst.extend_from_slice(&peer.seal(ALERT, &[WARNING, CLOSE_NOTIFY], 0));
        let space = session.input_buffer();
        assert!(space.len() >= burst.len(), "{engine}: room for the burst");
        space[..burst.len()].copy_from_slice(&burst);
        session.input_received(burst.len()).unwrap();
        session.input_received(0).unwrap();
        let mut read = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            let outcome = session.read_plaintext(&mut buf);
            // The answers leave as soon as they are queued.
            let sent = session.pending_output().len();
            session.output_sent(sent);
            match outcome {
                Ok(tlsflow::session::ReadOutcome::Data(n)) => read.extend_from_slice(&buf[..n]),
                Ok(tlsflow::session::ReadOutcome::Closed) => break,
                other => panic!("{engine}: {other:?} after {read:?}"),
            }
        }
        assert_eq!(read, b"datadatadata", "{engine}");
    }
}

/// The peer's fatal alert is reported as such, by its RFC name (or number, for one no RFC
/// names), and not answered.
#[test]
fn a_fatal_alert_from_the_peer_is_reported_and_not_answered() {
    for (engine, (description, name)) in ENGINES
        .into_iter()
        .flat_map(|e| [(e, (40, "handshake_failure")), (e, (36, "alert 36"))])
    {
        let (mut p, side) = against_server(engine);
        p.send_record(ALERT, &[FATAL, description]);
        let outcome = side.outcome();
        let err = outcome.end.expect_err("the peer's alert is an error");
        assert!(
            matches!(Error::from_io(&err), Some(e @ Error::PeerAlert { .. }) if e.to_string().ends_with(&format!(": {name}"))),
            "{engine}: {err}"
        );
        let wire = p.receive(Duration::from_millis(300));
        assert!(
            matches!(wire, Received::Silence | Received::Eof),
            "{engine}: {wire:?}"
        );
    }
}

/// The transport of the key update flood, in memory: what the peer sends waits in `input`
/// (at most `CAPACITY` bytes, the peer's socket), and what tlsflow answers goes into a
/// socket of `CAPACITY` bytes that the peer never reads.
struct Pipe {
    input: std::collections::VecDeque<u8>,
    answered: usize,
}

const CAPACITY: usize = 256 * 1024;

/// A KeyUpdate in its own record: header, message, content type, tag (also the size of a
/// record of 5 bytes of application data).
const KEY_UPDATE_RECORD: usize = 5 + 5 + 1 + 16;

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.input.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.input.read(buf)
    }
}

impl Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(CAPACITY - self.answered);
        if n == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.answered += n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A peer that sends a million key update requests and never reads what tlsflow answers
/// cannot grow tlsflow's memory: the rustls engine answers all requests with one key update
/// before its next application data (RFC 8446, 4.6.3), and OpenSSL answers each,
/// and once more than the send limit of them waits, tlsflow takes no more input until the
/// transport takes them: the peer is then blocked by its own full socket.
///
/// The handshake runs over TCP; the flood runs in memory, so that what reaches tlsflow
/// depends on tlsflow alone (over loopback TCP, the kernel's own accounting of a peer
/// that never reads stalls the transfer first).
#[test]
fn a_key_update_flood_from_a_peer_that_never_reads_stays_bounded() {
    let total: usize = std::env::var("TLSFLOW_FLOOD")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    // The default limits, and a receive buffer much larger than the send limit: one read
    // then brings far more requests than the send limit has room for answers.
    let large_receive = Limits {
        send: 16 * 1024,
        receive: 1024 * 1024,
    };
    for (engine, limits) in ENGINES
        .into_iter()
        .flat_map(|engine| [(engine, Limits::default()), (engine, large_receive)])
    {
        let (mut peer, stream) = established(engine, limits);
        let (_, session) = stream.into_parts();
        let limits = session.limits();
        let engine = format!("{engine} {limits:?}");
        let pipe = Pipe {
            input: Default::default(),
            answered: 0,
        };
        let mut stream = tlsflow::TlsStream::new(pipe, session);
        let bound = limits.send + tlsflow::session::MAX_RECORD_WIRE_SIZE;
        let (mut sent, mut peak) = (0, 0);
        let mut buf = [0u8; 4096];
        let mut batch = Vec::new();
        let stalled = loop {
            // The peer writes what its socket takes: 31 requests (each moving it to its next
            // key) and an empty application-data record at a time.
            while sent < total && stream.get_ref().input.len() < CAPACITY {
                batch.clear();
                for _ in 0..31.min(total - sent) {
                    batch.extend_from_slice(&peer.seal(HANDSHAKE, &key_update(1), 0));
                    peer.next_sending_key();
                    sent += 1;
                }
                batch.extend_from_slice(&peer.seal(APPLICATION_DATA, &[], 0));
                stream.get_mut().input.extend(&batch);
            }
            let before = stream.get_ref().input.len();
            match stream.read(&mut buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                other => panic!("{engine}: {other:?}"),
            }
            peak = peak.max(stream.buffered().outgoing_ciphertext);
            assert!(
                peak <= bound,
                "{engine}: {peak} bytes of answers queued, more than {bound}"
            );
            let idle = stream.get_ref().input.len() == before;
            if sent == total && stream.get_ref().input.is_empty() {
                break false;
            }
            if idle {
                // tlsflow took nothing: it waits for its answers to leave.
                break true;
            }
        };
        let interest = stream.interest();
        eprintln!(
            "{engine}: {sent} key update requests sent, {} bytes answered into the \
             peer's socket, {peak} bytes queued at most; stalled: {stalled}",
            stream.get_ref().answered
        );
        if engine.starts_with("rustls") {
            // No answer until tlsflow writes application data; then one KeyUpdate answers
            // all the requests, ahead of the data.
            assert_eq!(stream.get_ref().answered, 0, "{engine}: answered early");
            stream.write_all(b"reply").unwrap();
            stream.flush().unwrap();
            assert_eq!(
                stream.get_ref().answered,
                2 * KEY_UPDATE_RECORD,
                "{engine}: one KeyUpdate and one record of 5 bytes"
            );
        }
        if stalled {
            assert!(
                !interest.read && interest.write,
                "{engine}: stalled with {interest:?}"
            );
            assert!(peak > limits.send, "{engine}: stopped below the limit");
        } else {
            assert!(peak <= 64 * 1024, "{engine}: {peak}");
        }
    }
}

/// A tlsflow server on `engine` after its handshake with the crafted peer.
fn established(engine: EngineKind, limits: Limits) -> (CraftedPeer, tlsflow::TlsStream<TcpStream>) {
    let (server, client) = server_configs(engine, limits);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let serving = thread::spawn(move || {
        let (accepted, _) = listener.accept().unwrap();
        let mut stream = server.accept(accepted).unwrap();
        stream.handshake().unwrap();
        stream
    });
    let peer = CraftedPeer::connect(tcp, client.rustls().unwrap().clone());
    (peer, serving.join().unwrap())
}

/// The alert leaves through every driver: std (above), std read half, tokio and its read
/// half, futures-io (smol) and its read half, on both engines.
#[test]
fn alerts_leave_through_every_driver() {
    use Driver::*;
    for driver in [StdReadHalf, Tokio, TokioReadHalf, Futures, FuturesReadHalf] {
        for engine in ENGINES {
            let (mut p, side) = against_server_with(engine, driver);
            p.send_record(APPLICATION_DATA, b"intact");
            let mut record = p.seal(APPLICATION_DATA, b"damaged", 0);
            record[7] ^= 1;
            p.send(&record).unwrap();
            let outcome = side.outcome();
            let context = format!("{driver:?}, {engine} engine");
            assert_eq!(outcome.data, b"intact", "{context}");
            let err = outcome.end.expect_err("a damaged record is an error");
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{context}: {err}");
            assert_eq!(
                p.expect_alert(),
                Received::Alert(FATAL, BAD_RECORD_MAC),
                "{context}"
            );
        }
    }
}

/// `Session::abort` ends a connection on purpose: with the fatal alert of the caller's
/// choosing on tlsflow's record layer (rustls engine), with `close_notify` where the engine
/// cannot send an alert of its own (OpenSSL).
#[test]
fn an_aborted_connection_tells_the_peer() {
    for engine in ENGINES {
        let (server, client) = server_configs(engine, Limits::default());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let tcp = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let serving = thread::spawn(move || {
            let mut stream = server.accept(listener.accept().unwrap().0).unwrap();
            stream.handshake().unwrap();
            stream
        });
        let mut peer = CraftedPeer::connect(tcp, client.rustls().unwrap().clone());
        let mut stream = serving.join().unwrap();
        // The record layer takes over with the first records after the handshake.
        peer.send_record(APPLICATION_DATA, b"ping");
        let mut buf = [0u8; 4];
        stream.read_exact(&mut buf).unwrap();
        let alerted = stream
            .session_mut()
            .abort(tlsflow::rustls::AlertDescription::InternalError)
            .unwrap();
        let flushed = stream.flush();
        let wire = peer.expect_alert();
        if engine == EngineKind::Rustls {
            assert!(alerted, "{engine}");
            let err = flushed.expect_err("an aborted stream reports it");
            assert!(err.to_string().contains("internal_error"), "{err}");
            assert_eq!(wire, Received::Alert(FATAL, 80), "{engine}");
        } else {
            assert!(!alerted, "{engine}");
            flushed.unwrap();
            assert_eq!(wire, Received::Alert(WARNING, CLOSE_NOTIFY), "{engine}");
        }
    }
}
