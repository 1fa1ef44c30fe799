//! Duplex: both ends send `size` bytes and receive the peer's at the same time, through
//! split halves: tokio tasks on a two-worker runtime (each end a reader task and a writer
//! task), or four std threads for blocking sockets. Throughput is the aggregate of both
//! directions, until the later of the two readers sees the end of its stream.

use std::io::{Read, Write};
use std::thread;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::blocking::{self, STALL};
use crate::contender::{Contender, Model, Stack};
use crate::cpu::Mark;
use crate::failure::{Context, Failure, Outcome};
use crate::pattern::{Checker, Pattern};
use crate::results::Measured;
use crate::start::{both, joined, StartLine};
use crate::tls::{Negotiated, Tls};
use crate::tokio_conn::{self, task, Reader, Writer};

pub(crate) fn run(contender: &Contender, tls: &Tls, size: u64, write: usize) -> Outcome<Measured> {
    let (upstream, downstream) = (Pattern::random(write), Pattern::random(write));
    match contender.model {
        Model::Blocking => on_threads(contender.stack, tls, size, &upstream, &downstream),
        Model::Tokio => on_tokio(contender.stack, tls, size, &upstream, &downstream),
        Model::Nonblocking => Err(Failure::io("no duplex contender is non-blocking")),
    }
}

fn later(a: Mark, b: Mark) -> Mark {
    if a.at >= b.at {
        a
    } else {
        b
    }
}

fn on_threads(
    stack: Stack,
    tls: &Tls,
    size: u64,
    upstream: &Pattern,
    downstream: &Pattern,
) -> Outcome<Measured> {
    let (client, server) = blocking::tcp_pair().ctx("cannot connect over loopback")?;
    let client = blocking::client(stack, tls, client).ctx("client")?;
    let server = blocking::server(stack, tls, server).ctx("server")?;
    let line = StartLine::new(3);
    thread::scope(|scope| {
        let client = scope.spawn(|| endpoint(client, &line, size, upstream, downstream));
        let server = scope.spawn(|| endpoint(server, &line, size, downstream, upstream));
        let start = line.arrive().map(|()| Mark::now());
        let ((negotiated, client_end), (_, server_end)) = both(joined(client), joined(server))?;
        Ok(Measured::transfer(
            start?,
            later(client_end, server_end),
            2 * size,
            negotiated,
        ))
    })
}

/// One end: handshake, split, send on a second thread while this one receives.
fn endpoint(
    mut conn: Box<dyn blocking::Conn>,
    line: &StartLine,
    size: u64,
    send: &Pattern,
    receive: &Pattern,
) -> Outcome<(Option<Negotiated>, Mark)> {
    let negotiated = line.after(|| {
        conn.handshake().ctx("handshake")?;
        Ok(conn.negotiated())
    })?;
    let (mut reader, mut writer) = conn.into_halves().ctx("split")?;
    thread::scope(|scope| {
        let sending = scope.spawn(move || {
            for chunk in send.writes(size) {
                writer.write_all(chunk).ctx("write")?;
            }
            writer.flush().ctx("flush")?;
            writer.shutdown().ctx("shutdown")
        });
        let received = (|| {
            let mut checker = Checker::new(receive.clone(), size);
            let mut buf = vec![0u8; receive.bytes().len()];
            loop {
                let n = reader.read(&mut buf).ctx("read")?;
                if n == 0 {
                    break;
                }
                checker.check(&buf[..n])?;
            }
            let end = Mark::now();
            checker.finish()?;
            Ok(end)
        })();
        let (end, ()) = both(received, joined(sending))?;
        Ok((negotiated, end))
    })
}

fn on_tokio(
    stack: Stack,
    tls: &Tls,
    size: u64,
    upstream: &Pattern,
    downstream: &Pattern,
) -> Outcome<Measured> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .ctx("tokio runtime")?;
    let (client, server) = blocking::tcp_pair().ctx("cannot connect over loopback")?;
    runtime.block_on(async {
        let client = tokio_conn::adopt(client).ctx("client socket")?;
        let server = tokio_conn::adopt(server).ctx("server socket")?;
        let (client, server) = tokio::join!(
            tokio_conn::bounded(STALL, tokio_conn::connect(stack, tls, client)),
            tokio_conn::bounded(STALL, tokio_conn::accept(stack, tls, server)),
        );
        let (client, server) = both(
            client.ctx("client handshake"),
            server.ctx("server handshake"),
        )?;
        let negotiated = client.negotiated();
        let (client_reader, client_writer) = client.into_halves().ctx("split")?;
        let (server_reader, server_writer) = server.into_halves().ctx("split")?;
        let limit = tokio_conn::deadline(2 * size);
        let start = Mark::now();
        let up = tokio::spawn(tokio_conn::within(
            limit,
            send(client_writer, upstream.clone(), size),
        ));
        let up_received = tokio::spawn(tokio_conn::within(
            limit,
            receive(server_reader, upstream.clone(), size),
        ));
        let down = tokio::spawn(tokio_conn::within(
            limit,
            send(server_writer, downstream.clone(), size),
        ));
        let down_received = tokio::spawn(tokio_conn::within(
            limit,
            receive(client_reader, downstream.clone(), size),
        ));
        let received = both(task(up_received.await), task(down_received.await));
        let sent = both(task(up.await), task(down.await));
        let ((up_end, down_end), _) = both(received, sent)?;
        Ok(Measured::transfer(
            start,
            later(up_end, down_end),
            2 * size,
            negotiated,
        ))
    })
}

async fn send(mut writer: Writer, pattern: Pattern, size: u64) -> Outcome<()> {
    for chunk in pattern.writes(size) {
        writer.write_all(chunk).await.ctx("write")?;
    }
    writer.flush().await.ctx("flush")?;
    writer.shutdown().await.ctx("shutdown")
}

async fn receive(mut reader: Reader, pattern: Pattern, size: u64) -> Outcome<Mark> {
    let mut checker = Checker::new(pattern.clone(), size);
    let mut buf = vec![0u8; pattern.bytes().len()];
    loop {
        let n = reader.read(&mut buf).await.ctx("read")?;
        if n == 0 {
            break;
        }
        checker.check(&buf[..n])?;
    }
    let end = Mark::now();
    checker.finish()?;
    Ok(end)
}
