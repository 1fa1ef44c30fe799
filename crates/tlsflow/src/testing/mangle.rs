//! Damaged records: whatever happens to the ciphertext on the way, a reader gets a prefix of
//! what was sent and then an error or the end, never other bytes.

use crate::session::ReadOutcome;
use crate::{ClientConfig, ServerConfig, Session};

/// Reads the bytes of a case, and zeros once they run out, so any input is a valid case.
pub(super) struct Bytes<'a>(pub(super) &'a [u8]);

impl Bytes<'_> {
    pub(super) fn u8(&mut self) -> usize {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                usize::from(b)
            }
            None => 0,
        }
    }

    pub(super) fn u16(&mut self) -> usize {
        self.u8() << 8 | self.u8()
    }
}

/// Moves everything `from` has to send into `to`, until neither has more to say.
fn converse(a: &mut Session, b: &mut Session) -> Result<(), String> {
    for _ in 0..100 {
        let moved = shuttle(a, b)? + shuttle(b, a)?;
        if moved == 0 && !a.is_handshaking() && !b.is_handshaking() {
            return Ok(());
        }
    }
    Err("the handshake did not finish".into())
}

fn shuttle(from: &mut Session, to: &mut Session) -> Result<usize, String> {
    let mut moved = 0;
    while !from.pending_output().is_empty() {
        let pending = from.pending_output();
        let space = to.input_buffer();
        let n = pending.len().min(space.len());
        if n == 0 {
            break;
        }
        space[..n].copy_from_slice(&pending[..n]);
        from.output_sent(n);
        to.input_received(n)
            .map_err(|e| format!("handshake: {e}"))?;
        moved += n;
    }
    Ok(moved)
}

/// Runs one case of damaged records described by `input` (any bytes: a fuzzer's, or a
/// random generator's).
///
/// A client and a server from `configs` complete a handshake in memory; the client seals
/// application data (the input says how much, whether it updates its keys between two
/// writes and whether it sends `close_notify`); the input then damages the ciphertext
/// (flips, overwrites, inserts, removes bytes, or cuts it short) and says how the server
/// receives it (the size of each transport read) and reads it (the size of its buffer).
///
/// # Errors
///
/// A description of the failure when the server delivered plaintext that was never sent,
/// or the handshake did not complete. A panic is a bug too.
pub fn damaged_records(configs: &(ClientConfig, ServerConfig), input: &[u8]) -> Result<(), String> {
    let mut input = Bytes(input);
    let (client_config, server_config) = configs;
    let mut client = client_config
        .session("localhost")
        .map_err(|e| e.to_string())?;
    let mut server = server_config.session().map_err(|e| e.to_string())?;
    converse(&mut client, &mut server)?;

    let first = input.u16() % 40_000 + 1;
    let flags = input.u8();
    let second = input.u8() * 100;
    let sent: Vec<u8> = (0..first + second).map(|i| (i % 251) as u8).collect();
    let mut wire = Vec::new();
    let mut seal = |client: &mut Session, data: &[u8]| -> Result<(), String> {
        let mut done = 0;
        while done < data.len() {
            done += client
                .write_plaintext(&data[done..])
                .map_err(|e| format!("write: {e}"))?;
            wire.extend_from_slice(client.pending_output());
            let n = client.pending_output().len();
            client.output_sent(n);
        }
        Ok(())
    };
    seal(&mut client, &sent[..first])?;
    if flags & 1 != 0 {
        client
            .refresh_traffic_keys()
            .map_err(|e| format!("key update: {e}"))?;
    }
    seal(&mut client, &sent[first..])?;
    if flags & 2 != 0 {
        client
            .close_write()
            .map_err(|e| format!("close_notify: {e}"))?;
    }
    wire.extend_from_slice(client.pending_output());

    let original = wire.clone();
    for _ in 0..input.u8() % 5 {
        if wire.is_empty() {
            break;
        }
        let at = input.u16() % wire.len();
        let value = input.u8() as u8;
        match input.u8() % 5 {
            0 => wire[at] ^= 1 << (value % 8),
            1 => wire[at] = value,
            2 => wire.insert(at, value),
            3 => {
                wire.remove(at);
            }
            _ => wire.truncate(at),
        }
    }
    let damaged = wire != original;

    let piece = input.u16() % 20_000 + 1;
    let mut buf = vec![0; input.u16() % 70_000 + 1];
    let mut got = Vec::new();
    let mut fed = 0;
    let mut eof = false;
    let outcome = loop {
        match server.read_plaintext(&mut buf) {
            Ok(ReadOutcome::Data(n)) => {
                got.extend_from_slice(&buf[..n]);
                continue;
            }
            Ok(ReadOutcome::NeedInput) if eof => break "a stall after end-of-file",
            Ok(ReadOutcome::NeedInput) => {}
            Ok(ReadOutcome::Closed) => break "a clean close",
            Ok(ReadOutcome::NeedOutput) => {
                // The peer's answers go nowhere here.
                let queued = server.pending_output().len();
                server.output_sent(queued);
                continue;
            }
            Err(_) => break "an error",
        }
        let space = server.input_buffer();
        let n = space.len().min(piece).min(wire.len() - fed);
        space[..n].copy_from_slice(&wire[fed..fed + n]);
        fed += n;
        eof = n == 0;
        // A failure is read back by the next read, after the plaintext before it. Zero
        // bytes report the end of the stream.
        let _ = server.input_received(n);
    };
    if got.len() > sent.len() || got != sent[..got.len()] {
        return Err(format!(
            "the server delivered {} bytes that were not sent (of {} sent)",
            got.len(),
            sent.len()
        ));
    }
    // Damage is always detected; an intact stream is delivered whole and ends as it was
    // ended: a clean close after close_notify, an error (truncation) without it.
    let closed = flags & 2 != 0;
    let expected = if damaged || !closed {
        "an error"
    } else {
        "a clean close"
    };
    if outcome != expected || (!damaged && got.len() != sent.len()) {
        return Err(format!(
            "{outcome} after {} of {} bytes, expected {expected} (stream {})",
            got.len(),
            sent.len(),
            if damaged { "damaged" } else { "intact" }
        ));
    }
    Ok(())
}
