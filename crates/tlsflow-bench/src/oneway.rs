//! One-way transfer: a writer thread sends `size` bytes in writes of one size, a reader
//! thread reads with a buffer of that size and checks every byte; the connection then
//! closes cleanly (`close_notify` both ways for TLS). Time and CPU run from the first
//! write to the reader's end of stream.

use std::io::{Read, Write};
use std::thread;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::contender::{Contender, Model, Stack};
use crate::cpu::Mark;
use crate::failure::{Context, Outcome};
use crate::pattern::{Checker, Pattern};
use crate::results::Measured;
use crate::start::{both, joined, StartLine};
use crate::tls::{Negotiated, Tls};
use crate::{blocking, nonblocking, tokio_conn};

pub(crate) fn run(contender: &Contender, tls: &Tls, size: u64, write: usize) -> Outcome<Measured> {
    let pattern = Pattern::random(write);
    let (writer, reader) = match contender.model {
        Model::Blocking => on_blocking(contender.stack, tls, size, &pattern)?,
        Model::Nonblocking => on_nonblocking(contender.stack, tls, size, &pattern)?,
        Model::Tokio => on_tokio(contender.stack, tls, size, &pattern)?,
    };
    let (start, negotiated) = writer;
    Ok(Measured::transfer(start, reader, size, negotiated))
}

/// The writer's start mark and negotiated parameters; the reader's end mark.
type Ends = ((Mark, Option<Negotiated>), Mark);

fn on_blocking(stack: Stack, tls: &Tls, size: u64, pattern: &Pattern) -> Outcome<Ends> {
    let (client, server) = blocking::tcp_pair().ctx("cannot connect over loopback")?;
    let mut writer = blocking::client(stack, tls, client).ctx("client")?;
    let mut reader = blocking::server(stack, tls, server).ctx("server")?;
    let line = StartLine::new(2);
    thread::scope(|scope| {
        let writing = scope.spawn(|| {
            let negotiated = line.after(|| {
                writer.handshake().ctx("client handshake")?;
                Ok(writer.negotiated())
            })?;
            let start = Mark::now();
            for chunk in pattern.writes(size) {
                writer.write_all(chunk).ctx("write")?;
            }
            writer.flush().ctx("flush")?;
            writer.close().ctx("writer's close")?;
            Ok((start, negotiated))
        });
        let reading = scope.spawn(|| {
            line.after(|| reader.handshake().ctx("server handshake"))?;
            let mut checker = Checker::new(pattern.clone(), size);
            let mut buf = vec![0u8; pattern.bytes().len()];
            loop {
                let n = reader.read(&mut buf).ctx("read")?;
                if n == 0 {
                    break;
                }
                checker.check(&buf[..n])?;
            }
            let end = Mark::now();
            checker.finish()?;
            reader.shutdown().ctx("reader's close")?;
            Ok(end)
        });
        let reader = joined(reading);
        both(joined(writing), reader)
    })
}

fn on_nonblocking(stack: Stack, tls: &Tls, size: u64, pattern: &Pattern) -> Outcome<Ends> {
    let (client, server) = blocking::tcp_pair().ctx("cannot connect over loopback")?;
    let mut writer = nonblocking::client(stack, tls, client).ctx("client")?;
    let mut reader = nonblocking::server(stack, tls, server).ctx("server")?;
    let line = StartLine::new(2);
    thread::scope(|scope| {
        let writing = scope.spawn(|| {
            let conn = &mut *writer;
            let mut waiter = nonblocking::Waiter::new().ctx("poll")?;
            let negotiated = line.after(|| {
                waiter.register(conn).ctx("poll")?;
                waiter.handshake(conn).ctx("client handshake")?;
                Ok(conn.negotiated())
            })?;
            let start = Mark::now();
            for chunk in pattern.writes(size) {
                waiter.write_all(conn, chunk).ctx("write")?;
            }
            waiter.flush(conn).ctx("flush")?;
            waiter.close(conn).ctx("writer's close")?;
            Ok((start, negotiated))
        });
        let reading = scope.spawn(|| {
            let conn = &mut *reader;
            let mut waiter = nonblocking::Waiter::new().ctx("poll")?;
            line.after(|| {
                waiter.register(conn).ctx("poll")?;
                waiter.handshake(conn).ctx("server handshake")
            })?;
            let mut checker = Checker::new(pattern.clone(), size);
            let mut buf = vec![0u8; pattern.bytes().len()];
            loop {
                let n = waiter.read(conn, &mut buf).ctx("read")?;
                if n == 0 {
                    break;
                }
                checker.check(&buf[..n])?;
            }
            let end = Mark::now();
            checker.finish()?;
            waiter.shutdown(conn).ctx("reader's close")?;
            Ok(end)
        });
        let reader = joined(reading);
        both(joined(writing), reader)
    })
}

fn on_tokio(stack: Stack, tls: &Tls, size: u64, pattern: &Pattern) -> Outcome<Ends> {
    let (client, server) = blocking::tcp_pair().ctx("cannot connect over loopback")?;
    let line = StartLine::new(2);
    let limit = tokio_conn::deadline(size);
    thread::scope(|scope| {
        let writing = scope.spawn(|| {
            let runtime = tokio_conn::runtime().ctx("tokio runtime")?;
            let mut conn = line.after(|| {
                runtime.block_on(async {
                    let tcp = tokio_conn::adopt(client).ctx("client socket")?;
                    tokio_conn::bounded(blocking::STALL, tokio_conn::connect(stack, tls, tcp))
                        .await
                        .ctx("client handshake")
                })
            })?;
            let negotiated = conn.negotiated();
            let start = Mark::now();
            runtime
                .block_on(tokio_conn::bounded(limit, async {
                    for chunk in pattern.writes(size) {
                        conn.write_all(chunk).await?;
                    }
                    conn.flush().await?;
                    tokio_conn::close(&mut conn).await
                }))
                .ctx("write")?;
            Ok((start, negotiated))
        });
        let reading = scope.spawn(|| {
            let runtime = tokio_conn::runtime().ctx("tokio runtime")?;
            let mut conn = line.after(|| {
                runtime.block_on(async {
                    let tcp = tokio_conn::adopt(server).ctx("server socket")?;
                    tokio_conn::bounded(blocking::STALL, tokio_conn::accept(stack, tls, tcp))
                        .await
                        .ctx("server handshake")
                })
            })?;
            runtime.block_on(async {
                let mut checker = Checker::new(pattern.clone(), size);
                let mut buf = vec![0u8; pattern.bytes().len()];
                tokio_conn::within(limit, async {
                    loop {
                        let n = conn.read(&mut buf).await.ctx("read")?;
                        if n == 0 {
                            return Ok(());
                        }
                        checker.check(&buf[..n])?;
                    }
                })
                .await?;
                let end = Mark::now();
                checker.finish()?;
                tokio_conn::bounded(blocking::STALL, conn.shutdown())
                    .await
                    .ctx("reader's close")?;
                Ok(end)
            })
        });
        let reader = joined(reading);
        both(joined(writing), reader)
    })
}
