//! Crafted records: a peer that seals whatever inner plaintext it likes under the real
//! traffic keys, so that what a receiver checks after decryption (content type, padding,
//! alerts, post-handshake messages, sizes) meets every input a fuzzer can think of.

use super::mangle::Bytes;
use crate::engine::{Engine, Output, PlainRead, RustlsEngine};
use crate::session::ReadOutcome;
use crate::{ClientConfig, Error, ServerConfig, Session};

const ALERT: u8 = 21;
const HANDSHAKE: u8 = 22;
const APPLICATION_DATA: u8 = 23;

/// Runs one case of crafted records described by `input` (any bytes).
///
/// A client engine (rustls, on tlsflow's record layer) completes a handshake in memory with
/// a server session from `configs` (either engine). The client then seals up to 16 records
/// whose inner plaintexts the input chooses: content type (application data, alert,
/// handshake, zero, or any byte), content (a pattern or the input's own bytes, up to 17,000
/// bytes), padding, or raw bytes with no content type at all; after a record it may move
/// to its next key (as after a KeyUpdate). The server receives them in pieces and reads
/// them with a buffer, both of sizes the input chooses.
///
/// # Errors
///
/// A description of the broken rule: the server delivered bytes that were not sent as
/// application data in that order; or it failed (other than by the peer's own alert)
/// without telling the peer why, in an alert the peer receives. A panic is a bug too.
pub fn crafted_records(configs: &(ClientConfig, ServerConfig), input: &[u8]) -> Result<(), String> {
    let mut input = Bytes(input);
    let (client_config, server_config) = configs;
    let rustls = client_config
        .rustls()
        .ok_or("the client configuration must use the rustls engine")?;
    let mut client =
        RustlsEngine::client(rustls.clone(), "localhost").map_err(|e| e.to_string())?;
    let mut server = server_config.session().map_err(|e| e.to_string())?;
    handshake(&mut client, &mut server)?;

    let (wire, expected) = seal_records(&mut client, &mut input)?;
    if wire.is_empty() {
        // Not on tlsflow's record layer (a TLS 1.2 configuration): nothing to craft.
        return Ok(());
    }
    let piece = input.u16() % 20_000 + 1;
    let mut buf = vec![0; input.u16() % 70_000 + 1];
    let mut got = Vec::new();
    let mut answers = Vec::new();
    let mut fed = 0;
    let ending = loop {
        match server.read_plaintext(&mut buf) {
            Ok(ReadOutcome::Data(n)) => got.extend_from_slice(&buf[..n]),
            Ok(ReadOutcome::NeedInput) if fed == wire.len() => break Ok(()),
            Ok(ReadOutcome::NeedInput) => {
                let space = server.input_buffer();
                let n = space.len().min(piece).min(wire.len() - fed);
                if n == 0 {
                    return Err("the server takes no input and reads nothing".into());
                }
                space[..n].copy_from_slice(&wire[fed..fed + n]);
                fed += n;
                // A failure is read back by the next read, after the plaintext before it.
                let _ = server.input_received(n);
            }
            Ok(ReadOutcome::NeedOutput) => take_output(&mut server, &mut answers),
            Ok(ReadOutcome::Closed) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    if got.len() > expected.len() || got != expected[..got.len()] {
        return Err(format!(
            "the server delivered {} bytes that were not sent so (of {} sent)",
            got.len(),
            expected.len()
        ));
    }
    let failure = match ending {
        Ok(()) | Err(Error::PeerAlert { .. }) => return Ok(()),
        Err(failure) => failure,
    };
    // Every failure the server detects reaches the peer as an alert.
    take_output(&mut server, &mut answers);
    match heard(&mut client, &answers) {
        Some(Error::PeerAlert { alert }) => {
            let alert = crate::wire::alert_name(u8::from(alert));
            let engine_names_it = server_config.rustls().is_none()
                || failure.to_string().contains(&format!("({alert})"));
            if engine_names_it {
                Ok(())
            } else {
                Err(format!(
                    "the server failed with {failure}, but sent {alert}"
                ))
            }
        }
        other => Err(format!(
            "the server failed with {failure}, and the peer heard {other:?}"
        )),
    }
}

/// Seals the records the input describes; returns the wire bytes and the application data
/// a correct receiver delivers (everything up to the first record it must refuse is a
/// prefix of it).
fn seal_records(
    client: &mut RustlsEngine,
    input: &mut Bytes<'_>,
) -> Result<(Vec<u8>, Vec<u8>), String> {
    let mut wire = Output::default();
    let mut expected = Vec::new();
    for record in 0..input.u8() % 16 + 1 {
        let flags = input.u8();
        let len = input.u16() % 17_000;
        let mut inner: Vec<u8> = if flags & 8 != 0 {
            (0..len).map(|_| input.u8() as u8).collect()
        } else {
            (0..len).map(|i| ((i + record) % 251) as u8).collect()
        };
        if flags & 32 == 0 {
            inner.push(match flags & 7 {
                0..=2 => APPLICATION_DATA,
                3 => ALERT,
                4 => HANDSHAKE,
                5 => 0,
                _ => input.u8() as u8,
            });
            let padding = if flags & 16 != 0 {
                input.u16() % 300
            } else {
                0
            };
            inner.resize(inner.len() + padding, 0);
        }
        let sealed = client
            .seal_inner(&inner, flags & 64 != 0, &mut wire)
            .map_err(|e| format!("sealing: {e}"))?;
        if !sealed {
            return Ok((Vec::new(), Vec::new()));
        }
        if let Some(at) = inner.iter().rposition(|&b| b != 0) {
            if inner[at] == APPLICATION_DATA {
                expected.extend_from_slice(&inner[..at]);
            }
        }
    }
    Ok((wire.pending().to_vec(), expected))
}

/// Moves what the server queued for the peer into `to`.
fn take_output(server: &mut Session, to: &mut Vec<u8>) {
    let pending = server.pending_output();
    to.extend_from_slice(pending);
    let n = pending.len();
    server.output_sent(n);
}

/// Completes the handshake between the client engine and the server session, and delivers
/// what the server sends after it (session tickets).
fn handshake(client: &mut RustlsEngine, server: &mut Session) -> Result<(), String> {
    for _ in 0..100 {
        let mut to_server = Output::default();
        client.take_ciphertext(&mut to_server);
        let mut moved = to_server.len();
        let mut at = 0;
        while at < to_server.len() {
            let space = server.input_buffer();
            let n = space.len().min(to_server.len() - at);
            if n == 0 {
                return Err("the server takes no handshake input".into());
            }
            space[..n].copy_from_slice(&to_server.pending()[at..at + n]);
            server
                .input_received(n)
                .map_err(|e| format!("handshake: {e}"))?;
            at += n;
        }
        let mut to_client = Vec::new();
        take_output(server, &mut to_client);
        moved += to_client.len();
        if let Some(err) = heard(client, &to_client) {
            return Err(format!("handshake: {err}"));
        }
        if moved == 0 && !client.is_handshaking() && !server.is_handshaking() {
            return Ok(());
        }
    }
    Err("the handshake did not finish".into())
}

/// Gives `bytes` to the client engine and reads what it makes of them: the error it
/// reports, if any.
fn heard(client: &mut RustlsEngine, bytes: &[u8]) -> Option<Error> {
    let mut at = 0;
    let mut scratch = vec![0u8; 16 * 1024];
    loop {
        loop {
            match client.read_plaintext(&mut scratch) {
                Ok(PlainRead::Data(_)) => {}
                Ok(_) => break,
                Err(e) => return Some(e),
            }
        }
        if at == bytes.len() {
            return None;
        }
        let space = client.input_space(72 * 1024);
        let n = space.len().min(bytes.len() - at);
        if n == 0 {
            return Some(Error::protocol("the client takes no input"));
        }
        space[..n].copy_from_slice(&bytes[at..at + n]);
        at += n;
        if let Err(e) = client.input_filled(n) {
            return Some(e);
        }
    }
}
