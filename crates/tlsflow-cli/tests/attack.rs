//! `tlsflow serve` under attack, with its default options, on 127.0.0.1: each case keeps a
//! legitimate client served in bounded time. Figures are printed (`--nocapture`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::Server;

/// A legitimate client: a full handshake, then 1 MiB echoed back, checked. Returns how long
/// it took.
fn legitimate_client(addr: SocketAddr) -> Duration {
    let config = tlsflow::ClientConfig::builder()
        .dangerous_disable_verification()
        .build()
        .unwrap();
    let started = Instant::now();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.set_nodelay(true).unwrap();
    let mut tls = config.connect("localhost", tcp).unwrap();
    tls.handshake().unwrap();
    let (mut reader, mut writer) = tls.into_split().unwrap();
    let data: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    let sending = {
        let data = data.clone();
        thread::spawn(move || {
            writer.write_all(&data).unwrap();
            writer.shutdown().unwrap();
        })
    };
    let mut echoed = Vec::new();
    reader.read_to_end(&mut echoed).unwrap();
    let elapsed = started.elapsed();
    assert!(echoed == data, "the echo differs");
    sending.join().unwrap();
    elapsed
}

/// The first flight of a real client: what a byte-a-second attacker drips.
fn client_hello() -> Vec<u8> {
    let config = tlsflow::ClientConfig::builder()
        .dangerous_disable_verification()
        .build()
        .unwrap();
    config
        .session("localhost")
        .unwrap()
        .pending_output()
        .to_vec()
}

/// 2,000 connections that send nothing and 500 that send a ClientHello a byte a second: a
/// legitimate client still completes its handshake and a 1 MiB echo in under a second,
/// each of five times. With the default options, and with fewer connection slots than the
/// attacker has sockets (which froze the server while it kept handshakes in its slots).
#[test]
fn a_slowloris_does_not_keep_a_legitimate_client_out() {
    slowloris(&[]);
}

#[test]
fn a_slowloris_with_more_sockets_than_slots_does_not_either() {
    slowloris(&["--max-connections", "300"]);
}

fn slowloris(options: &[&str]) {
    let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--echo"];
    args.extend_from_slice(options);
    let server = Server::start(&args);
    let addr: SocketAddr = format!("127.0.0.1:{}", server.port()).parse().unwrap();
    let silent: Vec<TcpStream> = (0..2000)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    let dripping: Vec<TcpStream> = (0..500)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    let hello = client_hello();
    let stop = Arc::new(AtomicBool::new(false));
    let drip = {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut dripping = dripping;
            let mut at = 0;
            while !stop.load(Ordering::Relaxed) && at < hello.len() {
                for tcp in &mut dripping {
                    // Shed connections refuse the byte; the attacker does not care.
                    let _ = tcp.write(&hello[at..=at]);
                }
                at += 1;
                thread::sleep(Duration::from_secs(1));
            }
            dripping
        })
    };
    thread::sleep(Duration::from_secs(2));
    let mut times = Vec::new();
    for _ in 0..5 {
        times.push(legitimate_client(addr));
        thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::Relaxed);
    drop(drip.join().unwrap());
    drop(silent);
    eprintln!(
        "legitimate client under a slowloris, options {options:?} (handshake and 1 MiB \
         echo): {times:?}"
    );
    let worst = times.iter().max().unwrap();
    assert!(
        *worst < Duration::from_secs(1),
        "a legitimate client took {worst:?} under the slowloris"
    );
    assert!(
        server
            .proc
            .stderr()
            .contains("shed connections still in their TLS handshake"),
        "the server says it shed handshakes: {}",
        server.proc.stderr()
    );
}
