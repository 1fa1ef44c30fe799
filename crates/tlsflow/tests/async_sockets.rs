//! The async drivers and split halves over real loopback TCP: both peers writing first
//! (the deadlock test), large bidirectional transfers checked by SHA-256, key updates during
//! a full-duplex transfer, and half-close. `TLSFLOW_DUPLEX_MIB` sets the bidirectional size
//! (default 256).

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tlsflow::testing::{engine_pairs, self_signed_configs, self_signed_configs_on, Rng};
use tlsflow::{ClientConfig, EngineKind, Limits, ServerConfig, State};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

fn mib(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
        << 20
}

fn configs() -> (ClientConfig, ServerConfig) {
    self_signed_configs(Limits::default()).unwrap()
}

/// Sends `size` seeded bytes in random-sized writes (refreshing TLS 1.3 keys every
/// `key_update_every` bytes when given), then shuts down; returns the SHA-256 sent.
async fn tokio_send<W: AsyncWrite + Unpin>(
    mut w: W,
    seed: u64,
    size: usize,
    mut key_update: impl FnMut(&W),
    key_update_every: usize,
) -> [u8; 32] {
    let mut rng = Rng::new(seed);
    let mut hasher = Sha256::new();
    let mut block = vec![0u8; 256 * 1024];
    let (mut sent, mut next_update) = (0, key_update_every);
    while sent < size {
        let len = block.len().min(size - sent);
        rng.fill(&mut block[..len]);
        hasher.update(&block[..len]);
        let mut off = 0;
        while off < len {
            let want = rng.log_between(1, len - off);
            off += w.write(&block[off..off + want]).await.unwrap();
        }
        sent += len;
        if key_update_every > 0 && sent >= next_update {
            key_update(&w);
            next_update += key_update_every;
        }
    }
    w.shutdown().await.unwrap();
    hasher.finalize().into()
}

async fn tokio_receive<R: AsyncRead + Unpin>(mut r: R) -> (usize, [u8; 32]) {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0;
    loop {
        let n = r.read(&mut buf).await.unwrap();
        if n == 0 {
            return (got, hasher.finalize().into());
        }
        hasher.update(&buf[..n]);
        got += n;
    }
}

async fn small_tokio_pair() -> (tokio::net::TcpStream, tokio::net::TcpStream) {
    let listener = tokio::net::TcpSocket::new_v4().unwrap();
    listener.set_recv_buffer_size(4096).unwrap();
    listener.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = listener.listen(1).unwrap();
    let client = tokio::net::TcpSocket::new_v4().unwrap();
    client.set_send_buffer_size(1).unwrap();
    client.set_recv_buffer_size(4096).unwrap();
    let addr = listener.local_addr().unwrap();
    let (client, accepted) = tokio::join!(client.connect(addr), listener.accept());
    let (server, _) = accepted.unwrap();
    let client = client.unwrap();
    let server_ref = socket2::SockRef::from(&server);
    server_ref.set_send_buffer_size(1).unwrap();
    for s in [&client, &server] {
        s.set_nodelay(true).unwrap();
    }
    (client, server)
}

/// Both peers write everything before reading anything, through split halves on separate
/// tasks, with the smallest socket buffers. Returns the aggregate rate in MB/s.
async fn tokio_duplex(
    size: usize,
    key_update_every: usize,
    (client_engine, server_engine): (EngineKind, EngineKind),
) -> f64 {
    let (client_config, server_config) =
        self_signed_configs_on(client_engine, server_engine, Limits::default()).unwrap();
    let (c, s) = small_tokio_pair().await;
    let started = Instant::now();
    let server = tokio::spawn(async move {
        let tls = server_config.accept_tokio(s).await.unwrap();
        let (r, w) = tls.split_with(|tcp| tcp.into_split()).unwrap();
        let sender = tokio::spawn(tokio_send(
            w,
            2,
            size,
            |w| w.refresh_traffic_keys().unwrap(),
            key_update_every,
        ));
        let received = tokio_receive(r).await;
        (sender.await.unwrap(), received)
    });
    let tls = client_config.connect_tokio("localhost", c).await.unwrap();
    let (r, w) = tls.into_split_tokio().unwrap();
    let sender = tokio::spawn(tokio_send(
        w,
        1,
        size,
        |w| w.refresh_traffic_keys().unwrap(),
        key_update_every,
    ));
    let (client_got, client_sha) = tokio_receive(r).await;
    let client_sent = sender.await.unwrap();
    let (server_sent, (server_got, server_sha)) = server.await.unwrap();
    assert_eq!((client_got, server_got), (size, size));
    assert_eq!(client_sent, server_sha, "client to server corrupted");
    assert_eq!(server_sent, client_sha, "server to client corrupted");
    2.0 * size as f64 / started.elapsed().as_secs_f64() / 1e6
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_both_peers_write_first_through_split_halves() {
    let size = mib("TLSFLOW_SOCKET_MIB", 64);
    // Every engine pair: both engines serve the async split.
    for pair in engine_pairs() {
        let rate = tokio_duplex(size, 0, pair).await;
        eprintln!(
            "tokio split, small buffers, {} -> {}: {size} bytes each way, {rate:.1} MB/s aggregate",
            pair.0, pair.1
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_key_updates_during_a_full_duplex_transfer() {
    let size = mib("TLSFLOW_SOCKET_MIB", 64);
    // Key updates need the rustls engine (the openssl crate has no SSL_key_update).
    let rate = tokio_duplex(size, 1 << 20, (EngineKind::Rustls, EngineKind::Rustls)).await;
    eprintln!("tokio split with a key update per MiB: {size} bytes each way, {rate:.1} MB/s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_bidirectional_large_transfer() {
    let size = mib("TLSFLOW_DUPLEX_MIB", 256);
    let (client_config, server_config) = configs();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let started = Instant::now();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let tls = server_config.accept_tokio(tcp).await.unwrap();
        let (r, w) = tls.split_with(|tcp| tcp.into_split()).unwrap();
        let sender = tokio::spawn(tokio_send(w, 4, size, |_| {}, 0));
        let received = tokio_receive(r).await;
        (sender.await.unwrap(), received)
    });
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = client_config.connect_tokio("localhost", tcp).await.unwrap();
    let (r, w) = tls.split_with(|tcp| tcp.into_split()).unwrap();
    let sender = tokio::spawn(tokio_send(w, 3, size, |_| {}, 0));
    let (client_got, client_sha) = tokio_receive(r).await;
    let client_sent = sender.await.unwrap();
    let (server_sent, (server_got, server_sha)) = server.await.unwrap();
    assert_eq!((client_got, server_got), (size, size));
    assert_eq!(client_sent, server_sha);
    assert_eq!(server_sent, client_sha);
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "tokio bidirectional: {size} bytes each way, {:.1} MB/s aggregate",
        2.0 * size as f64 / secs / 1e6
    );
}

/// One side shuts down its write side; the other keeps sending 16 MiB, which arrives
/// intact; then both close cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_half_close() {
    let (client_config, server_config) = configs();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = server_config.accept_tokio(tcp).await.unwrap();
        let mut request = Vec::new();
        tls.read_to_end(&mut request).await.unwrap(); // the client's close_notify ends it
        assert_eq!(request, b"send me 16 MiB");
        assert_eq!(tls.state(), State::ReadClosed);
        let sha = tokio_send(&mut tls, 9, 16 << 20, |_| {}, 0).await;
        assert_eq!(tls.state(), State::Closed);
        sha
    });
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut tls = client_config.connect_tokio("localhost", tcp).await.unwrap();
    tls.write_all(b"send me 16 MiB").await.unwrap();
    tls.shutdown().await.unwrap();
    assert_eq!(tls.state(), State::WriteClosed);
    let (got, sha) = tokio_receive(&mut tls).await;
    assert_eq!(got, 16 << 20);
    assert_eq!(sha, server.await.unwrap());
    assert_eq!(tls.state(), State::Closed);
}

/// After a burst of traffic both ends wait for more; the stream then holds no buffers (they
/// go back to a per-thread pool), so thousands of idle connections cost only their TLS state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_streams_give_their_buffers_back() {
    for (client_engine, server_engine) in engine_pairs() {
        let (client_config, server_config) =
            self_signed_configs_on(client_engine, server_engine, Limits::default()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut tls = server_config.accept_tokio(tcp).await.unwrap();
            let mut request = vec![0u8; 1 << 20];
            tls.read_exact(&mut request).await.unwrap();
            tls.write_all(&request[..1024]).await.unwrap();
            tls.flush().await.unwrap();
            tls
        });
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut tls = client_config.connect_tokio("localhost", tcp).await.unwrap();
        tls.write_all(&vec![7u8; 1 << 20]).await.unwrap();
        tls.flush().await.unwrap();
        let mut reply = [0u8; 1024];
        tls.read_exact(&mut reply).await.unwrap();
        assert_eq!(reply, [7u8; 1024]);
        let mut server_tls = server.await.unwrap();
        for (name, stream) in [("client", &mut tls), ("server", &mut server_tls)] {
            // A read that finds nothing: the connection is idle.
            let mut byte = [0u8; 1];
            let idle =
                tokio::time::timeout(Duration::from_millis(20), stream.read(&mut byte)).await;
            assert!(idle.is_err(), "{name}: no data was expected");
            assert_eq!(
                stream.buffer_capacity(),
                0,
                "{name} ({client_engine:?} -> {server_engine:?}) keeps buffers while idle"
            );
        }
        // Traffic resumes normally.
        tls.write_all(b"again").await.unwrap();
        tls.flush().await.unwrap();
        let mut again = [0u8; 5];
        server_tls.read_exact(&mut again).await.unwrap();
        assert_eq!(&again, b"again");
    }
}

// ---- futures-io on smol ----

async fn futures_send<W: futures_io::AsyncWrite + Unpin>(
    mut w: W,
    seed: u64,
    size: usize,
) -> [u8; 32] {
    use smol::io::AsyncWriteExt as _;
    let mut rng = Rng::new(seed);
    let mut hasher = Sha256::new();
    let mut block = vec![0u8; 256 * 1024];
    let mut sent = 0;
    while sent < size {
        let len = block.len().min(size - sent);
        rng.fill(&mut block[..len]);
        hasher.update(&block[..len]);
        let mut off = 0;
        while off < len {
            let want = rng.log_between(1, len - off);
            off += w.write(&block[off..off + want]).await.unwrap();
        }
        sent += len;
    }
    w.close().await.unwrap();
    hasher.finalize().into()
}

async fn futures_receive<R: futures_io::AsyncRead + Unpin>(mut r: R) -> (usize, [u8; 32]) {
    use smol::io::AsyncReadExt as _;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0;
    loop {
        let n = r.read(&mut buf).await.unwrap();
        if n == 0 {
            return (got, hasher.finalize().into());
        }
        hasher.update(&buf[..n]);
        got += n;
    }
}

#[test]
fn futures_io_bidirectional_large_transfer_on_smol() {
    let size = mib("TLSFLOW_DUPLEX_MIB", 256);
    let (client_config, server_config) = configs();
    smol::block_on(async {
        let listener = smol::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let started = Instant::now();
        let server = smol::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let tls = server_config.accept_futures(tcp).await.unwrap();
            let (r, w) = tls.split_with(|tcp| (tcp.clone(), tcp)).unwrap();
            let sender = smol::spawn(futures_send(w, 6, size));
            let received = futures_receive(r).await;
            (sender.await, received)
        });
        let tcp = smol::net::TcpStream::connect(addr).await.unwrap();
        let tls = client_config
            .connect_futures("localhost", tcp)
            .await
            .unwrap();
        let (r, w) = tls.split_with(|tcp| (tcp.clone(), tcp)).unwrap();
        let sender = smol::spawn(futures_send(w, 5, size));
        let (client_got, client_sha) = futures_receive(r).await;
        let client_sent = sender.await;
        let (server_sent, (server_got, server_sha)) = server.await;
        assert_eq!((client_got, server_got), (size, size));
        assert_eq!(client_sent, server_sha);
        assert_eq!(server_sent, client_sha);
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "futures-io (smol) bidirectional: {size} bytes each way, {:.1} MB/s aggregate",
            2.0 * size as f64 / secs / 1e6
        );
    });
}

// ---- std split, large ----

#[test]
fn std_split_bidirectional_large_transfer() {
    let size = mib("TLSFLOW_DUPLEX_MIB", 256);
    let (client_config, server_config) = configs();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let started = Instant::now();
    let run = move |tls: tlsflow::TlsStream<std::net::TcpStream>, seed: u64| {
        let (mut r, mut w) = tls.into_split().unwrap();
        let sender = std::thread::spawn(move || {
            let mut rng = Rng::new(seed);
            let mut hasher = Sha256::new();
            let mut block = vec![0u8; 256 * 1024];
            let mut sent = 0;
            while sent < size {
                let len = block.len().min(size - sent);
                rng.fill(&mut block[..len]);
                hasher.update(&block[..len]);
                w.write_all(&block[..len]).unwrap();
                sent += len;
            }
            w.shutdown().unwrap();
            <[u8; 32]>::from(hasher.finalize())
        });
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut got = 0;
        loop {
            let n = r.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            got += n;
        }
        (
            sender.join().unwrap(),
            got,
            <[u8; 32]>::from(hasher.finalize()),
        )
    };
    let server = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(120)))
            .unwrap();
        let mut tls = server_config.accept(tcp).unwrap();
        tls.handshake().unwrap();
        run(tls, 8)
    });
    let tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let mut tls = client_config.connect("localhost", tcp).unwrap();
    tls.handshake().unwrap();
    let (client_sent, client_got, client_sha) = run(tls, 7);
    let (server_sent, server_got, server_sha) = server.join().unwrap();
    assert_eq!((client_got, server_got), (size, size));
    assert_eq!(client_sent, server_sha);
    assert_eq!(server_sent, client_sha);
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "std split bidirectional: {size} bytes each way, {:.1} MB/s aggregate",
        2.0 * size as f64 / secs / 1e6
    );
}

/// Without a split, a blocking stream cannot read while it is blocked writing: when both
/// peers write first and the buffers fill, both writes block. This is documented as
/// unsupported (use `into_split`); with a write timeout, the stream reports it instead of
/// hanging, and never claims bytes it did not accept.
#[test]
fn without_a_split_both_writing_first_blocks_and_is_reported() {
    let (client_config, server_config) = configs();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Both streams stay open until both writes have given up: closing one earlier would
    // reset the other's connection.
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    let server_barrier = barrier.clone();
    let write_first = |mut tls: tlsflow::TlsStream<std::net::TcpStream>,
                       barrier: std::sync::Arc<std::sync::Barrier>| {
        tls.get_ref()
            .set_write_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        tls.handshake().unwrap();
        let block = vec![0u8; 1 << 20];
        for _ in 0..256 {
            if let Err(e) = tls.write_all(&block) {
                barrier.wait();
                return e.kind();
            }
        }
        panic!("256 MiB were written with nobody reading");
    };
    let server = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        write_first(server_config.accept(tcp).unwrap(), server_barrier)
    });
    let tcp = std::net::TcpStream::connect(addr).unwrap();
    let client_kind = write_first(client_config.connect("localhost", tcp).unwrap(), barrier);
    let server_kind = server.join().unwrap();
    for kind in [client_kind, server_kind] {
        assert!(
            matches!(
                kind,
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "{kind:?}"
        );
    }
}
