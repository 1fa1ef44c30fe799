//! The accept loop of `serve` and `tunnel`: many connections at once, a bound on how many,
//! and a graceful stop on Ctrl-C or SIGTERM.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::failure::{describe_io, Failure, Outcome};
use crate::units::human_duration;

/// Accepts connections and runs `handle` on each in its own task, at most `max` at once
/// (more wait in the kernel's listen queue), until Ctrl-C or SIGTERM. Then it stops
/// accepting and gives open connections `grace` to finish.
pub(crate) async fn accept_until_stopped<F, Fut>(
    listener: TcpListener,
    max: u32,
    grace: Duration,
    mut handle: F,
) -> Outcome
where
    F: FnMut(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    // Each connection holds a permit; getting all of them back means all have finished.
    let permits = Arc::new(Semaphore::new(max as usize));
    let stop = stop_signal();
    tokio::pin!(stop);
    loop {
        let permit = tokio::select! {
            biased;
            () = &mut stop => break,
            permit = permits.clone().acquire_owned() => permit
                .map_err(|_| Failure::runtime("the connection limit was closed"))?,
        };
        tokio::select! {
            biased;
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    tracing::debug!("{peer}: connected");
                    let task = handle(tcp, peer);
                    tokio::spawn(async move {
                        task.await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    // Out of file descriptors, or a connection reset while queued: keep
                    // serving, but do not spin.
                    tracing::warn!("accepting a connection failed: {}", describe_io(&e));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    drop(listener);
    let open = max as usize - permits.available_permits();
    if open == 0 {
        eprintln!("stopped");
        return Ok(());
    }
    eprintln!(
        "stopping: no new connections; waiting up to {} for {open} open connection(s)",
        human_duration(grace)
    );
    match tokio::time::timeout(grace, permits.acquire_many(max)).await {
        Ok(_) => eprintln!("stopped: every connection finished"),
        Err(_) => {
            let left = max as usize - permits.available_permits();
            eprintln!(
                "stopped: closing {left} connection(s) still open after {}",
                human_duration(grace)
            );
        }
    }
    Ok(())
}

/// Completes at Ctrl-C or SIGTERM. If no handler can be installed it never completes, so
/// the server runs until killed rather than stopping at once.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).ok();
        let terminated = async {
            match term.as_mut() {
                Some(term) => {
                    term.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = ctrl_c() => {}
            () = terminated => {}
        }
    }
    #[cfg(not(unix))]
    ctrl_c().await;
    eprintln!("signal received: stopping");
}

async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}
