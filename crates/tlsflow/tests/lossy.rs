//! The flaw, reproduced: a driver that drops unsent ciphertext the way Boost.Asio's
//! `ssl::stream::write_some` does must be caught by the hostile-transport check. This proves
//! the central test can fail.

#![allow(clippy::unwrap_used)]

use std::io::{self, Read, Write};

use tlsflow::session::Buffered;
use tlsflow::testing::{
    engine_pairs, run_pair, self_signed_configs_on, HostileTransport, Hostility, Scenario,
    TestStream,
};
use tlsflow::{Limits, TlsStream};

/// A deliberately broken driver: it seals the caller's plaintext, offers the ciphertext to
/// the transport once, reports the plaintext as sent, and forgets whatever the transport did
/// not take.
struct LossyStream {
    inner: TlsStream<HostileTransport>,
}

impl Write for LossyStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.handshake()?;
        let accepted = self.inner.session_mut().write_plaintext(buf)?;
        let pending = self.inner.session().pending_output().to_vec();
        match self.inner.get_mut().write(&pending) {
            Ok(_) | Err(_) => {}
        }
        // The flaw: the unsent rest of the record is dropped.
        self.inner.session_mut().output_sent(pending.len());
        Ok(accepted.max(1).min(buf.len()))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl Read for LossyStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}

impl TestStream for LossyStream {
    fn shutdown(&mut self) -> io::Result<()> {
        self.inner.shutdown()
    }
    fn transport(&mut self) -> &mut HostileTransport {
        self.inner.get_mut()
    }
    fn buffered(&self) -> (Buffered, Limits) {
        (self.inner.buffered(), self.inner.session().limits())
    }
}

fn run(seed: u64, lossy: bool) -> Result<(), String> {
    // The lossy driver is caught whichever engine sealed the records.
    let pairs = engine_pairs();
    let (c, s) = pairs[seed as usize % pairs.len()];
    let (client, server) =
        self_signed_configs_on(c, s, Limits::default()).map_err(|e| e.to_string())?;
    let hostility = Hostility {
        capacity: 8 * 1024,
        max_io: 3000,
        would_block_percent: 20,
        interrupt_percent: 0,
    };
    let (a, b) = HostileTransport::pair(seed, hostility);
    let client = client.connect("localhost", a).map_err(|e| e.to_string())?;
    let server = server.accept(b).map_err(|e| e.to_string())?;
    let scenario = Scenario {
        seed,
        client_sends: 512 * 1024,
        server_sends: 0,
        ..Scenario::default()
    };
    if lossy {
        run_pair(LossyStream { inner: client }, server, &scenario).map(|_| ())
    } else {
        run_pair(client, server, &scenario).map(|_| ())
    }
}

#[test]
fn the_lossy_driver_is_caught() {
    for seed in 0..20 {
        let err = run(seed, true).expect_err("the hostile transport let a lossy driver pass");
        assert!(
            err.contains("server") && (err.contains("failed") || err.contains("mismatch")),
            "seed {seed}: unexpected failure: {err}"
        );
        if seed == 0 {
            eprintln!("lossy driver caught: {err}");
        }
    }
}

#[test]
fn the_same_schedules_pass_with_the_real_driver() {
    for seed in 0..20 {
        run(seed, false).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    }
}
