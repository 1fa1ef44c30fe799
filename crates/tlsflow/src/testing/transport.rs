//! The hostile transport: an in-memory duplex pipe that does everything a socket may do.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;

use super::Rng;

/// How hostile a [`HostileTransport`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hostility {
    /// Bytes each direction of the pipe holds at most (at least 1).
    pub capacity: usize,
    /// Largest number of bytes one read or write moves (at least 1); each call moves a
    /// random count from 1 to this.
    pub max_io: usize,
    /// Chance, in percent, that a call returns `WouldBlock` even though it could proceed.
    pub would_block_percent: u8,
    /// Chance, in percent, that a call returns `Interrupted`.
    pub interrupt_percent: u8,
}

impl Default for Hostility {
    fn default() -> Self {
        Hostility {
            capacity: 4096,
            max_io: 1024,
            would_block_percent: 20,
            interrupt_percent: 5,
        }
    }
}

#[derive(Debug, Default)]
struct Direction {
    bytes: VecDeque<u8>,
    writer_closed: bool,
    reader_closed: bool,
    /// The task waiting for bytes to read (async use).
    reader_waker: Option<Waker>,
    /// The task waiting for room to write (async use).
    writer_waker: Option<Waker>,
    /// Readiness events not yet delivered: like a reactor, the pipe wakes the registered
    /// task later (at [`HostileTransport::deliver_events`]), not at the moment the state
    /// changes; a registration cancelled in between gets no wake-up.
    read_event: bool,
    write_event: bool,
}

/// Counters shared by every handle of one end.
#[derive(Debug, Default)]
struct Stats {
    would_blocks: AtomicU64,
    bytes_moved: AtomicU64,
    handles: AtomicU64,
}

#[derive(Debug)]
struct Pipe {
    /// `dirs[i]` carries bytes written by end `i`.
    dirs: [Direction; 2],
}

/// One end of a hostile in-memory duplex pipe; make a pair with [`HostileTransport::pair`].
///
/// Reads and writes move a seeded random number of bytes (down to 1), return `WouldBlock`
/// and `Interrupted` at random, and never lose, duplicate or reorder data. An empty pipe
/// returns `WouldBlock` (or `Ok(0)` after the other end called
/// [`close_write`](Self::close_write) or was dropped); a full pipe returns `WouldBlock`.
/// Every `WouldBlock` returned is counted, so a test can tell whether a stream's own
/// `WouldBlock` came from the transport.
#[derive(Debug)]
pub struct HostileTransport {
    pipe: Arc<Mutex<Pipe>>,
    side: usize,
    rng: Rng,
    hostility: Hostility,
    calm: bool,
    stats: Arc<Stats>,
}

impl HostileTransport {
    /// A connected pair of ends, with randomness derived from `seed`.
    pub fn pair(seed: u64, hostility: Hostility) -> (HostileTransport, HostileTransport) {
        let rng = |side: u64| Rng::new(seed ^ (0x9e37_79b9_7f4a_7c15u64.wrapping_mul(side + 1)));
        HostileTransport::pair_with([rng(0), rng(1)], hostility)
    }

    /// A connected pair of ends, each taking its decisions (how much each read and write
    /// moves, when they return `WouldBlock` or `Interrupted`) from its own generator: a
    /// [scripted](Rng::scripted) one lets a fuzzer choose them.
    pub fn pair_with(rngs: [Rng; 2], hostility: Hostility) -> (HostileTransport, HostileTransport) {
        let hostility = Hostility {
            capacity: hostility.capacity.max(1),
            max_io: hostility.max_io.max(1),
            ..hostility
        };
        let pipe = Arc::new(Mutex::new(Pipe {
            dirs: [Direction::default(), Direction::default()],
        }));
        let [first, second] = rngs;
        let end = |side: usize, rng: Rng| HostileTransport {
            pipe: pipe.clone(),
            side,
            rng,
            hostility,
            calm: false,
            stats: Arc::default(),
        };
        (end(0, first), end(1, second))
    }

    /// Another handle to this same end, for splitting a stream into halves: one handle
    /// reads, the other writes. Counters are shared; the end closes when its last handle is
    /// dropped.
    pub fn handle(&self) -> HostileTransport {
        self.stats.handles.fetch_add(1, Ordering::Relaxed);
        HostileTransport {
            pipe: self.pipe.clone(),
            side: self.side,
            rng: Rng::new(self.rng.clone().next_u64() ^ 0x5151),
            hostility: self.hostility,
            calm: self.calm,
            stats: self.stats.clone(),
        }
    }

    /// Turns random `WouldBlock` and `Interrupted` off (`true`) or back on.
    pub fn set_calm(&mut self, calm: bool) {
        self.calm = calm;
    }

    /// How many times this end returned `WouldBlock`.
    pub fn would_blocks(&self) -> u64 {
        self.stats.would_blocks.load(Ordering::Relaxed)
    }

    /// Bytes moved through this end, read and written.
    pub fn bytes_moved(&self) -> u64 {
        self.stats.bytes_moved.load(Ordering::Relaxed)
    }

    /// Ends this end's writing: once the other end has read what is in the pipe, its reads
    /// return `Ok(0)`.
    pub fn close_write(&mut self) {
        let mut pipe = self.lock();
        pipe.dirs[self.side].writer_closed = true;
        pipe.dirs[self.side].read_event = true;
    }

    /// Delivers pending readiness events of both directions to the tasks registered now
    /// (what a reactor does between polls). Returns whether any task was woken.
    pub fn deliver_events(&self) -> bool {
        let mut wakers = Vec::new();
        {
            let mut pipe = self.lock();
            for dir in pipe.dirs.iter_mut() {
                if std::mem::take(&mut dir.read_event) {
                    wakers.extend(dir.reader_waker.take());
                }
                if std::mem::take(&mut dir.write_event) {
                    wakers.extend(dir.writer_waker.take());
                }
            }
        }
        let woke = !wakers.is_empty();
        for w in wakers {
            w.wake();
        }
        woke
    }

    fn lock(&self) -> MutexGuard<'_, Pipe> {
        // A panic elsewhere cannot leave the pipe half-updated: every update is one step.
        self.pipe
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A random injected failure, if one is due.
    fn injected(&mut self) -> Option<io::Error> {
        if self.calm {
            return None;
        }
        let roll = self.rng.below(100) as u8;
        if roll < self.hostility.would_block_percent {
            self.stats.would_blocks.fetch_add(1, Ordering::Relaxed);
            Some(io::ErrorKind::WouldBlock.into())
        } else if roll
            < self
                .hostility
                .would_block_percent
                .saturating_add(self.hostility.interrupt_percent)
        {
            Some(io::ErrorKind::Interrupted.into())
        } else {
            None
        }
    }

    fn would_block(&mut self) -> io::Error {
        self.stats.would_blocks.fetch_add(1, Ordering::Relaxed);
        io::ErrorKind::WouldBlock.into()
    }
}

impl HostileTransport {
    /// What an operation on `len` bytes meets before the pipe: the most it may move now, or
    /// its result already (`Ok(0)` for an empty buffer, or an injected error; an injected
    /// `WouldBlock` wakes `waker` at once, as a spurious readiness would).
    fn start(&mut self, len: usize, waker: Option<&Waker>) -> Result<usize, io::Result<usize>> {
        if len == 0 {
            return Err(Ok(0));
        }
        if let Some(err) = self.injected() {
            if let (Some(w), io::ErrorKind::WouldBlock) = (waker, err.kind()) {
                w.wake_by_ref();
            }
            return Err(Err(err));
        }
        Ok(self.rng.between(1, self.hostility.max_io))
    }

    /// Counts `n` bytes moved.
    fn moved(&self, n: usize) -> io::Result<usize> {
        self.stats
            .bytes_moved
            .fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    /// Reads like a non-blocking socket. With a `waker`, a blocked read registers it (an
    /// injected `WouldBlock` wakes it at once, as a spurious readiness would).
    pub(crate) fn read_with(&mut self, buf: &mut [u8], waker: Option<&Waker>) -> io::Result<usize> {
        let limit = match self.start(buf.len(), waker) {
            Ok(limit) => limit,
            Err(done) => return done,
        };
        let side = self.side;
        let n = {
            let mut pipe = self.lock();
            let dir = &mut pipe.dirs[1 - side];
            if dir.bytes.is_empty() {
                if dir.writer_closed {
                    return Ok(0);
                }
                if let Some(w) = waker {
                    dir.reader_waker = Some(w.clone());
                }
                drop(pipe);
                return Err(self.would_block());
            }
            let n = buf.len().min(dir.bytes.len()).min(limit);
            for (slot, byte) in buf.iter_mut().zip(dir.bytes.drain(..n)) {
                *slot = byte;
            }
            // A successful read cancels this end's read registration, as some runtimes'
            // readiness futures do: a stream must not rely on a stale registration.
            dir.reader_waker = None;
            dir.write_event = true;
            n
        };
        self.moved(n)
    }

    /// Writes like a non-blocking socket; see [`read_with`](Self::read_with).
    pub(crate) fn write_with(&mut self, buf: &[u8], waker: Option<&Waker>) -> io::Result<usize> {
        let limit = match self.start(buf.len(), waker) {
            Ok(limit) => limit,
            Err(done) => return done,
        };
        let capacity = self.hostility.capacity;
        let side = self.side;
        let n = {
            let mut pipe = self.lock();
            let dir = &mut pipe.dirs[side];
            if dir.reader_closed {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            let space = capacity.saturating_sub(dir.bytes.len());
            if space == 0 {
                if let Some(w) = waker {
                    dir.writer_waker = Some(w.clone());
                }
                drop(pipe);
                return Err(self.would_block());
            }
            let n = buf.len().min(space).min(limit);
            dir.bytes.extend(&buf[..n]);
            // Likewise a successful write cancels the write registration.
            dir.writer_waker = None;
            dir.read_event = true;
            n
        };
        self.moved(n)
    }
}

impl Read for HostileTransport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_with(buf, None)
    }
}

impl Write for HostileTransport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_with(buf, None)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for HostileTransport {
    fn drop(&mut self) {
        if self.stats.handles.load(Ordering::Relaxed) > 0 {
            self.stats.handles.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        let side = self.side;
        let wakers = {
            let mut pipe = self.lock();
            pipe.dirs[side].writer_closed = true;
            pipe.dirs[1 - side].reader_closed = true;
            [
                pipe.dirs[side].reader_waker.take(),
                pipe.dirs[1 - side].writer_waker.take(),
            ]
        };
        for w in wakers.into_iter().flatten() {
            w.wake();
        }
    }
}

/// `WouldBlock` as `Pending`: the hostile transport has registered the waker.
#[cfg(any(feature = "tokio", feature = "futures-io"))]
fn pending_on_would_block<T>(result: io::Result<T>) -> std::task::Poll<io::Result<T>> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::task::Poll::Pending,
        other => std::task::Poll::Ready(other),
    }
}

/// The module `$module` with the hostile transport's async I/O traits of a runtime:
/// `AsyncWrite` (whose name for shutting down is `$shutdown`), and the runtime's
/// `AsyncRead` impl as given.
#[cfg(any(feature = "tokio", feature = "futures-io"))]
macro_rules! async_io {
    ($module:ident, $($runtime:ident)::+, $shutdown:ident, $read:item) => {
        mod $module {
            use std::pin::Pin;
            use std::task::{Context, Poll};

            use $($runtime)::+::{AsyncRead, AsyncWrite};

            use super::pending_on_would_block as poll;
            use super::*;

            $read

            impl AsyncWrite for HostileTransport {
                fn poll_write(
                    self: Pin<&mut Self>,
                    cx: &mut Context<'_>,
                    buf: &[u8],
                ) -> Poll<io::Result<usize>> {
                    poll(self.get_mut().write_with(buf, Some(cx.waker())))
                }
                fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                    Poll::Ready(Ok(()))
                }
                fn $shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                    self.get_mut().close_write();
                    Poll::Ready(Ok(()))
                }
            }
        }
    };
}

#[cfg(feature = "tokio")]
async_io!(tokio_impls, tokio::io, poll_shutdown, impl AsyncRead for HostileTransport {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut tokio::io::ReadBuf<'_>) -> Poll<io::Result<()>> {
        let read = poll(self.get_mut().read_with(buf.initialize_unfilled(), Some(cx.waker())));
        let n = std::task::ready!(read)?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
});

#[cfg(feature = "futures-io")]
async_io!(futures_impls, futures_io, poll_close, impl AsyncRead for HostileTransport {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        poll(self.get_mut().read_with(buf, Some(cx.waker())))
    }
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_loses_or_reorders_bytes() {
        let (mut a, mut b) = HostileTransport::pair(
            7,
            Hostility {
                capacity: 5,
                max_io: 3,
                would_block_percent: 30,
                interrupt_percent: 10,
            },
        );
        let data: Vec<u8> = (0..=255).collect();
        let (mut sent, mut got) = (0, Vec::new());
        let mut buf = [0u8; 8];
        while got.len() < data.len() {
            if sent < data.len() {
                if let Ok(n) = a.write(&data[sent..]) {
                    assert!((1..=3).contains(&n));
                    sent += n;
                }
            }
            if let Ok(n) = b.read(&mut buf) {
                got.extend_from_slice(&buf[..n]);
            }
        }
        assert_eq!(got, data);
        a.close_write();
        b.set_calm(true);
        assert_eq!(b.read(&mut buf).ok(), Some(0));
    }
}
