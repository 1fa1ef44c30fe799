//! The harness for testing `tlsflow` as a user runs it: spawn the built binary (and real
//! peers: `openssl`, `curl`, `python3`), feed it files, read what it prints. Every wait is
//! bounded, and every child is killed when its handle drops, so a failing test never hangs
//! or leaves processes behind.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

/// How long any one step may take before the test fails.
pub const STEP: Duration = Duration::from_secs(60);

/// The binary under test: this build's, or the one `TLSFLOW_BIN` names (to measure other
/// builds the same way).
pub fn tlsflow() -> Command {
    let binary =
        std::env::var_os("TLSFLOW_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_tlsflow").into());
    let mut command = Command::new(binary);
    command.stdin(Stdio::null());
    command
}

/// A fresh directory, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir = std::env::temp_dir().join(format!(
            "tlsflow-cli-{tag}-{}-{nanos}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A child process that is killed when dropped, with its stderr collected line by line.
pub struct Proc {
    pub name: String,
    child: Child,
    stderr: Arc<Mutex<String>>,
    stderr_done: std::sync::mpsc::Receiver<()>,
    stdout: Option<thread::JoinHandle<Vec<u8>>>,
}

impl Proc {
    /// Spawns `command` with stdout and stderr captured (stdin as the command set it).
    pub fn spawn(name: &str, mut command: Command) -> Proc {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let pipe = child.stderr.take().unwrap();
        let (done_tx, stderr_done) = std::sync::mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut text = sink.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
            let _ = done_tx.send(());
        });
        let mut out = child.stdout.take().unwrap();
        let stdout = thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = out.read_to_end(&mut bytes);
            bytes
        });
        Proc {
            name: name.to_owned(),
            child,
            stderr,
            stderr_done,
            stdout: Some(stdout),
        }
    }

    /// The child's stdin, when it was set to piped.
    pub fn stdin(&mut self) -> std::process::ChildStdin {
        self.child.stdin.take().expect("stdin was not piped")
    }

    /// The exit status, if the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Everything the child has written to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until stderr contains a line matching `find` (returning what it returned).
    pub fn wait_for_stderr<T>(&mut self, what: &str, find: impl Fn(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + STEP;
        loop {
            if let Some(found) = self.stderr().lines().find_map(&find) {
                return found;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                let _ = self.stderr_done.recv_timeout(Duration::from_secs(5));
                panic!(
                    "{} exited ({status}) before printing {what}; stderr:\n{}",
                    self.name,
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} did not print {what} within {STEP:?}; stderr:\n{}",
                self.name,
                self.stderr()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until stderr has `count` lines for which `parse` returns something; returns them.
    pub fn wait_for_lines<T>(
        &mut self,
        what: &str,
        count: usize,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Vec<T> {
        let deadline = Instant::now() + STEP;
        loop {
            let found: Vec<T> = self.stderr().lines().filter_map(&parse).collect();
            if found.len() >= count {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "{} printed {} of {count} {what} within {STEP:?}; stderr:\n{}",
                self.name,
                found.len(),
                self.stderr()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the child to exit (killing it after `limit`) and returns its output.
    pub fn finish(mut self, limit: Duration) -> Output {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let _ = self.stderr_done.recv_timeout(Duration::from_secs(5));
                panic!(
                    "{} did not exit within {limit:?}; stderr:\n{}",
                    self.name,
                    self.stderr()
                );
            }
            thread::sleep(Duration::from_millis(20));
        };
        let stdout = self.stdout.take().unwrap().join().unwrap();
        // All of stderr: the pipe ends with the process (bounded, in case a grandchild
        // inherited it).
        let _ = self.stderr_done.recv_timeout(Duration::from_secs(5));
        Output {
            status,
            stdout,
            stderr: self.stderr(),
        }
    }

    /// Sends SIGINT (as Ctrl-C does) and waits for the exit.
    pub fn interrupt(self, limit: Duration) -> Output {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        self.finish(limit)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a finished process left.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Output {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Asserts the exit code, showing the output when it differs.
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.status.code(),
            Some(code),
            "unexpected exit status; stdout:\n{}\nstderr:\n{}",
            self.stdout_text(),
            self.stderr
        );
        self
    }

    /// Asserts a one-line `tlsflow: error:` message containing every one of `words`, and no
    /// panic or backtrace.
    pub fn assert_error(&self, code: i32, words: &[&str]) -> &Self {
        self.assert_code(code);
        assert_clean_error(&self.stderr, words);
        self
    }
}

/// Asserts that stderr holds one `tlsflow: error:` line with all of `words`, and no panic.
pub fn assert_clean_error(stderr: &str, words: &[&str]) {
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "a panic:\n{stderr}"
    );
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("tlsflow: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "expected one error line in:\n{stderr}");
    for word in words {
        assert!(
            errors[0].contains(word),
            "error line lacks {word:?}: {}",
            errors[0]
        );
    }
}

/// Runs `tlsflow ARGS` to completion (bounded) with stdin from `input` (or nothing).
pub fn run(args: &[&str], input: Option<&Path>) -> Output {
    let mut command = tlsflow();
    command.args(args);
    if let Some(path) = input {
        command.stdin(fs::File::open(path).unwrap());
    }
    Proc::spawn(&format!("tlsflow {}", args.join(" ")), command).finish(STEP)
}

/// A running `tlsflow serve`/`tunnel` and the address it printed.
pub struct Server {
    pub proc: Proc,
    pub addr: SocketAddr,
}

impl Server {
    /// Starts `tlsflow ARGS` (which must include `--listen 127.0.0.1:0`) and waits for its
    /// `listening on ADDR` line.
    pub fn start(args: &[&str]) -> Server {
        let mut command = tlsflow();
        command.args(args);
        let mut proc = Proc::spawn(&format!("tlsflow {}", args.join(" ")), command);
        let addr = proc.wait_for_stderr("its address", |line| {
            let (_, addr) = line.split_once("listening on ")?;
            addr.trim().parse().ok()
        });
        Server { proc, addr }
    }

    /// The server's process id, for signals.
    pub fn proc_id(&self) -> String {
        self.proc.id().to_string()
    }

    pub fn port(&self) -> String {
        self.addr.port().to_string()
    }
}

/// A port that was free a moment ago, for peers that cannot report the one they bound.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether something listens on 127.0.0.1:`port` (or any address), read from
/// `/proc/net/tcp` so that no probe connection is spent on a peer that serves only one.
pub fn is_listening(port: u16) -> bool {
    let wanted = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|table| {
        fs::read_to_string(table).is_ok_and(|text| {
            text.lines().skip(1).any(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                fields.len() > 3 && fields[1].ends_with(&wanted) && fields[3] == "0A"
            })
        })
    })
}

/// A file of `size` pseudo-random bytes; returns its SHA-256 (hex).
pub fn random_file(path: &Path, size: usize, seed: u64) -> String {
    let mut file = std::io::BufWriter::new(fs::File::create(path).unwrap());
    let mut hasher = Sha256::new();
    let mut state = seed;
    let mut block = vec![0u8; 1 << 16];
    let mut left = size;
    while left > 0 {
        for chunk in block.chunks_mut(8) {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            chunk.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes()[..chunk.len()]);
        }
        let n = left.min(block.len());
        file.write_all(&block[..n]).unwrap();
        hasher.update(&block[..n]);
        left -= n;
    }
    file.flush().unwrap();
    hex(&hasher.finalize())
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

pub fn sha256_file(path: &Path) -> String {
    let mut file = fs::File::open(path).unwrap();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).unwrap();
        if n == 0 {
            return hex(&hasher.finalize());
        }
        hasher.update(&buf[..n]);
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `tlsflow cert --name NAME.. --out DIR`: returns (cert.pem, key.pem).
pub fn make_cert(dir: &Path, names: &[&str]) -> (PathBuf, PathBuf) {
    let mut args = vec!["cert"];
    for name in names {
        args.extend(["--name", name]);
    }
    let out = dir.to_str().unwrap();
    args.extend(["--out", out]);
    run(&args, None).assert_code(0);
    (dir.join("cert.pem"), dir.join("key.pem"))
}

/// Whether a peer program can run. A missing peer fails the test with a clear message,
/// unless `TLSFLOW_SKIP_PEERS=1` (then the test is skipped).
pub fn peer_available(program: &str, probe: &[&str], install: &str) -> bool {
    let works = Command::new(program)
        .args(probe)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if works {
        return true;
    }
    if std::env::var("TLSFLOW_SKIP_PEERS").as_deref() == Ok("1") {
        eprintln!("skipping: `{program}` is not usable and TLSFLOW_SKIP_PEERS=1");
        return false;
    }
    panic!(
        "this test needs `{program}`, which is not usable here; install it ({install}) or \
         set TLSFLOW_SKIP_PEERS=1 to skip the tests that need it"
    );
}

/// Parses a `<peer>: received N bytes, sha256 HEX` line of `serve --sink`.
pub fn parse_sink_line(line: &str) -> Option<(u64, String)> {
    let (_, rest) = line.split_once(": received ")?;
    let (bytes, sha) = rest.split_once(" bytes, sha256 ")?;
    Some((bytes.parse().ok()?, sha.trim().to_owned()))
}

/// The first sink line `serve --sink` printed.
pub fn sink_line(server: &mut Server) -> (u64, String) {
    server.proc.wait_for_stderr("a sink line", parse_sink_line)
}
