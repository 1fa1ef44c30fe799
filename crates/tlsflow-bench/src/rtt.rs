//! Round trips: the client sends a 1 KiB request and waits for the server's 1 KiB response
//! (an echo, checked), `count` times on one connection. Client and server each run on their
//! own thread (tokio: a current-thread runtime each), pinned to given CPUs: on one CPU a
//! round trip costs the two sides' CPU work and two thread switches; on two CPUs it also
//! waits for cross-CPU wake-ups, which dominate on virtual machines.

use std::io::{self, Read, Write};
use std::thread;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::blocking::{self, STALL};
use crate::contender::{Contender, Model, Stack};
use crate::cpu::pin_to;
use crate::failure::{Context, Failure, Outcome};
use crate::pattern::Pattern;
use crate::results::Measured;
use crate::start::{both, joined, StartLine};
use crate::tls::{Negotiated, Tls};
use crate::{nonblocking, tokio_conn};

/// Bytes in a request and in a response.
pub(crate) const MESSAGE: usize = 1024;

type Timed = (Instant, Instant, Option<Negotiated>);

/// The CPUs of the client thread and the server thread.
pub(crate) type Cpus = (usize, usize);

pub(crate) fn run(contender: &Contender, tls: &Tls, count: u32, cpus: Cpus) -> Outcome<Measured> {
    let request = Pattern::random(MESSAGE);
    let (start, end, negotiated) = match contender.model {
        Model::Blocking => on_blocking(contender.stack, tls, count, &request, cpus)?,
        Model::Nonblocking => on_nonblocking(contender.stack, tls, count, &request, cpus)?,
        Model::Tokio => on_tokio(contender.stack, tls, count, &request, cpus)?,
    };
    Ok(Measured::rate(start, end, count, negotiated))
}

fn echoed(response: &[u8], request: &Pattern) -> Outcome<()> {
    if response == request.bytes() {
        Ok(())
    } else {
        Err(Failure::corrupt("a response differs from its request"))
    }
}

/// Fills `buf` from a std reader; `Ok(false)` if the stream ended before its first byte.
pub(crate) fn read_message(conn: &mut (impl Read + ?Sized), buf: &mut [u8]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match conn.read(&mut buf[filled..])? {
            0 if filled == 0 => return Ok(false),
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => filled += n,
        }
    }
    Ok(true)
}

/// Echoes each message of `len` bytes back until the peer ends its side (a message cut
/// short is an error); then the caller answers the peer's close.
pub(crate) async fn echo_each(
    conn: &mut (impl AsyncRead + AsyncWrite + Unpin),
    len: usize,
) -> io::Result<()> {
    let mut buf = vec![0u8; len];
    while read_message_async(conn, &mut buf).await? {
        conn.write_all(&buf).await?;
        conn.flush().await?;
    }
    Ok(())
}

/// Fills `buf` from a tokio reader; `Ok(false)` if the stream ended before its first byte.
pub(crate) async fn read_message_async(
    conn: &mut (impl AsyncRead + Unpin),
    buf: &mut [u8],
) -> io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match conn.read(&mut buf[filled..]).await? {
            0 if filled == 0 => return Ok(false),
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => filled += n,
        }
    }
    Ok(true)
}

fn on_blocking(
    stack: Stack,
    tls: &Tls,
    count: u32,
    request: &Pattern,
    (client_cpu, server_cpu): Cpus,
) -> Outcome<Timed> {
    let (client, server) = blocking::tcp_pair().ctx("cannot connect over loopback")?;
    let mut client = blocking::client(stack, tls, client).ctx("client")?;
    let mut server = blocking::server(stack, tls, server).ctx("server")?;
    let line = StartLine::new(2);
    thread::scope(|scope| {
        let asking = scope.spawn(|| {
            let negotiated = line.after(|| {
                pin_to(client_cpu)?;
                client.handshake().ctx("client handshake")?;
                Ok(client.negotiated())
            })?;
            let mut response = [0u8; MESSAGE];
            let start = Instant::now();
            for _ in 0..count {
                client.write_all(request.bytes()).ctx("request")?;
                client.flush().ctx("request")?;
                client.read_exact(&mut response).ctx("response")?;
                echoed(&response, request)?;
            }
            let end = Instant::now();
            client.close().ctx("client's close")?;
            Ok((start, end, negotiated))
        });
        let answering = scope.spawn(|| {
            line.after(|| {
                pin_to(server_cpu)?;
                server.handshake().ctx("server handshake")
            })?;
            let mut buf = [0u8; MESSAGE];
            while read_message(&mut *server, &mut buf).ctx("request")? {
                server.write_all(&buf).ctx("response")?;
                server.flush().ctx("response")?;
            }
            server.shutdown().ctx("server's close")
        });
        let server = joined(answering);
        both(joined(asking), server).map(|(timed, ())| timed)
    })
}

fn on_nonblocking(
    stack: Stack,
    tls: &Tls,
    count: u32,
    request: &Pattern,
    (client_cpu, server_cpu): Cpus,
) -> Outcome<Timed> {
    let (client, server) = blocking::tcp_pair().ctx("cannot connect over loopback")?;
    let mut client = nonblocking::client(stack, tls, client).ctx("client")?;
    let mut server = nonblocking::server(stack, tls, server).ctx("server")?;
    let line = StartLine::new(2);
    thread::scope(|scope| {
        let asking = scope.spawn(|| {
            let conn = &mut *client;
            let mut waiter = nonblocking::Waiter::new().ctx("poll")?;
            let negotiated = line.after(|| {
                pin_to(client_cpu)?;
                waiter.register(conn).ctx("poll")?;
                waiter.handshake(conn).ctx("client handshake")?;
                Ok(conn.negotiated())
            })?;
            let mut response = [0u8; MESSAGE];
            let start = Instant::now();
            for _ in 0..count {
                waiter.write_all(conn, request.bytes()).ctx("request")?;
                waiter.flush(conn).ctx("request")?;
                if !waiter.read_exact(conn, &mut response).ctx("response")? {
                    return Err(Failure::io("response: the server closed the connection"));
                }
                echoed(&response, request)?;
            }
            let end = Instant::now();
            waiter.close(conn).ctx("client's close")?;
            Ok((start, end, negotiated))
        });
        let answering = scope.spawn(|| {
            let conn = &mut *server;
            let mut waiter = nonblocking::Waiter::new().ctx("poll")?;
            line.after(|| {
                pin_to(server_cpu)?;
                waiter.register(conn).ctx("poll")?;
                waiter.handshake(conn).ctx("server handshake")
            })?;
            let mut buf = [0u8; MESSAGE];
            while waiter.read_exact(conn, &mut buf).ctx("request")? {
                waiter.write_all(conn, &buf).ctx("response")?;
                waiter.flush(conn).ctx("response")?;
            }
            waiter.shutdown(conn).ctx("server's close")
        });
        let server = joined(answering);
        both(joined(asking), server).map(|(timed, ())| timed)
    })
}

fn on_tokio(
    stack: Stack,
    tls: &Tls,
    count: u32,
    request: &Pattern,
    (client_cpu, server_cpu): Cpus,
) -> Outcome<Timed> {
    let (client, server) = blocking::tcp_pair().ctx("cannot connect over loopback")?;
    let line = StartLine::new(2);
    let limit = STALL + std::time::Duration::from_millis(u64::from(count));
    thread::scope(|scope| {
        let asking = scope.spawn(|| {
            let runtime = tokio_conn::runtime().ctx("tokio runtime")?;
            let mut conn = line.after(|| {
                pin_to(client_cpu)?;
                runtime.block_on(async {
                    let tcp = tokio_conn::adopt(client).ctx("client socket")?;
                    tokio_conn::bounded(STALL, tokio_conn::connect(stack, tls, tcp))
                        .await
                        .ctx("client handshake")
                })
            })?;
            let negotiated = conn.negotiated();
            runtime.block_on(tokio_conn::within(limit, async {
                let mut response = [0u8; MESSAGE];
                let start = Instant::now();
                for _ in 0..count {
                    conn.write_all(request.bytes()).await.ctx("request")?;
                    conn.flush().await.ctx("request")?;
                    conn.read_exact(&mut response).await.ctx("response")?;
                    echoed(&response, request)?;
                }
                let end = Instant::now();
                tokio_conn::close(&mut conn).await.ctx("client's close")?;
                Ok((start, end, negotiated))
            }))
        });
        let answering = scope.spawn(|| {
            let runtime = tokio_conn::runtime().ctx("tokio runtime")?;
            let mut conn = line.after(|| {
                pin_to(server_cpu)?;
                runtime.block_on(async {
                    let tcp = tokio_conn::adopt(server).ctx("server socket")?;
                    tokio_conn::bounded(STALL, tokio_conn::accept(stack, tls, tcp))
                        .await
                        .ctx("server handshake")
                })
            })?;
            runtime.block_on(tokio_conn::within(limit, async {
                echo_each(&mut conn, MESSAGE).await.ctx("echo")?;
                conn.shutdown().await.ctx("server's close")
            }))
        });
        let server = joined(answering);
        both(joined(asking), server).map(|(timed, ())| timed)
    })
}
