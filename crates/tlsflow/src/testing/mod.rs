//! Test tools: the hostile transport and a deterministic scheduler (feature `testing`).
//!
//! Use them to test a protocol built on tlsflow the way tlsflow tests itself: run a client
//! and a server over a [`HostileTransport`] that splits, delays and interrupts every read and
//! write, and let [`run_pair`] drive both through handshake, data both ways and shutdown,
//! checking every byte.
//!
//! ```
//! use tlsflow::testing::{run_pair, stream_pair, Hostility, Scenario};
//!
//! let (client, server) = stream_pair(42, Hostility::default()).unwrap();
//! let scenario = Scenario { seed: 42, client_sends: 100_000, server_sends: 50_000, ..Scenario::default() };
//! let report = run_pair(client, server, &scenario).unwrap();
//! assert_eq!(report.client_received, 50_000);
//! ```

mod async_scheduler;
#[cfg(feature = "aws-lc-rs")]
mod crafted;
mod mangle;
mod scheduler;
mod transport;

pub use async_scheduler::{run_pair_async, AsyncTestStream};
#[cfg(feature = "futures-io")]
pub use async_scheduler::{FuturesPeer, FuturesSplitPeer};
#[cfg(feature = "tokio")]
pub use async_scheduler::{TokioPeer, TokioSplitPeer};
#[cfg(feature = "aws-lc-rs")]
pub use crafted::crafted_records;
pub use mangle::damaged_records;
pub use scheduler::{
    outgoing_bound, run_pair, run_pair_with, scripted_pair, Report, Scenario, TestStream,
};
pub use transport::{HostileTransport, Hostility};

use crate::{ClientConfig, EngineKind, Error, Limits, SelfSigned, ServerConfig, TlsStream};

/// A small, fast, seedable random number generator (SplitMix64), so schedules replay exactly.
///
/// A *scripted* generator ([`Rng::scripted`]) returns given bytes first: a fuzzer then
/// chooses every decision it drives.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
    script: Option<(std::sync::Arc<[u8]>, usize)>,
}

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng {
            state: seed,
            script: None,
        }
    }

    /// A generator whose numbers come from `script`, four bytes each (little-endian), and,
    /// once the script is used up, from `seed` as [`Rng::new`] would give them.
    pub fn scripted(script: &[u8], seed: u64) -> Rng {
        Rng {
            state: seed,
            script: Some((script.into(), 0)),
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        if let Some((script, at)) = &mut self.script {
            if let Some(rest) = script.get(*at..).filter(|rest| !rest.is_empty()) {
                let mut word = [0u8; 4];
                let n = rest.len().min(4);
                word[..n].copy_from_slice(&rest[..n]);
                *at += n;
                return u64::from(u32::from_le_bytes(word));
            }
        }
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// A number in `lo..=hi`.
    pub fn between(&mut self, lo: usize, hi: usize) -> usize {
        if hi <= lo {
            lo
        } else {
            lo + self.below(hi - lo + 1)
        }
    }

    /// A number in `lo..=hi`, spread evenly over orders of magnitude, so small and large
    /// values are both common.
    pub fn log_between(&mut self, lo: usize, hi: usize) -> usize {
        let lo = lo.max(1);
        if hi <= lo {
            return lo;
        }
        let bits = usize::BITS - hi.leading_zeros();
        let cap = 1usize << self.between(0, bits as usize);
        self.between(lo, hi.min(cap.max(lo)))
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// The client and server configurations of a self-signed pair for the name `localhost`.
///
/// # Errors
///
/// Only if certificate generation fails.
pub fn self_signed_configs(limits: Limits) -> Result<(ClientConfig, ServerConfig), Error> {
    self_signed_configs_on(EngineKind::Rustls, EngineKind::Rustls, limits)
}

/// Like [`self_signed_configs`], with the client and the server on the given engines.
///
/// # Errors
///
/// If certificate generation fails, or an engine is not compiled in.
pub fn self_signed_configs_on(
    client_engine: EngineKind,
    server_engine: EngineKind,
    limits: Limits,
) -> Result<(ClientConfig, ServerConfig), Error> {
    let cert = SelfSigned::generate(&["localhost"])?;
    let server = ServerConfig::builder()
        .self_signed(&cert)
        .limits(limits)
        .engine(server_engine)
        .build()?;
    let client = ClientConfig::builder()
        .ca_certificate(cert.cert_der())
        .limits(limits)
        .engine(client_engine)
        .build()?;
    Ok((client, server))
}

/// The engine pairs (client, server) compiled into this build: every engine against itself
/// and, with OpenSSL, each against the other.
pub fn engine_pairs() -> Vec<(EngineKind, EngineKind)> {
    let mut pairs = vec![(EngineKind::Rustls, EngineKind::Rustls)];
    if cfg!(feature = "openssl") {
        pairs.extend([
            (EngineKind::Openssl, EngineKind::Openssl),
            (EngineKind::Rustls, EngineKind::Openssl),
            (EngineKind::Openssl, EngineKind::Rustls),
        ]);
    }
    pairs
}

/// A client and a server stream over a fresh hostile transport pair, with a self-signed
/// certificate and default limits.
///
/// # Errors
///
/// Only if certificate generation fails.
pub fn stream_pair(
    seed: u64,
    hostility: Hostility,
) -> Result<(TlsStream<HostileTransport>, TlsStream<HostileTransport>), Error> {
    let (client, server) = self_signed_configs(Limits::default())?;
    let (a, b) = HostileTransport::pair(seed, hostility);
    Ok((client.connect("localhost", a)?, server.accept(b)?))
}

/// What a scheduled peer has sent and received, against what it must.
pub(crate) struct Flow {
    pub(crate) outgoing: Vec<u8>,
    pub(crate) sent: usize,
    pub(crate) expected: Vec<u8>,
    pub(crate) received: usize,
    /// The peer shut its writing down.
    pub(crate) shut: bool,
    /// The peer read the end of the stream.
    pub(crate) eof: bool,
}

impl Flow {
    pub(crate) fn new(outgoing: Vec<u8>, expected: Vec<u8>) -> Self {
        Flow {
            outgoing,
            sent: 0,
            expected,
            received: 0,
            shut: false,
            eof: false,
        }
    }

    /// The next write: a random length (at most `scenario.max_write`) of what is left.
    pub(crate) fn next_write(&self, rng: &mut Rng, scenario: &Scenario) -> &[u8] {
        let left = &self.outgoing[self.sent..];
        &left[..rng.log_between(1, scenario.max_write).min(left.len())]
    }

    /// Counts a write of `len` bytes that returned `n`, checking promise 1: at least one
    /// byte, at most those offered.
    pub(crate) fn wrote(&mut self, name: &str, n: usize, len: usize) -> Result<(), String> {
        match n {
            0 => Err(format!("{name}: write returned 0 for {len} bytes")),
            n if n > len => Err(format!("{name}: write claimed {n} of {len} bytes")),
            n => {
                self.sent += n;
                Ok(())
            }
        }
    }

    /// Checks `data`, just read by `name`, against what its peer sent.
    pub(crate) fn read(&mut self, name: &str, data: &[u8]) -> Result<(), String> {
        let end = self.received + data.len();
        let Some(sent) = self.expected.get(self.received..end) else {
            return Err(format!(
                "{name}: received {end} bytes, more than the {} sent",
                self.expected.len()
            ));
        };
        match data.iter().zip(sent).position(|(got, want)| got != want) {
            Some(at) => Err(format!(
                "{name}: byte mismatch at offset {}",
                self.received + at
            )),
            None => {
                self.received = end;
                Ok(())
            }
        }
    }

    /// Checks that `name` read all its peer sent before a clean end of the stream.
    pub(crate) fn clean_end(&mut self, name: &str) -> Result<(), String> {
        if self.received != self.expected.len() {
            return Err(format!(
                "{name}: clean EOF after {} of {} bytes",
                self.received,
                self.expected.len()
            ));
        }
        self.eof = true;
        Ok(())
    }
}

impl std::fmt::Display for Flow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sent {}/{} received {}/{} shut {} eof {}",
            self.sent,
            self.outgoing.len(),
            self.received,
            self.expected.len(),
            self.shut,
            self.eof
        )
    }
}

/// `chunk` cut at up to three random points into slices for a vectored write (empty slices
/// included, as callers pass them).
pub(crate) fn cut<'a>(chunk: &'a [u8], rng: &mut Rng) -> Vec<std::io::IoSlice<'a>> {
    let mut points: Vec<usize> = (0..rng.below(4))
        .map(|_| rng.below(chunk.len() + 1))
        .collect();
    points.sort_unstable();
    let mut slices = Vec::with_capacity(points.len() + 1);
    let mut start = 0;
    for point in points {
        slices.push(std::io::IoSlice::new(&chunk[start..point]));
        start = point;
    }
    slices.push(std::io::IoSlice::new(&chunk[start..]));
    slices
}
