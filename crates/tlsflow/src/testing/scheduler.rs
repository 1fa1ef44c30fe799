//! A deterministic scheduler that drives a client and a server to a clean close.

use std::io::{self, Read, Write};

use super::{Flow, HostileTransport, Rng};
use crate::session::{Buffered, Limits, MAX_RECORD_WIRE_SIZE};
use crate::TlsStream;

/// A stream the scheduler can drive.
pub trait TestStream: Read + Write {
    /// Sends `close_notify` and flushes it (restartable after `WouldBlock`).
    ///
    /// # Errors
    ///
    /// As [`TlsStream::shutdown`].
    fn shutdown(&mut self) -> io::Result<()>;
    /// The transport underneath.
    fn transport(&mut self) -> &mut HostileTransport;
    /// What the stream buffers now, and its limits.
    fn buffered(&self) -> (Buffered, Limits);
}

impl TestStream for TlsStream<HostileTransport> {
    fn shutdown(&mut self) -> io::Result<()> {
        TlsStream::shutdown(self)
    }
    fn transport(&mut self) -> &mut HostileTransport {
        self.get_mut()
    }
    fn buffered(&self) -> (Buffered, Limits) {
        (TlsStream::buffered(self), self.session().limits())
    }
}

/// The largest outgoing ciphertext a session with these limits may buffer: the send limit,
/// the per-record overhead of what was sealed, and room for a handshake flight and alerts.
pub fn outgoing_bound(limits: Limits) -> usize {
    limits.send + (limits.send / (16 * 1024) + 1) * 64 + 32 * 1024
}

/// Checks that `op`, which succeeded, left no ciphertext queued (`name` says whose).
pub(crate) fn flushed(name: &str, op: &str, buffered: Buffered) -> Result<(), String> {
    if buffered.outgoing_ciphertext > 0 {
        return Err(format!(
            "{name}: {op} succeeded with {} bytes of ciphertext still queued",
            buffered.outgoing_ciphertext
        ));
    }
    Ok(())
}

/// What a run should do.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Seeds the payloads and the choice of actions.
    pub seed: u64,
    /// Bytes the client sends.
    pub client_sends: usize,
    /// Bytes the server sends.
    pub server_sends: usize,
    /// Largest single write (each write is a random size from 1 to this).
    pub max_write: usize,
    /// Largest single read buffer.
    pub max_read: usize,
    /// Calls to the streams after which the run is abandoned as too slow.
    pub max_steps: u64,
    /// Consecutive calls without progress after which the scheduler checks for a hang.
    pub stall_steps: u64,
    /// Writes go through `write_vectored`, each chunk cut into up to four random slices
    /// (some of them empty).
    pub vectored: bool,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            seed: 0,
            client_sends: 64 * 1024,
            server_sends: 64 * 1024,
            max_write: 40_000,
            max_read: 40_000,
            max_steps: 50_000_000,
            stall_steps: 400,
            vectored: false,
        }
    }
}

impl Scenario {
    /// The random payloads the client and the server send, drawn from `rng`.
    pub(crate) fn payloads(&self, rng: &mut Rng) -> (Vec<u8>, Vec<u8>) {
        let mut payload = |len: usize| {
            let mut v = vec![0u8; len];
            rng.fill(&mut v);
            v
        };
        (payload(self.client_sends), payload(self.server_sends))
    }
}

/// What a successful run did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Calls made to the two streams.
    pub steps: u64,
    /// Plaintext bytes the client received.
    pub client_received: usize,
    /// Plaintext bytes the server received.
    pub server_received: usize,
    /// `WouldBlock` returns from the transports.
    pub would_blocks: u64,
}

struct Peer<S> {
    name: &'static str,
    stream: S,
    flow: Flow,
    read_buf: Vec<u8>,
}

impl<S: TestStream> Peer<S> {
    fn done(&self) -> bool {
        self.flow.shut && self.flow.eof
    }

    /// A `WouldBlock` from the stream is legal only if the transport returned one in the
    /// same call.
    fn check_would_block(&mut self, before: u64, op: &str) -> Result<(), String> {
        if self.stream.transport().would_blocks() == before {
            return Err(format!(
                "{}: {op} returned WouldBlock but the transport never blocked (spurious)",
                self.name
            ));
        }
        Ok(())
    }

    fn step(&mut self, action: usize, rng: &mut Rng, scenario: &Scenario) -> Result<(), String> {
        let before = self.stream.transport().would_blocks();
        match action {
            0 if self.flow.sent < self.flow.outgoing.len() => {
                let chunk = self.flow.next_write(rng, scenario);
                let len = chunk.len();
                let written = if scenario.vectored {
                    self.stream.write_vectored(&super::cut(chunk, rng))
                } else {
                    self.stream.write(chunk)
                };
                match written {
                    Ok(n) => self.flow.wrote(self.name, n, len)?,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        self.check_would_block(before, "write")?
                    }
                    Err(e) => return Err(format!("{}: write failed: {e}", self.name)),
                }
            }
            0 | 2 if self.flow.sent == self.flow.outgoing.len() && !self.flow.shut => {
                match self.stream.shutdown() {
                    Ok(()) => {
                        self.check_flushed("shutdown")?;
                        self.flow.shut = true;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        self.check_would_block(before, "shutdown")?
                    }
                    Err(e) => return Err(format!("{}: shutdown failed: {e}", self.name)),
                }
            }
            1 if !self.flow.eof => {
                let len = rng.log_between(1, scenario.max_read);
                match self.stream.read(&mut self.read_buf[..len]) {
                    Ok(0) => {
                        self.flow.clean_end(self.name)?;
                    }
                    Ok(n) => {
                        let data = &self.read_buf[..n];
                        self.flow.read(self.name, data)?;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        self.check_would_block(before, "read")?
                    }
                    Err(e) => {
                        return Err(format!(
                            "{}: read failed after {} bytes: {e}",
                            self.name, self.flow.received
                        ))
                    }
                }
            }
            _ => match self.stream.flush() {
                // Promise 2: a successful flush leaves no accepted byte behind.
                Ok(()) => self.check_flushed("flush")?,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.check_would_block(before, "flush")?
                }
                Err(e) => return Err(format!("{}: flush failed: {e}", self.name)),
            },
        }
        self.check_memory()
    }

    fn check_flushed(&self, op: &str) -> Result<(), String> {
        flushed(self.name, op, self.stream.buffered().0)
    }

    fn check_memory(&self) -> Result<(), String> {
        let (buffered, limits) = self.stream.buffered();
        if buffered.outgoing_ciphertext > outgoing_bound(limits) {
            return Err(format!(
                "{}: {} bytes of outgoing ciphertext buffered, above the bound {}",
                self.name,
                buffered.outgoing_ciphertext,
                outgoing_bound(limits)
            ));
        }
        if buffered.incoming_ciphertext > limits.receive {
            return Err(format!(
                "{}: {} bytes of incoming ciphertext buffered, above the limit {}",
                self.name, buffered.incoming_ciphertext, limits.receive
            ));
        }
        if buffered.incoming_plaintext > 16 * 1024 + MAX_RECORD_WIRE_SIZE {
            return Err(format!(
                "{}: {} bytes of plaintext buffered",
                self.name, buffered.incoming_plaintext
            ));
        }
        Ok(())
    }

    fn progress(&mut self) -> (u64, usize, usize, bool, bool) {
        (
            self.stream.transport().bytes_moved(),
            self.flow.sent,
            self.flow.received,
            self.flow.shut,
            self.flow.eof,
        )
    }
}

/// Drives `client` and `server` through handshake, `scenario`'s payloads both ways at once,
/// and shutdown, choosing each next call at random from the seed.
///
/// # Errors
///
/// A description (naming the side and the offset) of the first broken promise: a byte
/// mismatch, a write of `Ok(0)`, a spurious `WouldBlock`, a buffer above its bound, an
/// unexpected error, or a hang (neither side can progress even with a calm transport).
pub fn run_pair<C: TestStream, S: TestStream>(
    client: C,
    server: S,
    scenario: &Scenario,
) -> Result<Report, String> {
    run_pair_with(client, server, scenario, Rng::new(scenario.seed))
}

/// [`run_pair`], with the payloads and every choice of the next call taken from `rng`
/// instead of the scenario's seed (a [scripted](Rng::scripted) one, for a fuzzer).
///
/// # Errors
///
/// As [`run_pair`].
pub fn run_pair_with<C: TestStream, S: TestStream>(
    client: C,
    server: S,
    scenario: &Scenario,
    mut rng: Rng,
) -> Result<Report, String> {
    let (to_server, to_client) = scenario.payloads(&mut rng);
    let max_read = scenario.max_read.max(1);
    let mut c = Peer {
        name: "client",
        stream: client,
        flow: Flow::new(to_server.clone(), to_client.clone()),
        read_buf: vec![0; max_read],
    };
    let mut s = Peer {
        name: "server",
        stream: server,
        flow: Flow::new(to_client, to_server),
        read_buf: vec![0; max_read],
    };
    let mut report = Report::default();
    let mut last = (c.progress(), s.progress());
    let mut stalled = 0u64;
    while !(c.done() && s.done()) {
        report.steps += 1;
        if report.steps > scenario.max_steps {
            return Err(format!("gave up after {} steps", scenario.max_steps));
        }
        let action = rng.below(4);
        if rng.below(2) == 0 {
            c.step(action, &mut rng, scenario)?;
        } else {
            s.step(action, &mut rng, scenario)?;
        }
        let now = (c.progress(), s.progress());
        if now != last {
            last = now;
            stalled = 0;
            continue;
        }
        stalled += 1;
        if stalled >= scenario.stall_steps {
            // With the transport calm, every pending action of both sides gets a turn; if
            // none moves a byte, neither side can ever progress: a hang.
            c.stream.transport().set_calm(true);
            s.stream.transport().set_calm(true);
            for _ in 0..4 {
                for action in 0..4 {
                    c.step(action, &mut rng, scenario)?;
                    s.step(action, &mut rng, scenario)?;
                }
            }
            c.stream.transport().set_calm(false);
            s.stream.transport().set_calm(false);
            let now = (c.progress(), s.progress());
            if now == last && !(c.done() && s.done()) {
                return Err(format!(
                    "hang: no progress possible (client {}; server {})",
                    c.flow, s.flow
                ));
            }
            last = now;
            stalled = 0;
        }
    }
    report.client_received = c.flow.received;
    report.server_received = s.flow.received;
    report.would_blocks = c.stream.transport().would_blocks() + s.stream.transport().would_blocks();
    Ok(report)
}

/// Runs a client and a server from `configs` over a hostile transport whose every decision
/// comes from `input` (any bytes, a fuzzer's): the first bytes choose the transport's
/// capacity, largest read and write, and how often it returns `WouldBlock` and
/// `Interrupted`, then the amounts to send and the largest write and read; the rest is split
/// into three scripts, for each end of the transport and for the scheduler's choice of the
/// next call. Once a script is used up, its decisions come from a fixed seed.
///
/// # Errors
///
/// As [`run_pair`].
pub fn scripted_pair(
    configs: &(crate::ClientConfig, crate::ServerConfig),
    input: &[u8],
) -> Result<Report, String> {
    let (head, scripts) = input.split_at(input.len().min(12));
    let mut head = super::mangle::Bytes(head);
    let hostility = crate::testing::Hostility {
        capacity: head.u16() % 70_000 + 1,
        max_io: head.u16() % 40_000 + 1,
        would_block_percent: (head.u8() % 80) as u8,
        interrupt_percent: (head.u8() % 30) as u8,
    };
    // The narrowest pipe bounds throughput: payloads in proportion keep a run within a few
    // million calls, so that a slow input is not mistaken for a hang.
    let narrowest = hostility.capacity.min(hostility.max_io);
    let payload = 1 + narrowest.saturating_mul(256).min(256 * 1024);
    let scenario = Scenario {
        client_sends: head.u16() * 4 % payload,
        server_sends: head.u16() * 4 % payload,
        max_write: head.u8() * 200 + 1,
        max_read: head.u8() * 200 + 1,
        max_steps: 10_000_000,
        ..Scenario::default()
    };
    let third = scripts.len() / 3;
    let (a, rest) = scripts.split_at(third);
    let (b, c) = rest.split_at(third);
    let (client_io, server_io) = crate::testing::HostileTransport::pair_with(
        [Rng::scripted(a, 1), Rng::scripted(b, 2)],
        hostility,
    );
    let (client_config, server_config) = configs;
    let client = client_config
        .connect("localhost", client_io)
        .map_err(|e| e.to_string())?;
    let server = server_config.accept(server_io).map_err(|e| e.to_string())?;
    run_pair_with(client, server, &scenario, Rng::scripted(c, 3))
}
