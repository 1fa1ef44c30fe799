//! What `serve` does with one connection: handshake within a time limit, then echo, sink,
//! forward, send a file or answer an HTTP request. Failures are logged with the peer's address and never stop the
//! server.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tlsflow::TlsStream;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::acceptor::Pending;
use crate::chunks::{self, Activity};
use crate::cli::HostPort;
use crate::failure::describe_io;
use crate::relay::{relay, RelayError};
use crate::serve::{Mode, Shared};
use crate::units::{hex, human_duration};
use crate::{net, units};

/// How long `--forward` waits for its TCP service to accept.
const FORWARD_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves one client from accept to close. Until its handshake is over the connection is
/// `pending`, and closed if it is shed to admit newer ones.
pub(crate) async fn serve_connection(
    shared: Arc<Shared>,
    tcp: TcpStream,
    peer: SocketAddr,
    mut pending: Pending,
) {
    let _ = tcp.set_nodelay(true);
    let accepting = shared.config.accept_tokio(tcp);
    let handshake = tokio::select! {
        () = pending.shed() => {
            tracing::debug!("{peer}: shed during the TLS handshake to admit newer connections");
            return;
        }
        handshake = tokio::time::timeout(shared.handshake_timeout, accepting) => handshake,
    };
    pending.done();
    let tls = match handshake {
        Err(_) => {
            tracing::warn!(
                "{peer}: timed out waiting for the TLS handshake (limit {})",
                human_duration(shared.handshake_timeout)
            );
            return;
        }
        Ok(Err(e)) => {
            tracing::warn!("{peer}: TLS handshake failed: {}", describe_io(&e));
            return;
        }
        Ok(Ok(tls)) => tls,
    };
    tracing::info!(
        "{peer}: {} {}{}",
        tls.protocol_version()
            .map_or_else(|| "?".to_owned(), |v| v.to_string()),
        tls.cipher_suite()
            .map(|s| s.to_string())
            .unwrap_or_default(),
        tls.alpn_protocol()
            .map(|p| format!(", ALPN {}", String::from_utf8_lossy(&p)))
            .unwrap_or_default()
    );
    // Each mode's future is boxed: a connection task then holds its own mode's state, not
    // room for the largest of them all, for as long as the connection lives.
    let activity = Activity::new();
    let serving = async {
        let act = &activity;
        match &shared.mode {
            Mode::Echo => Box::pin(echo(tls, act)).await,
            Mode::Sink => Box::pin(sink(tls, peer, act)).await,
            Mode::Forward(to) => Box::pin(forward(tls, to, peer, act)).await,
            Mode::File(path) => Box::pin(send_file(tls, path, act)).await,
            Mode::Http => Box::pin(http_page(tls, act)).await,
        }
    };
    // A connection that moves nothing would hold its slot for ever: close it.
    let outcome = tokio::select! {
        outcome = serving => outcome,
        () = activity.idle(shared.idle_timeout) => {
            tracing::info!(
                "{peer}: no data either way for {}: closed",
                human_duration(shared.idle_timeout)
            );
            return;
        }
    };
    match outcome {
        Ok(()) => tracing::debug!("{peer}: closed"),
        Err(message) => tracing::warn!("{peer}: {message}"),
    }
}

/// Sends back everything until the client's `close_notify`, then closes our side.
async fn echo(tls: TlsStream<TcpStream>, activity: &Activity) -> Result<(), String> {
    let (mut reader, mut writer) = tls
        .split_with(|tcp| tcp.into_split())
        .map_err(|_| "the TLS handshake did not complete".to_owned())?;
    let mut echoed = 0u64;
    // Chunk by chunk, flushed: the echo holds no buffer while the client is silent.
    while let Some(chunk) = chunks::next(&mut reader)
        .await
        .map_err(|e| format!("echo failed: {}", describe_io(&e)))?
    {
        activity.touch();
        let sent = async {
            writer.write_all(&chunk).await?;
            writer.flush().await
        };
        sent.await
            .map_err(|e| format!("echo failed: {}", describe_io(&e)))?;
        activity.touch();
        echoed += chunk.len() as u64;
    }
    writer
        .shutdown()
        .await
        .map_err(|e| format!("closing failed: {}", describe_io(&e)))?;
    tracing::info!("echoed {echoed} bytes");
    Ok(())
}

/// Reads and hashes everything until the client's `close_notify`, prints the count and
/// digest on stderr, then closes our side.
async fn sink(
    mut tls: TlsStream<TcpStream>,
    peer: SocketAddr,
    activity: &Activity,
) -> Result<(), String> {
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    while let Some(chunk) = chunks::next(&mut tls)
        .await
        .map_err(|e| format!("receiving failed after {total} bytes: {}", describe_io(&e)))?
    {
        activity.touch();
        hasher.update(&*chunk);
        total += chunk.len() as u64;
    }
    eprintln!(
        "{peer}: received {total} bytes, sha256 {}",
        hex(&hasher.finalize())
    );
    tls.shutdown()
        .await
        .map_err(|e| format!("closing failed: {}", describe_io(&e)))
}

/// Relays the plaintext to the TCP service and back, like stunnel's server side.
async fn forward(
    mut tls: TlsStream<TcpStream>,
    to: &HostPort,
    peer: SocketAddr,
    activity: &Activity,
) -> Result<(), String> {
    let plain = match net::dial(to, FORWARD_CONNECT_TIMEOUT).await {
        Ok(plain) => plain,
        Err(failure) => {
            give_up(&mut tls).await;
            return Err(failure.to_string());
        }
    };
    match relay(tls, plain, activity).await {
        Ok(moved) => {
            tracing::info!(
                "{peer}: forwarded {} to {to}, {} back",
                units::human_bytes(moved.from_tls),
                units::human_bytes(moved.to_tls)
            );
            Ok(())
        }
        Err(RelayError::Tls(e)) => Err(format!("TLS side failed: {}", describe_io(&e))),
        Err(RelayError::Plain(e)) => Err(format!("{to} failed: {}", describe_io(&e))),
    }
}

/// Tells the client the connection ends on purpose: the fatal alert `internal_error` where
/// the engine can send it (the client can say why), `close_notify` otherwise (a clean end,
/// not a cut connection).
async fn give_up(tls: &mut TlsStream<TcpStream>) {
    let alert = tls
        .session_mut()
        .abort(tlsflow::rustls::AlertDescription::InternalError);
    match alert {
        // The flush sends the alert and reports the abort.
        Ok(true) => {
            let _ = tls.flush().await;
        }
        _ => {
            let _ = tokio::time::timeout(FORWARD_CONNECT_TIMEOUT, tls.shutdown()).await;
        }
    }
    // Closing with the client's request unread would make the kernel reset the connection,
    // and the reset can overtake the alert: end our side, and read what is left a moment.
    let tcp = tls.get_mut();
    let _ = tcp.shutdown().await;
    let drain = async {
        let mut scratch = [0u8; 4096];
        while matches!(
            tokio::io::AsyncReadExt::read(tcp, &mut scratch).await,
            Ok(1..)
        ) {}
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

/// Sends the file, then closes cleanly: `close_notify`, and wait for the client's.
async fn send_file(
    mut tls: TlsStream<TcpStream>,
    path: &Path,
    activity: &Activity,
) -> Result<(), String> {
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| format!("cannot read file {}: {}", path.display(), describe_io(&e)))?;
    let failed =
        |e: std::io::Error| format!("sending {} failed: {}", path.display(), describe_io(&e));
    let mut sent = 0u64;
    while let Some(chunk) = chunks::next(&mut file).await.map_err(failed)? {
        tls.write_all(&chunk).await.map_err(failed)?;
        activity.touch();
        sent += chunk.len() as u64;
    }
    tls.close_tokio()
        .await
        .map_err(|e| format!("closing after {sent} bytes failed: {}", describe_io(&e)))?;
    tracing::info!("sent {sent} bytes of {}", path.display());
    Ok(())
}

/// The most of a request `--http` reads before it answers anyway.
const HTTP_REQUEST_LIMIT: usize = 64 * 1024;

/// Reads one HTTP request (up to its blank line, or the end of the client's data), answers
/// with a page naming the connection's parameters in one write, then closes cleanly.
async fn http_page(mut tls: TlsStream<TcpStream>, activity: &Activity) -> Result<(), String> {
    let mut request = Vec::new();
    // The blank line that ends the headers (some clients end lines with a bare LF).
    let complete =
        |r: &[u8]| r.windows(4).any(|w| w == b"\r\n\r\n") || r.windows(2).any(|w| w == b"\n\n");
    let mut scanned = 0;
    while request.len() < HTTP_REQUEST_LIMIT && !complete(&request[scanned..]) {
        // Look again only at the new bytes and the three before them.
        scanned = request.len().saturating_sub(3);
        match chunks::next(&mut tls)
            .await
            .map_err(|e| format!("reading the request failed: {}", describe_io(&e)))?
        {
            Some(chunk) => {
                activity.touch();
                request.extend_from_slice(&chunk);
            }
            None => break,
        }
    }
    let body = format!(
        "tlsflow\nprotocol: {}\ncipher suite: {}\nALPN: {}\nserver name: {}\n",
        tls.protocol_version()
            .map_or_else(|| "?".to_owned(), |v| v.to_string()),
        tls.cipher_suite()
            .map(|s| s.to_string())
            .unwrap_or_default(),
        tls.alpn_protocol().map_or_else(
            || "none".to_owned(),
            |p| String::from_utf8_lossy(&p).into_owned()
        ),
        tls.server_name().unwrap_or_else(|| "none".to_owned()),
    );
    let page = format!(
        "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(page.as_bytes())
        .await
        .map_err(|e| format!("sending the page failed: {}", describe_io(&e)))?;
    tls.close_tokio()
        .await
        .map_err(|e| format!("closing failed: {}", describe_io(&e)))
}
