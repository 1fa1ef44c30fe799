//! The accept loop of `serve` and `tunnel`: many connections at once, a bound on how many,
//! admission that a slowloris cannot exhaust, and a graceful stop on Ctrl-C or SIGTERM.
//!
//! Every connection holds one of `max_connections` slots. A connection still in its TLS
//! handshake is *pending*: at most `max_handshakes` are, and pending ones are shed to make
//! room, oldest first, while established connections are never shed. So the loop never
//! stops accepting because of handshakes: a client that opens sockets and sends nothing (or
//! a byte a second) loses its oldest sockets to every new arrival, and a legitimate client,
//! whose handshake takes milliseconds, is always admitted. Shedding the oldest rather than
//! refusing the newest is what makes that true: refusing newcomers would let whoever holds
//! the slots first keep everyone else out until their handshake timeout. Established
//! connections that go silent are closed after `serve --idle-timeout`.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Semaphore};

use crate::failure::{describe_io, Failure, Outcome};
use crate::units::human_duration;

/// How many connections the loop admits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Admission {
    /// Connections open at once, pending or established.
    pub(crate) max_connections: u32,
    /// Connections in their handshake at once; beyond it, the oldest is shed.
    pub(crate) max_handshakes: u32,
}

/// Accepts connections and runs `handle` on each in its own task until Ctrl-C or SIGTERM,
/// within `admission` (see the module docs). Each task gets a [`Pending`] handshake: it
/// calls [`Pending::done`] once its handshake is over, and stops if [`Pending::shed`]
/// completes first. Then the loop stops accepting and gives open connections `grace` to
/// finish.
pub(crate) async fn accept_until_stopped<F, Fut>(
    listener: TcpListener,
    admission: Admission,
    grace: Duration,
    mut handle: F,
) -> Outcome
where
    F: FnMut(TcpStream, SocketAddr, Pending) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let max = admission.max_connections.max(1);
    // Each connection holds a permit; getting all of them back means all have finished.
    let permits = Arc::new(Semaphore::new(max as usize));
    let pending = Arc::new(PendingSet::new(admission.max_handshakes.max(1) as usize));
    let mut accept_errors = RateLimited::new("accepting a connection failed");
    let trimming = tokio::spawn(give_memory_back(permits.clone(), max));
    let stop = stop_signal();
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut stop => break,
            accepted = listener.accept() => accepted,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, or a connection reset while queued: keep serving,
                // but do not spin, and do not flood the log.
                accept_errors.warn(&describe_io(&e));
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                // Every slot is taken: a pending handshake makes room. With none to shed,
                // established connections fill the server, and this client waits for one
                // to end (as the next ones wait in the listen queue). A connection shed as
                // it finishes its handshake frees nothing, so shed again while waiting.
                let permit = loop {
                    pending.shed_oldest();
                    tokio::select! {
                        biased;
                        () = &mut stop => break None,
                        permit = permits.clone().acquire_owned() => break Some(permit
                            .map_err(|_| Failure::runtime("the connection limit was closed"))?),
                        () = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                };
                match permit {
                    Some(permit) => permit,
                    None => break,
                }
            }
        };
        tracing::debug!("{peer}: connected");
        let task = handle(tcp, peer, pending.register());
        tokio::spawn(async move {
            task.await;
            drop(permit);
        });
    }
    drop(listener);
    trimming.abort();
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

/// Gives memory back to the system once a burst of connections has ended: every two
/// seconds, when the number of open connections has fallen to half of what it was or less.
/// glibc keeps what connections freed for the process otherwise: 10,000 connections left
/// the server at 4.6 times its memory after they closed, 1.5 times with this (mimalloc and
/// jemalloc kept 2.5 and 5.1 times; docs/bench/serve/allocators.md).
async fn give_memory_back(permits: Arc<Semaphore>, max: u32) {
    let mut peak = 0usize;
    let mut interval = tokio::time::interval(Duration::from_secs(2));
    loop {
        interval.tick().await;
        let open = max as usize - permits.available_permits();
        if peak > 0 && open <= peak / 2 {
            let _ = tokio::task::spawn_blocking(release_free_memory).await;
            peak = open;
        }
        peak = peak.max(open);
    }
}

/// Returns the allocator's free memory to the system.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: malloc_trim takes no pointers and only returns free heap memory to the
    // system; glibc allows it from any thread at any time. The measured need is in
    // docs/bench/serve/allocators.md.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The connections in their handshake, oldest first, each with the means to shed it.
struct PendingSet {
    entries: Mutex<BTreeMap<u64, oneshot::Sender<()>>>,
    next: AtomicU64,
    max: usize,
    shed: Mutex<RateLimited>,
}

impl PendingSet {
    fn new(max: usize) -> PendingSet {
        PendingSet {
            entries: Mutex::new(BTreeMap::new()),
            next: AtomicU64::new(0),
            max,
            shed: Mutex::new(RateLimited::new(
                "shed connections still in their TLS handshake to admit new ones",
            )),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, oneshot::Sender<()>>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new pending handshake, shedding the oldest if `max` are pending already.
    fn register(self: &Arc<Self>) -> Pending {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let full = {
            let mut entries = self.entries();
            entries.insert(id, tx);
            entries.len() > self.max
        };
        if full {
            self.shed_oldest();
        }
        Pending {
            id,
            set: self.clone(),
            shed: rx,
        }
    }

    /// Sheds the oldest pending handshake; false when there is none.
    fn shed_oldest(&self) -> bool {
        let oldest = self.entries().pop_first();
        match oldest {
            Some((_, tx)) => {
                let _ = tx.send(());
                self.shed
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .warn(&format!("at most {} at once", self.max));
                true
            }
            None => false,
        }
    }
}

/// A connection's place among the pending handshakes. Dropping it (or [`done`](Self::done))
/// takes the connection out of them.
pub(crate) struct Pending {
    id: u64,
    set: Arc<PendingSet>,
    shed: oneshot::Receiver<()>,
}

impl Pending {
    /// Completes when the connection is shed to admit newer ones.
    pub(crate) async fn shed(&mut self) {
        // A sender dropped without sending means the entry left the set: never shed.
        if (&mut self.shed).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// The handshake is over: the connection can no longer be shed.
    pub(crate) fn done(self) {}
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.set.entries().remove(&self.id);
    }
}

/// A log line that repeats at most once a second, with a count of what it held back.
struct RateLimited {
    what: &'static str,
    last: Option<Instant>,
    held: u64,
}

impl RateLimited {
    fn new(what: &'static str) -> RateLimited {
        RateLimited {
            what,
            last: None,
            held: 0,
        }
    }

    /// Whether to log now; counts the occurrence either way.
    fn due(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < Duration::from_secs(1))
        {
            self.held += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.held))
    }

    fn warn(&mut self, detail: &str) {
        if let Some(held) = self.due() {
            tracing::warn!("{}: {detail}{}", self.what, suffix(held));
        }
    }
}

fn suffix(held: u64) -> String {
    if held == 0 {
        String::new()
    } else {
        format!("; {held} more in the last second")
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_pending_handshake_is_shed_first() {
        let set = Arc::new(PendingSet::new(2));
        let mut first = set.register();
        let mut second = set.register();
        assert!(first.shed.try_recv().is_err() && second.shed.try_recv().is_err());
        let mut third = set.register();
        assert!(first.shed.try_recv().is_ok(), "the oldest is shed");
        assert!(second.shed.try_recv().is_err() && third.shed.try_recv().is_err());
        second.done();
        assert!(set.shed_oldest(), "the third is now the oldest");
        assert!(third.shed.try_recv().is_ok());
        assert!(!set.shed_oldest(), "nothing left to shed");
    }

    #[test]
    fn a_repeated_log_line_is_held_back_and_counted() {
        let mut limited = RateLimited::new("x");
        assert_eq!(limited.due(), Some(0));
        assert_eq!(limited.due(), None);
        assert_eq!(limited.due(), None);
        limited.last = Some(Instant::now() - Duration::from_secs(2));
        assert_eq!(limited.due(), Some(2));
    }
}
