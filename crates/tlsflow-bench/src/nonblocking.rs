//! Non-blocking sockets on mio: plain TCP and tlsflow's `TlsStream` behind one interface.
//! Every `WouldBlock` waits on the thread's own `Poll` for what the connection says it
//! needs (`TlsStream::interest()` for TLS), and bytes a write accepted are never offered
//! again.

use std::io::{self, Read, Write};
use std::net::Shutdown;

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use crate::blocking::STALL;
use crate::contender::Stack;
use crate::tls::{Negotiated, Tls, SERVER_NAME};

/// The direction of the operation that returned `WouldBlock`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Op {
    Read,
    Write,
}

/// What to wait for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Want {
    read: bool,
    write: bool,
}

impl Want {
    fn of(op: Op) -> Want {
        Want {
            read: matches!(op, Op::Read),
            write: matches!(op, Op::Write),
        }
    }
}

/// One end of a connection on a non-blocking socket. Every method is restartable after
/// `WouldBlock`.
pub(crate) trait Conn: Read + Write + Send {
    fn handshake(&mut self) -> io::Result<()>;
    fn negotiated(&self) -> Option<Negotiated>;
    /// Ends this side's sending: `close_notify` for TLS, a FIN for TCP.
    fn shutdown(&mut self) -> io::Result<()>;
    /// What the connection waits for after an operation in direction `op` would block.
    fn want(&self, op: Op) -> Want;
    fn socket(&mut self) -> &mut TcpStream;
}

/// The client end of `stack` over `tcp` (made non-blocking here); no I/O happens yet.
pub(crate) fn client(
    stack: Stack,
    tls: &Tls,
    tcp: std::net::TcpStream,
) -> io::Result<Box<dyn Conn>> {
    tcp.set_nonblocking(true)?;
    let tcp = TcpStream::from_std(tcp);
    Ok(match stack {
        Stack::Tcp => Box::new(tcp),
        Stack::Tlsflow(engine) => Box::new(
            tls.tlsflow_client(engine)
                .connect(SERVER_NAME, tcp)
                .map_err(io::Error::other)?,
        ),
        _ => return Err(io::Error::other("not a non-blocking contender")),
    })
}

/// The server end of `stack` over `tcp` (made non-blocking here); no I/O happens yet.
pub(crate) fn server(
    stack: Stack,
    tls: &Tls,
    tcp: std::net::TcpStream,
) -> io::Result<Box<dyn Conn>> {
    tcp.set_nonblocking(true)?;
    let tcp = TcpStream::from_std(tcp);
    Ok(match stack {
        Stack::Tcp => Box::new(tcp),
        Stack::Tlsflow(engine) => Box::new(
            tls.tlsflow_server(engine)
                .accept(tcp)
                .map_err(io::Error::other)?,
        ),
        _ => return Err(io::Error::other("not a non-blocking contender")),
    })
}

impl Conn for TcpStream {
    fn handshake(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn negotiated(&self) -> Option<Negotiated> {
        None
    }

    fn shutdown(&mut self) -> io::Result<()> {
        TcpStream::shutdown(self, Shutdown::Write)
    }

    fn want(&self, op: Op) -> Want {
        Want::of(op)
    }

    fn socket(&mut self) -> &mut TcpStream {
        self
    }
}

impl Conn for tlsflow::TlsStream<TcpStream> {
    fn handshake(&mut self) -> io::Result<()> {
        tlsflow::TlsStream::handshake(self)
    }

    fn negotiated(&self) -> Option<Negotiated> {
        Some(Negotiated::of_tlsflow(self))
    }

    fn shutdown(&mut self) -> io::Result<()> {
        tlsflow::TlsStream::shutdown(self)
    }

    fn want(&self, op: Op) -> Want {
        let interest = self.interest();
        if interest.read || interest.write {
            Want {
                read: interest.read,
                write: interest.write,
            }
        } else {
            Want::of(op)
        }
    }

    fn socket(&mut self) -> &mut TcpStream {
        self.get_mut()
    }
}

/// One thread's event loop, watching one connection at a time.
pub(crate) struct Waiter {
    poll: Poll,
    events: Events,
}

const TOKEN: Token = Token(0);

impl Waiter {
    pub(crate) fn new() -> io::Result<Waiter> {
        Ok(Waiter {
            poll: Poll::new()?,
            events: Events::with_capacity(8),
        })
    }

    /// Watches `conn` for both directions (edge-triggered).
    pub(crate) fn register(&self, conn: &mut dyn Conn) -> io::Result<()> {
        self.poll.registry().register(
            conn.socket(),
            TOKEN,
            Interest::READABLE | Interest::WRITABLE,
        )
    }

    pub(crate) fn deregister(&self, conn: &mut dyn Conn) -> io::Result<()> {
        self.poll.registry().deregister(conn.socket())
    }

    /// Waits until the socket is ready for what `want` asks; an error or a closed socket
    /// also ends the wait, so the retried operation reports it.
    fn wait(&mut self, want: Want) -> io::Result<()> {
        loop {
            match self.poll.poll(&mut self.events, Some(STALL)) {
                Ok(()) if self.events.is_empty() => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no progress for {} s", STALL.as_secs()),
                    ))
                }
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            let ready = self.events.iter().any(|event| {
                (want.read && (event.is_readable() || event.is_read_closed()))
                    || (want.write && (event.is_writable() || event.is_write_closed()))
                    || event.is_error()
            });
            if ready {
                return Ok(());
            }
        }
    }

    /// Runs `op` until it stops returning `WouldBlock`, waiting in between.
    pub(crate) fn run<T>(
        &mut self,
        conn: &mut dyn Conn,
        op: Op,
        mut f: impl FnMut(&mut dyn Conn) -> io::Result<T>,
    ) -> io::Result<T> {
        loop {
            match f(conn) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let want = conn.want(op);
                    self.wait(want)?;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => return other,
            }
        }
    }

    pub(crate) fn handshake(&mut self, conn: &mut dyn Conn) -> io::Result<()> {
        self.run(conn, Op::Read, |c| c.handshake())
    }

    pub(crate) fn read(&mut self, conn: &mut dyn Conn, buf: &mut [u8]) -> io::Result<usize> {
        self.run(conn, Op::Read, |c| c.read(buf))
    }

    /// Fills `buf`; `Ok(false)` if the stream ended before its first byte.
    pub(crate) fn read_exact(&mut self, conn: &mut dyn Conn, buf: &mut [u8]) -> io::Result<bool> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.read(conn, &mut buf[filled..])? {
                0 if filled == 0 => return Ok(false),
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n => filled += n,
            }
        }
        Ok(true)
    }

    /// Writes all of `buf`: accepted bytes are the stream's; only the rest is offered again.
    pub(crate) fn write_all(&mut self, conn: &mut dyn Conn, buf: &[u8]) -> io::Result<()> {
        let mut offset = 0;
        while offset < buf.len() {
            match self.run(conn, Op::Write, |c| c.write(&buf[offset..]))? {
                0 => return Err(io::ErrorKind::WriteZero.into()),
                n => offset += n,
            }
        }
        Ok(())
    }

    pub(crate) fn flush(&mut self, conn: &mut dyn Conn) -> io::Result<()> {
        self.run(conn, Op::Write, |c| c.flush())
    }

    pub(crate) fn shutdown(&mut self, conn: &mut dyn Conn) -> io::Result<()> {
        self.run(conn, Op::Write, |c| c.shutdown())
    }

    /// Ends the connection from the side that finished first: shutdown, then read until
    /// the peer has ended its side too.
    pub(crate) fn close(&mut self, conn: &mut dyn Conn) -> io::Result<()> {
        self.shutdown(conn)?;
        let mut buf = [0u8; 4096];
        while self.read(conn, &mut buf)? != 0 {}
        Ok(())
    }
}
