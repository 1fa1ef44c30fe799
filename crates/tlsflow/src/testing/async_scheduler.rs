//! The scheduler for async streams, with a wake-up checker.
//!
//! Each side is a task that is polled only when its waker fired. A side that returned
//! `Pending` from every operation sleeps until then. The run fails on a byte mismatch, on
//! `Pending` without the transport having returned `Pending` (a spurious `Pending`), on a
//! state where neither side is woken and neither is done (a lost wake-up), and on a side
//! that is woken again and again without progress (a spin).

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use super::scheduler::flushed;
#[cfg(any(feature = "tokio", feature = "futures-io"))]
use super::HostileTransport;
use super::{outgoing_bound, Flow, Report, Rng, Scenario};
use crate::session::{Buffered, Limits};

/// An async stream the scheduler can drive, whatever its async I/O traits.
pub trait AsyncTestStream {
    /// Polls a read.
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>>;
    /// Polls a write.
    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>>;
    /// Polls a vectored write (by default, of the first non-empty slice, as std's default).
    fn poll_write_vectored(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let first = bufs
            .iter()
            .find(|b| !b.is_empty())
            .map_or(&[][..], |b| &**b);
        self.poll_write(cx, first)
    }
    /// Polls a flush.
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Polls a shutdown of the write side (`close_notify`).
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// How many times the transport returned `Pending` (or `WouldBlock`).
    fn transport_pendings(&mut self) -> u64;
    /// Bytes moved by the transport.
    fn transport_bytes(&mut self) -> u64;
    /// What the stream buffers, and its limits.
    fn buffered(&self) -> (Buffered, Limits);
    /// Delivers the transport's pending readiness events (see
    /// [`HostileTransport::deliver_events`](super::HostileTransport::deliver_events)).
    fn deliver_events(&mut self) -> bool;
    /// Whether reads and writes run in two tasks (split halves), each with its own waker.
    fn is_split(&self) -> bool {
        false
    }
}

struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

struct Task<S> {
    name: &'static str,
    stream: S,
    /// The reading task's flag and waker; the same as the writing task's unless split.
    read_flag: Arc<Flag>,
    read_waker: Waker,
    write_flag: Arc<Flag>,
    write_waker: Waker,
    flow: Flow,
    idle_turns: u64,
    buf: Vec<u8>,
}

impl<S: AsyncTestStream> Task<S> {
    fn new(
        name: &'static str,
        stream: S,
        outgoing: Vec<u8>,
        expected: Vec<u8>,
        max_read: usize,
    ) -> Self {
        let write_flag = Arc::new(Flag(AtomicBool::new(true)));
        let read_flag = if stream.is_split() {
            Arc::new(Flag(AtomicBool::new(true)))
        } else {
            write_flag.clone()
        };
        Task {
            name,
            stream,
            read_waker: Waker::from(read_flag.clone()),
            read_flag,
            write_waker: Waker::from(write_flag.clone()),
            write_flag,
            flow: Flow::new(outgoing, expected),
            idle_turns: 0,
            buf: vec![0; max_read],
        }
    }

    fn done(&self) -> bool {
        self.flow.shut && self.flow.eof
    }

    fn pending(&mut self, before: u64, op: &str) -> Result<(), String> {
        if self.stream.transport_pendings() == before {
            return Err(format!(
                "{}: {op} returned Pending but the transport never did (spurious)",
                self.name
            ));
        }
        Ok(())
    }

    /// One poll of each operation this side still has, in random order. Returns whether
    /// anything progressed.
    fn check_flushed(&self, op: &str) -> Result<(), String> {
        flushed(self.name, op, self.stream.buffered().0)
    }

    fn woken(&self) -> bool {
        self.read_flag.0.load(Ordering::SeqCst) || self.write_flag.0.load(Ordering::SeqCst)
    }

    fn turn(&mut self, rng: &mut Rng, scenario: &Scenario) -> Result<(bool, bool), String> {
        // Each task runs only if its own waker fired.
        let reading = self.read_flag.0.swap(false, Ordering::SeqCst);
        let writing =
            self.write_flag.0.swap(false, Ordering::SeqCst) || (reading && !self.stream.is_split());
        let read_waker = self.read_waker.clone();
        let write_waker = self.write_waker.clone();
        let mut read_cx = Context::from_waker(&read_waker);
        let mut cx = Context::from_waker(&write_waker);
        let (mut read_progress, mut write_progress) = (false, false);
        let first = rng.below(3);
        for i in 0..3 {
            let before = self.stream.transport_pendings();
            let op = (first + i) % 3;
            if (op == 1 && !reading) || (op != 1 && !writing) {
                continue;
            }
            match op {
                0 if self.flow.sent < self.flow.outgoing.len() => {
                    let chunk = self.flow.next_write(rng, scenario);
                    let len = chunk.len();
                    let written = if scenario.vectored {
                        self.stream
                            .poll_write_vectored(&mut cx, &super::cut(chunk, rng))
                    } else {
                        self.stream.poll_write(&mut cx, chunk)
                    };
                    match written {
                        Poll::Ready(Ok(n)) => {
                            self.flow.wrote(self.name, n, len)?;
                            write_progress = true;
                        }
                        Poll::Ready(Err(e)) => {
                            return Err(format!("{}: write failed: {e}", self.name))
                        }
                        Poll::Pending => self.pending(before, "write")?,
                    }
                }
                0 if !self.flow.shut => match self.stream.poll_shutdown(&mut cx) {
                    Poll::Ready(Ok(())) => {
                        self.check_flushed("shutdown")?;
                        self.flow.shut = true;
                        write_progress = true;
                    }
                    Poll::Ready(Err(e)) => {
                        return Err(format!("{}: shutdown failed: {e}", self.name))
                    }
                    Poll::Pending => self.pending(before, "shutdown")?,
                },
                1 if !self.flow.eof => {
                    let len = rng.log_between(1, self.buf.len());
                    match self.stream.poll_read(&mut read_cx, &mut self.buf[..len]) {
                        Poll::Ready(Ok(0)) => {
                            self.flow.clean_end(self.name)?;
                            read_progress = true;
                        }
                        Poll::Ready(Ok(n)) => {
                            let data = &self.buf[..n];
                            self.flow.read(self.name, data)?;
                            read_progress = true;
                        }
                        Poll::Ready(Err(e)) => {
                            return Err(format!(
                                "{}: read failed after {} bytes: {e}",
                                self.name, self.flow.received
                            ))
                        }
                        Poll::Pending => self.pending(before, "read")?,
                    }
                }
                2 if !self.flow.shut => match self.stream.poll_flush(&mut cx) {
                    // Promise 2: a successful flush leaves no accepted byte behind.
                    Poll::Ready(Ok(())) => self.check_flushed("flush")?,
                    Poll::Ready(Err(e)) => return Err(format!("{}: flush failed: {e}", self.name)),
                    Poll::Pending => self.pending(before, "flush")?,
                },
                _ => {}
            }
        }
        let (buffered, limits) = self.stream.buffered();
        if buffered.outgoing_ciphertext > outgoing_bound(limits)
            || buffered.incoming_ciphertext > limits.receive
        {
            return Err(format!(
                "{}: buffers above their bounds: {buffered:?}",
                self.name
            ));
        }
        Ok((read_progress, write_progress))
    }
}

/// Drives two async streams as two tasks until both have sent everything, shut down, and
/// read the other's `close_notify`. See the module docs for what fails a run.
///
/// # Errors
///
/// A description of the first broken promise.
pub fn run_pair_async<C: AsyncTestStream, S: AsyncTestStream>(
    client: C,
    server: S,
    scenario: &Scenario,
) -> Result<Report, String> {
    let mut rng = Rng::new(scenario.seed);
    let (to_server, to_client) = scenario.payloads(&mut rng);
    let max_read = scenario.max_read.max(1);
    let mut c = Task::new(
        "client",
        client,
        to_server.clone(),
        to_client.clone(),
        max_read,
    );
    let mut s = Task::new("server", server, to_client, to_server, max_read);
    let mut report = Report::default();
    while !(c.done() && s.done()) {
        report.steps += 1;
        if report.steps > scenario.max_steps {
            return Err(format!("gave up after {} turns", scenario.max_steps));
        }
        // The "reactor" delivers readiness at random moments, so a stream must cope with
        // registrations that lapse in between.
        if rng.below(2) == 0 {
            c.stream.deliver_events();
            s.stream.deliver_events();
        }
        let mut c_ready = !c.done() && c.woken();
        let mut s_ready = !s.done() && s.woken();
        if !c_ready && !s_ready {
            c.stream.deliver_events();
            s.stream.deliver_events();
            c_ready = !c.done() && c.woken();
            s_ready = !s.done() && s.woken();
        }
        let pick_client = match (c_ready, s_ready) {
            (false, false) => {
                return Err(format!(
                    "lost wake-up: neither side is woken (client {}; server {})",
                    c.flow, s.flow
                ))
            }
            (true, true) => rng.below(2) == 0,
            (ready, _) => ready,
        };
        if pick_client {
            step(&mut c, &mut rng, scenario)?;
        } else {
            step(&mut s, &mut rng, scenario)?;
        }
    }
    report.client_received = c.flow.received;
    report.server_received = s.flow.received;
    report.would_blocks = c.stream.transport_pendings() + s.stream.transport_pendings();
    Ok(report)
}

fn step<S: AsyncTestStream>(
    task: &mut Task<S>,
    rng: &mut Rng,
    scenario: &Scenario,
) -> Result<(), String> {
    let bytes_before = task.stream.transport_bytes();
    let (read_progress, write_progress) = task.turn(rng, scenario)?;
    // A task that progressed runs again (it has not returned Pending). Split halves are
    // separate tasks: only the one that progressed.
    if read_progress || (write_progress && !task.stream.is_split()) {
        task.read_flag.0.store(true, Ordering::SeqCst);
    }
    if write_progress || (read_progress && !task.stream.is_split()) {
        task.write_flag.0.store(true, Ordering::SeqCst);
    }
    if read_progress || write_progress || task.stream.transport_bytes() != bytes_before {
        task.idle_turns = 0;
    } else {
        task.idle_turns += 1;
        if task.idle_turns > 10_000 {
            return Err(format!(
                "{}: woken 10000 times in a row without progress (spinning)",
                task.name
            ));
        }
    }
    Ok(())
}

/// A [`TlsStream`](crate::TlsStream) over the hostile transport, driven through tokio's
/// traits.
#[cfg(feature = "tokio")]
#[derive(Debug)]
pub struct TokioPeer(pub crate::TlsStream<HostileTransport>);

/// A [`TlsStream`](crate::TlsStream) over the hostile transport, driven through
/// futures-io's traits.
#[cfg(feature = "futures-io")]
#[derive(Debug)]
pub struct FuturesPeer(pub crate::TlsStream<HostileTransport>);

/// Split halves of a [`TlsStream`](crate::TlsStream) over the hostile transport (one
/// transport handle each), driven through tokio's traits as two tasks.
#[cfg(feature = "tokio")]
pub struct TokioSplitPeer(Halves);

/// Split halves of a [`TlsStream`](crate::TlsStream) over the hostile transport, driven
/// through futures-io's traits as two tasks.
#[cfg(feature = "futures-io")]
pub struct FuturesSplitPeer(Halves);

/// The halves of a split peer, and a handle of their transport to watch it through.
#[cfg(any(feature = "tokio", feature = "futures-io"))]
struct Halves {
    read: crate::ReadHalf<HostileTransport, HostileTransport>,
    write: crate::WriteHalf<HostileTransport, HostileTransport>,
    probe: HostileTransport,
}

/// What the scheduler watches in a peer: its transport and what its reading side buffers.
#[cfg(any(feature = "tokio", feature = "futures-io"))]
trait Watched {
    fn probe(&self) -> &HostileTransport;
    fn parts(&self) -> (Buffered, Limits);
}

#[cfg(any(feature = "tokio", feature = "futures-io"))]
impl Watched for crate::TlsStream<HostileTransport> {
    fn probe(&self) -> &HostileTransport {
        self.get_ref()
    }
    fn parts(&self) -> (Buffered, Limits) {
        (self.buffered(), self.session().limits())
    }
}

#[cfg(any(feature = "tokio", feature = "futures-io"))]
impl Watched for Halves {
    fn probe(&self) -> &HostileTransport {
        &self.probe
    }
    fn parts(&self) -> (Buffered, Limits) {
        (self.read.buffered(), self.read.limits())
    }
}

#[cfg(feature = "tokio")]
fn tokio_read<R: tokio::io::AsyncRead + Unpin>(
    io: &mut R,
    cx: &mut Context<'_>,
    buf: &mut [u8],
) -> Poll<io::Result<usize>> {
    let mut read_buf = tokio::io::ReadBuf::new(buf);
    std::task::ready!(tokio::io::AsyncRead::poll_read(
        std::pin::Pin::new(io),
        cx,
        &mut read_buf
    ))?;
    Poll::Ready(Ok(read_buf.filled().len()))
}

#[cfg(feature = "futures-io")]
fn futures_read<R: futures_io::AsyncRead + Unpin>(
    io: &mut R,
    cx: &mut Context<'_>,
    buf: &mut [u8],
) -> Poll<io::Result<usize>> {
    futures_io::AsyncRead::poll_read(std::pin::Pin::new(io), cx, buf)
}

/// `AsyncTestStream` for a peer: reads through `$read` from `self.$reader`, writes through
/// the runtime's `AsyncWrite` to `self.$writer` (`$shutdown` is the runtime's name for
/// shutting down), and is watched through `self.$watched`.
#[cfg(any(feature = "tokio", feature = "futures-io"))]
macro_rules! async_peer {
    (
        $Peer:ident, $($runtime:ident)::+, $shutdown:ident, $read:ident,
        $watched:tt, reader: [$($reader:ident)?], writer: [$($writer:ident)?], split: $split:literal
    ) => {
        impl AsyncTestStream for $Peer {
            fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
                $read(&mut self.$watched $(.$reader)?, cx, buf)
            }
            fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
                let io = std::pin::Pin::new(&mut self.$watched $(.$writer)?);
                $($runtime)::+::AsyncWrite::poll_write(io, cx, buf)
            }
            fn poll_write_vectored(
                &mut self,
                cx: &mut Context<'_>,
                bufs: &[io::IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                let io = std::pin::Pin::new(&mut self.$watched $(.$writer)?);
                $($runtime)::+::AsyncWrite::poll_write_vectored(io, cx, bufs)
            }
            fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                let io = std::pin::Pin::new(&mut self.$watched $(.$writer)?);
                $($runtime)::+::AsyncWrite::poll_flush(io, cx)
            }
            fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                let io = std::pin::Pin::new(&mut self.$watched $(.$writer)?);
                $($runtime)::+::AsyncWrite::$shutdown(io, cx)
            }
            fn transport_pendings(&mut self) -> u64 {
                self.$watched.probe().would_blocks()
            }
            fn deliver_events(&mut self) -> bool {
                self.$watched.probe().deliver_events()
            }
            fn transport_bytes(&mut self) -> u64 {
                self.$watched.probe().bytes_moved()
            }
            fn buffered(&self) -> (Buffered, Limits) {
                self.$watched.parts()
            }
            fn is_split(&self) -> bool {
                $split
            }
        }
    };
}

#[cfg(feature = "tokio")]
async_peer!(TokioPeer, tokio::io, poll_shutdown, tokio_read, 0, reader: [], writer: [], split: false);
#[cfg(feature = "futures-io")]
async_peer!(FuturesPeer, futures_io, poll_close, futures_read, 0, reader: [], writer: [], split: false);
#[cfg(feature = "tokio")]
async_peer!(TokioSplitPeer, tokio::io, poll_shutdown, tokio_read, 0, reader: [read], writer: [write], split: true);
#[cfg(feature = "futures-io")]
async_peer!(FuturesSplitPeer, futures_io, poll_close, futures_read, 0, reader: [read], writer: [write], split: true);

#[cfg(any(feature = "tokio", feature = "futures-io"))]
macro_rules! split_peer {
    ($name:ident) => {
        impl $name {
            /// Splits `stream` (whose handshake must be complete) into halves over two
            /// handles of its transport.
            ///
            /// # Errors
            ///
            /// The stream, when its handshake is not complete.
            #[allow(clippy::result_large_err)]
            pub fn new(
                stream: crate::TlsStream<HostileTransport>,
            ) -> Result<Self, crate::TlsStream<HostileTransport>> {
                let probe = stream.get_ref().handle();
                let (read, write) = stream.split_with(|t| (t.handle(), t))?;
                Ok($name(Halves { read, write, probe }))
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name)).finish_non_exhaustive()
            }
        }
    };
}

#[cfg(feature = "tokio")]
split_peer!(TokioSplitPeer);
#[cfg(feature = "futures-io")]
split_peer!(FuturesSplitPeer);
