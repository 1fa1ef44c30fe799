//! `tlsflow connect`: stdin to a TLS server, the server's data to stdout.
//!
//! Blocking sockets and the library's split halves: one thread copies stdin into the write
//! half and half-closes (`close_notify`, then TCP FIN) at end of input; the main thread
//! copies the read half to stdout until the server's `close_notify`. Reading stdin can block
//! for ever (a terminal), so the main thread never waits for that thread to finish.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use tlsflow::{SharedIo, TlsStream, WriteHalf};

use crate::cli::{ConnectArgs, HostPort};
use crate::failure::{describe_io, Context, Failure, Outcome};
use crate::{net, trust, x509};

type Writer = WriteHalf<SharedIo<TcpStream>, SharedIo<TcpStream>>;

const CHUNK: usize = 64 * 1024;

/// Runs `connect`; `verbose` prints the negotiated parameters on stderr.
pub(crate) fn run(args: &ConnectArgs, verbose: bool) -> Outcome {
    let server = &args.server;
    let has_cert = args.tls.cert.is_some();
    let config = trust::client_config(&args.tls)?;
    let name = trust::server_name(&args.tls, server);
    let deadline = Instant::now() + args.tls.timeout;
    let tcp = net::dial_std(server, deadline)?;
    // A second handle on the same socket, for timeouts and the TCP half-close.
    let control = tcp
        .try_clone()
        .context(|| format!("cannot use the connection to {server}"))?;
    let mut tls = config
        .connect(name, tcp)
        .context(|| format!("cannot connect to {server}"))?;
    handshake(&mut tls, &control, server, deadline, args.tls.timeout)?;
    if verbose {
        describe(&tls, server, name);
    }
    let (mut reader, writer) = tls
        .into_split()
        .map_err(|_| Failure::runtime("the TLS handshake did not complete"))?;

    let writer = Arc::new(Mutex::new(writer));
    let (done_tx, done_rx) = mpsc::channel();
    {
        let writer = writer.clone();
        let server = server.clone();
        thread::spawn(move || {
            let _ = done_tx.send(send_stdin(&writer, &control, &server, has_cert));
        });
    }

    copy_to_stdout(&mut reader, server, has_cert)?;
    // The server closed cleanly. If stdin is still being sent, give the sender a moment to
    // report a failure (the server may have closed before taking all of it).
    match done_rx.recv_timeout(Duration::from_millis(200)) {
        Ok(Err(failure)) => Err(Failure::runtime(format!(
            "{server} closed the connection (cleanly, with close_notify) before it took all \
             of the input: {failure}"
        ))),
        Ok(result) => result,
        Err(_) => {
            // Still reading stdin: answer the server's close_notify with ours, unless the
            // sender is in the middle of a write.
            if let Ok(mut writer) = writer.try_lock() {
                let _ = writer.shutdown();
            }
            Ok(())
        }
    }
}

fn handshake(
    tls: &mut TlsStream<TcpStream>,
    control: &TcpStream,
    server: &HostPort,
    deadline: Instant,
    limit: Duration,
) -> Outcome {
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1));
    let set = |timeout| {
        control
            .set_read_timeout(timeout)
            .and_then(|()| control.set_write_timeout(timeout))
            .context(|| format!("cannot configure the connection to {server}"))
    };
    set(Some(left))?;
    match tls.handshake() {
        Ok(()) => {}
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            return Err(net::timed_out(
                &format!("waiting for the TLS handshake with {server}"),
                limit,
            ));
        }
        Err(e) => {
            return Err(Failure::runtime(format!(
                "TLS handshake with {server} failed: {}",
                describe_io(&e)
            )))
        }
    }
    // Data may be idle for any time; only the handshake is bounded.
    set(None)
}

/// The negotiated parameters and the server's certificate, for `-v`.
fn describe(tls: &TlsStream<TcpStream>, server: &HostPort, name: &str) {
    let version = tls
        .protocol_version()
        .map_or_else(|| "unknown".to_owned(), |v| v.to_string());
    let suite = tls
        .cipher_suite()
        .map_or_else(|| "unknown".into(), |s| s.to_string());
    let alpn = tls.alpn_protocol().map_or_else(
        || "none".into(),
        |p| String::from_utf8_lossy(&p).into_owned(),
    );
    eprintln!("connected to {server} (server name {name})");
    eprintln!("protocol {version}, cipher suite {suite}, ALPN {alpn}");
    let leaf = tls
        .peer_certificates()
        .and_then(|chain| chain.into_iter().next());
    match leaf.as_deref().map(x509::summarize) {
        Some(Some(summary)) => {
            eprintln!("peer certificate subject: {}", summary.subject);
            if !summary.names.is_empty() {
                eprintln!("peer certificate names: {}", summary.names.join(", "));
            }
        }
        Some(None) => eprintln!("peer certificate: (cannot be displayed)"),
        None => eprintln!("peer certificate: none"),
    }
}

/// Copies stdin into the TLS stream; at end of input sends `close_notify` and shuts the TCP
/// write side, so servers waiting for either see the end.
fn send_stdin(
    writer: &Mutex<Writer>,
    control: &TcpStream,
    server: &HostPort,
    has_cert: bool,
) -> Outcome {
    let mut stdin = io::stdin().lock();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match stdin.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Failure::runtime(format!("cannot read stdin: {e}"))),
        };
        let mut writer = writer.lock().unwrap_or_else(PoisonError::into_inner);
        writer
            .write_all(&buf[..n])
            .and_then(|()| writer.flush())
            .map_err(|e| transfer_failure("sending to", server, &e, has_cert))?;
    }
    let mut writer = writer.lock().unwrap_or_else(PoisonError::into_inner);
    writer
        .shutdown()
        .context(|| format!("closing the connection to {server} failed"))?;
    let _ = control.shutdown(Shutdown::Write);
    Ok(())
}

fn copy_to_stdout(reader: &mut impl Read, server: &HostPort, has_cert: bool) -> Outcome {
    let mut stdout = io::stdout().lock();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(()), // the server's close_notify
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = stdout.flush();
                return Err(transfer_failure("receiving from", server, &e, has_cert));
            }
        };
        if let Err(e) = stdout.write_all(&buf[..n]).and_then(|()| stdout.flush()) {
            // Not the network's pipe: whatever reads our output stopped (`| head`).
            return Err(if e.kind() == io::ErrorKind::BrokenPipe {
                Failure::runtime("stdout was closed before all data was written")
            } else {
                Failure::runtime(format!("cannot write to stdout: {}", describe_io(&e)))
            });
        }
    }
}

/// A failure after the handshake. A server that refuses a client without a certificate
/// (TLS 1.3 decides after the handshake) sends an alert and closes; when our write meets
/// the closed socket first, the alert goes unread and all we see is a reset or broken pipe,
/// so say what the likely cause is.
fn transfer_failure(what: &str, server: &HostPort, err: &io::Error, has_cert: bool) -> Failure {
    let refused = matches!(
        err.kind(),
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
    );
    let hint = if refused && !has_cert {
        " (the server closed the connection: does it require a client certificate? give \
         --cert and --key)"
    } else {
        ""
    };
    Failure::runtime(format!(
        "{what} {server} failed: {}{hint}",
        describe_io(err)
    ))
}
