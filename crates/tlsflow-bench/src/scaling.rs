//! Scaling: how cost grows with the work. Two parts:
//!
//! - **Busy connections**: 1, 10, 100 and 1,000 connections at once, each a client task
//!   that sends a 1 KiB request and awaits its 1 KiB echo, again and again for a fixed
//!   time, against a server task per connection; clients and servers share one
//!   multi-thread tokio runtime with a worker per CPU. Figures: round trips per second
//!   (all connections together), process CPU seconds per GiB moved (requests and
//!   responses, both ends), and the median and 99th-percentile round-trip latency.
//! - **Idle connections with a trickle**: 10,000 connections to the contender's server in a
//!   child process (the memory measure's server), idle but for a trickle of requests (one
//!   every millisecond, each on the next connection in turn). Figures: the server's
//!   resident memory per connection, the server's CPU use while the trickle runs, and the
//!   trickle's round-trip latency.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;

use crate::contender::{Contender, Stack};
use crate::cpu::Mark;
use crate::failure::{Context, Failure, Outcome};
use crate::memory::{fill, open_many, IdleServer};
use crate::pattern::Pattern;
use crate::results::GIB;
use crate::rtt::echo_each;
use crate::stats::Summary;
use crate::tls::{Identity, Negotiated, Tls};
use crate::tokio_conn::{self, Conn};

/// Bytes in a request and in a response.
pub(crate) const MESSAGE: usize = 1024;

/// Connection counts of the busy part.
pub(crate) const BUSY: [u32; 4] = [1, 10, 100, 1000];

/// Requests per second of the trickle.
pub(crate) const TRICKLE_PER_S: u32 = 1000;

/// One run of one busy point.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct BusySample {
    pub(crate) round_trips_per_s: f64,
    pub(crate) cpu_s_per_gib: f64,
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
}

/// The runs of one contender at one connection count.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct BusyPoint {
    pub(crate) contender: String,
    pub(crate) connections: u32,
    pub(crate) samples: Vec<BusySample>,
}

impl BusyPoint {
    /// The median, minimum and maximum of one figure over the runs.
    pub(crate) fn summary(&self, figure: impl Fn(&BusySample) -> f64) -> Option<Summary> {
        Summary::of(self.samples.iter().map(figure))
    }
}

/// One contender's idle connections with a trickle of requests.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct IdlePoint {
    pub(crate) contender: String,
    pub(crate) connections: u32,
    pub(crate) seconds: f64,
    pub(crate) requests: u64,
    /// The server's resident memory per connection, bytes.
    pub(crate) server_bytes_per_conn: f64,
    /// The server's CPU time while the trickle ran, percent of one CPU.
    pub(crate) server_cpu_percent: f64,
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
}

/// Everything the scaling measure found.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Scaling {
    pub(crate) busy_seconds: f64,
    pub(crate) runs: u32,
    pub(crate) busy: Vec<BusyPoint>,
    pub(crate) idle_seconds: f64,
    pub(crate) idle: Vec<IdlePoint>,
}

impl Scaling {
    pub(crate) fn point(&self, contender: &str, connections: u32) -> Option<&BusyPoint> {
        self.busy
            .iter()
            .find(|p| p.contender == contender && p.connections == connections)
            .filter(|p| !p.samples.is_empty())
    }
}

/// The `q` quantile (0..=1) of sorted values, in microseconds.
fn quantile(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() - 1) as f64 * q).round() as usize;
    f64::from(sorted[rank.min(sorted.len() - 1)])
}

fn micros(elapsed: Duration) -> u32 {
    u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX)
}

/// A multi-thread runtime with a worker per CPU this process may use.
fn multi_thread() -> std::io::Result<tokio::runtime::Runtime> {
    let workers = crate::cpu::usable_cpus().len().max(1);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
}

/// One busy point: `connections` clients asking for `seconds`.
pub(crate) fn busy(
    contender: &Contender,
    tls: &Arc<Tls>,
    connections: u32,
    seconds: f64,
) -> Outcome<(BusySample, Option<Negotiated>)> {
    let stack = contender.stack;
    let request = Pattern::random(MESSAGE);
    let runtime = multi_thread().ctx("tokio runtime")?;
    let limit = crate::blocking::STALL
        + Duration::from_secs_f64(seconds)
        + Duration::from_millis(20 * u64::from(connections));
    runtime.block_on(tokio_conn::within(limit, async {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .ctx("cannot listen on loopback")?;
        let addr = listener.local_addr().ctx("listener")?;
        let server = tokio::spawn(serve(stack, tls.clone(), listener, connections));

        // Every client connected and through its handshake before the clock starts.
        let clients = open_many(connections, || connect(stack, tls.clone(), addr)).await?;
        let negotiated = clients.first().and_then(Conn::negotiated);

        let start = Mark::now();
        let until = start.at + Duration::from_secs_f64(seconds);
        let mut asking = JoinSet::new();
        for conn in clients {
            asking.spawn(ask(conn, request.clone(), until));
        }
        let mut conns = Vec::with_capacity(connections as usize);
        let mut latencies = Vec::new();
        while let Some(done) = asking.join_next().await {
            let (conn, mut times) = tokio_conn::task(done)?;
            conns.push(conn);
            latencies.append(&mut times);
        }
        let end = Mark::now();

        // Clean ends, outside the measured time.
        let mut closing = JoinSet::new();
        for mut conn in conns {
            closing.spawn(async move { tokio_conn::close(&mut conn).await.ctx("client's close") });
        }
        while let Some(done) = closing.join_next().await {
            tokio_conn::task(done)?;
        }
        tokio_conn::task(server.await)?;

        latencies.sort_unstable();
        let count = latencies.len() as f64;
        let wall = end.at.saturating_duration_since(start.at).as_secs_f64();
        let cpu = end.cpu.saturating_sub(start.cpu).as_secs_f64();
        let moved = count * 2.0 * MESSAGE as f64;
        Ok((
            BusySample {
                round_trips_per_s: count / wall.max(1e-9),
                cpu_s_per_gib: cpu / (moved / GIB).max(1e-12),
                p50_us: quantile(&latencies, 0.50),
                p99_us: quantile(&latencies, 0.99),
            },
            negotiated,
        ))
    }))
}

/// Accepts `connections` connections and echoes each one's messages on a task of its own.
async fn serve(
    stack: Stack,
    tls: Arc<Tls>,
    listener: tokio::net::TcpListener,
    connections: u32,
) -> Outcome<()> {
    let mut tasks = JoinSet::new();
    for _ in 0..connections {
        let (tcp, _) = listener.accept().await.ctx("accept")?;
        tcp.set_nodelay(true).ctx("accept")?;
        let tls = tls.clone();
        tasks.spawn(async move {
            let mut conn = tokio_conn::accept(stack, &tls, tcp)
                .await
                .ctx("server handshake")?;
            echo_each(&mut conn, MESSAGE).await.ctx("echo")?;
            // The client has closed: answer its close.
            conn.shutdown().await.ctx("server's close")
        });
    }
    while let Some(done) = tasks.join_next().await {
        tokio_conn::task(done)?;
    }
    Ok(())
}

async fn connect(stack: Stack, tls: Arc<Tls>, addr: SocketAddr) -> Outcome<Conn> {
    let tcp = tokio::net::TcpStream::connect(addr).await.ctx("connect")?;
    tcp.set_nodelay(true).ctx("connect")?;
    tokio_conn::connect(stack, &tls, tcp)
        .await
        .ctx("client handshake")
}

/// Round trips on one connection until `until`; the latency of each, in microseconds.
async fn ask(mut conn: Conn, request: Pattern, until: Instant) -> Outcome<(Conn, Vec<u32>)> {
    let mut response = vec![0u8; MESSAGE];
    let mut times = Vec::new();
    loop {
        let sent = Instant::now();
        if sent >= until {
            break;
        }
        conn.write_all(request.bytes()).await.ctx("request")?;
        conn.flush().await.ctx("request")?;
        conn.read_exact(&mut response).await.ctx("response")?;
        if response != request.bytes() {
            return Err(Failure::corrupt("a response differs from its request"));
        }
        times.push(micros(sent.elapsed()));
    }
    Ok((conn, times))
}

/// `connections` idle connections to the contender's server in a child process, then a
/// trickle of requests for `seconds`.
pub(crate) fn idle(
    contender: &Contender,
    identity: &Identity,
    tls: &Arc<Tls>,
    connections: u32,
    seconds: f64,
) -> Outcome<(IdlePoint, Option<Negotiated>)> {
    let server = IdleServer::start(contender, identity)?;
    let stack = contender.stack.tokio_client();
    let message = Pattern::random(MESSAGE);
    let runtime = tokio_conn::runtime().ctx("tokio runtime")?;
    let limit = crate::blocking::STALL
        + Duration::from_secs_f64(seconds)
        + Duration::from_millis(20 * u64::from(connections));
    runtime.block_on(tokio_conn::within(limit, async {
        let filled = fill(&server, stack, tls, connections, &message).await?;
        let (mut conns, before, after) = (filled.conns, filled.before, filled.after);
        let negotiated = filled.negotiated;

        // The trickle: one request per tick, each on the next connection in turn.
        let mut tick = tokio::time::interval(Duration::from_secs(1) / TRICKLE_PER_S);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut response = vec![0u8; MESSAGE];
        let mut times = Vec::new();
        let cpu_before = server.cpu()?;
        let started = Instant::now();
        let until = started + Duration::from_secs_f64(seconds);
        let mut next = 0;
        while Instant::now() < until {
            tick.tick().await;
            let count = conns.len();
            let conn = &mut conns[next];
            next = (next + 1) % count;
            let sent = Instant::now();
            conn.write_all(message.bytes())
                .await
                .ctx("trickle request")?;
            conn.flush().await.ctx("trickle request")?;
            conn.read_exact(&mut response)
                .await
                .ctx("trickle response")?;
            if response != message.bytes() {
                return Err(Failure::corrupt("a response differs from its request"));
            }
            times.push(micros(sent.elapsed()));
        }
        let wall = started.elapsed().as_secs_f64();
        let cpu = server.cpu()?.saturating_sub(cpu_before).as_secs_f64();
        // The child goes first, so closing all these is no work for it.
        drop(server);
        drop(conns);
        times.sort_unstable();
        Ok((
            IdlePoint {
                contender: contender.name.to_owned(),
                connections,
                seconds: wall,
                requests: times.len() as u64,
                server_bytes_per_conn: (after as f64 - before as f64) / f64::from(connections),
                server_cpu_percent: cpu / wall.max(1e-9) * 100.0,
                p50_us: quantile(&times, 0.50),
                p99_us: quantile(&times, 0.99),
            },
            negotiated,
        ))
    }))
}
