//! Blocking std sockets: plain TCP, tlsflow's `TlsStream`, and rustls's `StreamOwned`
//! behind one small interface, so every measure drives them with the same code.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use rustls::{ConnectionCommon, SideData, StreamOwned};

use crate::contender::Stack;
use crate::tls::{Negotiated, Tls, SERVER_NAME};

/// How long a blocking socket call may make no progress before the run fails.
pub(crate) const STALL: Duration = Duration::from_secs(60);

/// One end of a connection on a blocking socket.
pub(crate) trait Conn: Read + Write + Send {
    /// Completes the handshake (nothing for TCP).
    fn handshake(&mut self) -> io::Result<()>;

    /// The negotiated version and suite (`None` for TCP).
    fn negotiated(&self) -> Option<Negotiated>;

    /// Ends this side's sending: `close_notify` for TLS, a FIN for TCP.
    fn shutdown(&mut self) -> io::Result<()>;

    /// Ends the connection from the side that finished first: [`shutdown`](Self::shutdown),
    /// then reads until the peer has ended its side too.
    fn close(&mut self) -> io::Result<()> {
        self.shutdown()?;
        drain(self)
    }

    /// A read half and a write half for two threads.
    fn into_halves(self: Box<Self>) -> io::Result<(Box<dyn Read + Send>, Box<dyn HalfWriter>)>;
}

/// The write half of a split connection.
pub(crate) trait HalfWriter: Write + Send {
    /// Ends this direction (half-close); the read half goes on.
    fn shutdown(&mut self) -> io::Result<()>;
}

/// Reads and discards until the peer's end of stream.
pub(crate) fn drain(conn: &mut (impl Read + ?Sized)) -> io::Result<()> {
    let mut buf = [0u8; 4096];
    while conn.read(&mut buf)? != 0 {}
    Ok(())
}

/// A connected loopback pair (client, server) with Nagle off and stall timeouts.
pub(crate) fn tcp_pair() -> io::Result<(TcpStream, TcpStream)> {
    let listener = listener()?;
    let client = TcpStream::connect(listener.local_addr()?)?;
    let (server, _) = listener.accept()?;
    for tcp in [&client, &server] {
        prepare(tcp)?;
    }
    Ok((client, server))
}

/// A listener on a free loopback port.
pub(crate) fn listener() -> io::Result<TcpListener> {
    TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
}

/// Nagle off, and blocking calls bounded by [`STALL`].
pub(crate) fn prepare(tcp: &TcpStream) -> io::Result<()> {
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(STALL))?;
    tcp.set_write_timeout(Some(STALL))
}

/// The client end of `stack` over `tcp`; no I/O happens yet.
pub(crate) fn client(stack: Stack, tls: &Tls, tcp: TcpStream) -> io::Result<Box<dyn Conn>> {
    Ok(match stack {
        Stack::Tcp => Box::new(tcp),
        Stack::Tlsflow(engine) => Box::new(
            tls.tlsflow_client(engine)
                .connect(SERVER_NAME, tcp)
                .map_err(io::Error::other)?,
        ),
        Stack::RustlsStream => {
            let name = SERVER_NAME.try_into().map_err(io::Error::other)?;
            let conn = rustls::ClientConnection::new(tls.rustls_client.clone(), name)
                .map_err(io::Error::other)?;
            Box::new(StreamOwned::new(conn, tcp))
        }
        Stack::TokioRustls | Stack::TokioOpenssl => return Err(not_blocking()),
    })
}

/// The server end of `stack` over `tcp`; no I/O happens yet.
pub(crate) fn server(stack: Stack, tls: &Tls, tcp: TcpStream) -> io::Result<Box<dyn Conn>> {
    Ok(match stack {
        Stack::Tcp => Box::new(tcp),
        Stack::Tlsflow(engine) => Box::new(
            tls.tlsflow_server(engine)
                .accept(tcp)
                .map_err(io::Error::other)?,
        ),
        Stack::RustlsStream => {
            let conn = rustls::ServerConnection::new(tls.rustls_server.clone())
                .map_err(io::Error::other)?;
            Box::new(StreamOwned::new(conn, tcp))
        }
        Stack::TokioRustls | Stack::TokioOpenssl => return Err(not_blocking()),
    })
}

fn not_blocking() -> io::Error {
    io::Error::other("not a blocking contender")
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

    fn into_halves(self: Box<Self>) -> io::Result<(Box<dyn Read + Send>, Box<dyn HalfWriter>)> {
        let writer = self.try_clone()?;
        Ok((self, Box::new(writer)))
    }
}

impl HalfWriter for TcpStream {
    fn shutdown(&mut self) -> io::Result<()> {
        TcpStream::shutdown(self, Shutdown::Write)
    }
}

type TlsflowWriteHalf =
    tlsflow::WriteHalf<tlsflow::SharedIo<TcpStream>, tlsflow::SharedIo<TcpStream>>;

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

    fn close(&mut self) -> io::Result<()> {
        tlsflow::TlsStream::close(self)
    }

    fn into_halves(self: Box<Self>) -> io::Result<(Box<dyn Read + Send>, Box<dyn HalfWriter>)> {
        let (reader, writer) = self
            .into_split()
            .map_err(|_| io::Error::other("the handshake is not complete"))?;
        Ok((Box::new(reader), Box::new(writer)))
    }
}

impl HalfWriter for TlsflowWriteHalf {
    fn shutdown(&mut self) -> io::Result<()> {
        tlsflow::WriteHalf::shutdown(self)
    }
}

impl<C, S> Conn for StreamOwned<C, TcpStream>
where
    C: DerefMut + Deref<Target = ConnectionCommon<S>> + Send,
    S: SideData,
{
    fn handshake(&mut self) -> io::Result<()> {
        while self.conn.is_handshaking() || self.conn.wants_write() {
            self.conn.complete_io(&mut self.sock)?;
        }
        Ok(())
    }

    fn negotiated(&self) -> Option<Negotiated> {
        Some(Negotiated::of_rustls(&self.conn))
    }

    fn shutdown(&mut self) -> io::Result<()> {
        self.conn.send_close_notify();
        self.flush()
    }

    fn into_halves(self: Box<Self>) -> io::Result<(Box<dyn Read + Send>, Box<dyn HalfWriter>)> {
        Err(io::Error::other("rustls's StreamOwned cannot be split"))
    }
}
