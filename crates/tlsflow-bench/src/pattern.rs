//! The bytes a writer sends and the check its reader runs on them: one buffer of random
//! bytes, as long as a write, sent again and again; the reader compares every chunk with
//! the bytes expected at its offset.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::failure::{Failure, Outcome};

/// A buffer of random bytes, shared by a writer and the reader that checks it.
#[derive(Debug, Clone)]
pub(crate) struct Pattern(Arc<[u8]>);

impl Pattern {
    /// `len` fresh random bytes (a different sequence on every call).
    pub(crate) fn random(len: usize) -> Pattern {
        static CALLS: AtomicU64 = AtomicU64::new(0);
        let clock = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let mut state = clock
            ^ CALLS
                .fetch_add(1, Ordering::Relaxed)
                .wrapping_mul(0x9e37_79b9);
        let mut bytes = Vec::with_capacity(len + 8);
        while bytes.len() < len {
            bytes.extend_from_slice(&splitmix64(&mut state).to_le_bytes());
        }
        bytes.truncate(len);
        Pattern(bytes.into())
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// The writes that send `total` bytes: the whole buffer, then a prefix for the rest.
    pub(crate) fn writes(&self, total: u64) -> impl Iterator<Item = &[u8]> {
        let len = self.0.len() as u64;
        let whole = total / len;
        let rest = (total % len) as usize;
        (0..whole)
            .map(|_| &self.0[..])
            .chain((rest > 0).then(|| &self.0[..rest]))
    }
}

/// SplitMix64: fast, and plenty for bytes nobody needs to predict.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Checks received bytes against a [`Pattern`].
#[derive(Debug)]
pub(crate) struct Checker {
    pattern: Pattern,
    received: u64,
    expected: u64,
}

impl Checker {
    pub(crate) fn new(pattern: Pattern, expected: u64) -> Checker {
        Checker {
            pattern,
            received: 0,
            expected,
        }
    }

    /// Checks the next chunk of the stream.
    pub(crate) fn check(&mut self, mut chunk: &[u8]) -> Outcome<()> {
        if self.received + chunk.len() as u64 > self.expected {
            return Err(Failure::corrupt(format!(
                "more than the {} bytes sent arrived",
                self.expected
            )));
        }
        let pattern = self.pattern.bytes();
        while !chunk.is_empty() {
            let at = (self.received % pattern.len() as u64) as usize;
            let n = chunk.len().min(pattern.len() - at);
            if chunk[..n] != pattern[at..at + n] {
                let first = (0..n).find(|&i| chunk[i] != pattern[at + i]).unwrap_or(0);
                return Err(Failure::corrupt(format!(
                    "byte {} differs from what was sent",
                    self.received + first as u64
                )));
            }
            self.received += n as u64;
            chunk = &chunk[n..];
        }
        Ok(())
    }

    /// At the end of the stream: every byte must have arrived.
    pub(crate) fn finish(&self) -> Outcome<()> {
        if self.received != self.expected {
            return Err(Failure::corrupt(format!(
                "{} of {} bytes arrived before the end of the stream",
                self.received, self.expected
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_stream_in_any_chunking_and_catches_a_flipped_byte() {
        let pattern = Pattern::random(1000);
        let total = 5500u64;
        let stream: Vec<u8> = pattern.writes(total).flatten().copied().collect();
        assert_eq!(stream.len() as u64, total);
        let mut checker = Checker::new(pattern.clone(), total);
        for chunk in stream.chunks(333) {
            checker.check(chunk).unwrap();
        }
        checker.finish().unwrap();

        let mut bad = stream.clone();
        bad[4321] ^= 1;
        let mut checker = Checker::new(pattern.clone(), total);
        let error = bad
            .chunks(777)
            .try_for_each(|c| checker.check(c))
            .unwrap_err();
        assert!(error.to_string().contains("byte 4321"), "{error}");

        let mut checker = Checker::new(pattern, total);
        checker.check(&stream[..100]).unwrap();
        assert!(checker.finish().is_err());
    }
}
