//! `tlsflow bench`: the scenario that corrupts other TLS streams, as a benchmark with no
//! setup. A self-signed certificate, loopback TCP, a client socket with the smallest send
//! buffer, a slow reader, 1 GiB by default; every byte checked by SHA-256 on the far side.
//!
//! Both ends run in this process: the client (in the chosen I/O model) sends, the server
//! receives; with `--duplex` both send and receive at once through split halves.

mod cpu;
mod nonblocking;
mod payload;
mod progress;
mod report;
mod std_io;
mod tokio_io;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use tlsflow::{ClientConfig, SelfSigned, ServerConfig, TlsStream};

use crate::cli::{BenchArgs, IoModel};
use crate::failure::{describe_io, Context, Failure, Outcome};
use crate::trust;
use payload::{Digest, Plan};
use report::Run;

/// How long any one socket operation may make no progress before the run fails.
pub(crate) const STALL: Duration = Duration::from_secs(30);

/// The largest `--write-size` (each write's buffer is allocated once per connection).
const MAX_WRITE_SIZE: u64 = 64 << 20;

/// One end of one connection, as its thread or task saw it.
#[derive(Debug)]
pub(crate) struct Side {
    /// The client's address: how the two ends of a connection are paired.
    pub(crate) client_addr: SocketAddr,
    /// What this end sent.
    pub(crate) sent: Option<Digest>,
    /// What this end received, and when the peer's `close_notify` arrived.
    pub(crate) received: Option<(Digest, Instant)>,
    /// Protocol version and cipher suite (reported by the client).
    pub(crate) negotiated: Option<String>,
}

impl Side {
    pub(crate) fn new(
        client_addr: SocketAddr,
        sent: Option<Digest>,
        received: Option<(Digest, Instant)>,
        negotiated: Option<String>,
    ) -> Side {
        Side {
            client_addr,
            sent,
            received,
            negotiated,
        }
    }
}

/// `TLSv1.3 TLS13_AES_256_GCM_SHA384`.
pub(crate) fn negotiated<T>(tls: &TlsStream<T>) -> String {
    format!(
        "{} {}",
        tls.protocol_version()
            .map_or_else(|| "?".to_owned(), |v| v.to_string()),
        tls.cipher_suite()
            .map_or_else(|| "?".into(), |s| s.to_string())
    )
}

/// Runs the benchmark; fails unless every byte arrived intact.
pub(crate) fn run(args: &BenchArgs) -> Outcome {
    let engine = trust::engine_kind(args.engine)?;
    if args.write_size > MAX_WRITE_SIZE {
        return Err(Failure::usage(format!(
            "--write-size must be at most {MAX_WRITE_SIZE} bytes"
        )));
    }
    let sndbuf = args.sndbuf.unwrap_or(1).min(i32::MAX as u64) as usize;
    let cert = SelfSigned::generate(&["localhost"])
        .context(|| "cannot make a self-signed certificate".to_owned())?;
    let server = ServerConfig::builder()
        .engine(engine)
        .self_signed(&cert)
        .build()
        .context(|| "cannot configure the server".to_owned())?;
    let client = ClientConfig::builder()
        .engine(engine)
        .ca_certificate(cert.cert_der())
        .build()
        .context(|| "cannot configure the client".to_owned())?;
    let plan = Arc::new(Plan {
        size: args.size,
        write_size: args.write_size as usize,
        slow_reader: !args.no_slow_reader,
        duplex: args.duplex,
        sndbuf,
        rcvbuf: args
            .rcvbuf
            .map_or(payload::RCVBUF, |n| n.min(i32::MAX as u64) as usize),
        received: AtomicU64::new(0),
    });
    let run = Run::new(args, &plan);
    run.print_header();

    let cpu_before = cpu::process_cpu_time();
    let started = Instant::now();
    let counter = plan.clone();
    let progress = progress::Progress::start(run.expected_bytes(), move || {
        counter.received.load(Ordering::Relaxed)
    });
    let outcome = match args.io {
        IoModel::Blocking => on_threads(server, client, &plan, args.connections, std_io::client),
        IoModel::Nonblocking => {
            on_threads(server, client, &plan, args.connections, nonblocking::client)
        }
        IoModel::Tokio => tokio_io::run(server, client, plan.clone(), args.connections)
            .map_err(|e| format!("transfer failed: {}", describe_io(&e))),
    };
    let elapsed = started.elapsed();
    progress.finish();
    let cpu = cpu::process_cpu_time()
        .zip(cpu_before)
        .map(|(after, before)| after.since(before));
    let (clients, servers) = outcome.map_err(Failure::runtime)?;
    run.report(&clients, &servers, started, elapsed, cpu)
}

type ClientFn = fn(SocketAddr, ClientConfig, Arc<Plan>, u64) -> io::Result<Side>;

/// Runs the std server and `connections` clients, each on its own thread.
fn on_threads(
    server: ServerConfig,
    client: ClientConfig,
    plan: &Arc<Plan>,
    connections: u16,
    client_fn: ClientFn,
) -> Result<(Vec<Side>, Vec<Side>), String> {
    let listener = std_io::listener(plan).map_err(|e| format!("cannot listen on loopback: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot listen on loopback: {e}"))?;
    let (server_tx, server_rx) = mpsc::channel();
    let server_plan = plan.clone();
    thread::spawn(move || {
        let _ = server_tx.send(std_io::serve(listener, server, server_plan, connections));
    });
    let clients: Vec<_> = (0..u64::from(connections))
        .map(|i| {
            let (client, plan) = (client.clone(), plan.clone());
            thread::spawn(move || client_fn(addr, client, plan, 2 * i + 1))
        })
        .collect();
    let mut sides = Vec::new();
    let mut failure = None;
    for (i, thread) in clients.into_iter().enumerate() {
        match thread.join() {
            Ok(Ok(side)) => sides.push(side),
            Ok(Err(e)) => {
                failure = failure.or(Some(format!("client {}: {}", i + 1, describe_io(&e))))
            }
            Err(_) => failure = failure.or(Some(format!("client {} panicked", i + 1))),
        }
    }
    if let Some(client_failure) = failure {
        // The server's side of the story is often the better explanation; wait briefly.
        return Err(match server_rx.recv_timeout(Duration::from_secs(2)) {
            Ok(Err(e)) => format!("{client_failure}; server: {}", describe_io(&e)),
            _ => client_failure,
        });
    }
    let servers = server_rx
        .recv_timeout(STALL)
        .map_err(|_| "the server did not finish".to_owned())?
        .map_err(|e| format!("server: {}", describe_io(&e)))?;
    Ok((sides, servers))
}
