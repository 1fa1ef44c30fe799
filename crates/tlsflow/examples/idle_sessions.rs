//! Holds many idle server sessions in memory, so a heap profiler can show what one costs.
//!
//! Each client/server session pair completes a TLS 1.3 handshake over memory, moves a 1 KiB
//! message each way, and gives its buffers back, as an idle connection does. The program then
//! reports the heap size of the session types and waits a moment, so that a profile taken at
//! the peak shows the idle sessions:
//!
//! ```sh
//! cargo build --release --features self-signed --example idle_sessions
//! valgrind --tool=massif --threshold=2 target/release/examples/idle_sessions 1000
//! # the OpenSSL engine: build with `--features self-signed,openssl`, then
//! valgrind --tool=massif --threshold=2 target/release/examples/idle_sessions 1000 openssl
//! ms_print massif.out.*
//! ```

use std::time::Duration;

use tlsflow::session::ReadOutcome;
use tlsflow::{ClientConfig, Limits, SelfSigned, ServerConfig, Session};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Moves every queued byte from `from` to `to`, as a transport would.
fn pump(from: &mut Session, to: &mut Session) -> Result<bool> {
    let mut moved = false;
    while !from.pending_output().is_empty() {
        let data = from.pending_output().to_vec();
        let space = to.input_buffer();
        let n = data.len().min(space.len());
        if n == 0 {
            break;
        }
        space[..n].copy_from_slice(&data[..n]);
        from.output_sent(n);
        to.input_received(n)?;
        moved = true;
    }
    Ok(moved)
}

fn exchange(client: &mut Session, server: &mut Session) -> Result<()> {
    while client.is_handshaking() || server.is_handshaking() {
        let a = pump(client, server)?;
        let b = pump(server, client)?;
        if !a && !b {
            return Err("handshake stalled".into());
        }
    }
    send_message(client, server)?;
    send_message(server, client)?;
    pump(server, client)?;
    pump(client, server)?;
    client.release_idle_buffers();
    server.release_idle_buffers();
    Ok(())
}

/// Moves a 1 KiB message from `from` to `to`.
fn send_message(from: &mut Session, to: &mut Session) -> Result<()> {
    let message = [7u8; 1024];
    let mut sent = 0;
    while sent < message.len() {
        sent += from.write_plaintext(&message[sent..])?;
        pump(from, to)?;
    }
    let mut got = 0;
    let mut buf = [0u8; 1024];
    while got < message.len() {
        match to.read_plaintext(&mut buf[got..])? {
            ReadOutcome::Data(n) => got += n,
            _ => return Err("message lost".into()),
        }
    }
    Ok(())
}

fn main() -> Result<()> {
    let count: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    // `rustls` (the default) or `openssl` (with the `openssl` feature).
    let engine: tlsflow::EngineKind = std::env::args()
        .nth(2)
        .as_deref()
        .unwrap_or("rustls")
        .parse()?;
    let cert = SelfSigned::generate(&["localhost"])?;
    let server_config = ServerConfig::builder()
        .self_signed(&cert)
        .limits(Limits::default())
        .engine(engine)
        .build()?;
    let client_config = ClientConfig::builder()
        .ca_certificate(cert.cert_der())
        .engine(engine)
        .build()?;
    let mut servers = Vec::with_capacity(count);
    let mut clients = Vec::with_capacity(count);
    for _ in 0..count {
        let mut client = client_config.session("localhost")?;
        let mut server = server_config.session()?;
        exchange(&mut client, &mut server)?;
        servers.push(server);
        clients.push(client);
    }
    let held: usize = servers.iter().map(Session::buffer_capacity).sum();
    println!(
        "{count} idle server sessions; Session is {} bytes inline; buffers held: {held} bytes",
        std::mem::size_of::<Session>()
    );
    std::thread::sleep(Duration::from_millis(200));
    drop(clients);
    std::thread::sleep(Duration::from_millis(200));
    drop(servers);
    Ok(())
}
