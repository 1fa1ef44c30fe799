//! An idle connection keeps no buffers: once a read finds no data, a stream and both halves
//! of a split stream hold no buffer memory, on every driver and both engines, after traffic
//! that made them allocate their largest buffers.

#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::thread;

use tlsflow::testing::{engine_pairs, self_signed_configs_on};
use tlsflow::{ClientConfig, Limits, ServerConfig};

const TRAFFIC: usize = 300 * 1024;

fn configs() -> Vec<(ClientConfig, ServerConfig)> {
    engine_pairs()
        .into_iter()
        .map(|(c, s)| self_signed_configs_on(c, s, Limits::default()).unwrap())
        .collect()
}

/// A connected pair of blocking streams after their handshake.
fn std_pair(
    (client, server): &(ClientConfig, ServerConfig),
) -> (tlsflow::TlsStream<TcpStream>, tlsflow::TlsStream<TcpStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = server.clone();
    let accepting = thread::spawn(move || {
        let mut tls = server.accept(listener.accept().unwrap().0).unwrap();
        tls.handshake().unwrap();
        tls
    });
    let mut tls = client
        .connect("localhost", TcpStream::connect(addr).unwrap())
        .unwrap();
    tls.handshake().unwrap();
    (tls, accepting.join().unwrap())
}

/// Sends `TRAFFIC` bytes from `a` to `b` and back, so that every buffer is used.
fn exchange(a: &mut (impl Read + Write + Send), b: &mut (impl Read + Write + Send)) {
    let data = vec![7u8; TRAFFIC];
    thread::scope(|s| {
        s.spawn(|| {
            a.write_all(&data).unwrap();
            a.flush().unwrap();
        });
        let mut got = vec![0u8; TRAFFIC];
        b.read_exact(&mut got).unwrap();
    });
}

#[test]
fn a_std_stream_and_its_halves_hold_nothing_when_idle() {
    for configs in configs() {
        let (mut client, mut server) = std_pair(&configs);
        exchange(&mut client, &mut server);
        exchange(&mut server, &mut client);
        client.get_ref().set_nonblocking(true).unwrap();
        let err = client.read(&mut [0u8; 100]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::WouldBlock);
        assert_eq!(client.buffer_capacity(), 0, "an idle stream");

        let (mut reader, mut writer) = client.into_split().unwrap();
        let (mut server_reader, mut server_writer) = server.into_split().unwrap();
        thread::scope(|s| {
            s.spawn(|| {
                server_writer.write_all(&vec![1u8; TRAFFIC]).unwrap();
                server_writer.flush().unwrap();
            });
            let mut got = 0;
            while got < TRAFFIC {
                match reader.read(&mut [0u8; 65536]) {
                    Ok(n) => got += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => thread::yield_now(),
                    Err(e) => panic!("{e}"),
                }
            }
        });
        let mut sent = 0;
        let data = vec![2u8; TRAFFIC];
        thread::scope(|s| {
            s.spawn(|| {
                let mut got = vec![0u8; TRAFFIC];
                server_reader.read_exact(&mut got).unwrap();
            });
            while sent < TRAFFIC {
                match writer
                    .write(&data[sent..])
                    .and_then(|n| writer.flush().map(|()| n))
                {
                    Ok(n) => sent += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => thread::yield_now(),
                    Err(e) => panic!("{e}"),
                }
            }
            while let Err(e) = writer.flush() {
                assert_eq!(e.kind(), ErrorKind::WouldBlock);
                thread::yield_now();
            }
        });
        let err = reader.read(&mut [0u8; 100]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::WouldBlock);
        assert_eq!(reader.buffer_capacity(), 0, "an idle read half");
        assert_eq!(writer.buffer_capacity(), 0, "an idle write half");
        // A write while the read half waits (as a relay answers): once it has left, the
        // halves hold nothing, though the read half has not looked since.
        writer.write_all(b"an answer").unwrap();
        while let Err(e) = writer.flush() {
            assert_eq!(e.kind(), ErrorKind::WouldBlock);
            thread::yield_now();
        }
        assert_eq!(reader.buffer_capacity(), 0, "a read half after a write");
        assert_eq!(writer.buffer_capacity(), 0, "a write half after a write");
    }
}

/// Polls `future` once, with a waker that does nothing.
fn poll_once<F: Future>(future: F) -> Poll<F::Output> {
    let mut future = pin!(future);
    future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
}

#[test]
fn tokio_streams_and_halves_hold_nothing_when_idle() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for (client, server) in configs() {
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let accepting = tokio::spawn(async move {
                let (tcp, _) = listener.accept().await.unwrap();
                server.accept_tokio(tcp).await.unwrap()
            });
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let mut client = client.connect_tokio("localhost", tcp).await.unwrap();
            let mut server = accepting.await.unwrap();
            let data = vec![3u8; TRAFFIC];
            let mut got = vec![0u8; TRAFFIC];
            let ((), read) = tokio::join!(
                async {
                    server.write_all(&data).await.unwrap();
                    server.flush().await.unwrap();
                },
                client.read_exact(&mut got)
            );
            read.unwrap();
            let mut buf = [0u8; 100];
            assert!(poll_once(client.read(&mut buf)).is_pending());
            assert_eq!(client.buffer_capacity(), 0, "an idle tokio stream");

            let (mut reader, mut writer) = client.split_with(|tcp| tcp.into_split()).unwrap();
            let (mut server_reader, mut server_writer) =
                server.split_with(|tcp| tcp.into_split()).unwrap();
            let mut back = vec![0u8; TRAFFIC];
            let ((), read, (), got_back) = tokio::join!(
                async {
                    writer.write_all(&data).await.unwrap();
                    writer.flush().await.unwrap();
                },
                server_reader.read_exact(&mut back),
                async {
                    server_writer.write_all(&data).await.unwrap();
                    server_writer.flush().await.unwrap();
                },
                reader.read_exact(&mut got),
            );
            read.unwrap();
            got_back.unwrap();
            assert!(poll_once(reader.read(&mut buf)).is_pending());
            assert_eq!(reader.buffer_capacity(), 0, "an idle tokio read half");
            assert_eq!(writer.buffer_capacity(), 0, "an idle tokio write half");
            writer.write_all(b"an answer").await.unwrap();
            writer.flush().await.unwrap();
            assert_eq!(
                reader.buffer_capacity(),
                0,
                "a tokio read half after a write"
            );
            assert_eq!(
                writer.buffer_capacity(),
                0,
                "a tokio write half after a write"
            );
        });
    }
}

#[test]
fn futures_io_halves_hold_nothing_when_idle() {
    use smol::io::{AsyncReadExt, AsyncWriteExt};
    for (client, server) in configs() {
        smol::block_on(async {
            let listener = smol::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let accepting = smol::spawn(async move {
                let (tcp, _) = listener.accept().await.unwrap();
                server.accept_futures(tcp).await.unwrap()
            });
            let tcp = smol::net::TcpStream::connect(addr).await.unwrap();
            let client = client.connect_futures("localhost", tcp).await.unwrap();
            let server = accepting.await;
            let (mut reader, mut writer) = client.split_with(|tcp| (tcp.clone(), tcp)).unwrap();
            let (mut server_reader, mut server_writer) =
                server.split_with(|tcp| (tcp.clone(), tcp)).unwrap();
            let data = vec![4u8; TRAFFIC];
            let (mut got, mut back) = (vec![0u8; TRAFFIC], vec![0u8; TRAFFIC]);
            let both = futures_join(
                async {
                    writer.write_all(&data).await.unwrap();
                    writer.flush().await.unwrap();
                    server_writer.write_all(&data).await.unwrap();
                    server_writer.flush().await.unwrap();
                },
                async {
                    server_reader.read_exact(&mut back).await.unwrap();
                    reader.read_exact(&mut got).await.unwrap();
                },
            );
            both.await;
            let mut buf = [0u8; 100];
            assert!(poll_once(reader.read(&mut buf)).is_pending());
            assert_eq!(reader.buffer_capacity(), 0, "an idle futures-io read half");
            assert_eq!(writer.buffer_capacity(), 0, "an idle futures-io write half");
            writer.write_all(b"an answer").await.unwrap();
            writer.flush().await.unwrap();
            assert_eq!(
                reader.buffer_capacity(),
                0,
                "a futures-io read half after a write"
            );
            assert_eq!(
                writer.buffer_capacity(),
                0,
                "a futures-io write half after a write"
            );
        });
    }
}

/// Runs two futures to completion, concurrently.
async fn futures_join(a: impl Future<Output = ()>, b: impl Future<Output = ()>) {
    smol::future::zip(a, b).await;
}
