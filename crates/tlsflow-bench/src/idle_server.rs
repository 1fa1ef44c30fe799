//! The server of the memory and scaling measures, run as a child process so that its
//! resident memory (and CPU time) holds nothing but the server: a current-thread tokio
//! runtime that accepts, completes the handshake and echoes each 1 KiB message; between
//! messages a connection is idle, its task waiting on a read.

use std::io::{Read, Write};
use std::sync::Arc;

use std::future::Future;
use std::io;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::contender::{Contender, Model, Stack};
use crate::failure::{Context, Failure, Outcome};
use crate::rtt::echo_each;
use crate::tls::{Identity, Tls};
use crate::{cpu, tokio_conn};

/// The message each connection echoes before it goes idle.
pub(crate) const MESSAGE: usize = 1024;

/// Serves until killed; the certificate and key arrive as PEM on stdin, and the port is
/// announced as `port N` on stdout.
pub(crate) fn run(contender: &str) -> Outcome<()> {
    let contender = Contender::by_name(contender)
        .filter(|c| c.model == Model::Tokio)
        .ok_or_else(|| Failure::Usage(format!("{contender:?} is not a tokio contender")))?;
    // Never outlive the benchmark, even if it is interrupted.
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    cpu::raise_nofile_limit();
    let mut pem = String::new();
    std::io::stdin()
        .read_to_string(&mut pem)
        .ctx("cannot read the certificate")?;
    let tls = Arc::new(Tls::new(&Identity::from_pem(&pem)?)?);
    let stack = contender.stack;
    let runtime = tokio_conn::runtime().ctx("tokio runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .ctx("cannot listen on loopback")?;
        let port = listener.local_addr().ctx("listener")?.port();
        let mut stdout = std::io::stdout();
        writeln!(stdout, "port {port}").ctx("stdout")?;
        stdout.flush().ctx("stdout")?;
        loop {
            let tcp = match listener.accept().await {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // Out of files, most likely: say so, and let the parent's check fail.
                    eprintln!("idle-server: accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            spawn_connection(stack, tls.clone(), tcp);
        }
    })
}

/// Serves one connection on a task of its own, whose future holds only this contender's
/// stream type (an enum of all of them would make every task as large as the largest).
fn spawn_connection(stack: Stack, tls: Arc<Tls>, tcp: TcpStream) {
    match stack {
        Stack::Tcp => {
            tokio::spawn(idle(async move { Ok(tcp) }));
        }
        Stack::Tlsflow(engine) => {
            tokio::spawn(idle(async move {
                tls.tlsflow_server(engine).accept_tokio(tcp).await
            }));
        }
        Stack::TokioRustls | Stack::RustlsStream => {
            tokio::spawn(idle(async move {
                tokio_rustls::TlsAcceptor::from(tls.rustls_server.clone())
                    .accept(tcp)
                    .await
            }));
        }
        Stack::TokioOpenssl => {
            tokio::spawn(idle(async move {
                let ssl = openssl::ssl::Ssl::new(&tls.openssl_server).map_err(io::Error::other)?;
                let mut stream =
                    tokio_openssl::SslStream::new(ssl, tcp).map_err(io::Error::other)?;
                Pin::new(&mut stream)
                    .accept()
                    .await
                    .map_err(io::Error::other)?;
                Ok(stream)
            }));
        }
    }
}

/// Handshake, then each message echoed, idle in between, until the peer ends the
/// connection.
async fn idle<S>(handshake: impl Future<Output = io::Result<S>>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let served = async {
        let mut conn = handshake.await?;
        // Idle: wait on a read into the same buffer for the next message until the peer
        // ends the connection, then answer its close.
        echo_each(&mut conn, MESSAGE).await?;
        conn.shutdown().await
    };
    if let Err(e) = served.await {
        eprintln!("idle-server: {e}");
    }
}
