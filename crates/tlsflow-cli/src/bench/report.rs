//! What `bench` prints on stdout: the setup first, then per-direction verdicts, time and CPU,
//! and last the `intact:` lines (one per connection and direction) that scripts look for.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

use super::cpu::CpuTime;
use super::payload::{Digest, Plan, NAP, NAP_EVERY};
use super::Side;
use crate::cli::{BenchArgs, Engine, IoModel};
use crate::failure::{Failure, Outcome};
use crate::units::{hex, human_bytes, human_duration, megabytes_per_second};

/// The settings of one benchmark run, for the header and the verdict.
pub(crate) struct Run {
    io: IoModel,
    engine: Engine,
    connections: u16,
    size: u64,
    duplex: bool,
    write_size: u64,
    slow_reader: bool,
    sndbuf: usize,
    rcvbuf: usize,
}

/// One direction of one connection.
struct Flow {
    label: String,
    sent: Digest,
    received: Digest,
    finished: Instant,
}

impl Run {
    pub(crate) fn new(args: &BenchArgs, plan: &Plan) -> Run {
        Run {
            io: args.io,
            engine: args.engine,
            connections: args.connections,
            size: args.size,
            duplex: args.duplex,
            write_size: args.write_size,
            slow_reader: plan.slow_reader,
            sndbuf: plan.sndbuf,
            rcvbuf: plan.rcvbuf,
        }
    }

    /// Bytes all receivers together should see.
    pub(crate) fn expected_bytes(&self) -> u64 {
        let directions = if self.duplex { 2 } else { 1 };
        self.size
            .saturating_mul(u64::from(self.connections))
            .saturating_mul(directions)
    }

    pub(crate) fn print_header(&self) {
        let way = if self.duplex {
            "both ways at once (split halves)"
        } else {
            "client to server"
        };
        let (sndbuf, rcvbuf) = effective_buffers(self.sndbuf, self.rcvbuf);
        println!(
            "tlsflow bench: {} over {} connection(s), {way}, {} client, {} engine",
            human_bytes(self.size),
            self.connections,
            self.io,
            match self.engine {
                Engine::Rustls => "rustls",
                Engine::Openssl => "OpenSSL",
            }
        );
        println!(
            "  {} writes, sender SO_SNDBUF {sndbuf}, receiver SO_RCVBUF {rcvbuf}, {}",
            human_bytes(self.write_size),
            if self.slow_reader {
                format!(
                    "slow reader ({} pause per {})",
                    human_duration(NAP),
                    human_bytes(NAP_EVERY)
                )
            } else {
                "reader at full speed".to_owned()
            }
        );
    }

    /// Prints the verdict; fails unless every byte of every flow arrived intact.
    pub(crate) fn report(
        &self,
        clients: &[Side],
        servers: &[Side],
        started: Instant,
        elapsed: Duration,
        cpu: Option<CpuTime>,
    ) -> Outcome {
        let flows = self.pair(clients, servers)?;
        if let Some(negotiated) = clients.iter().find_map(|c| c.negotiated.as_deref()) {
            println!("negotiated: {negotiated}");
        }
        let mut corrupted = 0;
        for flow in &flows {
            let verdict = if self.is_intact(flow) {
                "sha256 match".to_owned()
            } else {
                corrupted += 1;
                format!(
                    "CORRUPTED (sent sha256 {}, received sha256 {})",
                    hex(&flow.sent.sha256),
                    hex(&flow.received.sha256)
                )
            };
            println!(
                "{}: sent {} bytes, received {} bytes, {verdict}",
                flow.label, flow.sent.bytes, flow.received.bytes
            );
        }
        let total: u64 = flows.iter().map(|f| f.received.bytes).sum();
        println!(
            "time: {}, {:.1} MB/s over all connections and directions",
            human_duration(elapsed),
            megabytes_per_second(total, elapsed)
        );
        if let Some(cpu) = cpu {
            println!(
                "cpu: {} (user {}, system {}), {:.0}% of one core, {:.2} s per GB",
                human_duration(cpu.total()),
                human_duration(cpu.user),
                human_duration(cpu.system),
                cpu.total().as_secs_f64() * 100.0 / elapsed.as_secs_f64().max(1e-9),
                cpu.total().as_secs_f64() / (total as f64 / 1e9).max(1e-9)
            );
        }
        for flow in flows.iter().filter(|f| self.is_intact(f)) {
            println!(
                "intact: {} bytes, sha256 {}, {:.1} MB/s",
                flow.received.bytes,
                hex(&flow.received.sha256),
                megabytes_per_second(flow.received.bytes, flow.finished - started)
            );
        }
        if corrupted > 0 {
            return Err(Failure::runtime(format!(
                "{corrupted} of {} transfers arrived corrupted",
                flows.len()
            )));
        }
        Ok(())
    }

    fn is_intact(&self, flow: &Flow) -> bool {
        flow.sent == flow.received && flow.received.bytes == self.size
    }

    /// Matches each client with the server end of the same connection.
    fn pair(&self, clients: &[Side], servers: &[Side]) -> Outcome<Vec<Flow>> {
        let mut clients: Vec<&Side> = clients.iter().collect();
        clients.sort_by_key(|c| c.client_addr);
        let mut flows = Vec::new();
        for (i, client) in clients.iter().enumerate() {
            let server = servers
                .iter()
                .find(|s| s.client_addr == client.client_addr)
                .ok_or_else(|| missing(client.client_addr))?;
            let name = if self.connections > 1 {
                format!("connection {} ", i + 1)
            } else {
                String::new()
            };
            flows.push(flow(format!("{name}client -> server"), client, server)?);
            if self.duplex {
                flows.push(flow(format!("{name}server -> client"), server, client)?);
            }
        }
        Ok(flows)
    }
}

fn flow(label: String, sender: &Side, receiver: &Side) -> Outcome<Flow> {
    let sent = sender.sent.ok_or_else(|| missing(sender.client_addr))?;
    let (received, finished) = receiver
        .received
        .ok_or_else(|| missing(sender.client_addr))?;
    Ok(Flow {
        label,
        sent,
        received,
        finished,
    })
}

fn missing(addr: SocketAddr) -> Failure {
    Failure::runtime(format!("no complete record of the connection from {addr}"))
}

/// What the kernel made of the requested buffer sizes (Linux doubles, then clamps).
fn effective_buffers(sndbuf: usize, rcvbuf: usize) -> (String, String) {
    let probe = || Socket::new(Domain::IPV4, Type::STREAM, None).ok();
    let show = |size: Option<usize>| size.map_or_else(|| "?".to_owned(), |n| format!("{n} B"));
    let send = probe()
        .filter(|s| s.set_send_buffer_size(sndbuf).is_ok())
        .and_then(|s| s.send_buffer_size().ok());
    let recv = probe()
        .filter(|s| s.set_recv_buffer_size(rcvbuf).is_ok())
        .and_then(|s| s.recv_buffer_size().ok());
    (show(send), show(recv))
}
