//! The `nonblocking` client: the ticket's scenario. A non-blocking socket on a mio event
//! loop; every `WouldBlock` waits for readiness, and every byte a write accepted is never
//! offered again. With `--duplex` the stream is split over two handles of the same socket,
//! each half on its own thread with its own event loop.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread;

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use tlsflow::ClientConfig;

use super::payload::{receive, send, Plan};
use super::std_io::client_socket;
use super::{negotiated, Side, STALL};

/// One event loop watching one socket handle.
struct Waiter {
    poll: Poll,
    events: Events,
}

impl Waiter {
    fn new(tcp: &mut TcpStream, interest: Interest) -> io::Result<Waiter> {
        let poll = Poll::new()?;
        poll.registry().register(tcp, Token(0), interest)?;
        Ok(Waiter {
            poll,
            events: Events::with_capacity(4),
        })
    }

    /// Waits for readiness; a stall longer than [`STALL`] is an error, not a hang.
    fn wait(&mut self) -> io::Result<()> {
        match self.poll.poll(&mut self.events, Some(STALL)) {
            Ok(()) if self.events.is_empty() => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no progress for {} s", STALL.as_secs()),
            )),
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Runs `op` until it stops returning `WouldBlock`, waiting for readiness in between.
    fn retry<T>(&mut self, mut op: impl FnMut() -> io::Result<T>) -> io::Result<T> {
        loop {
            match op() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.wait()?,
                other => return other,
            }
        }
    }

    /// Writes all of `block`: each accepted byte is the stream's to deliver, so only the
    /// rest is offered again.
    fn write_all(&mut self, out: &mut impl Write, block: &[u8]) -> io::Result<()> {
        let mut offset = 0;
        while offset < block.len() {
            offset += self.retry(|| out.write(&block[offset..]))?;
        }
        Ok(())
    }
}

/// Connects, handshakes and sends (and with `--duplex` receives) on non-blocking sockets.
pub(crate) fn client(
    addr: SocketAddr,
    config: ClientConfig,
    plan: Arc<Plan>,
    seed: u64,
) -> io::Result<Side> {
    let tcp = client_socket(&plan, addr)?;
    tcp.set_nonblocking(true)?;
    let local = tcp.local_addr()?;
    // A second handle on the same socket for the write half's own event loop.
    let duplicate = if plan.duplex {
        Some(tcp.try_clone()?)
    } else {
        None
    };
    let mut tcp = TcpStream::from_std(tcp);
    let mut waiter = Waiter::new(&mut tcp, Interest::READABLE | Interest::WRITABLE)?;
    let mut tls = config.connect("localhost", tcp)?;
    waiter.retry(|| tls.handshake())?;
    let negotiated = Some(negotiated(&tls));

    let Some(duplicate) = duplicate else {
        let sent = send(&plan, seed, |block| waiter.write_all(&mut tls, block))?;
        waiter.retry(|| tls.close())?;
        return Ok(Side::new(local, Some(sent), None, negotiated));
    };

    let mut write_handle = TcpStream::from_std(duplicate);
    let mut write_waiter = Waiter::new(&mut write_handle, Interest::WRITABLE)?;
    // Only the read half uses the first registration from here on; after the handshake it
    // never needs to write, so it waits for readability alone.
    waiter
        .poll
        .registry()
        .reregister(tls.get_mut(), Token(0), Interest::READABLE)?;
    let (mut reader, mut writer) = tls
        .split_with(|tcp| (tcp, write_handle))
        .map_err(|_| io::Error::other("the handshake is not complete"))?;
    let sending_plan = plan.clone();
    let sender = thread::spawn(move || -> io::Result<_> {
        let sent = send(&sending_plan, seed, |block| {
            write_waiter.write_all(&mut writer, block)
        })?;
        write_waiter.retry(|| writer.shutdown())?;
        Ok(sent)
    });
    let received = receive(&plan, |buf| waiter.retry(|| reader.read(buf)))?;
    let sent = sender
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the sending thread panicked")))?;
    Ok(Side::new(local, Some(sent), Some(received), negotiated))
}
