//! Blocking std sockets: the benchmark's receiving server (for the `blocking` and
//! `nonblocking` clients) and the `blocking` client. One thread per connection, and one
//! more per connection for sending with `--duplex`, through the library's split halves.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;

use socket2::{Domain, Socket, Type};
use tlsflow::{ClientConfig, ServerConfig, TlsStream};

use super::payload::{receive, send, Plan};
use super::{negotiated, Side, STALL};

/// The receiving end's listener: a small receive buffer (inherited by accepted sockets) so
/// the sender meets backpressure, and with `--duplex` the small send buffer too.
pub(crate) fn listener(plan: &Plan) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.set_recv_buffer_size(plan.rcvbuf)?;
    if plan.duplex {
        socket.set_send_buffer_size(plan.sndbuf)?;
    }
    let addr: SocketAddr = ([127, 0, 0, 1], 0).into();
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// A connected client socket with the plan's send buffer (the kernel rounds 1 up to its
/// minimum) and Nagle off, as the scenario asks.
pub(crate) fn client_socket(plan: &Plan, addr: SocketAddr) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.set_send_buffer_size(plan.sndbuf)?;
    if plan.duplex {
        socket.set_recv_buffer_size(plan.rcvbuf)?;
    }
    socket.set_tcp_nodelay(true)?;
    socket.connect(&addr.into())?;
    Ok(socket.into())
}

/// Bounds every blocking call, so a stall is an error rather than a hang.
fn bound(tcp: &TcpStream) -> io::Result<()> {
    tcp.set_read_timeout(Some(STALL))?;
    tcp.set_write_timeout(Some(STALL))
}

/// Accepts `connections` clients and serves each on its own thread.
pub(crate) fn serve(
    listener: TcpListener,
    config: ServerConfig,
    plan: Arc<Plan>,
    connections: u16,
) -> io::Result<Vec<Side>> {
    let mut threads = Vec::new();
    for _ in 0..connections {
        let (tcp, _) = listener.accept()?;
        let (config, plan) = (config.clone(), plan.clone());
        threads.push(thread::spawn(move || serve_one(tcp, &config, &plan)));
    }
    threads
        .into_iter()
        .map(|t| {
            t.join()
                .unwrap_or_else(|_| Err(io::Error::other("a server thread panicked")))
        })
        .collect()
}

fn serve_one(tcp: TcpStream, config: &ServerConfig, plan: &Arc<Plan>) -> io::Result<Side> {
    let peer = tcp.peer_addr()?;
    tcp.set_nodelay(true)?;
    bound(&tcp)?;
    let mut tls = config.accept(tcp)?;
    tls.handshake()?;
    if plan.duplex {
        let (sent, received) = duplex(tls, plan, server_seed(peer))?;
        return Ok(Side::new(peer, Some(sent), Some(received), None));
    }
    let received = receive(plan, |buf| tls.read(buf))?;
    // close_notify back: the client's close() waits for it.
    tls.shutdown()?;
    Ok(Side::new(peer, None, Some(received), None))
}

/// The seed of what the server sends to the client at `peer` (distinct per connection).
pub(crate) fn server_seed(peer: SocketAddr) -> u64 {
    0x5e7e_0000_0000 + u64::from(peer.port())
}

/// Sends on a second thread through the write half while this thread reads.
fn duplex(
    tls: TlsStream<TcpStream>,
    plan: &Arc<Plan>,
    seed: u64,
) -> io::Result<(
    super::payload::Digest,
    (super::payload::Digest, std::time::Instant),
)> {
    let (mut reader, mut writer) = tls
        .into_split()
        .map_err(|_| io::Error::other("the handshake is not complete"))?;
    let sending_plan = plan.clone();
    let sender = thread::spawn(move || -> io::Result<_> {
        let sent = send(&sending_plan, seed, |block| writer.write_all(block))?;
        writer.shutdown()?; // half-close: the peer's reader ends, ours goes on
        Ok(sent)
    });
    let received = receive(plan, |buf| reader.read(buf))?;
    let sent = sender
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the sending thread panicked")))?;
    Ok((sent, received))
}

/// The `blocking` client: plain `write_all`, then a graceful `close`.
pub(crate) fn client(
    addr: SocketAddr,
    config: ClientConfig,
    plan: Arc<Plan>,
    seed: u64,
) -> io::Result<Side> {
    let tcp = client_socket(&plan, addr)?;
    bound(&tcp)?;
    let local = tcp.local_addr()?;
    let mut tls = config.connect("localhost", tcp)?;
    tls.handshake()?;
    let negotiated = Some(negotiated(&tls));
    if plan.duplex {
        let (sent, received) = duplex(tls, &plan, seed)?;
        return Ok(Side::new(local, Some(sent), Some(received), negotiated));
    }
    let sent = send(&plan, seed, |block| tls.write_all(block))?;
    tls.close()?;
    Ok(Side::new(local, Some(sent), None, negotiated))
}
