//! Tests of the session core on its own: two sessions, bytes moved by hand.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::{ClientConfig, SelfSigned, ServerConfig};

fn pair(limits: Limits) -> (Session, Session) {
    let cert = SelfSigned::generate(&["localhost"]).unwrap();
    let server = ServerConfig::builder()
        .self_signed(&cert)
        .limits(limits)
        .build()
        .unwrap();
    let client = ClientConfig::builder()
        .ca_certificate(cert.cert_der())
        .limits(limits)
        .build()
        .unwrap();
    (
        client.session("localhost").unwrap(),
        server.session().unwrap(),
    )
}

/// Moves up to `max` bytes of `from`'s output into `to`; returns how many moved.
fn shuttle(from: &mut Session, to: &mut Session, max: usize) -> usize {
    let pending = from.pending_output();
    let buf = to.input_buffer();
    let n = pending.len().min(buf.len()).min(max);
    buf[..n].copy_from_slice(&pending[..n]);
    from.output_sent(n);
    if n > 0 {
        to.input_received(n).unwrap();
    }
    n
}

fn handshake(c: &mut Session, s: &mut Session) {
    while c.is_handshaking() || s.is_handshaking() {
        let moved = shuttle(c, s, usize::MAX) + shuttle(s, c, usize::MAX);
        assert!(moved > 0, "handshake stalled");
    }
}

fn read_all(s: &mut Session) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let ReadOutcome::Data(n) = s.read_plaintext(&mut buf).unwrap() {
        out.extend_from_slice(&buf[..n]);
    }
    out
}

#[test]
fn no_plaintext_is_accepted_during_the_handshake() {
    let (mut c, mut s) = pair(Limits::default());
    assert_eq!(c.state(), State::Handshaking);
    assert!(
        !c.pending_output().is_empty(),
        "the ClientHello is ready at once"
    );
    assert_eq!(c.write_plaintext(b"early").unwrap(), 0);
    handshake(&mut c, &mut s);
    assert_eq!((c.state(), s.state()), (State::Open, State::Open));
    assert_eq!(c.write_plaintext(b"hello").unwrap(), 5);
}

#[test]
fn partial_sends_deliver_every_byte_once_and_in_order() {
    let (mut c, mut s) = pair(Limits::default());
    handshake(&mut c, &mut s);
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let (mut accepted, mut got) = (0, Vec::new());
    let mut step = 1;
    while got.len() < data.len() {
        accepted += c.write_plaintext(&data[accepted..]).unwrap();
        // The transport takes an odd, growing number of bytes at a time.
        shuttle(&mut c, &mut s, step);
        step = step % 997 + 13;
        got.extend(read_all(&mut s));
    }
    assert_eq!(got, data);
    assert_eq!(c.counters().plaintext_accepted, data.len() as u64);
    assert_eq!(s.counters().plaintext_delivered, data.len() as u64);
}

#[test]
fn the_send_limit_bounds_queued_ciphertext() {
    let limits = Limits {
        send: 20_000,
        receive: 0,
    };
    let (mut c, mut s) = pair(limits);
    handshake(&mut c, &mut s);
    let data = vec![1u8; 1 << 20];
    let mut accepted = 0;
    loop {
        let n = c.write_plaintext(&data[accepted..]).unwrap();
        if n == 0 {
            break;
        }
        accepted += n;
    }
    let queued = c.buffered().outgoing_ciphertext;
    assert!(
        (16 * 1024..=20_000).contains(&accepted),
        "accepted {accepted}"
    );
    assert!(queued <= 20_000 + 64, "queued {queued}");
    assert!(c.interest().write);
    assert_eq!(
        c.limits().receive,
        MAX_RECORD_WIRE_SIZE,
        "receive raised to one record"
    );
}

#[test]
#[should_panic(expected = "transport reported")]
fn reporting_more_sent_than_pending_is_a_driver_bug() {
    let (mut c, _s) = pair(Limits::default());
    let pending = c.pending_output().len();
    c.output_sent(pending + 1);
}

#[test]
fn close_notify_is_queued_once_and_states_follow_the_diagram() {
    let (mut c, mut s) = pair(Limits::default());
    assert!(
        !c.close_write().unwrap(),
        "no close_notify before the handshake is done"
    );
    handshake(&mut c, &mut s);
    assert!(c.close_write().unwrap());
    let queued = c.pending_output().len();
    assert!(c.close_write().unwrap());
    assert_eq!(
        c.pending_output().len(),
        queued,
        "close_notify queued twice"
    );
    assert_eq!(c.state(), State::WriteClosed);
    assert!(matches!(
        c.write_plaintext(b"x"),
        Err(Error::WriteAfterShutdown)
    ));
    shuttle(&mut c, &mut s, usize::MAX);
    let mut buf = [0u8; 16];
    assert_eq!(s.read_plaintext(&mut buf).unwrap(), ReadOutcome::Closed);
    assert_eq!(s.state(), State::ReadClosed);
    assert_eq!(
        s.write_plaintext(b"late reply").unwrap(),
        10,
        "half-close: the server still writes"
    );
    s.close_write().unwrap();
    assert_eq!(s.state(), State::Closed);
    shuttle(&mut s, &mut c, usize::MAX);
    assert_eq!(read_all(&mut c), b"late reply");
    assert_eq!(c.read_plaintext(&mut buf).unwrap(), ReadOutcome::Closed);
    assert_eq!(c.state(), State::Closed);
}

#[test]
fn end_of_file_without_close_notify_is_truncation() {
    let (mut c, mut s) = pair(Limits::default());
    handshake(&mut c, &mut s);
    s.write_plaintext(b"partial").unwrap();
    shuttle(&mut s, &mut c, usize::MAX);
    c.input_received(0).unwrap();
    assert_eq!(read_all_until_error(&mut c), (b"partial".to_vec(), true));
    assert!(matches!(
        c.read_plaintext(&mut [0u8; 4]),
        Err(Error::Truncated)
    ));

    let (mut c, mut s) = pair(Limits::default());
    handshake(&mut c, &mut s);
    c.set_lenient_eof(true);
    c.input_received(0).unwrap();
    assert_eq!(
        c.read_plaintext(&mut [0u8; 4]).unwrap(),
        ReadOutcome::Closed
    );
}

fn read_all_until_error(s: &mut Session) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read_plaintext(&mut buf) {
            Ok(ReadOutcome::Data(n)) => out.extend_from_slice(&buf[..n]),
            Ok(_) => return (out, false),
            Err(Error::Truncated) => return (out, true),
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn end_of_file_during_the_handshake_fails_the_session() {
    let (_c, mut s) = pair(Limits::default());
    assert!(matches!(s.input_received(0), Err(Error::HandshakeEof)));
    assert_eq!(s.state(), State::Failed);
    assert!(matches!(s.check(), Err(Error::HandshakeEof)));
}

#[test]
fn garbage_fails_the_session_and_the_failure_sticks() {
    let (_c, mut s) = pair(Limits::default());
    let garbage = b"GET / HTTP/1.1\r\nHost: example\r\n\r\n";
    let buf = s.input_buffer();
    buf[..garbage.len()].copy_from_slice(garbage);
    let err = s.input_received(garbage.len()).unwrap_err();
    assert!(matches!(err, Error::Protocol { .. }), "{err:?}");
    assert_eq!(s.state(), State::Failed);
    assert!(s.input_buffer().is_empty());
    assert!(s.write_plaintext(b"x").is_err());
    assert!(s.read_plaintext(&mut [0u8; 4]).is_err());
    assert!(s.close_write().is_err());
    let _ = s.fail(Error::WriteZero);
    assert!(
        matches!(s.check(), Err(Error::Protocol { .. })),
        "the first error sticks"
    );
    assert!(
        s.pending_output().is_empty(),
        "a transport failure drops queued output"
    );
}

#[test]
fn random_bytes_never_panic() {
    let mut state = 0x1234_5678_u64;
    for round in 0..300 {
        let (mut c, mut s) = pair(Limits::default());
        if round % 3 == 0 {
            handshake(&mut c, &mut s);
        }
        let target = if round % 2 == 0 { &mut c } else { &mut s };
        for _ in 0..8 {
            let buf = target.input_buffer();
            if buf.is_empty() {
                break;
            }
            let len = (state as usize % buf.len()).clamp(1, 2000);
            for byte in &mut buf[..len] {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *byte = state as u8;
            }
            if target.input_received(len).is_err() {
                break;
            }
            let _ = target.read_plaintext(&mut [0u8; 64]);
        }
    }
}
