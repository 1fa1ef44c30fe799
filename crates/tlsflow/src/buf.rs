//! The byte queues the session and the engines share: ciphertext to send ([`Output`]),
//! ciphertext received ([`Inbox`]). They live below both, so that engines need nothing of
//! the session.
//!
//! Connections give their buffers back when they go idle. Freed buffers wait in a small
//! per-thread pool, so a busy connection that goes idle between bursts gets a buffer back
//! without allocating or zeroing it, while thousands of idle connections hold none.

use std::cell::RefCell;

/// Buffers kept per thread for reuse.
const POOL_BUFFERS: usize = 8;

thread_local! {
    static POOL: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// An initialized buffer of at least `len` bytes (its contents are arbitrary).
pub(crate) fn take_buffer(len: usize) -> Vec<u8> {
    let pooled = POOL
        .try_with(|pool| {
            let mut pool = pool.try_borrow_mut().ok()?;
            let i = pool.iter().position(|b| b.len() >= len)?;
            Some(pool.swap_remove(i))
        })
        .ok()
        .flatten();
    pooled.unwrap_or_else(|| vec![0; len])
}

/// Makes `buf` at least `len` bytes long: from the pool when it has no buffer yet, by
/// growing it otherwise.
pub(crate) fn grow(buf: &mut Vec<u8>, len: usize) {
    if buf.len() >= len {
        return;
    }
    if buf.is_empty() {
        *buf = take_buffer(len);
    } else {
        buf.resize(len, 0);
    }
}

/// Buffers larger than this are freed rather than pooled.
const POOL_MAX_BUFFER: usize = 512 * 1024;

/// Gives a buffer back for reuse on this thread (or frees it when the pool is full).
pub(crate) fn give_back(buf: Vec<u8>) {
    if buf.is_empty() || buf.len() > POOL_MAX_BUFFER {
        return;
    }
    let _ = POOL.try_with(|pool| {
        if let Ok(mut pool) = pool.try_borrow_mut() {
            if pool.len() < POOL_BUFFERS {
                pool.push(buf);
            }
        }
    });
}

/// Bytes queued in a buffer: `buf[start..end]`. What [`Output`] and [`Inbox`] share.
#[derive(Debug, Default)]
struct Queue {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Queue {
    fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    fn len(&self) -> usize {
        self.end - self.start
    }

    /// Removes `n` bytes from the front.
    fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.len());
        self.start += n.min(self.len());
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Moves the queued bytes to the front of the buffer.
    fn compact(&mut self) {
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
    }

    /// Gives the buffer back (to the thread's pool) when nothing is queued.
    fn release(&mut self) {
        if self.len() == 0 {
            give_back(std::mem::take(&mut self.buf));
            self.start = 0;
            self.end = 0;
        }
    }
}

/// Ciphertext queued for the transport, in order. Sessions own one; engines append to it.
///
/// Only the counts the transport reports remove bytes from the front. The buffer keeps its
/// initialized length between uses, so sealing into it costs no zeroing.
#[derive(Debug, Default)]
pub struct Output(Queue);

impl Output {
    /// The queued bytes.
    pub fn pending(&self) -> &[u8] {
        self.0.data()
    }

    /// How many bytes are queued.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.0.len() == 0
    }

    /// Room for at least `min` more bytes after the queued ones. Write into a prefix of it,
    /// then [`commit`](Self::commit) how much was written.
    pub fn spare(&mut self, min: usize) -> &mut [u8] {
        let q = &mut self.0;
        if q.start > 0 && (q.start == q.end || q.end + min > q.buf.len()) {
            // Drop the sent front instead of growing.
            q.compact();
        }
        grow(&mut q.buf, q.end + min);
        &mut q.buf[q.end..]
    }

    /// Queues the first `n` bytes of the last [`spare`](Self::spare).
    ///
    /// # Panics
    ///
    /// If `n` exceeds that space.
    pub fn commit(&mut self, n: usize) {
        let q = &mut self.0;
        assert!(
            q.end + n <= q.buf.len(),
            "committed more than the space given"
        );
        q.end += n;
    }

    /// Queues a copy of `data`.
    pub fn extend_from_slice(&mut self, data: &[u8]) {
        self.spare(data.len())[..data.len()].copy_from_slice(data);
        self.commit(data.len());
    }

    /// Bytes allocated.
    pub(crate) fn capacity(&self) -> usize {
        self.0.buf.capacity()
    }

    /// Removes `n` sent bytes from the front.
    pub(crate) fn consume(&mut self, n: usize) {
        self.0.consume(n);
    }

    /// Drops everything, and the buffer with it.
    pub(crate) fn clear(&mut self) {
        *self = Output::default();
    }

    /// Gives the buffer back (to the thread's pool) when nothing is queued.
    pub(crate) fn release(&mut self) {
        self.0.release();
    }
}

/// The input buffer of a connection starts this large (at most the receive limit): four
/// full records, and room for the largest handshake message the rustls engine joins in place.
pub(crate) const FIRST_INPUT: usize = 72 * 1024;

/// Ciphertext read from the transport and not yet processed by the engine. Engines own one:
/// they decrypt records in place in it.
///
/// Its buffer grows toward the receive limit only as reads fill it: a connection of small
/// messages keeps a small buffer, and a bulk transfer reads as much as the limit allows in
/// one call.
#[derive(Debug, Default)]
pub(crate) struct Inbox {
    queue: Queue,
    /// The size the buffer may have now (within the limit); doubled each time a read fills
    /// the buffer, kept while the buffer is given back between bursts.
    size: usize,
}

impl Inbox {
    pub(crate) fn data(&self) -> &[u8] {
        self.queue.data()
    }

    pub(crate) fn data_mut(&mut self) -> &mut [u8] {
        let q = &mut self.queue;
        &mut q.buf[q.start..q.end]
    }

    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    pub(crate) fn consume(&mut self, n: usize) {
        self.queue.consume(n);
    }

    /// Room to read into, so that at most `capacity` bytes are buffered. The buffer is
    /// allocated here, on first use after [`release`](Self::release).
    pub(crate) fn spare(&mut self, capacity: usize) -> &mut [u8] {
        self.size = self.size.max(FIRST_INPUT);
        let size = self.size.min(capacity);
        let q = &mut self.queue;
        if q.start > 0 {
            q.compact();
        }
        grow(&mut q.buf, size);
        let top = size.max(q.end);
        &mut q.buf[q.end..top]
    }

    /// Whether `n` more bytes fit in the buffer last handed out by `spare`.
    pub(crate) fn can_fill(&self, n: usize) -> bool {
        self.queue.end + n <= self.queue.buf.len()
    }

    pub(crate) fn filled(&mut self, n: usize) {
        self.queue.end += n;
        if self.queue.end >= self.size {
            // The transport had at least this much: offer more next time.
            self.size = (self.size * 2).min(POOL_MAX_BUFFER);
        }
    }

    /// Bytes allocated.
    pub(crate) fn capacity(&self) -> usize {
        self.queue.buf.capacity()
    }

    /// Frees the buffer when it holds nothing (an idle connection keeps no receive buffer).
    pub(crate) fn release(&mut self) {
        self.queue.release();
    }
}

#[cfg(test)]
mod tests {
    use super::{Inbox, FIRST_INPUT};

    /// The input buffer offers 72 KiB at first, doubles only after a read filled it, and
    /// never offers room beyond the receive limit (promise 4).
    #[test]
    fn the_input_buffer_grows_only_while_reads_fill_it_and_stays_within_the_limit() {
        let limit = 264 * 1024;
        let mut inbox = Inbox::default();
        assert_eq!(inbox.spare(limit).len(), FIRST_INPUT);
        inbox.filled(1000);
        inbox.consume(1000);
        assert_eq!(
            inbox.spare(limit).len(),
            FIRST_INPUT,
            "a short read: no growth"
        );
        let mut offered = Vec::new();
        for _ in 0..4 {
            let n = inbox.spare(limit).len();
            offered.push(n);
            inbox.filled(n);
            assert!(inbox.len() <= limit);
            inbox.consume(n);
        }
        assert_eq!(offered, [FIRST_INPUT, 2 * FIRST_INPUT, limit, limit]);
        // Part of a record left at the front counts against the limit.
        let n = inbox.spare(limit).len();
        inbox.filled(n);
        inbox.consume(limit - 100);
        assert_eq!(inbox.spare(limit).len(), limit - 100);
        // A lower limit (as the session gives after raising it for a handshake) is kept.
        assert_eq!(inbox.spare(50).len(), 0);
    }
}
