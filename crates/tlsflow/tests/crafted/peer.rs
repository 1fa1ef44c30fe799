//! A TLS 1.3 peer that completes a real handshake with rustls, then takes the traffic keys
//! (rustls's kernel-connection API) and sends whatever records a case asks for: any content
//! type, any inner plaintext, any padding, records that are not records at all. It opens
//! what tlsflow sends back, so a case can assert the alert that reaches the wire.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, AES_256_GCM};
use aws_lc_rs::aead::{CHACHA20_POLY1305, NONCE_LEN};
use rustls::client::{ClientConnectionData, UnbufferedClientConnection};
use rustls::kernel::KernelConnection;
use rustls::pki_types::ServerName;
use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{ConnectionState, EncodeError};
use rustls::ConnectionTrafficSecrets;

pub(crate) const CHANGE_CIPHER_SPEC: u8 = 20;
pub(crate) const ALERT: u8 = 21;
pub(crate) const HANDSHAKE: u8 = 22;
pub(crate) const APPLICATION_DATA: u8 = 23;

pub(crate) const NEW_SESSION_TICKET: u8 = 4;
pub(crate) const CERTIFICATE_REQUEST: u8 = 13;
pub(crate) const KEY_UPDATE: u8 = 24;

const TAG: usize = 16;

/// rustls's half of the connection after the handshake: the key schedule.
enum Keys {
    Client(KernelConnection<ClientConnectionData>),
    Server(KernelConnection<ServerConnectionData>),
}

impl Keys {
    fn next_tx(&mut self) -> (u64, ConnectionTrafficSecrets) {
        match self {
            Keys::Client(k) => k.update_tx_secret(),
            Keys::Server(k) => k.update_tx_secret(),
        }
        .expect("rustls derives the next sending key")
    }

    fn next_rx(&mut self) -> (u64, ConnectionTrafficSecrets) {
        match self {
            Keys::Client(k) => k.update_rx_secret(),
            Keys::Server(k) => k.update_rx_secret(),
        }
        .expect("rustls derives the next receiving key")
    }
}

/// One direction's AEAD key, IV and record sequence number.
struct Direction {
    key: LessSafeKey,
    iv: [u8; NONCE_LEN],
    seq: u64,
}

impl Direction {
    fn new((seq, secrets): (u64, ConnectionTrafficSecrets)) -> Direction {
        let (algorithm, key, iv) = match &secrets {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (&AES_128_GCM, key, iv),
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (&AES_256_GCM, key, iv),
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => (&CHACHA20_POLY1305, key, iv),
            _ => panic!("a suite TLS 1.3 does not have"),
        };
        Direction {
            key: LessSafeKey::new(UnboundKey::new(algorithm, key.as_ref()).expect("key")),
            iv: iv.as_ref().try_into().expect("a 12-byte IV"),
            seq,
        }
    }

    fn nonce(&mut self) -> Nonce {
        let mut nonce = self.iv;
        for (n, s) in nonce[NONCE_LEN - 8..]
            .iter_mut()
            .zip(self.seq.to_be_bytes())
        {
            *n ^= s;
        }
        self.seq += 1;
        Nonce::assume_unique_for_key(nonce)
    }
}

/// A record received from tlsflow.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Received {
    /// An alert: level and description.
    Alert(u8, u8),
    /// Application data.
    Data(Vec<u8>),
    /// The connection ended without an alert.
    Eof,
    /// Nothing arrived in time.
    Silence,
    /// The transport failed (a reset).
    Broken(io::ErrorKind),
}

/// The crafted peer.
pub(crate) struct CraftedPeer {
    pub(crate) tcp: TcpStream,
    keys: Keys,
    tx: Direction,
    rx: Direction,
    /// Received bytes not yet parsed into records.
    incoming: Vec<u8>,
    /// A post-handshake message received in part.
    handshake: Vec<u8>,
    /// Whether key updates from the peer are answered (a peer that never reads does not).
    pub(crate) key_updates_seen: usize,
}

/// What to do after one step of rustls's handshake.
enum Step {
    Read,
    Traffic,
    Again,
}

macro_rules! run_handshake {
    ($conn:expr, $tcp:expr, $incoming:expr) => {{
        let mut outgoing = Vec::new();
        let mut filled = 0usize;
        loop {
            let status = $conn.process_tls_records(&mut $incoming[..filled]);
            let discard = status.discard;
            let step = match status.state.expect("the handshake with tlsflow succeeds") {
                ConnectionState::EncodeTlsData(mut encode) => {
                    let mut buf = vec![0u8; 64 * 1024];
                    let n = match encode.encode(&mut buf) {
                        Ok(n) => n,
                        Err(EncodeError::InsufficientSize(e)) => {
                            panic!("handshake message larger than expected: {e:?}")
                        }
                        Err(e) => panic!("cannot encode: {e:?}"),
                    };
                    outgoing.extend_from_slice(&buf[..n]);
                    Step::Again
                }
                ConnectionState::TransmitTlsData(transmit) => {
                    $tcp.write_all(&outgoing).expect("send a handshake flight");
                    outgoing.clear();
                    transmit.done();
                    Step::Again
                }
                ConnectionState::BlockedHandshake => Step::Read,
                // A server may send before the client's Finished arrives.
                ConnectionState::WriteTraffic(_) => Step::Traffic,
                other => panic!("unexpected state during the handshake: {other:?}"),
            };
            let step = match step {
                Step::Traffic if $conn.is_handshaking() => Step::Read,
                other => other,
            };
            $incoming.copy_within(discard..filled, 0);
            filled -= discard;
            match step {
                Step::Again => {}
                Step::Traffic => break,
                Step::Read => {
                    if $incoming.len() < filled + 16 * 1024 {
                        $incoming.resize(filled + 64 * 1024, 0);
                    }
                    let n = $tcp
                        .read(&mut $incoming[filled..])
                        .expect("read during handshake");
                    assert!(n > 0, "tlsflow closed the connection during the handshake");
                    filled += n;
                }
            }
        }
        $incoming.truncate(filled);
    }};
}

impl CraftedPeer {
    /// Connects to a tlsflow server at `tcp` as a client for `localhost`.
    pub(crate) fn connect(mut tcp: TcpStream, config: Arc<rustls::ClientConfig>) -> CraftedPeer {
        let name = ServerName::try_from("localhost").expect("a valid name");
        let mut conn = UnbufferedClientConnection::new(config, name).expect("client");
        let mut incoming = Vec::new();
        run_handshake!(conn, tcp, incoming);
        let (secrets, kernel) = conn
            .dangerous_into_kernel_connection()
            .expect("rustls hands over the keys");
        CraftedPeer::established(tcp, Keys::Client(kernel), secrets, incoming)
    }

    /// Accepts a tlsflow client on `tcp` as a server.
    pub(crate) fn accept(mut tcp: TcpStream, config: Arc<rustls::ServerConfig>) -> CraftedPeer {
        let mut conn = UnbufferedServerConnection::new(config).expect("server");
        let mut incoming = Vec::new();
        run_handshake!(conn, tcp, incoming);
        let (secrets, kernel) = conn
            .dangerous_into_kernel_connection()
            .expect("rustls hands over the keys");
        CraftedPeer::established(tcp, Keys::Server(kernel), secrets, incoming)
    }

    fn established(
        tcp: TcpStream,
        keys: Keys,
        secrets: rustls::ExtractedSecrets,
        incoming: Vec<u8>,
    ) -> CraftedPeer {
        tcp.set_nodelay(true).expect("nodelay");
        CraftedPeer {
            tcp,
            keys,
            tx: Direction::new(secrets.tx),
            rx: Direction::new(secrets.rx),
            incoming,
            handshake: Vec::new(),
            key_updates_seen: 0,
        }
    }

    /// A protected record whose inner plaintext is `inner` exactly (content, content type,
    /// padding: whatever the case wants), sealed under the current key.
    pub(crate) fn seal_inner(&mut self, inner: &[u8]) -> Vec<u8> {
        let body = inner.len() + TAG;
        let [hi, lo] = u16::try_from(body).unwrap_or(u16::MAX).to_be_bytes();
        let header = [APPLICATION_DATA, 3, 3, hi, lo];
        let mut record = header.to_vec();
        record.extend_from_slice(inner);
        let nonce = self.tx.nonce();
        let tag = self
            .tx
            .key
            .seal_in_place_separate_tag(nonce, Aad::from(header), &mut record[5..])
            .expect("seal");
        record.extend_from_slice(tag.as_ref());
        record
    }

    /// A protected record of content type `kind` holding `content` and `padding` zeros.
    pub(crate) fn seal(&mut self, kind: u8, content: &[u8], padding: usize) -> Vec<u8> {
        let mut inner = content.to_vec();
        inner.push(kind);
        inner.resize(inner.len() + padding, 0);
        self.seal_inner(&inner)
    }

    /// Moves to the next sending key (after a KeyUpdate was sealed).
    pub(crate) fn next_sending_key(&mut self) {
        self.tx = Direction::new(self.keys.next_tx());
    }

    /// Sends bytes as they are.
    pub(crate) fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.tcp.write_all(bytes)
    }

    /// Ends the peer's side of the TCP stream (a FIN after what was sent).
    pub(crate) fn finish(&mut self) {
        self.tcp
            .shutdown(std::net::Shutdown::Write)
            .expect("shut down the write side");
    }

    /// Seals and sends one record.
    pub(crate) fn send_record(&mut self, kind: u8, content: &[u8]) {
        let record = self.seal(kind, content, 0);
        self.send(&record).expect("send a record");
    }

    /// Reads from tlsflow until a record worth reporting arrives: an alert, application
    /// data, the end of the connection, or nothing within `patience`. Session tickets are
    /// read and dropped; key updates move to the next receiving key.
    pub(crate) fn receive(&mut self, patience: Duration) -> Received {
        let deadline = Instant::now() + patience;
        loop {
            if let Some(received) = self.next_record() {
                return received;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Received::Silence;
            }
            self.tcp.set_read_timeout(Some(left)).expect("read timeout");
            let mut buf = [0u8; 32 * 1024];
            match self.tcp.read(&mut buf) {
                Ok(0) => return Received::Eof,
                Ok(n) => self.incoming.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Received::Silence
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Received::Broken(e.kind()),
            }
        }
    }

    /// The alert tlsflow sends, reading past application data.
    pub(crate) fn expect_alert(&mut self) -> Received {
        loop {
            match self.receive(Duration::from_secs(10)) {
                Received::Data(_) => {}
                other => return other,
            }
        }
    }

    /// Parses and opens the record at the front of what was received.
    fn next_record(&mut self) -> Option<Received> {
        loop {
            let header: [u8; 5] = self.incoming.get(..5)?.try_into().ok()?;
            let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
            if self.incoming.len() < 5 + len {
                return None;
            }
            let mut record: Vec<u8> = self.incoming.drain(..5 + len).collect();
            if header[0] == ALERT && len == 2 {
                // An alert sent in the clear (possible only if the peer lost its keys).
                return Some(Received::Alert(record[5], record[6]));
            }
            assert_eq!(
                header[0], APPLICATION_DATA,
                "tlsflow sent an unprotected record of type {}",
                header[0]
            );
            let nonce = self.rx.nonce();
            let plain = self
                .rx
                .key
                .open_in_place(nonce, Aad::from(header), &mut record[5..])
                .expect("tlsflow's records are authentic");
            let end = plain
                .iter()
                .rposition(|&b| b != 0)
                .expect("tlsflow's records have a content type");
            let (kind, content) = (plain[end], plain[..end].to_vec());
            match kind {
                ALERT => return Some(Received::Alert(content[0], content[1])),
                APPLICATION_DATA => return Some(Received::Data(content)),
                HANDSHAKE => self.handshake_messages(&content),
                other => panic!("tlsflow sent content type {other}"),
            }
        }
    }

    fn handshake_messages(&mut self, content: &[u8]) {
        self.handshake.extend_from_slice(content);
        while self.handshake.len() >= 4 {
            let len =
                u32::from_be_bytes([0, self.handshake[1], self.handshake[2], self.handshake[3]]);
            let len = usize::try_from(len).expect("fits");
            if self.handshake.len() < 4 + len {
                return;
            }
            let message: Vec<u8> = self.handshake.drain(..4 + len).collect();
            match message[0] {
                NEW_SESSION_TICKET => {}
                KEY_UPDATE => {
                    self.key_updates_seen += 1;
                    self.rx = Direction::new(self.keys.next_rx());
                }
                other => panic!("tlsflow sent handshake message {other} after the handshake"),
            }
        }
    }
}

/// A KeyUpdate message.
pub(crate) fn key_update(request: u8) -> Vec<u8> {
    vec![KEY_UPDATE, 0, 0, 1, request]
}

/// A handshake message of `kind` with `body`.
pub(crate) fn handshake_message(kind: u8, body: &[u8]) -> Vec<u8> {
    let [_, a, b, c] = u32::try_from(body.len()).expect("fits").to_be_bytes();
    let mut message = vec![kind, a, b, c];
    message.extend_from_slice(body);
    message
}
