//! Memory per idle established connection: the contender's tokio server runs in a child
//! process (`tlsflow-bench idle-server`); this process opens `count` client connections,
//! each sending one 1 KiB message and awaiting its echo, and compares the child's resident
//! set before any connection (after one warm-up connection came and went) and with all of
//! them idle.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;

use crate::blocking::STALL;
use crate::contender::Contender;
use crate::failure::{Context, Failure, Outcome};
use crate::idle_server::MESSAGE;
use crate::pattern::Pattern;
use crate::results::{Measured, Sample};
use crate::tls::{Identity, Tls};
use crate::tokio_conn::{self, Conn};

/// Connections being set up at once.
pub(crate) const IN_FLIGHT: usize = 32;

/// How long to let the child settle before reading its memory.
pub(crate) const SETTLE: Duration = Duration::from_millis(300);

pub(crate) fn run(
    contender: &Contender,
    identity: &Identity,
    tls: &Arc<Tls>,
    count: u32,
) -> Outcome<Measured> {
    let server = IdleServer::start(contender, identity)?;
    let stack = contender.stack.tokio_client();
    let message = Pattern::random(MESSAGE);
    let runtime = tokio_conn::runtime().ctx("tokio runtime")?;
    let limit = STALL + Duration::from_millis(20 * u64::from(count));
    let (before, after, negotiated) = runtime.block_on(tokio_conn::within(limit, async {
        let filled = fill(&server, stack, tls, count, &message).await?;
        // The child goes first, so closing all these is no work for it.
        drop(server);
        drop(filled.conns);
        Ok::<_, Failure>((filled.before, filled.after, filled.negotiated))
    }))?;
    Ok(Measured {
        sample: Sample {
            value: (after as f64 - before as f64) / f64::from(count),
            cpu_s_per_gib: None,
        },
        negotiated,
    })
}

/// `count` idle connections to an idle server, and its resident set around them.
pub(crate) struct Filled {
    pub(crate) conns: Vec<Conn>,
    /// The server's resident set after one warm-up connection came and went, and with all
    /// `conns` idle, in bytes.
    pub(crate) before: u64,
    pub(crate) after: u64,
    pub(crate) negotiated: Option<crate::tls::Negotiated>,
}

/// Opens `count` connections to `server` (each one message and its echo, then idle) after
/// a warm-up connection, reading the server's memory before and after.
pub(crate) async fn fill(
    server: &IdleServer,
    stack: crate::contender::Stack,
    tls: &Arc<Tls>,
    count: u32,
    message: &Pattern,
) -> Outcome<Filled> {
    let addr = server.addr;
    let mut warm_up = open(stack, tls.clone(), addr, message.clone()).await?;
    let negotiated = warm_up.negotiated();
    tokio_conn::close(&mut warm_up)
        .await
        .ctx("warm-up connection")?;
    drop(warm_up);
    tokio::time::sleep(SETTLE).await;
    let before = server.rss()?;
    let conns = open_many(count, || open(stack, tls.clone(), addr, message.clone())).await?;
    tokio::time::sleep(SETTLE).await;
    let after = server.rss()?;
    Ok(Filled {
        conns,
        before,
        after,
        negotiated,
    })
}

/// Opens `count` connections with `open_one`, [`IN_FLIGHT`] at a time, each on a task.
pub(crate) async fn open_many<F>(count: u32, mut open_one: impl FnMut() -> F) -> Outcome<Vec<Conn>>
where
    F: std::future::Future<Output = Outcome<Conn>> + Send + 'static,
{
    let mut conns = Vec::with_capacity(count as usize);
    let mut tasks = JoinSet::new();
    for _ in 0..count {
        if tasks.len() >= IN_FLIGHT {
            conns.push(joined(tasks.join_next().await)?);
        }
        tasks.spawn(open_one());
    }
    while !tasks.is_empty() {
        conns.push(joined(tasks.join_next().await)?);
    }
    Ok(conns)
}

fn joined(done: Option<Result<Outcome<Conn>, tokio::task::JoinError>>) -> Outcome<Conn> {
    match done {
        Some(done) => tokio_conn::task(done),
        None => Err(Failure::io("no client task left")),
    }
}

/// One client connection: handshake, one message, its echo; then left open.
pub(crate) async fn open(
    stack: crate::contender::Stack,
    tls: Arc<Tls>,
    addr: SocketAddr,
    message: Pattern,
) -> Outcome<Conn> {
    let tcp = tokio::net::TcpStream::connect(addr).await.ctx("connect")?;
    tcp.set_nodelay(true).ctx("connect")?;
    let mut conn = tokio_conn::connect(stack, &tls, tcp)
        .await
        .ctx("client handshake")?;
    conn.write_all(message.bytes()).await.ctx("message")?;
    conn.flush().await.ctx("message")?;
    let mut echo = vec![0u8; MESSAGE];
    conn.read_exact(&mut echo).await.ctx("echo")?;
    if echo != message.bytes() {
        return Err(Failure::corrupt("an echo differs from its message"));
    }
    if let Some(negotiated) = conn.negotiated() {
        negotiated.check()?;
    }
    Ok(conn)
}

/// The child process; killed when dropped.
pub(crate) struct IdleServer {
    child: Child,
    pub(crate) addr: SocketAddr,
}

impl IdleServer {
    pub(crate) fn start(contender: &Contender, identity: &Identity) -> Outcome<IdleServer> {
        let exe = std::env::current_exe().ctx("cannot find this program")?;
        let child = Command::new(exe)
            .args(["idle-server", "--contender", contender.name])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .ctx("cannot start the idle server")?;
        let mut server = IdleServer {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let mut stdin = server
            .child
            .stdin
            .take()
            .ok_or_else(|| Failure::io("the idle server has no stdin"))?;
        stdin
            .write_all(identity.to_pem().as_bytes())
            .ctx("idle server")?;
        drop(stdin);
        let stdout = server
            .child
            .stdout
            .take()
            .ok_or_else(|| Failure::io("the idle server has no stdout"))?;
        let mut line = String::new();
        let started = Instant::now();
        BufReader::new(stdout)
            .read_line(&mut line)
            .ctx("idle server")?;
        let port: u16 = line
            .trim()
            .strip_prefix("port ")
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| {
                Failure::io(format!(
                    "the idle server did not start (it said {:?} after {:.1} s)",
                    line.trim(),
                    started.elapsed().as_secs_f64()
                ))
            })?;
        server.addr.set_port(port);
        Ok(server)
    }

    /// The child's CPU time (user and system) so far.
    pub(crate) fn cpu(&self) -> Outcome<Duration> {
        let path = format!("/proc/{}/stat", self.child.id());
        let stat = std::fs::read_to_string(&path).ctx(&format!("cannot read {path}"))?;
        // The fields after the command name (in parentheses, which may hold spaces):
        // utime and stime are the 14th and 15th of the line, in clock ticks.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
        let (Some(user), Some(system)) = (ticks(11), ticks(12)) else {
            return Err(Failure::io(format!("no CPU times in {path}")));
        };
        let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .filter(|&hz| hz > 0)
            .unwrap_or(100) as u64;
        Ok(Duration::from_secs_f64((user + system) as f64 / hz as f64))
    }

    /// The child's resident set, in bytes.
    pub(crate) fn rss(&self) -> Outcome<u64> {
        let path = format!("/proc/{}/status", self.child.id());
        let status = std::fs::read_to_string(&path).ctx(&format!("cannot read {path}"))?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().strip_suffix("kB"))
            .and_then(|kb| kb.trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .ok_or_else(|| Failure::io(format!("no VmRSS line in {path}")))
    }
}

impl Drop for IdleServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
