//! Both peers write first: a TLS client and server each send a large payload before reading
//! anything, over loopback sockets with the smallest send buffers. A stream without a true
//! full-duplex split deadlocks here; tlsflow's split halves (one thread writing, one
//! reading, on each side) carry every byte, checked by SHA-256 both ways.
//!
//! ```text
//! cargo run --release --features self-signed --example duplex -- [--size 256MiB]
//! ```
//!
//! The last line is `duplex intact: <bytes> bytes each way, <rate> MB/s aggregate`.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::thread;
use std::time::Instant;

use sha2::{Digest, Sha256};
use socket2::{Domain, Socket, Type};
use tlsflow::{ClientConfig, SelfSigned, ServerConfig, TlsStream};

mod common;
use common::{hex, parse_size, Payload};

fn small_socket() -> io::Result<Socket> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.set_send_buffer_size(1)?; // the kernel rounds up to its minimum
    socket.set_tcp_nodelay(true)?;
    Ok(socket)
}

/// Sends `size` bytes on one thread while this thread reads everything the peer sends.
/// Returns the SHA-256 of what was sent and of what was received, and the count received.
fn run_side(
    tls: TlsStream<TcpStream>,
    seed: u64,
    size: u64,
) -> io::Result<([u8; 32], [u8; 32], u64)> {
    let (mut reader, mut writer) = tls
        .into_split()
        .map_err(|_| io::Error::other("the handshake is not complete"))?;
    let sender = thread::spawn(move || -> io::Result<[u8; 32]> {
        let mut payload = Payload::new(seed);
        let mut hasher = Sha256::new();
        let mut block = vec![0u8; 256 * 1024];
        let mut sent = 0u64;
        while sent < size {
            let len = block.len().min((size - sent) as usize);
            payload.fill(&mut block[..len]);
            hasher.update(&block[..len]);
            writer.write_all(&block[..len])?;
            sent += len as u64;
        }
        writer.shutdown()?; // half-close: the reader goes on
        Ok(hasher.finalize().into())
    });
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut received = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        received += n as u64;
    }
    let sent = sender
        .join()
        .map_err(|_| io::Error::other("the sender panicked"))??;
    Ok((sent, hasher.finalize().into(), received))
}

fn run(size: u64) -> Result<String, String> {
    let cert = SelfSigned::generate(&["localhost"]).map_err(|e| e.to_string())?;
    let server_config = ServerConfig::builder()
        .self_signed(&cert)
        .build()
        .map_err(|e| e.to_string())?;
    let client_config = ClientConfig::builder()
        .ca_certificate(cert.cert_der())
        .build()
        .map_err(|e| e.to_string())?;

    let listener = small_socket().map_err(|e| e.to_string())?;
    let bind: SocketAddr = "127.0.0.1:0".parse().map_err(|e| format!("{e}"))?;
    listener
        .bind(&bind.into())
        .map_err(|e| format!("cannot bind loopback: {e}"))?;
    listener.listen(1).map_err(|e| e.to_string())?;
    let listener: TcpListener = listener.into();
    let addr = listener.local_addr().map_err(|e| e.to_string())?;

    let started = Instant::now();
    let server = thread::spawn(move || -> io::Result<_> {
        let (tcp, _) = listener.accept()?;
        tcp.set_nodelay(true)?;
        let mut tls = server_config.accept(tcp)?;
        tls.handshake()?;
        run_side(tls, 2, size)
    });
    let client = (|| -> io::Result<_> {
        let socket = small_socket()?;
        socket.connect(&addr.into())?;
        let mut tls = client_config.connect("localhost", TcpStream::from(socket))?;
        tls.handshake()?;
        run_side(tls, 1, size)
    })();
    let server = server
        .join()
        .map_err(|_| "the server panicked".to_string())?;
    let secs = started.elapsed().as_secs_f64();
    let (client_sent, client_got, client_count) = client.map_err(|e| format!("client: {e}"))?;
    let (server_sent, server_got, server_count) = server.map_err(|e| format!("server: {e}"))?;
    if client_sent != server_got || server_count != size {
        return Err(format!(
            "CORRUPTED client to server: sent sha256 {}, received {server_count} bytes, sha256 {}",
            hex(&client_sent),
            hex(&server_got)
        ));
    }
    if server_sent != client_got || client_count != size {
        return Err(format!(
            "CORRUPTED server to client: sent sha256 {}, received {client_count} bytes, sha256 {}",
            hex(&server_sent),
            hex(&client_got)
        ));
    }
    eprintln!("client to server sha256 {}", hex(&client_sent));
    eprintln!("server to client sha256 {}", hex(&server_sent));
    Ok(format!(
        "duplex intact: {size} bytes each way, {:.1} MB/s aggregate",
        2.0 * size as f64 / secs / 1e6
    ))
}

fn main() -> ExitCode {
    let mut size = 256u64 << 20;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--size" => match args.next().as_deref().map(parse_size) {
                Some(Ok(s)) => size = s,
                Some(Err(e)) => {
                    eprintln!("duplex: {e}");
                    return ExitCode::from(2);
                }
                None => {
                    eprintln!("duplex: --size needs a value");
                    return ExitCode::from(2);
                }
            },
            "-h" | "--help" => {
                println!("usage: duplex [--size BYTES]  (default 256MiB each way)");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("duplex: unknown argument {other:?} (try --help)");
                return ExitCode::from(2);
            }
        }
    }
    match run(size) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("duplex: {e}");
            ExitCode::FAILURE
        }
    }
}
