//! tlsflow's TLS 1.3 record layer (RFC 8446, section 5), which the rustls engine moves to
//! once the handshake is over.
//!
//! rustls keeps what only it can do, through its [`KernelConnection`]: the key schedule (new
//! traffic secrets at a key update) and the session tickets a client receives. Records are
//! sealed and opened here, with aws-lc-rs:
//!
//! - application data is sealed straight from the caller's buffer into the send queue;
//! - a record is opened straight from the input buffer into the caller's buffer when the whole
//!   record fits there, and in place in the input buffer otherwise;
//! - alerts, key updates (asked for by either side, and before the cipher suite's
//!   confidentiality limit), session tickets (joined across records), and the checks of the
//!   record format that the specification requires.
//!
//! Every failure sends the peer the alert the specification names, and is final.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, NONCE_LEN};
use rustls::client::ClientConnectionData;
use rustls::kernel::KernelConnection;
use rustls::server::ServerConnectionData;
use rustls::{ConnectionTrafficSecrets, ExtractedSecrets, SupportedCipherSuite};

use super::Output;
use crate::buf::Inbox;
use crate::wire::{alert_name, MAX_FRAGMENT};
use crate::Error;

const HEADER: usize = 5;
const TAG: usize = 16;
/// The largest plaintext of one record.
const MAX_PLAINTEXT: usize = MAX_FRAGMENT;
/// The largest encrypted record body (RFC 8446, 5.2).
const MAX_CIPHERTEXT: usize = MAX_PLAINTEXT + 256;
/// Records with a body at most this long are opened as soon as they arrive: alerts, key
/// updates and session tickets are this small. Longer ones wait for a read, so that they can
/// be opened straight into the reader's buffer.
const EAGER: usize = 512;
/// The largest post-handshake message accepted (what rustls accepts too).
const MAX_HANDSHAKE: usize = 0xffff;
/// Key updates accepted in a row without application data between them.
const KEY_UPDATES_IN_A_ROW: u8 = 32;
/// `user_canceled` warnings accepted in a connection's life.
const WARNING_ALERTS: u8 = 4;

const CHANGE_CIPHER_SPEC: u8 = 20;
const ALERT: u8 = 21;
const HANDSHAKE: u8 = 22;
const APPLICATION_DATA: u8 = 23;

const NEW_SESSION_TICKET: u8 = 4;
const KEY_UPDATE: u8 = 24;

const WARNING: u8 = 1;
const FATAL: u8 = 2;
const CLOSE_NOTIFY: u8 = 0;
const UNEXPECTED_MESSAGE: u8 = 10;
const BAD_RECORD_MAC: u8 = 20;
const RECORD_OVERFLOW: u8 = 22;
const ILLEGAL_PARAMETER: u8 = 47;
const DECODE_ERROR: u8 = 50;
const INTERNAL_ERROR: u8 = 80;
const USER_CANCELED: u8 = 90;

/// A failure: the error to report, and the alert that tells the peer (none when the peer
/// sent the fatal alert).
struct Fatal {
    alert: Option<u8>,
    error: Error,
}

fn fatal(alert: u8, reason: impl std::fmt::Display) -> Fatal {
    Fatal {
        alert: Some(alert),
        error: Error::protocol(format!("{reason} ({})", alert_name(alert))),
    }
}

/// Whether the record layer implements `suite` exactly as the configuration would: it is one
/// of the TLS 1.3 suites of rustls's aws-lc-rs provider, whose AEADs are the ones used here.
/// A suite of any other provider (ring, a custom or wrapped one) is someone else's choice of
/// implementation, and keeps rustls's record layer.
///
/// Suites are compared by address. The compiler may give one static suite several copies
/// (rustls's lists hold their own), so each place rustls offers them from is checked; a
/// suite defined anywhere else can never share an address with these.
pub(super) fn implements(suite: SupportedCipherSuite) -> bool {
    use rustls::crypto::aws_lc_rs::{
        cipher_suite as aws, ALL_CIPHER_SUITES, DEFAULT_CIPHER_SUITES,
    };
    let SupportedCipherSuite::Tls13(suite) = suite else {
        return false;
    };
    let named = [
        aws::TLS13_AES_128_GCM_SHA256,
        aws::TLS13_AES_256_GCM_SHA384,
        aws::TLS13_CHACHA20_POLY1305_SHA256,
    ];
    named
        .iter()
        .chain(DEFAULT_CIPHER_SUITES)
        .chain(ALL_CIPHER_SUITES)
        .any(|ours| matches!(ours, SupportedCipherSuite::Tls13(ours) if std::ptr::eq(*ours, suite)))
}

/// rustls's half of the connection after the handshake.
pub(super) enum Keys {
    Client(KernelConnection<ClientConnectionData>),
    Server(KernelConnection<ServerConnectionData>),
}

impl Keys {
    fn suite(&self) -> SupportedCipherSuite {
        match self {
            Keys::Client(k) => k.negotiated_cipher_suite(),
            Keys::Server(k) => k.negotiated_cipher_suite(),
        }
    }

    fn next_sending(&mut self) -> Result<Protection, Fatal> {
        let next = match self {
            Keys::Client(k) => k.update_tx_secret(),
            Keys::Server(k) => k.update_tx_secret(),
        };
        let (seq, secrets) =
            next.map_err(|e| fatal(INTERNAL_ERROR, format!("cannot update keys: {e}")))?;
        Protection::new(&secrets, seq)
    }

    fn next_receiving(&mut self) -> Result<Protection, Fatal> {
        let next = match self {
            Keys::Client(k) => k.update_rx_secret(),
            Keys::Server(k) => k.update_rx_secret(),
        };
        let (seq, secrets) =
            next.map_err(|e| fatal(INTERNAL_ERROR, format!("cannot update keys: {e}")))?;
        Protection::new(&secrets, seq)
    }

    fn ticket(&mut self, body: &[u8]) -> Result<(), Fatal> {
        match self {
            Keys::Client(k) => k
                .handle_new_session_ticket(body)
                .map_err(|e| fatal(DECODE_ERROR, format!("unusable NewSessionTicket: {e}"))),
            Keys::Server(_) => Err(fatal(
                UNEXPECTED_MESSAGE,
                "a client sent a NewSessionTicket",
            )),
        }
    }
}

/// The key and record sequence of one direction.
struct Protection {
    key: LessSafeKey,
    iv: [u8; NONCE_LEN],
    seq: u64,
}

impl Protection {
    fn new(secrets: &ConnectionTrafficSecrets, seq: u64) -> Result<Self, Fatal> {
        use aws_lc_rs::aead::{AES_128_GCM, AES_256_GCM, CHACHA20_POLY1305};
        let (algorithm, key, iv) = match secrets {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (&AES_128_GCM, key, iv),
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (&AES_256_GCM, key, iv),
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => (&CHACHA20_POLY1305, key, iv),
            _ => return Err(fatal(INTERNAL_ERROR, "unsupported record protection")),
        };
        let key = UnboundKey::new(algorithm, key.as_ref())
            .map_err(|_| fatal(INTERNAL_ERROR, "unusable traffic key"))?;
        let iv = <[u8; NONCE_LEN]>::try_from(iv.as_ref())
            .map_err(|_| fatal(INTERNAL_ERROR, "unusable traffic IV"))?;
        Ok(Protection {
            key: LessSafeKey::new(key),
            iv,
            seq,
        })
    }

    /// The nonce of the next record: the IV XOR the sequence number (RFC 8446, 5.3).
    fn nonce(&mut self) -> Result<Nonce, Fatal> {
        // Sequence numbers never wrap.
        let seq = self.seq;
        self.seq = seq
            .checked_add(1)
            .ok_or_else(|| fatal(INTERNAL_ERROR, "record sequence number exhausted"))?;
        let mut nonce = self.iv;
        for (n, s) in nonce[NONCE_LEN - 8..].iter_mut().zip(seq.to_be_bytes()) {
            *n ^= s;
        }
        Ok(Nonce::assume_unique_for_key(nonce))
    }

    /// Seals one record of content type `kind` into the front of `dst`; returns its size.
    fn seal(&mut self, kind: u8, content: &[u8], dst: &mut [u8]) -> Result<usize, Fatal> {
        let body = content.len() + 1 + TAG;
        let header = record_header(body);
        let nonce = self.nonce()?;
        let (head, rest) = dst.split_at_mut(HEADER);
        head.copy_from_slice(&header);
        let (ciphertext, rest) = rest.split_at_mut(content.len());
        self.key
            .seal_out_of_place_scatter(
                nonce,
                Aad::from(header),
                content,
                ciphertext,
                &[kind],
                &mut rest[..1 + TAG],
            )
            .map_err(|_| fatal(INTERNAL_ERROR, "sealing a record failed"))?;
        Ok(HEADER + body)
    }
}

fn record_header(body: usize) -> [u8; HEADER] {
    let [hi, lo] = u16::try_from(body).unwrap_or(u16::MAX).to_be_bytes();
    [APPLICATION_DATA, 3, 3, hi, lo]
}

/// The body length of the record at the front of `data`, once all of it has arrived.
fn complete_record(data: &[u8]) -> Result<Option<usize>, Fatal> {
    let Some(header) = data.get(..HEADER) else {
        return Ok(None);
    };
    let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
    match header[0] {
        APPLICATION_DATA => {}
        CHANGE_CIPHER_SPEC | ALERT | HANDSHAKE => {
            return Err(fatal(
                UNEXPECTED_MESSAGE,
                format!(
                    "an unencrypted record (type {}) after the handshake",
                    header[0]
                ),
            ))
        }
        other => {
            return Err(fatal(
                UNEXPECTED_MESSAGE,
                format!("a record of unknown type {other}"),
            ))
        }
    }
    if header[1] != 3 {
        return Err(fatal(DECODE_ERROR, "not a TLS record (bad version)"));
    }
    if len > MAX_CIPHERTEXT {
        return Err(fatal(
            RECORD_OVERFLOW,
            format!("a record of {len} bytes, more than TLS allows"),
        ));
    }
    // A body of only a tag may be authentic, and is then refused for having no content
    // type (unexpected_message, RFC 8446, 5.4); a shorter one cannot be (5.2).
    if len < TAG {
        return Err(fatal(BAD_RECORD_MAC, "a record too short to be authentic"));
    }
    Ok((data.len() >= HEADER + len).then_some(len))
}

/// The content type and content length of an opened record (padding stripped).
fn inner_type(plaintext: &[u8]) -> Result<(u8, usize), Fatal> {
    if plaintext.len() > MAX_PLAINTEXT + 1 {
        return Err(fatal(
            RECORD_OVERFLOW,
            "a record with more than 16 KiB of plaintext",
        ));
    }
    match plaintext.iter().rposition(|&b| b != 0) {
        Some(at) => Ok((plaintext[at], at)),
        None => Err(fatal(UNEXPECTED_MESSAGE, "a record with no content type")),
    }
}

/// The record layer of an established TLS 1.3 connection.
pub(super) struct Traffic {
    keys: Keys,
    seal: Protection,
    open: Protection,
    /// Records sealed under one key before it is replaced (the suite's confidentiality limit).
    limit: u64,
    /// The most plaintext sealed into one record.
    max_fragment: usize,
    /// Alerts and key updates sealed here, waiting to be taken.
    control: Output,
    /// Opened plaintext at the front of the input buffer...
    plain: usize,
    /// ...followed by this much of its record to drop once the plaintext is read.
    plain_tail: usize,
    /// A post-handshake message received in part.
    handshake: Vec<u8>,
    key_updates_in_a_row: u8,
    /// The peer asked for a key update that is not answered yet. The answer goes out before
    /// the next application data (RFC 8446, 4.6.3), and one answers every request received
    /// until then, as rustls's own record layer does: a peer that floods us with requests
    /// costs us one KeyUpdate per write of ours, not one per request.
    answer_owed: bool,
    warnings: u8,
    peer_closed: bool,
    sent_close: bool,
}

impl Traffic {
    /// Takes over from rustls with the secrets and sequence numbers it hands over, sealing
    /// records of at most `max_record` bytes (header included, as rustls's
    /// `max_fragment_size` counts them) when given.
    pub(super) fn new(
        keys: Keys,
        secrets: &ExtractedSecrets,
        max_record: Option<usize>,
    ) -> Result<Self, Error> {
        let limit = match keys.suite() {
            SupportedCipherSuite::Tls13(suite) => suite.common.confidentiality_limit,
            #[allow(unreachable_patterns)]
            _ => return Err(Error::protocol("the record layer is for TLS 1.3 only")),
        };
        let seal = Protection::new(&secrets.tx.1, secrets.tx.0).map_err(|f| f.error)?;
        let open = Protection::new(&secrets.rx.1, secrets.rx.0).map_err(|f| f.error)?;
        Ok(Traffic {
            keys,
            seal,
            open,
            limit,
            max_fragment: max_record.map_or(MAX_PLAINTEXT, |n| {
                n.saturating_sub(HEADER).clamp(1, MAX_PLAINTEXT)
            }),
            control: Output::default(),
            plain: 0,
            plain_tail: 0,
            handshake: Vec::new(),
            key_updates_in_a_row: 0,
            answer_owed: false,
            warnings: 0,
            peer_closed: false,
            sent_close: false,
        })
    }

    pub(super) fn suite(&self) -> SupportedCipherSuite {
        self.keys.suite()
    }

    /// Reports a failure: queues its alert for the peer and returns the error.
    fn raise(&mut self, fatal: Fatal) -> Error {
        if let Some(alert) = fatal.alert {
            let _ = self.seal_control(ALERT, &[FATAL, alert]);
        }
        fatal.error
    }

    /// Ends the connection with the fatal alert `alert`, of this side's choosing.
    pub(super) fn abort(&mut self, alert: u8) -> Error {
        self.sent_close = true;
        self.raise(fatal(alert, "the connection was aborted"))
    }

    fn seal_control(&mut self, kind: u8, content: &[u8]) -> Result<(), Fatal> {
        let dst = self.control.spare(HEADER + content.len() + 1 + TAG);
        let n = self.seal.seal(kind, content, dst)?;
        self.control.commit(n);
        Ok(())
    }

    /// Sends a KeyUpdate under the current key, then moves to the next one. Any KeyUpdate
    /// of ours answers the peer's requests so far.
    fn update_sending_key(&mut self, request: bool) -> Result<(), Fatal> {
        self.seal_control(HANDSHAKE, &[KEY_UPDATE, 0, 0, 1, u8::from(request)])?;
        self.seal = self.keys.next_sending()?;
        self.answer_owed = false;
        Ok(())
    }

    /// Seals `data` as application data records appended to `out`.
    pub(super) fn write(&mut self, data: &[u8], out: &mut Output) -> Result<(), Error> {
        if self.sent_close {
            return Err(Error::WriteAfterShutdown);
        }
        if self.answer_owed {
            self.update_sending_key(false).map_err(|f| f.error)?;
        }
        self.take_control(out);
        for chunk in data.chunks(self.max_fragment) {
            if self.seal.seq >= self.limit {
                self.update_sending_key(false).map_err(|f| f.error)?;
                self.take_control(out);
            }
            let dst = out.spare(HEADER + chunk.len() + 1 + TAG);
            let n = self
                .seal
                .seal(APPLICATION_DATA, chunk, dst)
                .map_err(|f| f.error)?;
            out.commit(n);
        }
        Ok(())
    }

    /// Seals a `close_notify` alert (once).
    pub(super) fn close_notify(&mut self) {
        if !self.sent_close {
            self.sent_close = true;
            let _ = self.seal_control(ALERT, &[WARNING, CLOSE_NOTIFY]);
        }
    }

    /// Sends a KeyUpdate that asks the peer to update its keys too.
    pub(super) fn refresh_keys(&mut self) -> Result<(), Error> {
        if self.sent_close {
            return Err(Error::config(
                "key update not possible: close_notify was sent",
            ));
        }
        self.update_sending_key(true).map_err(|f| f.error)
    }

    pub(super) fn take_control(&mut self, out: &mut Output) {
        if !self.control.is_empty() {
            out.extend_from_slice(self.control.pending());
            self.control.consume(self.control.len());
        }
    }

    pub(super) fn has_control(&self) -> bool {
        !self.control.is_empty()
    }

    pub(super) fn release_buffers(&mut self) {
        self.control.release();
        if self.handshake.is_empty() {
            self.handshake = Vec::new();
        }
    }

    pub(super) fn buffer_capacity(&self) -> usize {
        self.control.capacity() + self.handshake.capacity()
    }

    /// Bytes at the front of the input buffer that belong to an opened record.
    pub(super) fn opened(&self) -> usize {
        self.plain + self.plain_tail
    }

    pub(super) fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    /// Opened (authenticated) plaintext waiting to be read.
    pub(super) fn opened_plaintext(&self) -> usize {
        self.plain
    }

    /// Opened plaintext waiting to be read, or else an upper bound for the record at the
    /// front of the input buffer, which is opened when read.
    pub(super) fn plaintext_pending(&self, inbox: &Inbox) -> usize {
        if self.plain > 0 || self.peer_closed {
            return self.plain;
        }
        match complete_record(inbox.data()) {
            Ok(Some(len)) => len - TAG,
            _ => 0,
        }
    }

    /// Opens the small records at the front of the input buffer (alerts, key updates,
    /// tickets, small application data), up to the first application data.
    pub(super) fn process(&mut self, inbox: &mut Inbox) -> Result<(), Error> {
        while self.plain == 0 && !self.peer_closed {
            match complete_record(inbox.data()) {
                Ok(Some(len)) if len <= EAGER => {
                    if let Err(f) = self.open_in_place(inbox, len) {
                        return Err(self.raise(f));
                    }
                }
                Ok(_) => break,
                Err(f) => return Err(self.raise(f)),
            }
        }
        Ok(())
    }

    /// Reads plaintext into `buf[*filled..]`, opening as many records as fit.
    pub(super) fn read(
        &mut self,
        inbox: &mut Inbox,
        buf: &mut [u8],
        filled: &mut usize,
    ) -> Result<(), Error> {
        loop {
            if self.plain > 0 {
                let n = self.plain.min(buf.len() - *filled);
                buf[*filled..*filled + n].copy_from_slice(&inbox.data()[..n]);
                inbox.consume(n);
                self.plain -= n;
                *filled += n;
                if self.plain == 0 {
                    inbox.consume(self.plain_tail);
                    self.plain_tail = 0;
                }
            }
            if *filled == buf.len() || self.peer_closed {
                return Ok(());
            }
            let len = match complete_record(inbox.data()) {
                Ok(Some(len)) => len,
                Ok(None) => return Ok(()),
                Err(f) => return Err(self.raise(f)),
            };
            let opened = if len - TAG <= buf.len() - *filled {
                self.open_into(inbox, len, &mut buf[*filled..])
                    .map(|n| *filled += n)
            } else {
                self.open_in_place(inbox, len)
            };
            if let Err(f) = opened {
                return Err(self.raise(f));
            }
        }
    }

    /// Opens the record at the front of `inbox` in place. Application data stays there as
    /// plaintext to be read; anything else is handled and dropped.
    fn open_in_place(&mut self, inbox: &mut Inbox, len: usize) -> Result<(), Fatal> {
        let nonce = self.open.nonce()?;
        let record = &mut inbox.data_mut()[..HEADER + len];
        let (header, body) = record.split_at_mut(HEADER);
        let plaintext = self
            .open
            .key
            .open_in_place(nonce, Aad::from(&header[..]), body)
            .map_err(|_| fatal(BAD_RECORD_MAC, "a record failed authentication"))?;
        let (kind, content) = inner_type(plaintext)?;
        if kind == APPLICATION_DATA {
            self.application_data()?;
            inbox.consume(HEADER);
            self.plain = content;
            self.plain_tail = len - content;
            if content == 0 {
                inbox.consume(self.plain_tail);
                self.plain_tail = 0;
            }
            return Ok(());
        }
        let result = self.control(kind, &plaintext[..content]);
        inbox.consume(HEADER + len);
        result
    }

    /// Opens the record at the front of `inbox` into the front of `out`, which has room for
    /// its whole body; returns how many bytes of application data it holds.
    fn open_into(&mut self, inbox: &mut Inbox, len: usize, out: &mut [u8]) -> Result<usize, Fatal> {
        let nonce = self.open.nonce()?;
        let record = &inbox.data()[..HEADER + len];
        let (header, body) = record.split_at(HEADER);
        let (ciphertext, tag) = body.split_at(len - TAG);
        let out = &mut out[..len - TAG];
        let opened =
            self.open
                .key
                .open_separate_gather(nonce, Aad::from(header), ciphertext, tag, out);
        inbox.consume(HEADER + len);
        if opened.is_err() {
            // Nothing unauthenticated is left in the reader's buffer.
            out.fill(0);
            return Err(fatal(BAD_RECORD_MAC, "a record failed authentication"));
        }
        let (kind, content) = inner_type(out)?;
        if kind == APPLICATION_DATA {
            self.application_data()?;
            return Ok(content);
        }
        let result = self.control(kind, &out[..content]);
        out.fill(0);
        result.map(|()| 0)
    }

    fn application_data(&mut self) -> Result<(), Fatal> {
        if !self.handshake.is_empty() {
            return Err(fatal(
                UNEXPECTED_MESSAGE,
                "application data inside a fragmented handshake message",
            ));
        }
        self.key_updates_in_a_row = 0;
        Ok(())
    }

    /// Handles an alert or post-handshake messages.
    fn control(&mut self, kind: u8, content: &[u8]) -> Result<(), Fatal> {
        match kind {
            ALERT => self.alert(content),
            HANDSHAKE => {
                if content.is_empty() {
                    return Err(fatal(UNEXPECTED_MESSAGE, "an empty handshake record"));
                }
                self.handshake.extend_from_slice(content);
                self.handshake_messages()
            }
            other => Err(fatal(
                UNEXPECTED_MESSAGE,
                format!("a record of content type {other} after the handshake"),
            )),
        }
    }

    fn alert(&mut self, content: &[u8]) -> Result<(), Fatal> {
        if !self.handshake.is_empty() {
            return Err(fatal(
                UNEXPECTED_MESSAGE,
                "an alert inside a fragmented handshake message",
            ));
        }
        // An alert record holds exactly one alert (RFC 8446, 5.1); an empty one is refused
        // as unexpected_message, like any record without content (5.4).
        let &[level, description] = content else {
            return Err(if content.is_empty() {
                fatal(UNEXPECTED_MESSAGE, "an empty alert record")
            } else {
                fatal(DECODE_ERROR, "an alert record that is not one alert")
            });
        };
        if description == CLOSE_NOTIFY {
            self.peer_closed = true;
            return Ok(());
        }
        match level {
            WARNING if description == USER_CANCELED && self.warnings < WARNING_ALERTS => {
                self.warnings += 1;
                Ok(())
            }
            WARNING => Err(fatal(
                DECODE_ERROR,
                format!("a warning alert {} in TLS 1.3", alert_name(description)),
            )),
            FATAL => Err(Fatal {
                alert: None,
                error: Error::PeerAlert {
                    alert: alert_name(description),
                },
            }),
            _ => Err(fatal(ILLEGAL_PARAMETER, "an alert of unknown level")),
        }
    }

    /// Handles the complete messages in the handshake buffer, keeping a partial one.
    fn handshake_messages(&mut self) -> Result<(), Fatal> {
        let mut at = 0;
        let result = loop {
            let Some(head) = self.handshake.get(at..at + 4) else {
                break Ok(());
            };
            let (kind, len) = (head[0], u32::from_be_bytes([0, head[1], head[2], head[3]]));
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            if len > MAX_HANDSHAKE {
                break Err(fatal(
                    DECODE_ERROR,
                    format!("a handshake message of {len} bytes"),
                ));
            }
            let Some(body) = self.handshake.get(at + 4..at + 4 + len) else {
                break Ok(());
            };
            at += 4 + len;
            let handled = match kind {
                NEW_SESSION_TICKET => self.keys.ticket(body),
                KEY_UPDATE => {
                    let request = match *body {
                        [request @ (0 | 1)] => request == 1,
                        [_] => break Err(fatal(ILLEGAL_PARAMETER, "a KeyUpdate of unknown kind")),
                        _ => break Err(fatal(DECODE_ERROR, "a malformed KeyUpdate")),
                    };
                    // A key change must end its record (RFC 8446, 5.1).
                    if at != self.handshake.len() {
                        break Err(fatal(
                            UNEXPECTED_MESSAGE,
                            "a KeyUpdate not at the end of its record",
                        ));
                    }
                    self.key_update(request)
                }
                other => Err(fatal(
                    UNEXPECTED_MESSAGE,
                    format!("handshake message {other} after the handshake"),
                )),
            };
            if let Err(f) = handled {
                break Err(f);
            }
        };
        self.handshake.drain(..at.min(self.handshake.len()));
        result
    }

    fn key_update(&mut self, request: bool) -> Result<(), Fatal> {
        if self.key_updates_in_a_row == KEY_UPDATES_IN_A_ROW {
            return Err(fatal(
                UNEXPECTED_MESSAGE,
                "too many KeyUpdates without application data",
            ));
        }
        self.key_updates_in_a_row += 1;
        self.open = self.keys.next_receiving()?;
        self.answer_owed |= request && !self.sent_close;
        Ok(())
    }

    /// Seals `inner` as the inner plaintext of one record, as it is (content type and
    /// padding included, or missing), for tests that play a hostile peer; then moves to
    /// the next sending key when `next_key` (after a crafted KeyUpdate).
    #[cfg(any(test, feature = "testing"))]
    pub(super) fn seal_inner(
        &mut self,
        inner: &[u8],
        next_key: bool,
        out: &mut Output,
    ) -> Result<(), Error> {
        let header = record_header(inner.len() + TAG);
        let nonce = self.seal.nonce().map_err(|f| f.error)?;
        let dst = out.spare(HEADER + inner.len() + TAG);
        let (head, rest) = dst.split_at_mut(HEADER);
        head.copy_from_slice(&header);
        let (ciphertext, rest) = rest.split_at_mut(inner.len());
        self.seal
            .key
            .seal_out_of_place_scatter(
                nonce,
                Aad::from(header),
                inner,
                ciphertext,
                &[],
                &mut rest[..TAG],
            )
            .map_err(|_| Error::protocol("sealing a record failed"))?;
        out.commit(HEADER + inner.len() + TAG);
        if next_key {
            self.seal = self.keys.next_sending().map_err(|f| f.error)?;
        }
        Ok(())
    }

    /// Lowers the number of records sealed under one key (tests of the key update at the
    /// confidentiality limit).
    #[cfg(test)]
    pub(super) fn set_limit(&mut self, limit: u64) {
        self.limit = limit;
    }

    #[cfg(test)]
    pub(super) fn sealed(&self) -> u64 {
        self.seal.seq
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::engine::{Engine, PlainRead, RustlsEngine};
    use crate::testing::Rng;
    use crate::SelfSigned;

    fn configs() -> (rustls::ClientConfig, rustls::ServerConfig) {
        let cert = SelfSigned::generate(&["localhost"]).unwrap();
        let server = crate::ServerConfig::builder()
            .self_signed(&cert)
            .build()
            .unwrap();
        let client = crate::ClientConfig::builder()
            .ca_certificate(cert.cert_der())
            .build()
            .unwrap();
        (
            (**client.rustls().unwrap()).clone(),
            (**server.rustls().unwrap()).clone(),
        )
    }

    fn engines(client: rustls::ClientConfig, server: rustls::ServerConfig) -> [RustlsEngine; 2] {
        [
            RustlsEngine::client(Arc::new(client), "localhost").unwrap(),
            RustlsEngine::server(Arc::new(server)).unwrap(),
        ]
    }

    /// The ciphertext `engine` has to send.
    fn output(engine: &mut RustlsEngine) -> Vec<u8> {
        let mut out = Output::default();
        engine.take_ciphertext(&mut out);
        out.pending().to_vec()
    }

    /// Feeds `data` to `engine` in pieces of at most `piece` bytes, as far as it takes them.
    fn feed(engine: &mut RustlsEngine, data: &[u8], piece: usize) -> Result<usize, Error> {
        let mut fed = 0;
        while fed < data.len() {
            let space = engine.input_space(72 * 1024);
            let n = space.len().min(piece).min(data.len() - fed);
            if n == 0 {
                break;
            }
            space[..n].copy_from_slice(&data[fed..fed + n]);
            fed += n;
            engine.input_filled(n)?;
        }
        Ok(fed)
    }

    fn handshake(pair: &mut [RustlsEngine; 2]) {
        while pair[0].is_handshaking() || pair[1].is_handshaking() {
            let [c, s] = pair;
            let (to_server, to_client) = (output(c), output(s));
            assert!(
                !to_server.is_empty() || !to_client.is_empty(),
                "handshake stalled"
            );
            feed(s, &to_server, usize::MAX).unwrap();
            feed(c, &output(s), usize::MAX).unwrap();
            feed(c, &to_client, usize::MAX).unwrap();
        }
        // The client's Finished and the server's tickets.
        let [c, s] = pair;
        feed(s, &output(c), usize::MAX).unwrap();
        feed(c, &output(s), usize::MAX).unwrap();
    }

    /// Sends `data` from `from` to `to`, reading it with buffers of `read` bytes, the
    /// transport moving `piece` bytes at a time.
    fn transfer(
        from: &mut RustlsEngine,
        to: &mut RustlsEngine,
        data: &[u8],
        read: usize,
        piece: usize,
    ) -> Vec<u8> {
        let mut out = Output::default();
        let mut sent = 0;
        while sent < data.len() {
            let n = (data.len() - sent).min(64 * 1024);
            assert_eq!(
                from.write_plaintext(&data[sent..sent + n], &mut out)
                    .unwrap(),
                n
            );
            sent += n;
        }
        from.take_ciphertext(&mut out);
        let wire = out.pending().to_vec();
        let mut got = Vec::new();
        let mut buf = vec![0; read];
        let mut at = 0;
        loop {
            while let PlainRead::Data(n) = to.read_plaintext(&mut buf).unwrap() {
                got.extend_from_slice(&buf[..n]);
            }
            if at == wire.len() {
                break;
            }
            at += feed(to, &wire[at..], piece).unwrap();
        }
        got
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn the_record_layer_takes_over_and_moves_data_both_ways() {
        let (client, server) = configs();
        let mut pair = engines(client, server);
        handshake(&mut pair);
        let [c, s] = &mut pair;
        assert!(c.traffic().is_some(), "the client stayed on rustls");
        assert!(s.traffic().is_some(), "the server stayed on rustls");
        assert_eq!(
            c.protocol_version(),
            Some(crate::engine::ProtocolVersion::Tls13)
        );
        assert!(c.cipher_suite().unwrap().starts_with("TLS13_"));
        assert!(c.peer_certificates().is_some());
        let data = pattern(300_000);
        // Reads smaller than a record (opened in place), of exactly a record's plaintext,
        // and larger than several records (opened straight into the buffer).
        for (read, piece) in [
            (1000, 7000),
            (16 * 1024, 70_000),
            (16 * 1024 + 1, 5),
            (200_000, 70_000),
        ] {
            assert!(
                transfer(c, s, &data, read, piece) == data,
                "client to server, reads of {read}"
            );
            assert!(
                transfer(s, c, &data, read, piece) == data,
                "server to client, reads of {read}"
            );
        }
    }

    /// After a HelloRetryRequest, the client's second ClientHello comes in the clear; cut
    /// into records as small as a peer likes (the first with a 4-byte body), it is taken
    /// whole, never mistaken for skipped early data, and the connection goes on to the
    /// record layer.
    #[test]
    fn a_second_client_hello_in_tiny_records_after_a_retry_request() {
        let cert = SelfSigned::generate(&["localhost"]).unwrap();
        // The server offers only P-256, the client's first key share is X25519: a retry.
        let provider = rustls::crypto::CryptoProvider {
            kx_groups: vec![rustls::crypto::aws_lc_rs::kx_group::SECP256R1],
            ..rustls::crypto::aws_lc_rs::default_provider()
        };
        let server = crate::ServerConfig::builder()
            .self_signed(&cert)
            .crypto_provider(Arc::new(provider))
            .build()
            .unwrap();
        let client = crate::ClientConfig::builder()
            .ca_certificate(cert.cert_der())
            .build()
            .unwrap();
        let [mut c, mut s] = engines(
            (**client.rustls().unwrap()).clone(),
            (**server.rustls().unwrap()).clone(),
        );
        feed(&mut s, &output(&mut c), usize::MAX).unwrap();
        feed(&mut c, &output(&mut s), usize::MAX).unwrap();
        // The second flight: cut every handshake record into bodies of 4, 5, 6, ... bytes.
        let flight = output(&mut c);
        let mut cut = Vec::new();
        let mut rest = &flight[..];
        while rest.len() >= HEADER {
            let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
            let (record, after) = rest.split_at(HEADER + len);
            if record[0] == HANDSHAKE {
                let mut body = &record[HEADER..];
                let mut size = 4;
                while !body.is_empty() {
                    let (piece, left) = body.split_at(size.min(body.len()));
                    cut.extend_from_slice(&[HANDSHAKE, 3, 3]);
                    cut.extend_from_slice(&u16::try_from(piece.len()).unwrap().to_be_bytes());
                    cut.extend_from_slice(piece);
                    body = left;
                    size += 1;
                }
            } else {
                cut.extend_from_slice(record);
            }
            rest = after;
        }
        feed(&mut s, &cut, 7).unwrap();
        while c.is_handshaking() || s.is_handshaking() {
            feed(&mut c, &output(&mut s), usize::MAX).unwrap();
            feed(&mut s, &output(&mut c), usize::MAX).unwrap();
        }
        feed(&mut c, &output(&mut s), usize::MAX).unwrap();
        let data = pattern(30_000);
        assert!(transfer(&mut c, &mut s, &data, 4096, 5000) == data);
        assert!(transfer(&mut s, &mut c, &data, 4096, 5000) == data);
        assert!(
            s.traffic().is_some(),
            "the server moved to the record layer"
        );
    }

    #[test]
    fn configurations_without_secret_extraction_stay_on_rustls() {
        let (mut client, mut server) = configs();
        client.enable_secret_extraction = false;
        server.enable_secret_extraction = false;
        let mut pair = engines(client, server);
        handshake(&mut pair);
        let [c, s] = &mut pair;
        assert!(c.traffic().is_none() && s.traffic().is_none());
        let data = pattern(100_000);
        assert!(transfer(c, s, &data, 4096, 9000) == data);
    }

    #[test]
    fn a_flipped_bit_is_a_bad_record_mac_and_the_peer_hears_of_it() {
        let mut rng = Rng::new(20);
        for round in 0..40 {
            let (client, server) = configs();
            let mut pair = engines(client, server);
            handshake(&mut pair);
            let [c, s] = &mut pair;
            let mut out = Output::default();
            c.write_plaintext(&pattern(20_000), &mut out).unwrap();
            let mut wire = out.pending().to_vec();
            // Anywhere in the body or tag of either record.
            let first = HEADER + 16 * 1024 + 1 + TAG;
            let at = if round % 2 == 0 {
                rng.between(HEADER, first)
            } else {
                rng.between(first + HEADER, wire.len())
            };
            wire[at] ^= 1 << rng.below(8);
            feed(s, &wire, usize::MAX).unwrap();
            let mut buf = vec![0; 64 * 1024];
            let mut delivered = 0;
            let err = loop {
                match s.read_plaintext(&mut buf) {
                    Ok(PlainRead::Data(n)) => {
                        assert!(buf[..n] == pattern(20_000)[delivered..delivered + n]);
                        delivered += n;
                    }
                    Ok(other) => panic!("no error after a flipped bit at {at}: {other:?}"),
                    Err(e) => break e,
                }
            };
            assert!(err.to_string().contains("bad_record_mac"), "{err}");
            assert_eq!(delivered, if at < first { 0 } else { 16 * 1024 });
            // Sticky, and the alert reaches the client.
            assert!(s.read_plaintext(&mut buf).is_err());
            feed(c, &output(s), usize::MAX).unwrap_or_default();
            let heard = c.read_plaintext(&mut buf).unwrap_err();
            assert!(
                matches!(&heard, Error::PeerAlert { alert } if alert == "bad_record_mac"),
                "{heard}"
            );
        }
    }

    #[test]
    fn keys_are_updated_before_the_confidentiality_limit() {
        let (client, server) = configs();
        let mut pair = engines(client, server);
        handshake(&mut pair);
        let [c, s] = &mut pair;
        c.traffic().unwrap().set_limit(3);
        let data = pattern(40 * 16 * 1024);
        assert!(transfer(c, s, &data, 50_000, 30_000) == data);
        assert!(c.traffic().unwrap().sealed() <= 3);
    }

    /// A key update the client asks for at once, arriving with its Finished, is answered
    /// whichever record layer the server reads it with: the server's next records use keys
    /// the client knows about.
    #[test]
    fn a_key_update_right_after_the_handshake_is_answered() {
        for tickets in [0, 2] {
            let (client, mut server) = configs();
            server.send_tls13_tickets = tickets;
            let [mut c, mut s] = engines(client, server);
            while c.is_handshaking() {
                feed(&mut s, &output(&mut c), usize::MAX).unwrap();
                feed(&mut c, &output(&mut s), usize::MAX).unwrap();
            }
            // The client's Finished, a key update request and data, in one read.
            c.refresh_traffic_keys().unwrap();
            let mut out = Output::default();
            c.take_ciphertext(&mut out);
            c.write_plaintext(b"after the key update", &mut out)
                .unwrap();
            feed(&mut s, out.pending(), usize::MAX).unwrap();
            let mut buf = [0u8; 100];
            assert_eq!(s.read_plaintext(&mut buf).unwrap(), PlainRead::Data(20));
            let data = pattern(50_000);
            assert!(
                transfer(&mut s, &mut c, &data, 8192, 3000) == data,
                "{tickets} tickets"
            );
            s.send_close_notify();
            feed(&mut c, &output(&mut s), usize::MAX).unwrap();
            assert_eq!(c.read_plaintext(&mut buf).unwrap(), PlainRead::Closed);
        }
    }

    #[test]
    fn key_updates_asked_for_are_answered() {
        let (client, server) = configs();
        let mut pair = engines(client, server);
        handshake(&mut pair);
        let [c, s] = &mut pair;
        for _ in 0..3 {
            c.refresh_traffic_keys().unwrap();
            let data = pattern(50_000);
            assert!(transfer(c, s, &data, 8192, 3000) == data);
            // The server answers with its own KeyUpdate before its next records.
            assert!(transfer(s, c, &data, 8192, 3000) == data);
            s.refresh_traffic_keys().unwrap();
            assert!(transfer(s, c, &data, 8192, 3000) == data);
            assert!(transfer(c, s, &data, 8192, 3000) == data);
        }
    }

    #[derive(Debug)]
    struct CountingStore {
        inner: Arc<rustls::client::ClientSessionMemoryCache>,
        tickets: Mutex<usize>,
    }

    impl rustls::client::ClientSessionStore for CountingStore {
        fn set_kx_hint(
            &self,
            name: rustls::pki_types::ServerName<'static>,
            group: rustls::NamedGroup,
        ) {
            self.inner.set_kx_hint(name, group);
        }
        fn kx_hint(&self, name: &rustls::pki_types::ServerName<'_>) -> Option<rustls::NamedGroup> {
            self.inner.kx_hint(name)
        }
        fn set_tls12_session(
            &self,
            name: rustls::pki_types::ServerName<'static>,
            value: rustls::client::Tls12ClientSessionValue,
        ) {
            self.inner.set_tls12_session(name, value);
        }
        fn tls12_session(
            &self,
            name: &rustls::pki_types::ServerName<'_>,
        ) -> Option<rustls::client::Tls12ClientSessionValue> {
            self.inner.tls12_session(name)
        }
        fn remove_tls12_session(&self, name: &rustls::pki_types::ServerName<'static>) {
            self.inner.remove_tls12_session(name);
        }
        fn insert_tls13_ticket(
            &self,
            name: rustls::pki_types::ServerName<'static>,
            value: rustls::client::Tls13ClientSessionValue,
        ) {
            *self.tickets.lock().unwrap() += 1;
            self.inner.insert_tls13_ticket(name, value);
        }
        fn take_tls13_ticket(
            &self,
            name: &rustls::pki_types::ServerName<'static>,
        ) -> Option<rustls::client::Tls13ClientSessionValue> {
            self.inner.take_tls13_ticket(name)
        }
    }

    #[test]
    fn tickets_fragmented_across_records_are_joined_and_stored() {
        let (mut client, mut server) = configs();
        let store = Arc::new(CountingStore {
            inner: Arc::new(rustls::client::ClientSessionMemoryCache::new(8)),
            tickets: Mutex::new(0),
        });
        client.resumption = rustls::client::Resumption::store(store.clone());
        // Records of 32 bytes: every ticket spans several.
        server.max_fragment_size = Some(32);
        server.send_tls13_tickets = 3;
        let mut pair = engines(client, server);
        handshake(&mut pair);
        let [c, s] = &mut pair;
        assert!(c.traffic().is_some() && s.traffic().is_some());
        assert_eq!(*store.tickets.lock().unwrap(), 3);
        // The record layer keeps the configured record size.
        let mut out = Output::default();
        s.write_plaintext(&pattern(1000), &mut out).unwrap();
        let mut wire = out.pending();
        let mut records = 0;
        while !wire.is_empty() {
            let len = usize::from(u16::from_be_bytes([wire[3], wire[4]]));
            assert!(len <= 27 + 1 + TAG, "a record of {len} bytes");
            wire = &wire[HEADER + len..];
            records += 1;
        }
        assert_eq!(records, 1000usize.div_ceil(27));
    }

    /// A post-handshake message arriving in fragments is held in a bounded buffer: one
    /// declared larger than 64 KiB fails at once, and a legal one never holds more than the
    /// message and one record.
    #[test]
    fn fragmented_post_handshake_messages_are_bounded() {
        for declared in [0x1_0000usize, 60_000] {
            let (client, server) = configs();
            let mut pair = engines(client, server);
            handshake(&mut pair);
            let [c, s] = &mut pair;
            let [_, a, b, d] = u32::try_from(declared).unwrap().to_be_bytes();
            let mut message = vec![NEW_SESSION_TICKET, a, b, d];
            message.resize(4 + declared, 7);
            let mut peak = 0;
            let mut failure = None;
            for fragment in message.chunks(MAX_PLAINTEXT) {
                let traffic = c.traffic().unwrap();
                assert!(traffic.seal_control(HANDSHAKE, fragment).is_ok());
                let wire = output(c);
                let fed = feed(s, &wire, usize::MAX);
                let mut buf = [0u8; 64];
                let read = fed.and_then(|_| s.read_plaintext(&mut buf));
                peak = peak.max(s.traffic().unwrap().buffer_capacity());
                if let Err(e) = read {
                    failure = Some(e);
                    break;
                }
            }
            let failure = failure.expect("the oversized or misplaced message was accepted");
            if declared > MAX_HANDSHAKE {
                assert!(failure.to_string().contains("decode_error"), "{failure}");
            } else {
                // Complete, it is refused: a client sent a NewSessionTicket.
                assert!(
                    failure.to_string().contains("unexpected_message"),
                    "{failure}"
                );
            }
            assert!(
                peak <= 2 * (MAX_HANDSHAKE + 4 + MAX_PLAINTEXT),
                "held {peak} bytes"
            );
        }
    }

    /// A peer that seals any inner plaintext it likes under the real keys: whatever the
    /// content types, contents, padding and sizes, the receiver (either engine) delivers
    /// only application data, in order, and every failure it detects reaches the peer as
    /// the alert it names. The same cases run coverage-guided with `cargo fuzz run
    /// crafted` (see `fuzz/`).
    #[test]
    fn crafted_inner_plaintexts_meet_the_record_checks() {
        let rounds = std::env::var("TLSFLOW_FUZZ_ROUNDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000);
        let mut servers = vec![crate::EngineKind::Rustls];
        if cfg!(feature = "openssl") {
            servers.push(crate::EngineKind::Openssl);
        }
        for server in servers {
            let configs = crate::testing::self_signed_configs_on(
                crate::EngineKind::Rustls,
                server,
                crate::Limits::default(),
            )
            .unwrap();
            // What the fuzzer found: a fatal alert OpenSSL has no name for (36) was
            // reported as a protocol error of the receiver's, not as the peer's alert.
            let found: [&[u8]; 1] = [&[0x28, 0x3d, 0x3b, 0x05, 0x0a, 0x24, 0x15]];
            for input in found {
                if let Err(e) = crate::testing::crafted_records(&configs, input) {
                    panic!("{server:?}, found input {input:?}: {e}");
                }
            }
            let mut rng = Rng::new(1414);
            for round in 0..rounds {
                let mut input = vec![0u8; rng.log_between(1, 4000)];
                rng.fill(&mut input);
                if let Err(e) = crate::testing::crafted_records(&configs, &input) {
                    panic!("{server:?}, round {round}, input {input:?}: {e}");
                }
            }
        }
    }

    /// Whatever happens to the records on the way, the reader gets a prefix of what was sent
    /// and then an error or the end: never other bytes, never a panic. The same cases run
    /// coverage-guided with `cargo fuzz run records` (see `fuzz/`).
    #[test]
    fn damaged_records_never_yield_forged_plaintext() {
        let configs = crate::testing::self_signed_configs(crate::Limits::default()).unwrap();
        let rounds = std::env::var("TLSFLOW_FUZZ_ROUNDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(300);
        let mut rng = Rng::new(1313);
        let mut input = [0u8; 32];
        for round in 0..rounds {
            rng.fill(&mut input);
            if let Err(e) = crate::testing::damaged_records(&configs, &input) {
                panic!("round {round}, input {input:?}: {e}");
            }
        }
    }
}
