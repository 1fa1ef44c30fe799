//! Plaintext both ways between a TLS connection and a plain TCP connection (`serve
//! --forward`, `tunnel`), with half-close carried across: the TLS peer's `close_notify`
//! becomes a TCP FIN to the plain peer, and the plain peer's FIN becomes a `close_notify`.

use std::io;

use tlsflow::TlsStream;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::chunks::{self, Activity};
use tokio::net::TcpStream;

/// Bytes moved each way.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Moved {
    /// From the TLS peer to the plain peer.
    pub(crate) from_tls: u64,
    /// From the plain peer to the TLS peer.
    pub(crate) to_tls: u64,
}

/// Which side of the relay failed, and how.
#[derive(Debug)]
pub(crate) enum RelayError {
    /// The TLS side: truncation, a TLS error, or its transport.
    Tls(io::Error),
    /// The plain TCP side.
    Plain(io::Error),
}

#[derive(Clone, Copy)]
enum Side {
    Tls,
    Plain,
}

impl Side {
    fn error(self, err: io::Error) -> RelayError {
        match self {
            Side::Tls => RelayError::Tls(err),
            Side::Plain => RelayError::Plain(err),
        }
    }
}

/// Copies both ways until both directions have ended. A failure in either direction ends
/// the relay at once: the sockets are dropped, so neither peer mistakes a broken
/// connection for a clean end.
pub(crate) async fn relay(
    tls: TlsStream<TcpStream>,
    plain: TcpStream,
    activity: &Activity,
) -> Result<Moved, RelayError> {
    let (mut tls_read, mut tls_write) = tls
        .split_with(|tcp| tcp.into_split())
        .map_err(|_| RelayError::Tls(io::Error::other("the TLS handshake did not complete")))?;
    let (mut plain_read, mut plain_write) = plain.into_split();
    // Inbound ends at the TLS peer's close_notify (a bare EOF is an UnexpectedEof error);
    // outbound ends at the plain peer's FIN and becomes close_notify plus FIN.
    let inbound = pump(
        &mut tls_read,
        Side::Tls,
        &mut plain_write,
        Side::Plain,
        activity,
    );
    let outbound = pump(
        &mut plain_read,
        Side::Plain,
        &mut tls_write,
        Side::Tls,
        activity,
    );
    let (from_tls, to_tls) = tokio::try_join!(inbound, outbound)?;
    Ok(Moved { from_tls, to_tls })
}

/// Copies until end of input, then shuts the writer down (a half-close).
async fn pump<R, W>(
    reader: &mut R,
    reader_side: Side,
    writer: &mut W,
    writer_side: Side,
    activity: &Activity,
) -> Result<u64, RelayError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut total = 0u64;
    // No buffer is held while the reader is silent.
    while let Some(chunk) = chunks::next(reader)
        .await
        .map_err(|e| reader_side.error(e))?
    {
        // Flush each chunk: a TLS writer, like a BufWriter, may hold accepted bytes.
        writer
            .write_all(&chunk)
            .await
            .map_err(|e| writer_side.error(e))?;
        writer.flush().await.map_err(|e| writer_side.error(e))?;
        activity.touch();
        total += chunk.len() as u64;
    }
    writer.shutdown().await.map_err(|e| writer_side.error(e))?;
    Ok(total)
}
