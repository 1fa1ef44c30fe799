//! Handshakes: a server on one thread, pinned to one CPU, accepts and completes full TLS
//! 1.3 handshakes (no resumption), one connection after another (tokio: concurrent tasks
//! on one current-thread runtime); a client thread on the other CPU keeps a few
//! connections in flight on its own current-thread tokio runtime, the same way for every
//! contender. Each connection moves
//! one small message there and back, then closes cleanly.

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;

use crate::blocking::{self, STALL};
use crate::contender::{Contender, Model, Stack};
use crate::cpu::{pin_to, usable_cpus};
use crate::failure::{Context, Failure, Outcome};
use crate::pattern::Pattern;
use crate::results::Measured;
use crate::rtt::{read_message, read_message_async};
use crate::start::joined;
use crate::tls::{Negotiated, Tls};
use crate::tokio_conn::task;
use crate::{nonblocking, tokio_conn};

/// The message each connection echoes.
const MESSAGE: usize = 32;

pub(crate) fn run(
    contender: &Contender,
    tls: &Arc<Tls>,
    count: u32,
    in_flight: u32,
) -> Outcome<Measured> {
    let listener = blocking::listener().ctx("cannot listen on loopback")?;
    let addr = listener.local_addr().ctx("cannot listen on loopback")?;
    let message = Pattern::random(MESSAGE);
    let abort = AtomicBool::new(false);
    let (model, stack) = (contender.model, contender.stack);
    // The server gets a CPU of its own, the clients the other one (when there are two).
    let cpus = usable_cpus();
    let client_cpu = cpus.first().copied().unwrap_or(0);
    let server_cpu = cpus.get(1).copied().unwrap_or(client_cpu);
    thread::scope(|scope| {
        let serving = scope.spawn(|| {
            pin_to(server_cpu)?;
            match model {
                Model::Blocking => serve_blocking(stack, tls, listener, count, &abort),
                Model::Nonblocking => serve_nonblocking(stack, tls, listener, count, &abort),
                Model::Tokio => serve_tokio(stack, tls, listener, count, &abort),
            }
        });
        let clients = joined(scope.spawn(|| {
            pin_to(client_cpu)?;
            clients(stack.tokio_client(), tls, addr, count, in_flight, &message)
        }));
        if clients.is_err() {
            // Wake a server waiting in accept, so that it sees the abort.
            abort.store(true, Ordering::SeqCst);
            let _ = std::net::TcpStream::connect(addr);
        }
        let served = joined(serving);
        match (clients, served) {
            (Ok((start, end, negotiated)), Ok(())) => {
                Ok(Measured::rate(start, end, count, negotiated))
            }
            (Err(e), _) if e.is_abort() => Err(e),
            (Ok(_), Err(server)) => Err(server.context("server")),
            // Either may have caused the other: say both.
            (Err(client), Err(server)) => {
                Err(Failure::io(format!("client: {client}; server: {server}")))
            }
            (Err(client), Ok(())) => Err(client.context("client")),
        }
    })
}

fn aborted(abort: &AtomicBool) -> Outcome<()> {
    if abort.load(Ordering::SeqCst) {
        Err(Failure::io("stopped: a client failed"))
    } else {
        Ok(())
    }
}

fn serve_blocking(
    stack: Stack,
    tls: &Tls,
    listener: TcpListener,
    count: u32,
    abort: &AtomicBool,
) -> Outcome<()> {
    let mut buf = [0u8; MESSAGE];
    for i in 0..count {
        let (tcp, _) = listener.accept().ctx("accept")?;
        aborted(abort)?;
        let context = || format!("connection {}", i + 1);
        blocking::prepare(&tcp).ctx("socket")?;
        let mut conn = blocking::server(stack, tls, tcp).ctx(&context())?;
        conn.handshake().ctx(&context())?;
        if !read_message(&mut *conn, &mut buf).ctx(&context())? {
            return Err(Failure::io(format!("{}: no message", context())));
        }
        conn.write_all(&buf).ctx(&context())?;
        conn.flush().ctx(&context())?;
        blocking::drain(&mut *conn).ctx(&context())?;
        conn.shutdown().ctx(&context())?;
    }
    Ok(())
}

fn serve_nonblocking(
    stack: Stack,
    tls: &Tls,
    listener: TcpListener,
    count: u32,
    abort: &AtomicBool,
) -> Outcome<()> {
    let mut waiter = nonblocking::Waiter::new().ctx("poll")?;
    let mut buf = [0u8; MESSAGE];
    for i in 0..count {
        let (tcp, _) = listener.accept().ctx("accept")?;
        aborted(abort)?;
        let context = || format!("connection {}", i + 1);
        tcp.set_nodelay(true).ctx("socket")?;
        let mut conn = nonblocking::server(stack, tls, tcp).ctx(&context())?;
        let conn = &mut *conn;
        waiter.register(conn).ctx("poll")?;
        waiter.handshake(conn).ctx(&context())?;
        if !waiter.read_exact(conn, &mut buf).ctx(&context())? {
            return Err(Failure::io(format!("{}: no message", context())));
        }
        waiter.write_all(conn, &buf).ctx(&context())?;
        waiter.flush(conn).ctx(&context())?;
        let mut rest = [0u8; 256];
        while waiter.read(conn, &mut rest).ctx(&context())? != 0 {}
        waiter.shutdown(conn).ctx(&context())?;
        waiter.deregister(conn).ctx("poll")?;
    }
    Ok(())
}

fn serve_tokio(
    stack: Stack,
    tls: &Arc<Tls>,
    listener: TcpListener,
    count: u32,
    abort: &AtomicBool,
) -> Outcome<()> {
    let runtime = tokio_conn::runtime().ctx("tokio runtime")?;
    runtime.block_on(async {
        listener.set_nonblocking(true).ctx("listener")?;
        let listener = tokio::net::TcpListener::from_std(listener).ctx("listener")?;
        let mut tasks = JoinSet::new();
        for i in 0..count {
            let (tcp, _) = tokio_conn::bounded(STALL, listener.accept())
                .await
                .ctx("accept")?;
            aborted(abort)?;
            let tls = tls.clone();
            tasks.spawn(async move {
                serve_one(stack, &tls, tcp)
                    .await
                    .ctx(&format!("connection {}", i + 1))
            });
            while let Some(done) = tasks.try_join_next() {
                task(done)?;
            }
        }
        while let Some(done) = tasks.join_next().await {
            task(done)?;
        }
        Ok(())
    })
}

async fn serve_one(stack: Stack, tls: &Tls, tcp: tokio::net::TcpStream) -> std::io::Result<()> {
    tcp.set_nodelay(true)?;
    tokio_conn::bounded(STALL, async {
        let mut conn = tokio_conn::accept(stack, tls, tcp).await?;
        let mut buf = [0u8; MESSAGE];
        if !read_message_async(&mut conn, &mut buf).await? {
            return Err(std::io::Error::other("no message"));
        }
        conn.write_all(&buf).await?;
        conn.flush().await?;
        tokio_conn::drain(&mut conn).await?;
        conn.shutdown().await
    })
    .await
}

type Timed = (Instant, Instant, Option<Negotiated>);

/// `in_flight` client tasks on one current-thread runtime, taking connections from one
/// counter until `count` have completed.
fn clients(
    stack: Stack,
    tls: &Arc<Tls>,
    addr: SocketAddr,
    count: u32,
    in_flight: u32,
    message: &Pattern,
) -> Outcome<Timed> {
    let runtime = tokio_conn::runtime().ctx("tokio runtime")?;
    let limit = STALL + Duration::from_millis(20 * u64::from(count));
    runtime.block_on(tokio_conn::within(limit, async {
        let next = Arc::new(AtomicU32::new(0));
        let start = Instant::now();
        let mut tasks = JoinSet::new();
        for _ in 0..in_flight.min(count) {
            let (tls, next, message) = (tls.clone(), next.clone(), message.clone());
            tasks.spawn(async move { client(stack, &tls, addr, &next, count, &message).await });
        }
        let mut negotiated = None;
        while let Some(done) = tasks.join_next().await {
            negotiated = negotiated.or(task(done)?);
        }
        Ok((start, Instant::now(), negotiated))
    }))
}

async fn client(
    stack: Stack,
    tls: &Tls,
    addr: SocketAddr,
    next: &AtomicU32,
    count: u32,
    message: &Pattern,
) -> Outcome<Option<Negotiated>> {
    let mut negotiated = None;
    let mut echo = [0u8; MESSAGE];
    while next.fetch_add(1, Ordering::Relaxed) < count {
        let tcp = tokio::net::TcpStream::connect(addr).await.ctx("connect")?;
        tcp.set_nodelay(true).ctx("connect")?;
        let mut conn = tokio_conn::connect(stack, tls, tcp)
            .await
            .ctx("client handshake")?;
        if negotiated.is_none() {
            negotiated = conn.negotiated();
        }
        conn.write_all(message.bytes()).await.ctx("message")?;
        conn.flush().await.ctx("message")?;
        conn.read_exact(&mut echo).await.ctx("echo")?;
        if echo[..] != *message.bytes() {
            return Err(Failure::corrupt("an echo differs from its message"));
        }
        tokio_conn::close(&mut conn).await.ctx("client's close")?;
    }
    Ok(negotiated)
}
