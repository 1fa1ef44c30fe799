//! Peers as child processes: found or clearly missing, always killed and reaped, every wait
//! bounded.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, ExitStatus};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tlsflow::testing::Rng;

/// Whether the peer program `name` runs (`probe` are arguments that make it print its
/// version and exit 0). A missing peer fails the test, with a message saying what to
/// install, unless `TLSFLOW_SKIP_PEERS=1`.
pub(crate) fn peer_available(name: &str, probe: &[&str], package: &str) -> bool {
    match Command::new(name).args(probe).output() {
        Ok(out) if out.status.success() => true,
        other => {
            let why = match other {
                Ok(out) => format!("`{name}` exited with {}", out.status),
                Err(e) => format!("`{name}` cannot run: {e}"),
            };
            if std::env::var("TLSFLOW_SKIP_PEERS").as_deref() == Ok("1") {
                eprintln!("skipping: {why} and TLSFLOW_SKIP_PEERS=1");
                false
            } else {
                panic!(
                    "{why}: this test needs it as a TLS peer. Install it (Debian: apt-get \
                     install {package}; .ci/run does) or set TLSFLOW_SKIP_PEERS=1 to skip"
                );
            }
        }
    }
}

/// A child process that is killed and reaped when dropped, so no test leaves one behind.
pub(crate) struct Reaped(pub(crate) Child);

impl Reaped {
    /// Waits for the child to exit, killing it after `timeout` (then `None`).
    pub(crate) fn wait_bounded(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.0.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                let _ = self.0.kill();
                let _ = self.0.wait();
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether the child has exited already, and how.
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        self.0.try_wait().ok().flatten()
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads `from` to its end in a thread, as text (a child's stderr, for failure messages),
/// keeping its first and last 4 KiB: some peers print everything they receive there.
pub(crate) fn collect_text(mut from: impl Read + Send + 'static) -> JoinHandle<String> {
    const KEEP: usize = 4096;
    thread::spawn(move || {
        let (mut head, mut tail, mut dropped) = (Vec::new(), Vec::new(), 0usize);
        let mut buf = [0u8; 8192];
        while let Ok(n @ 1..) = from.read(&mut buf) {
            let mut chunk = &buf[..n];
            let room = KEEP.saturating_sub(head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..room]);
            chunk = &chunk[room..];
            tail.extend_from_slice(chunk);
            if tail.len() > 2 * KEEP {
                dropped += tail.len() - KEEP;
                tail.drain(..tail.len() - KEEP);
            }
        }
        let mut text = String::from_utf8_lossy(&head).into_owned();
        if dropped > 0 {
            text.push_str(&format!("\n[... {dropped} bytes left out ...]\n"));
        }
        text.push_str(&String::from_utf8_lossy(&tail));
        text
    })
}

/// The SHA-256 and length of a byte stream.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Digest256 {
    pub(crate) len: u64,
    pub(crate) sha: [u8; 32],
}

impl std::fmt::Debug for Digest256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} bytes, SHA-256 {}", self.len, hex(&self.sha))
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hashes `from` to its end in a thread (a child's stdout). Ends when the child exits or is
/// killed.
pub(crate) fn hash_in_thread(mut from: impl Read + Send + 'static) -> JoinHandle<Digest256> {
    thread::spawn(move || {
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut len = 0u64;
        loop {
            match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    hasher.update(&buf[..n]);
                    len += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        Digest256 {
            len,
            sha: hasher.finalize().into(),
        }
    })
}

/// `len` seeded pseudo-random bytes, produced in blocks so no test holds 64 MiB at once.
pub(crate) struct Generator {
    rng: Rng,
    left: u64,
    hasher: Sha256,
    len: u64,
    lines: bool,
}

impl Generator {
    pub(crate) fn new(seed: u64, len: u64) -> Generator {
        Generator {
            rng: Rng::new(seed),
            left: len,
            hasher: Sha256::new(),
            len,
            lines: false,
        }
    }

    /// Random bytes that a line-based C program passes through unchanged: no NUL (ends a C
    /// string), CR or `*` (line commands), and `\n` about every 85 bytes and at the end.
    pub(crate) fn lines(seed: u64, len: u64) -> Generator {
        Generator {
            lines: true,
            ..Generator::new(seed, len)
        }
    }

    /// The next block (empty at the end), at most `buf.len()` bytes.
    pub(crate) fn next_block<'b>(&mut self, buf: &'b mut [u8]) -> &'b [u8] {
        let n = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let block = &mut buf[..n];
        self.rng.fill(block);
        self.left -= n as u64;
        if self.lines {
            for byte in block.iter_mut() {
                if matches!(*byte, 0 | b'\r' | b'*') {
                    *byte = b'\n';
                }
            }
            if let (0, Some(last)) = (self.left, block.last_mut()) {
                *last = b'\n';
            }
        }
        self.hasher.update(&*block);
        block
    }

    /// The digest of everything produced (call after the last block).
    pub(crate) fn digest(self) -> Digest256 {
        Digest256 {
            len: self.len,
            sha: self.hasher.finalize().into(),
        }
    }
}

/// A thread feeding a child's stdin: how it ended, the stdin if kept open, and what it fed.
pub(crate) type Feeding = JoinHandle<(io::Result<()>, Option<ChildStdin>, Digest256)>;

/// Writes `len` generated bytes into a child's stdin in a thread. With `keep_open` the stdin
/// is handed back still open (some peers end the connection when their input ends);
/// otherwise it is closed at the end.
pub(crate) fn feed_in_thread(
    mut stdin: ChildStdin,
    seed: u64,
    len: u64,
    keep_open: bool,
) -> Feeding {
    thread::spawn(move || {
        let mut generator = Generator::new(seed, len);
        let mut buf = vec![0u8; 64 * 1024];
        let result = loop {
            let block = generator.next_block(&mut buf);
            if block.is_empty() {
                break stdin.flush();
            }
            if let Err(e) = stdin.write_all(block) {
                break Err(e);
            }
        };
        (result, keep_open.then_some(stdin), generator.digest())
    })
}

/// Connects with `connect` to a server child that is starting on `port`, retrying until it
/// listens. Fails if the child exits first or `timeout` passes. The connection made is the
/// one the test uses (servers started with `-naccept 1` serve only that one).
pub(crate) fn connect_to_child(
    child: &mut Reaped,
    port: u16,
    timeout: Duration,
    connect: &dyn Fn(u16) -> io::Result<TcpStream>,
) -> Result<TcpStream, String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(tcp) = connect(port) {
            return Ok(tcp);
        }
        if let Some(status) = child.exited() {
            return Err(format!("the server exited with {status} before listening"));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the server did not listen on port {port} in {timeout:?}"
            ));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Accepts one connection from a client child, failing if the child exits first or
/// `timeout` passes.
pub(crate) fn accept_from_child(
    listener: &TcpListener,
    child: &mut Reaped,
    timeout: Duration,
) -> Result<TcpStream, String> {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + timeout;
    loop {
        match listener.accept() {
            Ok((tcp, _)) => {
                tcp.set_nonblocking(false).unwrap();
                return Ok(tcp);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(format!("accept failed: {e}")),
        }
        if let Some(status) = child.exited() {
            return Err(format!("the client exited with {status} before connecting"));
        }
        if Instant::now() > deadline {
            return Err(format!("the client did not connect in {timeout:?}"));
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// A port that was free a moment ago (a server child may still lose a race for it; callers
/// retry on a new port when the child exits early).
pub(crate) fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}
