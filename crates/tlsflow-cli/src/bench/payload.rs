//! What the benchmark sends and how both ends check it: a deterministic payload generated
//! block by block (so any size fits in memory), hashed by the sender as it is written and by
//! the receiver as it arrives.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

/// A payload stream (splitmix64), different for each seed.
pub(crate) struct Payload {
    state: u64,
}

impl Payload {
    pub(crate) fn new(seed: u64) -> Payload {
        Payload { state: seed }
    }

    /// Fills `buf` with the next bytes of the stream.
    pub(crate) fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            chunk.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes()[..chunk.len()]);
        }
    }
}

/// How many bytes passed, and their SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Digest {
    pub(crate) bytes: u64,
    pub(crate) sha256: [u8; 32],
}

/// A running [`Digest`].
#[derive(Default)]
pub(crate) struct Tally {
    hasher: Sha256,
    bytes: u64,
}

impl Tally {
    pub(crate) fn update(&mut self, data: &[u8]) {
        self.hasher.update(data);
        self.bytes += data.len() as u64;
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    pub(crate) fn finish(self) -> Digest {
        Digest {
            bytes: self.bytes,
            sha256: self.hasher.finalize().into(),
        }
    }
}

/// The slow reader: a short nap after every 4 MiB lets the sender's buffers fill, so the
/// sender meets backpressure (short writes, `WouldBlock`) all the time.
pub(crate) struct Pacer {
    enabled: bool,
    next: u64,
}

/// How often the slow reader naps, and for how long.
pub(crate) const NAP_EVERY: u64 = 4 << 20;
pub(crate) const NAP: Duration = Duration::from_millis(1);

impl Pacer {
    pub(crate) fn new(enabled: bool) -> Pacer {
        Pacer {
            enabled,
            next: NAP_EVERY,
        }
    }

    /// Whether to nap now, `total` bytes into the transfer.
    pub(crate) fn due(&mut self, total: u64) -> bool {
        if !self.enabled || total < self.next {
            return false;
        }
        self.next = total + NAP_EVERY;
        true
    }
}

/// What one transfer needs to know: how much, in which pieces, and where to count progress.
pub(crate) struct Plan {
    pub(crate) size: u64,
    pub(crate) write_size: usize,
    pub(crate) slow_reader: bool,
    pub(crate) duplex: bool,
    /// The sending sockets' requested SO_SNDBUF (1 asks for the kernel's minimum).
    pub(crate) sndbuf: usize,
    /// The receiving sockets' requested SO_RCVBUF.
    pub(crate) rcvbuf: usize,
    /// Bytes received so far, over all connections and directions, for the progress bar.
    pub(crate) received: AtomicU64,
}

/// The receive buffer each read asks for: one full TLS record.
pub(crate) const READ_SIZE: usize = 16 * 1024;

/// The receiving sockets' default SO_RCVBUF: a few KiB, so the sender meets backpressure
/// without loopback TCP crawling. Both buffers at the minimum can drop to KB/s; so can the
/// smallest send buffer facing a large receive buffer (about 2 MB/s measured): the receiver
/// then delays its ACKs, and a sender with room for two segments waits for each one.
pub(crate) const RCVBUF: usize = 4096;

/// Sends `plan.size` bytes of the payload for `seed` through `write_all`.
pub(crate) fn send(
    plan: &Plan,
    seed: u64,
    mut write_all: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<Digest> {
    let mut payload = Payload::new(seed);
    let mut tally = Tally::default();
    let mut block = vec![0u8; plan.write_size];
    while tally.bytes() < plan.size {
        let len = block.len().min((plan.size - tally.bytes()) as usize);
        payload.fill(&mut block[..len]);
        tally.update(&block[..len]);
        write_all(&block[..len])?;
    }
    Ok(tally.finish())
}

/// Receives until end of stream through `read`, slowly if the plan says so. Returns the
/// digest and when the end arrived.
pub(crate) fn receive(
    plan: &Plan,
    mut read: impl FnMut(&mut [u8]) -> io::Result<usize>,
) -> io::Result<(Digest, Instant)> {
    let mut tally = Tally::default();
    let mut pacer = Pacer::new(plan.slow_reader);
    let mut buf = vec![0u8; READ_SIZE];
    loop {
        let n = read(&mut buf)?;
        if n == 0 {
            return Ok((tally.finish(), Instant::now()));
        }
        tally.update(&buf[..n]);
        plan.received.fetch_add(n as u64, Ordering::Relaxed);
        if pacer.due(tally.bytes()) {
            std::thread::sleep(NAP);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_deterministic_per_seed() {
        let mut whole = vec![0u8; 64];
        Payload::new(7).fill(&mut whole);
        let mut pieces = vec![0u8; 64];
        let mut payload = Payload::new(7);
        payload.fill(&mut pieces[..24]);
        payload.fill(&mut pieces[24..]);
        assert_eq!(whole, pieces);
        let mut other = vec![0u8; 64];
        Payload::new(8).fill(&mut other);
        assert_ne!(whole, other);
    }

    #[test]
    fn pacer_naps_every_4_mib_only_when_slow() {
        let mut slow = Pacer::new(true);
        assert!(!slow.due(1 << 20));
        assert!(slow.due(4 << 20));
        assert!(!slow.due((4 << 20) + 1));
        assert!(slow.due(9 << 20));
        assert!(!Pacer::new(false).due(1 << 30));
    }
}
