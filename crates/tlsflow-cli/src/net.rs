//! Sockets with errors that name the address: listening, connecting, resolving, the runtime.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};

use crate::cli::HostPort;
use crate::failure::{describe_io, Context, Failure, Outcome};
use crate::units::human_duration;

/// A multi-threaded tokio runtime for the commands that serve many connections.
pub(crate) fn runtime() -> Outcome<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context(|| "cannot start the async runtime".to_owned())
}

/// Resolves `HOST:PORT` to socket addresses.
pub(crate) fn resolve(addr: &HostPort) -> Outcome<Vec<SocketAddr>> {
    let found: Vec<SocketAddr> = (addr.host.as_str(), addr.port)
        .to_socket_addrs()
        .context(|| format!("cannot resolve {}", addr.host))?
        .collect();
    if found.is_empty() {
        return Err(Failure::runtime(format!(
            "cannot resolve {}: no addresses",
            addr.host
        )));
    }
    Ok(found)
}

/// Listens on `addr` with a queue of `backlog` connections waiting to be accepted, and says
/// where on stderr (`listening on 127.0.0.1:PORT`), which is how users and tests learn the
/// port when they asked for port 0.
pub(crate) async fn listen(addr: &HostPort, backlog: u32, what: &str) -> Outcome<TcpListener> {
    let mut last = None;
    for candidate in resolve(addr)? {
        match bind(candidate, backlog) {
            Ok(listener) => {
                let local = listener
                    .local_addr()
                    .context(|| format!("cannot listen on {addr}"))?;
                eprintln!("{what} listening on {local}");
                return Ok(listener);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(Failure::runtime(format!(
        "cannot listen on {addr}: {}",
        last.map(|e| describe_io(&e))
            .unwrap_or_else(|| "no address".into())
    )))
}

/// A listening socket with the given backlog (tokio's `bind` fixes it at 128).
fn bind(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    socket.set_nonblocking(true)?;
    TcpListener::from_std(socket.into())
}

/// Connects to `addr` (each resolved address in turn), giving up after `timeout`.
pub(crate) async fn dial(addr: &HostPort, timeout: Duration) -> Outcome<TcpStream> {
    let candidates = resolve(addr)?;
    let attempt = async {
        let mut last = None;
        for candidate in candidates {
            match TcpStream::connect(candidate).await {
                Ok(tcp) => return Ok(tcp),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::ErrorKind::NotFound.into()))
    };
    let tcp = match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result.context(|| format!("cannot connect to {addr}"))?,
        Err(_) => return Err(timed_out(&format!("connecting to {addr}"), timeout)),
    };
    // Small writes (prompts, requests) should leave at once rather than wait for more.
    tcp.set_nodelay(true)
        .context(|| format!("cannot configure the connection to {addr}"))?;
    Ok(tcp)
}

/// Connects with blocking std sockets, giving up when `deadline` passes.
pub(crate) fn dial_std(addr: &HostPort, deadline: Instant) -> Outcome<std::net::TcpStream> {
    let mut last = None;
    for candidate in resolve(addr)? {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match std::net::TcpStream::connect_timeout(&candidate, left) {
            Ok(tcp) => {
                tcp.set_nodelay(true)
                    .context(|| format!("cannot configure the connection to {addr}"))?;
                return Ok(tcp);
            }
            Err(e) => last = Some(e),
        }
    }
    match last {
        Some(e) => Err(Failure::runtime(format!(
            "cannot connect to {addr}: {}",
            describe_io(&e)
        ))),
        None => Err(Failure::runtime(format!(
            "cannot connect to {addr}: timed out"
        ))),
    }
}

/// The failure for something that took too long.
pub(crate) fn timed_out(what: &str, limit: Duration) -> Failure {
    Failure::runtime(format!(
        "timed out {what} (limit {})",
        human_duration(limit)
    ))
}
