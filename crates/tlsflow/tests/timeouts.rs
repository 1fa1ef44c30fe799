//! Handshakes and closes that stall end with a clear timeout error, never a hang: the tokio
//! acceptor and connector, the per-call `_within` methods, the axum listener (a silent
//! client holds no one up), and blocking streams with socket timeouts.

#![allow(clippy::unwrap_used)]

use std::io::{self, ErrorKind, Read};
use std::net::TcpStream as StdTcpStream;
use std::time::{Duration, Instant};

use tlsflow::{ClientConfig, Error, ServerConfig, TlsAcceptor, TlsConnector};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const LIMIT: Duration = Duration::from_millis(300);

fn configs() -> (ClientConfig, ServerConfig) {
    tlsflow::testing::self_signed_configs(tlsflow::Limits::default()).unwrap()
}

/// Asserts a timeout error for `operation`, reported after about `LIMIT`.
fn assert_timed_out(err: &io::Error, operation: &str, started: Instant) {
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
    match Error::from_io(err) {
        Some(Error::TimedOut {
            operation: what,
            after,
        }) => {
            assert_eq!(*what, operation);
            assert_eq!(*after, LIMIT);
        }
        other => panic!("expected Error::TimedOut, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        format!("{operation} timed out after {LIMIT:?}")
    );
    let waited = started.elapsed();
    assert!(waited >= LIMIT, "gave up after {waited:?}");
}

async fn listener() -> (TcpListener, std::net::SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

#[tokio::test]
async fn the_acceptor_drops_a_client_that_never_says_hello() {
    let (_, server) = configs();
    let (listener, addr) = listener().await;
    let _silent = TcpStream::connect(addr).await.unwrap();
    let (tcp, _) = listener.accept().await.unwrap();
    let acceptor = TlsAcceptor::new(server).handshake_timeout(Some(LIMIT));
    let started = Instant::now();
    let err = acceptor.accept(tcp).await.unwrap_err();
    assert_timed_out(&err, "the TLS handshake", started);
}

#[tokio::test]
async fn the_connector_gives_up_on_a_server_that_never_answers() {
    let (client, _) = configs();
    let (listener, addr) = listener().await;
    let connector = TlsConnector::from(client).handshake_timeout(Some(LIMIT));
    let started = Instant::now();
    let connecting = connector.connect("localhost", TcpStream::connect(addr).await.unwrap());
    let (result, accepted) = tokio::join!(connecting, listener.accept());
    let _silent_server = accepted.unwrap();
    assert_timed_out(&result.unwrap_err(), "the TLS handshake", started);
}

#[tokio::test]
async fn a_close_the_peer_never_answers_times_out() {
    let (client, server) = configs();
    let (listener, addr) = listener().await;
    let serving = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = TlsAcceptor::new(server).accept(tcp).await.unwrap();
        // Reads up to the client's close_notify, then neither answers nor closes.
        let mut got = Vec::new();
        tls.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"bye");
        tokio::time::sleep(LIMIT * 4).await;
        drop(tls);
    });
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut tls = TlsConnector::new(client)
        .connect("localhost", tcp)
        .await
        .unwrap();
    tls.write_all(b"bye").await.unwrap();
    let started = Instant::now();
    let err = tls.close_tokio_within(LIMIT).await.unwrap_err();
    assert_timed_out(&err, "the TLS close", started);
    serving.await.unwrap();
}

#[tokio::test]
async fn the_within_methods_pass_results_through() {
    let (client, server) = configs();
    let (listener, addr) = listener().await;
    let serving = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = server.accept(tcp).unwrap();
        tls.handshake_tokio_within(LIMIT * 10).await.unwrap();
        let mut got = Vec::new();
        tls.read_to_end(&mut got).await.unwrap();
        tls.close_tokio_within(LIMIT * 10).await.unwrap();
        got
    });
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut tls = client.connect("localhost", tcp).unwrap();
    tls.handshake_tokio_within(LIMIT * 10).await.unwrap();
    tls.write_all(b"hello").await.unwrap();
    tls.close_tokio_within(LIMIT * 10).await.unwrap();
    assert_eq!(serving.await.unwrap(), b"hello");
}

/// A client that connects and says nothing occupies one handshake slot of the listener, for
/// at most the handshake timeout; a real client behind it is served at once.
#[tokio::test]
async fn a_silent_client_does_not_hold_up_the_axum_listener() {
    let (client, server) = configs();
    let (tcp, addr) = listener().await;
    let acceptor = TlsAcceptor::new(server).handshake_timeout(Some(LIMIT));
    let mut listener = tlsflow::TlsListener::new(tcp, acceptor);
    let silent = TcpStream::connect(addr).await.unwrap();
    let client = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut tls = client.connect_tokio("localhost", tcp).await.unwrap();
        let mut got = Vec::new();
        tls.read_to_end(&mut got).await.unwrap();
        tls.close_tokio().await.unwrap();
        got
    });
    let started = Instant::now();
    let (mut tls, _) = listener.accept().await;
    assert!(started.elapsed() < LIMIT, "waited for the silent client");
    tls.write_all(b"served").await.unwrap();
    tls.close_tokio().await.unwrap();
    assert_eq!(client.await.unwrap(), b"served");
    assert_eq!(listener.failed_handshakes(), 0);
    // The silent client's handshake times out and is counted; nothing else comes of it.
    let next = tokio::time::timeout(LIMIT * 3, listener.accept()).await;
    assert!(next.is_err(), "no connection should have been handed out");
    assert_eq!(listener.failed_handshakes(), 1);
    drop(silent);
}

/// Blocking streams have no timer of their own: socket timeouts bound each read and write,
/// and a stalled handshake returns the socket's error (`WouldBlock` on Unix, `TimedOut` on
/// Windows) without failing the stream, which can be driven on once the peer answers.
#[test]
fn blocking_handshakes_are_bounded_by_socket_timeouts() {
    let (client, server) = configs();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let tcp = StdTcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(LIMIT)).unwrap();
    let (server_tcp, _) = listener.accept().unwrap();
    let mut tls = client.connect("localhost", tcp).unwrap();
    let started = Instant::now();
    let err = tls.handshake().unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{err:?}"
    );
    assert!(started.elapsed() >= LIMIT);
    // The server answers late: the same stream finishes its handshake and reads.
    let serving = std::thread::spawn(move || {
        let mut tls = server.accept(server_tcp).unwrap();
        std::io::Write::write_all(&mut tls, b"late").unwrap();
        tls.close().unwrap();
    });
    tls.handshake().unwrap();
    let mut got = Vec::new();
    tls.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"late");
    tls.close().unwrap();
    serving.join().unwrap();
}
