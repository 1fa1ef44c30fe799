//! The hostile-transport schedules for the async drivers, with the wake-up checker: a
//! stream that returns `Pending` without its transport having done so, that loses a
//! wake-up, or that spins, fails the run. `TLSFLOW_SCHEDULES` sets the count (default 2000,
//! split between tokio and futures-io).

#![cfg(all(feature = "tokio", feature = "futures-io"))]
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tlsflow::testing::{
    engine_pairs, run_pair_async, self_signed_configs, self_signed_configs_on, FuturesPeer,
    FuturesSplitPeer, HostileTransport, Hostility, Rng, Scenario, TokioPeer, TokioSplitPeer,
};
use tlsflow::{ClientConfig, Limits, ServerConfig};

fn schedules() -> u64 {
    std::env::var("TLSFLOW_SCHEDULES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

type Stream = tlsflow::TlsStream<HostileTransport>;

/// Completes both handshakes, alternating between the sides.
fn handshake(mut client: Stream, mut server: Stream) -> Result<(Stream, Stream), String> {
    for _ in 0..10_000_000 {
        let c = client.handshake();
        let s = server.handshake();
        for r in [&c, &s] {
            if let Err(e) = r {
                if !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                ) {
                    return Err(format!("handshake failed: {e}"));
                }
            }
        }
        // Done once neither side is handshaking: a server's session tickets may still be
        // queued behind a full pipe, and the split halves must deliver them.
        if !client.is_handshaking() && !server.is_handshaking() {
            return Ok((client, server));
        }
    }
    Err(format!(
        "handshake did not finish: client {:?} {:?}, server {:?} {:?}",
        client.state(),
        client.buffered(),
        server.state(),
        server.buffered()
    ))
}

fn run_seed(seed: u64, client: &ClientConfig, server: &ServerConfig) -> Result<u64, String> {
    let mut rng = Rng::new(seed ^ 0xa5a5_5a5a);
    let capacity = rng.log_between(1, 64 * 1024);
    let hostility = Hostility {
        capacity,
        max_io: rng.log_between(1, 64 * 1024),
        would_block_percent: rng.between(0, 50) as u8,
        interrupt_percent: rng.between(0, 10) as u8,
    };
    let limits = Limits {
        send: rng.log_between(1, 256 * 1024),
        receive: rng.log_between(1, 128 * 1024),
    };
    let ceiling = if capacity.min(hostility.max_io) < 64 {
        16 * 1024
    } else {
        512 * 1024
    };
    let scenario = Scenario {
        seed,
        client_sends: rng.log_between(0, ceiling),
        server_sends: rng.log_between(0, ceiling),
        max_write: rng.log_between(1, 128 * 1024),
        max_read: rng.log_between(1, 128 * 1024),
        vectored: rng.below(2) == 1,
        ..Scenario::default()
    };
    let (a, b) = HostileTransport::pair(seed, hostility);
    let client = client
        .clone()
        .with_limits(limits)
        .connect("localhost", a)
        .map_err(|e| e.to_string())?;
    let server = server
        .clone()
        .with_limits(limits)
        .accept(b)
        .map_err(|e| e.to_string())?;
    let report = match seed % 4 {
        0 => run_pair_async(TokioPeer(client), TokioPeer(server), &scenario),
        1 => run_pair_async(FuturesPeer(client), FuturesPeer(server), &scenario),
        split => {
            // Split halves run as two tasks per side; the handshake comes first.
            let (client, server) = handshake(client, server)?;
            if split == 2 {
                run_pair_async(
                    TokioSplitPeer::new(client).map_err(|_| "split refused")?,
                    TokioSplitPeer::new(server).map_err(|_| "split refused")?,
                    &scenario,
                )
            } else {
                run_pair_async(
                    FuturesSplitPeer::new(client).map_err(|_| "split refused")?,
                    FuturesSplitPeer::new(server).map_err(|_| "split refused")?,
                    &scenario,
                )
            }
        }
    };
    report
        .map(|r| (r.client_received + r.server_received) as u64)
        .map_err(|e| format!("{e}\n  plan: {hostility:?} {limits:?} {scenario:?}"))
}

#[test]
fn async_hostile_schedules_deliver_every_byte_without_lost_wakeups() {
    // seed % 4 picks the driver (tokio, futures-io, and split halves of each); the engine
    // pair rotates over the seeds above that.
    let pairs: Vec<(ClientConfig, ServerConfig)> = engine_pairs()
        .into_iter()
        .map(|(c, s)| self_signed_configs_on(c, s, Limits::default()).unwrap())
        .collect();
    let total = schedules();
    let next = AtomicU64::new(0);
    let bytes = AtomicU64::new(0);
    let failures = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= total || failures.load(Ordering::Relaxed) > 0 {
                    break;
                }
                let (client, server) = &pairs[(seed / 4) as usize % pairs.len()];
                match run_seed(seed, client, server) {
                    Ok(n) => {
                        bytes.fetch_add(n, Ordering::Relaxed);
                    }
                    Err(e) => {
                        failures.fetch_add(1, Ordering::Relaxed);
                        eprintln!("async schedule {seed} failed: {e}");
                    }
                }
            });
        }
    });
    eprintln!(
        "async hostile: {total} schedules, {} bytes delivered",
        bytes.load(Ordering::Relaxed)
    );
    assert_eq!(failures.load(Ordering::Relaxed), 0);
}

/// A broken driver that polls its transport with a waker that does nothing: every
/// wake-up is lost. The checker must catch it.
struct LosesWakeups(TokioPeer);

impl tlsflow::testing::AsyncTestStream for LosesWakeups {
    fn poll_read(
        &mut self,
        _cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.0.poll_read(
            &mut std::task::Context::from_waker(std::task::Waker::noop()),
            buf,
        )
    }
    fn poll_write(
        &mut self,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.0.poll_write(cx, buf)
    }
    fn poll_flush(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.0.poll_flush(cx)
    }
    fn poll_shutdown(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.0.poll_shutdown(cx)
    }
    fn transport_pendings(&mut self) -> u64 {
        self.0.transport_pendings()
    }
    fn deliver_events(&mut self) -> bool {
        self.0.deliver_events()
    }
    fn transport_bytes(&mut self) -> u64 {
        self.0.transport_bytes()
    }
    fn buffered(&self) -> (tlsflow::session::Buffered, Limits) {
        self.0.buffered()
    }
}

/// A broken driver that answers `Pending` on its own, without the transport.
struct SpuriousPending(TokioPeer, u64);

impl tlsflow::testing::AsyncTestStream for SpuriousPending {
    fn poll_read(
        &mut self,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.1 += 1;
        if self.1 % 5 == 0 {
            cx.waker().wake_by_ref();
            return std::task::Poll::Pending;
        }
        self.0.poll_read(cx, buf)
    }
    fn poll_write(
        &mut self,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.0.poll_write(cx, buf)
    }
    fn poll_flush(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.0.poll_flush(cx)
    }
    fn poll_shutdown(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.0.poll_shutdown(cx)
    }
    fn transport_pendings(&mut self) -> u64 {
        self.0.transport_pendings()
    }
    fn deliver_events(&mut self) -> bool {
        self.0.deliver_events()
    }
    fn transport_bytes(&mut self) -> u64 {
        self.0.transport_bytes()
    }
    fn buffered(&self) -> (tlsflow::session::Buffered, Limits) {
        self.0.buffered()
    }
}

#[test]
fn the_wakeup_checker_catches_broken_drivers() {
    let (client, server) = self_signed_configs(Limits::default()).unwrap();
    let calm = Hostility {
        capacity: 2048,
        max_io: 700,
        would_block_percent: 0,
        interrupt_percent: 0,
    };
    let scenario = Scenario {
        seed: 1,
        client_sends: 200_000,
        server_sends: 200_000,
        ..Scenario::default()
    };

    let (a, b) = HostileTransport::pair(1, calm);
    let c = client.connect("localhost", a).unwrap();
    let s = server.accept(b).unwrap();
    let err = run_pair_async(LosesWakeups(TokioPeer(c)), TokioPeer(s), &scenario).unwrap_err();
    assert!(err.contains("lost wake-up"), "{err}");

    let (a, b) = HostileTransport::pair(2, calm);
    let c = client.connect("localhost", a).unwrap();
    let s = server.accept(b).unwrap();
    let err =
        run_pair_async(SpuriousPending(TokioPeer(c), 0), TokioPeer(s), &scenario).unwrap_err();
    assert!(err.contains("spurious"), "{err}");
}
