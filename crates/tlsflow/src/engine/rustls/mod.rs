//! The rustls engine: rustls 0.23's unbuffered connection API, on buffers the engine owns.
//!
//! Received ciphertext is decrypted in place in the engine's input buffer, and application
//! data is sealed straight into the session's send queue. An idle connection frees its
//! buffers and keeps only the TLS state.
//!
//! A connection goes through up to two phases, each a type of its own behind [`Phase`]:
//!
//! - [`Unbuffered`] (`unbuffered.rs`): rustls runs the records. Every connection starts here
//!   for its handshake, and stays here when tlsflow's record layer does not take it.
//! - [`Layer`] (`layer.rs`): once a TLS 1.3 handshake is over, and when the configuration
//!   allows rustls to hand over the traffic secrets (`enable_secret_extraction`, which
//!   tlsflow's builders set), tlsflow's own record layer ([`tls13`](super::tls13)) runs them:
//!   rustls keeps the key schedule and session tickets, and records are sealed from the
//!   caller's buffer and opened into it, with no copy of plaintext in between.
//!
//! [`RustlsEngine::hand_over`] is the one place the connection moves from one to the other,
//! and the one place that knows whether the record layer is built in (the `aws-lc-rs`
//! feature). What both phases work on (the input buffer, what rustls encoded or opened and
//! nobody has taken yet, and the engine's failure, kept nowhere else) is [`Shared`].

use std::sync::Arc;

use rustls::SupportedCipherSuite;

use super::{CipherSuite, Engine, Output, PlainRead, ProtocolVersion};
use crate::buf::Inbox;
use crate::Error;

mod sni;
mod unbuffered;

use self::sni::client_hello_sni;
use self::unbuffered::Unbuffered;

/// While a handshake message may be in flight, the input buffer holds at least this much:
/// rustls joins a fragmented handshake message (up to 64 KiB) in place in it.
const HANDSHAKE_INPUT: usize = 72 * 1024;

/// Output space reserved per record beyond its plaintext (header, content type, tag, and
/// the explicit nonce of TLS 1.2), before rustls says exactly how much it needs.
const RECORD_OVERHEAD: usize = 64;

/// What both phases work on.
struct Shared {
    inbox: Inbox,
    /// The input buffer's size limit when space was last given.
    input_capacity: usize,
    held: Held,
    eof: bool,
    /// The engine's failure: every later operation returns it.
    failure: Option<Error>,
}

/// What rustls gave out and nobody has taken yet. It outlives the move to the record layer:
/// the handshake's last flight, and plaintext of a record that did not fit a reader's buffer.
#[derive(Default)]
struct Held {
    /// Handshake messages and alerts, encoded and waiting to be taken. They go out before
    /// anything sealed later.
    out: Vec<u8>,
    /// Plaintext taken out of rustls and not read yet (the rest of a record larger than the
    /// reader's buffer, or records moved aside so that a write could proceed)...
    staging: Vec<u8>,
    /// ...from here on.
    staging_start: usize,
}

impl Held {
    fn staged(&self) -> usize {
        self.staging.len() - self.staging_start
    }

    fn take_out(&mut self, out: &mut Output) {
        out.extend_from_slice(&self.out);
        self.out.clear();
    }
}

/// What a phase does: whoever runs the records. Reads, writes and closes are only asked
/// for while the engine has not failed.
trait Records {
    fn is_handshaking(&self) -> bool;
    /// Processes what the input buffer holds, as far as it goes without a reader.
    fn process(&mut self, shared: &mut Shared) -> Result<(), Error>;
    /// Input not processed yet.
    fn input_pending(&self, shared: &Shared) -> usize {
        shared.inbox.len()
    }
    fn release_buffers(&mut self) {}
    /// Buffer space held apart from [`Shared`]'s.
    fn buffer_capacity(&self) -> usize {
        0
    }
    /// Opens plaintext into `buf` (after what [`Held`] stages).
    fn read(&mut self, shared: &mut Shared, buf: &mut [u8]) -> Result<PlainRead, Error>;
    fn plaintext_pending(&self, shared: &Shared) -> usize;
    fn write(&mut self, shared: &mut Shared, data: &[u8], out: &mut Output)
        -> Result<usize, Error>;
    /// [`write`](Self::write) of the concatenation of `bufs` (gathered up to a record's
    /// worth, unless the phase seals from the slices itself).
    fn write_vectored(
        &mut self,
        shared: &mut Shared,
        bufs: &[std::io::IoSlice<'_>],
        out: &mut Output,
    ) -> Result<usize, Error> {
        self.write(shared, &super::gather(bufs, crate::wire::MAX_FRAGMENT), out)
    }
    /// Moves ciphertext of the phase's own (beyond [`Held`]'s) to `out`.
    fn take_ciphertext(&mut self, _: &mut Output) {}
    fn has_ciphertext(&self) -> bool {
        false
    }
    fn close_notify(&mut self, shared: &mut Shared);
    /// Ends the connection with a fatal alert of this side's choosing, where the phase can.
    fn abort(&mut self, _: u8) -> Option<Error> {
        None
    }
    fn peer_closed(&self) -> bool;
    fn refresh_keys(&mut self, shared: &mut Shared) -> Result<(), Error>;
    fn protocol_version(&self) -> Option<rustls::ProtocolVersion>;
    fn suite(&self) -> Option<SupportedCipherSuite>;
    fn alpn(&self) -> Option<Vec<u8>>;
    fn peer_certificates(&self) -> Option<Vec<Vec<u8>>>;
    /// Whether the handshake resumed a session, once that is known.
    fn resumed(&self) -> Option<bool>;
}

/// A TLS engine backed by a rustls connection.
pub struct RustlsEngine {
    phase: Phase,
    shared: Shared,
    server_name: Option<String>,
    /// Whether the server has looked for the SNI in the ClientHello yet.
    sni_read: bool,
    client: bool,
}

impl std::fmt::Debug for RustlsEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RustlsEngine")
            .field("client", &self.is_client())
            .field("handshaking", &self.is_handshaking())
            .finish_non_exhaustive()
    }
}

impl RustlsEngine {
    /// A client engine that will verify the server as `server_name` (a DNS name or an IP
    /// address) and send it as SNI when it is a DNS name.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when `server_name` is neither a valid DNS name nor an IP address.
    pub fn client(config: Arc<rustls::ClientConfig>, server_name: &str) -> Result<Self, Error> {
        let mut shared = Shared::new();
        let rustls = Unbuffered::client(config, server_name, &mut shared)?;
        Ok(RustlsEngine::new(
            rustls,
            shared,
            Some(server_name.to_owned()),
        ))
    }

    /// A server engine.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when rustls rejects the configuration.
    pub fn server(config: Arc<rustls::ServerConfig>) -> Result<Self, Error> {
        Ok(RustlsEngine::new(
            Unbuffered::server(config)?,
            Shared::new(),
            None,
        ))
    }

    fn new(rustls: Unbuffered, shared: Shared, server_name: Option<String>) -> Self {
        RustlsEngine {
            client: !rustls.is_server(),
            phase: Phase::Rustls(Box::new(rustls)),
            shared,
            server_name,
            sni_read: false,
        }
    }

    fn records(&self) -> &dyn Records {
        self.phase.records()
    }

    fn records_mut(&mut self) -> (&mut dyn Records, &mut Shared) {
        (self.phase.records_mut(), &mut self.shared)
    }

    /// Runs `op` on the current phase; when rustls ran it, moves to the record layer if
    /// rustls can hand over now. Reports whether the phase settled: the connection moved,
    /// or rustls, which held back records while it might move, now keeps the connection and
    /// reads them (in both cases the operation may find more to do if run again).
    fn on_phase<T>(&mut self, op: impl FnOnce(&mut dyn Records, &mut Shared) -> T) -> (T, bool) {
        let might_move = matches!(&self.phase, Phase::Rustls(rustls) if rustls.may_hand_over());
        let rustls = matches!(self.phase, Phase::Rustls(_));
        let (records, shared) = self.records_mut();
        let result = op(records, shared);
        let moved = rustls && self.hand_over();
        let kept =
            might_move && matches!(&self.phase, Phase::Rustls(rustls) if !rustls.may_hand_over());
        (result, moved || kept)
    }
}

impl Shared {
    fn new() -> Self {
        Shared {
            inbox: Inbox::default(),
            input_capacity: HANDSHAKE_INPUT,
            held: Held::default(),
            eof: false,
            failure: None,
        }
    }

    /// What a read that found no plaintext reports: the peer's close, truncation at the end
    /// of the transport, or nothing yet.
    fn nothing_read(&self, peer_closed: bool) -> Result<PlainRead, Error> {
        if peer_closed {
            Ok(PlainRead::Closed)
        } else if self.eof {
            Err(Error::Truncated)
        } else {
            Ok(PlainRead::Empty)
        }
    }

    fn check(&self) -> Result<(), Error> {
        match &self.failure {
            Some(err) => Err(err.clone()),
            None => Ok(()),
        }
    }
}

impl Engine for RustlsEngine {
    fn is_handshaking(&self) -> bool {
        self.records().is_handshaking()
    }

    fn input_space(&mut self, capacity: usize) -> &mut [u8] {
        // During the handshake a fragmented message (a certificate chain) is joined in place:
        // room for the largest one. Afterwards the session's limit holds.
        let capacity = if self.is_handshaking() {
            capacity.max(HANDSHAKE_INPUT)
        } else {
            capacity
        };
        self.shared.input_capacity = capacity;
        self.shared.inbox.spare(capacity)
    }

    fn input_filled(&mut self, n: usize) -> Result<(), Error> {
        let inbox = &mut self.shared.inbox;
        assert!(inbox.can_fill(n), "more input reported than space given");
        inbox.filled(n);
        if !self.sni_read && !self.client && self.is_handshaking() {
            if let Some(name) = client_hello_sni(self.shared.inbox.data()) {
                self.sni_read = true;
                self.server_name = name;
            }
        }
        self.process_input()
    }

    fn process_input(&mut self) -> Result<(), Error> {
        self.shared.check()?;
        let (result, moved) = self.on_phase(|records, shared| records.process(shared));
        result?;
        if moved {
            // What arrived with the handshake's last message, for whoever runs the records.
            let (records, shared) = self.records_mut();
            records.process(shared)?;
        }
        Ok(())
    }

    fn input_pending(&self) -> usize {
        self.records().input_pending(&self.shared)
    }

    fn release_buffers(&mut self) {
        let Shared { inbox, held, .. } = &mut self.shared;
        inbox.release();
        if held.staged() == 0 {
            held.staging = Vec::new();
            held.staging_start = 0;
        }
        if held.out.is_empty() {
            held.out = Vec::new();
        }
        self.phase.records_mut().release_buffers();
    }

    fn buffer_capacity(&self) -> usize {
        let Shared { inbox, held, .. } = &self.shared;
        self.records().buffer_capacity()
            + inbox.capacity()
            + held.staging.capacity()
            + held.out.capacity()
    }

    fn feed_eof(&mut self) {
        self.shared.eof = true;
    }

    fn read_plaintext(&mut self, buf: &mut [u8]) -> Result<PlainRead, Error> {
        let held = &mut self.shared.held;
        let staged = held.staged();
        if staged > 0 {
            let start = held.staging_start;
            let n = staged.min(buf.len());
            buf[..n].copy_from_slice(&held.staging[start..start + n]);
            held.staging_start += n;
            return Ok(PlainRead::Data(n));
        }
        self.shared.check()?;
        match self.on_phase(|records, shared| records.read(shared, buf)) {
            // The read handed the connection over (or rustls keeps it): read on.
            (Ok(PlainRead::Empty | PlainRead::Closed) | Err(_), true) => self.read_plaintext(buf),
            (read, _) => read,
        }
    }

    fn plaintext_pending(&self) -> usize {
        self.shared.held.staged() + self.records().plaintext_pending(&self.shared)
    }

    fn write_plaintext(&mut self, data: &[u8], out: &mut Output) -> Result<usize, Error> {
        self.shared.check()?;
        self.on_phase(|records, shared| records.write(shared, data, out))
            .0
    }

    fn export_keying_material(&self, _: &mut [u8], _: &str, _: Option<&[u8]>) -> Result<(), Error> {
        Err(Error::Unsupported {
            reason: "the rustls engine cannot export keying material: rustls 0.23's \
                     unbuffered API, on which it runs, has no exporter (use the OpenSSL engine)"
                .into(),
        })
    }

    fn write_plaintext_vectored(
        &mut self,
        bufs: &[std::io::IoSlice<'_>],
        out: &mut Output,
    ) -> Result<usize, Error> {
        self.shared.check()?;
        self.on_phase(|records, shared| records.write_vectored(shared, bufs, out))
            .0
    }

    fn take_ciphertext(&mut self, out: &mut Output) {
        self.shared.held.take_out(out);
        self.phase.records_mut().take_ciphertext(out);
    }

    fn has_ciphertext(&self) -> bool {
        !self.shared.held.out.is_empty() || self.records().has_ciphertext()
    }

    fn send_close_notify(&mut self) {
        // A failed engine sends no close_notify (its alert is already queued).
        if self.shared.failure.is_none() {
            self.on_phase(|records, shared| records.close_notify(shared));
        }
    }

    fn abort(&mut self, alert: u8) -> Option<Error> {
        if self.shared.failure.is_some() {
            return None;
        }
        // rustls's own record layer sends only the alerts it chooses itself.
        let err = self.phase.records_mut().abort(alert)?;
        self.shared.failure = Some(err.clone());
        Some(err)
    }

    fn peer_closed(&self) -> bool {
        self.records().peer_closed()
    }

    fn refresh_traffic_keys(&mut self) -> Result<(), Error> {
        self.shared.check()?;
        let (records, shared) = self.records_mut();
        records.refresh_keys(shared)
    }

    fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.records().protocol_version().map(|v| match v {
            rustls::ProtocolVersion::TLSv1_2 => ProtocolVersion::Tls12,
            rustls::ProtocolVersion::TLSv1_3 => ProtocolVersion::Tls13,
            other => ProtocolVersion::Other(u16::from(other)),
        })
    }

    fn cipher_suite(&self) -> Option<CipherSuite> {
        self.records()
            .suite()
            .map(|s| CipherSuite::from_code(u16::from(s.suite())))
    }

    fn alpn_protocol(&self) -> Option<Vec<u8>> {
        self.records().alpn()
    }

    fn is_resumed(&self) -> Option<bool> {
        if self.is_handshaking() {
            return None;
        }
        self.records().resumed()
    }

    fn server_name(&self) -> Option<String> {
        if !self.client && self.is_handshaking() {
            // Reported once the handshake accepted it.
            None
        } else {
            self.server_name.clone()
        }
    }

    fn peer_certificates(&self) -> Option<Vec<Vec<u8>>> {
        self.records().peer_certificates()
    }

    fn is_client(&self) -> bool {
        self.client
    }

    fn as_rustls_mut(&mut self) -> Option<&mut RustlsEngine> {
        Some(self)
    }
}

// The hand-over, and all that depends on whether tlsflow's record layer is built in.

#[cfg(feature = "aws-lc-rs")]
mod layer;

#[cfg(feature = "aws-lc-rs")]
pub(crate) use self::layer::Lent;

/// Never lent without tlsflow's record layer.
#[cfg(not(feature = "aws-lc-rs"))]
pub(crate) enum Lent {}

#[cfg(not(feature = "aws-lc-rs"))]
#[allow(clippy::unused_self)]
impl Lent {
    pub(crate) fn spare(&mut self, _: usize) -> &mut [u8] {
        match *self {}
    }
    pub(crate) fn filled(&mut self, _: usize) {
        match *self {}
    }
    pub(crate) fn read(&mut self, _: &mut [u8], _: &mut usize) -> bool {
        match *self {}
    }
    pub(crate) fn has_record(&self) -> bool {
        match *self {}
    }
    pub(crate) fn pending(&self) -> (usize, usize) {
        match *self {}
    }
    pub(crate) fn release(&mut self) {
        match *self {}
    }
    pub(crate) fn capacity(&self) -> usize {
        match *self {}
    }
}

/// Whether a split stream's read half may hold the receiving direction.
pub(crate) enum Lending {
    #[cfg_attr(not(feature = "aws-lc-rs"), allow(dead_code))]
    Lent(Lent),
    /// Not now (the engine is not between records of application data, or rustls may still
    /// hand the connection over): ask again later.
    NotNow,
    /// Never on this connection: rustls runs its records.
    Never,
}

/// Who runs the records.
enum Phase {
    /// rustls: the handshake, and all of a connection the record layer does not take.
    Rustls(Box<Unbuffered>),
    /// tlsflow's record layer.
    #[cfg(feature = "aws-lc-rs")]
    Layer(Box<layer::Layer>),
    /// Neither: rustls gave the connection up and the record layer could not take it (only
    /// after a failure is recorded).
    #[cfg_attr(not(feature = "aws-lc-rs"), allow(dead_code))]
    Gone(Gone),
}

struct Gone;

impl Phase {
    fn records(&self) -> &dyn Records {
        match self {
            Phase::Rustls(rustls) => &**rustls,
            #[cfg(feature = "aws-lc-rs")]
            Phase::Layer(layer) => &**layer,
            Phase::Gone(gone) => gone,
        }
    }

    fn records_mut(&mut self) -> &mut dyn Records {
        match self {
            Phase::Rustls(rustls) => &mut **rustls,
            #[cfg(feature = "aws-lc-rs")]
            Phase::Layer(layer) => &mut **layer,
            Phase::Gone(gone) => gone,
        }
    }
}

impl RustlsEngine {
    /// Moves the connection to tlsflow's record layer if rustls can hand it over now (see
    /// [`Unbuffered::ready`]); whether it moved.
    fn hand_over(&mut self) -> bool {
        let Phase::Rustls(rustls) = &mut self.phase else {
            return false;
        };
        if !cfg!(feature = "aws-lc-rs") || !rustls.ready(&self.shared) {
            return false;
        }
        #[cfg(feature = "aws-lc-rs")]
        if let Phase::Rustls(rustls) = std::mem::replace(&mut self.phase, Phase::Gone(Gone)) {
            match layer::Layer::take_over(*rustls) {
                Ok(layer) => {
                    self.phase = Phase::Layer(Box::new(layer));
                    return true;
                }
                Err(e) => {
                    self.shared.failure = Some(Error::protocol(format!(
                        "cannot move to the record layer: {e}"
                    )));
                }
            }
        }
        false
    }

    /// Seals `inner` as the inner plaintext of one record under the current sending key, as
    /// a hostile peer would (see [`Traffic::seal_inner`](super::tls13::Traffic)). `Ok(false)`
    /// when tlsflow's record layer does not run the connection.
    #[cfg(feature = "testing")]
    #[cfg_attr(not(feature = "aws-lc-rs"), allow(dead_code))]
    pub(crate) fn seal_inner(
        &mut self,
        inner: &[u8],
        next_key: bool,
        out: &mut Output,
    ) -> Result<bool, Error> {
        match &mut self.phase {
            #[cfg(feature = "aws-lc-rs")]
            Phase::Layer(layer) => {
                layer.traffic.seal_inner(inner, next_key, out)?;
                Ok(true)
            }
            _ => {
                let _ = (inner, next_key, out);
                Ok(false)
            }
        }
    }

    /// Lends the receiving direction of tlsflow's record layer and the input buffer to a
    /// split stream's read half (see [`Lent`]).
    pub(crate) fn lend(&mut self) -> Lending {
        match &mut self.phase {
            #[cfg(feature = "aws-lc-rs")]
            Phase::Layer(layer) => {
                let shared = &mut self.shared;
                if shared.failure.is_some() || shared.eof || shared.held.staged() > 0 {
                    return Lending::NotNow;
                }
                layer.lend(shared).map_or(Lending::NotNow, Lending::Lent)
            }
            Phase::Rustls(rustls) if rustls.may_hand_over() => Lending::NotNow,
            _ => Lending::Never,
        }
    }

    /// Takes back what [`lend`](Self::lend) gave, and handles what ended the read half's
    /// run (the record it stopped at, or its refusal).
    ///
    /// # Errors
    ///
    /// The failure that record or refusal is; the alert for the peer is queued.
    pub(crate) fn give_back(&mut self, lent: Lent) -> Result<(), Error> {
        match &mut self.phase {
            #[cfg(feature = "aws-lc-rs")]
            Phase::Layer(layer) => layer.give_back(&mut self.shared, lent),
            #[cfg(feature = "aws-lc-rs")]
            _ => unreachable!("only the record layer lends"),
            #[cfg(not(feature = "aws-lc-rs"))]
            _ => match lent {},
        }
    }

    /// The record layer, when it runs the connection.
    #[cfg(all(test, feature = "aws-lc-rs", feature = "testing"))]
    pub(super) fn traffic(&mut self) -> Option<&mut super::tls13::Traffic> {
        match &mut self.phase {
            Phase::Layer(layer) => Some(&mut layer.traffic),
            _ => None,
        }
    }
}

/// Whether `suite` is one of the TLS 1.3 suites in `lists`, compared by address: a suite
/// defined anywhere else, even with the same identifier, never is. (The compiler may give
/// one static suite several copies, so callers list every place a provider offers it from.)
#[cfg_attr(not(any(feature = "aws-lc-rs", feature = "ring")), allow(dead_code))]
pub(crate) fn one_of(suite: SupportedCipherSuite, lists: &[&[SupportedCipherSuite]]) -> bool {
    let SupportedCipherSuite::Tls13(suite) = suite else {
        return false;
    };
    lists
        .iter()
        .flat_map(|list| list.iter())
        .any(|ours| matches!(ours, SupportedCipherSuite::Tls13(ours) if std::ptr::eq(*ours, suite)))
}

/// Whether tlsflow's record layer implements `suite`.
fn implemented(suite: SupportedCipherSuite) -> bool {
    #[cfg(feature = "aws-lc-rs")]
    return super::tls13::implements(suite);
    #[cfg(not(feature = "aws-lc-rs"))]
    {
        let _ = suite;
        false
    }
}

/// Nothing runs the records: every operation finds the engine's failure first.
impl Records for Gone {
    fn is_handshaking(&self) -> bool {
        false
    }
    fn process(&mut self, shared: &mut Shared) -> Result<(), Error> {
        shared.check()
    }
    fn read(&mut self, shared: &mut Shared, _: &mut [u8]) -> Result<PlainRead, Error> {
        shared.check().map(|()| PlainRead::Empty)
    }
    fn plaintext_pending(&self, _: &Shared) -> usize {
        0
    }
    fn write(&mut self, shared: &mut Shared, _: &[u8], _: &mut Output) -> Result<usize, Error> {
        shared.check().map(|()| 0)
    }
    fn close_notify(&mut self, _: &mut Shared) {}
    fn peer_closed(&self) -> bool {
        false
    }
    fn refresh_keys(&mut self, shared: &mut Shared) -> Result<(), Error> {
        shared.check()
    }
    fn protocol_version(&self) -> Option<rustls::ProtocolVersion> {
        None
    }
    fn suite(&self) -> Option<SupportedCipherSuite> {
        None
    }
    fn alpn(&self) -> Option<Vec<u8>> {
        None
    }
    fn resumed(&self) -> Option<bool> {
        None
    }
    fn peer_certificates(&self) -> Option<Vec<Vec<u8>>> {
        None
    }
}
