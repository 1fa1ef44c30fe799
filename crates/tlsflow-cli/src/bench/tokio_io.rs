//! The `tokio` model: client and server as tokio tasks on a two-thread runtime, split into
//! owned halves (one task each) with `--duplex`.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use tlsflow::{ClientConfig, ServerConfig};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinSet;

use super::payload::{Digest, Pacer, Payload, Plan, Tally, NAP, READ_SIZE};
use super::std_io::server_seed;
use super::{negotiated, Side, STALL};

/// Runs `connections` client/server pairs; returns the client sides and the server sides.
pub(crate) fn run(
    server: ServerConfig,
    client: ClientConfig,
    plan: Arc<Plan>,
    connections: u16,
) -> io::Result<(Vec<Side>, Vec<Side>)> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = listener(&plan)?;
        let addr = listener.local_addr()?;
        let serving = tokio::spawn(serve(listener, server, plan.clone(), connections));
        let mut clients = JoinSet::new();
        for i in 0..u64::from(connections) {
            clients.spawn(run_client(addr, client.clone(), plan.clone(), 2 * i + 1));
        }
        let mut client_sides = Vec::new();
        while let Some(joined) = clients.join_next().await {
            client_sides.push(joined.map_err(io::Error::other)??);
        }
        let server_sides = serving.await.map_err(io::Error::other)??;
        Ok((client_sides, server_sides))
    })
}

fn listener(plan: &Plan) -> io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(plan.rcvbuf as u32)?;
    if plan.duplex {
        socket.set_send_buffer_size(plan.sndbuf as u32)?;
    }
    socket.bind(([127, 0, 0, 1], 0).into())?;
    socket.listen(1024)
}

/// Bounds an operation, so a stall is an error rather than a hang.
async fn bounded<T>(op: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    tokio::time::timeout(STALL, op).await.map_err(|_| {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no progress for {} s", STALL.as_secs()),
        )
    })?
}

async fn serve(
    listener: TcpListener,
    config: ServerConfig,
    plan: Arc<Plan>,
    connections: u16,
) -> io::Result<Vec<Side>> {
    let mut tasks = JoinSet::new();
    for _ in 0..connections {
        let (tcp, peer) = bounded(listener.accept()).await?;
        let (config, plan) = (config.clone(), plan.clone());
        tasks.spawn(async move {
            tcp.set_nodelay(true)?;
            let mut tls = bounded(config.accept_tokio(tcp)).await?;
            if plan.duplex {
                let (reader, writer) = tls
                    .split_with(|tcp| tcp.into_split())
                    .map_err(|_| io::Error::other("the handshake is not complete"))?;
                let (sent, received) = duplex(reader, writer, &plan, server_seed(peer)).await?;
                return Ok(Side::new(peer, Some(sent), Some(received), None));
            }
            let received = receive(&plan, &mut tls).await?;
            bounded(tls.shutdown()).await?; // close_notify back, then FIN
            Ok::<_, io::Error>(Side::new(peer, None, Some(received), None))
        });
    }
    let mut sides = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        sides.push(joined.map_err(io::Error::other)??);
    }
    Ok(sides)
}

async fn run_client(
    addr: SocketAddr,
    config: ClientConfig,
    plan: Arc<Plan>,
    seed: u64,
) -> io::Result<Side> {
    let socket = TcpSocket::new_v4()?;
    socket.set_send_buffer_size(plan.sndbuf as u32)?;
    if plan.duplex {
        socket.set_recv_buffer_size(plan.rcvbuf as u32)?;
    }
    let tcp = bounded(socket.connect(addr)).await?;
    tcp.set_nodelay(true)?;
    let local = tcp.local_addr()?;
    let mut tls = bounded(config.connect_tokio("localhost", tcp)).await?;
    let negotiated = Some(negotiated(&tls));
    if plan.duplex {
        let (reader, writer) = tls
            .split_with(|tcp| tcp.into_split())
            .map_err(|_| io::Error::other("the handshake is not complete"))?;
        let (sent, received) = duplex(reader, writer, &plan, seed).await?;
        return Ok(Side::new(local, Some(sent), Some(received), negotiated));
    }
    let sent = send(&plan, seed, &mut tls).await?;
    bounded(tls.close_tokio()).await?;
    Ok(Side::new(local, Some(sent), None, negotiated))
}

/// Sends from a second task through the write half while this task reads.
async fn duplex<R, W>(
    mut reader: R,
    mut writer: W,
    plan: &Arc<Plan>,
    seed: u64,
) -> io::Result<(Digest, (Digest, Instant))>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let sending_plan = plan.clone();
    let sender = tokio::spawn(async move {
        let sent = send(&sending_plan, seed, &mut writer).await?;
        bounded(writer.shutdown()).await?; // half-close: our reader goes on
        Ok::<_, io::Error>(sent)
    });
    let received = receive(plan, &mut reader).await?;
    let sent = sender.await.map_err(io::Error::other)??;
    Ok((sent, received))
}

async fn send(plan: &Plan, seed: u64, out: &mut (impl AsyncWrite + Unpin)) -> io::Result<Digest> {
    let mut payload = Payload::new(seed);
    let mut tally = Tally::default();
    let mut block = vec![0u8; plan.write_size];
    while tally.bytes() < plan.size {
        let len = block.len().min((plan.size - tally.bytes()) as usize);
        payload.fill(&mut block[..len]);
        tally.update(&block[..len]);
        bounded(out.write_all(&block[..len])).await?;
    }
    bounded(out.flush()).await?;
    Ok(tally.finish())
}

async fn receive(
    plan: &Plan,
    input: &mut (impl AsyncRead + Unpin),
) -> io::Result<(Digest, Instant)> {
    let mut tally = Tally::default();
    let mut pacer = Pacer::new(plan.slow_reader);
    let mut buf = vec![0u8; READ_SIZE];
    loop {
        let n = bounded(input.read(&mut buf)).await?;
        if n == 0 {
            return Ok((tally.finish(), Instant::now()));
        }
        tally.update(&buf[..n]);
        plan.received.fetch_add(n as u64, Ordering::Relaxed);
        if pacer.due(tally.bytes()) {
            tokio::time::sleep(NAP).await;
        }
    }
}
