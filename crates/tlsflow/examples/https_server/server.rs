//! An HTTPS server on hyper 1.x over tlsflow's tokio stream: HTTP/1.1 or HTTP/2, as the
//! client's ALPN chooses.
//!
//! `GET /bytes/N` answers with N deterministic bytes (see [`fill`]), so a client can check
//! the body by SHA-256; any other path gets a short greeting.

#![allow(unreachable_pub)]

use std::convert::Infallible;
use std::io;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;

/// Largest body `/bytes/N` serves.
pub const MAX_BODY: usize = 1 << 30;

/// The ALPN protocols the server offers, preferred first.
pub const ALPN: [&str; 2] = ["h2", "http/1.1"];

/// Fills `buf` with the body of `/bytes/N` (a SplitMix64 stream seeded with N).
pub fn fill(seed: u64, buf: &mut [u8]) {
    let mut state = seed;
    for chunk in buf.chunks_mut(8) {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        chunk.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes()[..chunk.len()]);
    }
}

/// The body `/bytes/N` serves: N bytes from [`fill`].
pub fn body(n: usize) -> Vec<u8> {
    let mut body = vec![0u8; n];
    fill(n as u64, &mut body);
    body
}

async fn handle(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path();
    let response = match path.strip_prefix("/bytes/").map(str::parse::<usize>) {
        Some(Ok(n)) if n <= MAX_BODY => Response::new(Full::new(Bytes::from(body(n)))),
        Some(_) => {
            let mut response = Response::new(Full::new(Bytes::from_static(
                b"expected /bytes/N with N at most 1 GiB\n",
            )));
            *response.status_mut() = StatusCode::BAD_REQUEST;
            response
        }
        None => Response::new(Full::new(Bytes::from(format!(
            "hello from tlsflow over {:?}\n",
            request.version()
        )))),
    };
    Ok(response)
}

/// Accepts connections until the listener fails; each connection runs in its own task, its
/// handshake within the acceptor's timeout.
///
/// # Errors
///
/// The listener's failure.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: tlsflow::ServerConfig,
) -> io::Result<()> {
    let acceptor = tlsflow::TlsAcceptor::new(config);
    loop {
        let (tcp, peer) = listener.accept().await?;
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let tls = match acceptor.accept(tcp).await {
                Ok(tls) => tls,
                Err(e) => {
                    eprintln!("{peer}: handshake failed: {e}");
                    return;
                }
            };
            let served = Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), hyper::service::service_fn(handle))
                .await;
            if let Err(e) = served {
                eprintln!("{peer}: {e}");
            }
        });
    }
}
