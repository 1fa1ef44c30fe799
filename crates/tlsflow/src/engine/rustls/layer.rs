//! The traffic phase on tlsflow's record layer ([`tls13`](crate::engine::tls13)): records
//! sealed from the caller's buffer and opened into it, while rustls keeps the key schedule
//! and session tickets through its kernel-connection API.

use rustls::SupportedCipherSuite;

use super::unbuffered::{Conn, Unbuffered};
use super::{PlainRead, Records, Shared};
use crate::buf::{Inbox, Output};
use crate::engine::tls13::{Control, Keys, Opening, Refusal, Traffic};
use crate::Error;

/// A connection on tlsflow's record layer, and what was negotiated.
pub(super) struct Layer {
    pub(super) traffic: Traffic,
    alpn: Option<Vec<u8>>,
    peer_certificates: Option<Vec<Vec<u8>>>,
    resumed: Option<bool>,
}

impl Layer {
    /// Takes the connection over from rustls, which must be [ready](Unbuffered::ready).
    pub(super) fn take_over(rustls: Unbuffered) -> Result<Self, Error> {
        let alpn = rustls.alpn();
        let peer_certificates = rustls.peer_certificates();
        let resumed = rustls.resumed();
        let (conn, max_record) = rustls.into_parts();
        let (secrets, keys) = match conn {
            Conn::Client(c) => c
                .dangerous_into_kernel_connection()
                .map(|(secrets, k)| (secrets, Keys::Client(k))),
            Conn::Server(s) => s
                .dangerous_into_kernel_connection()
                .map(|(secrets, k)| (secrets, Keys::Server(k))),
        }?;
        Ok(Layer {
            traffic: Traffic::new(keys, &secrets, max_record)?,
            alpn,
            peer_certificates,
            resumed,
        })
    }
}

impl Records for Layer {
    fn is_handshaking(&self) -> bool {
        false
    }

    fn process(&mut self, shared: &mut Shared) -> Result<(), Error> {
        self.traffic
            .process(&mut shared.inbox)
            .inspect_err(|e| shared.failure = Some(e.clone()))
    }

    fn input_pending(&self, shared: &Shared) -> usize {
        shared.inbox.len() - self.traffic.opened()
    }

    fn release_buffers(&mut self) {
        self.traffic.release_buffers();
    }

    fn buffer_capacity(&self) -> usize {
        self.traffic.buffer_capacity()
    }

    fn read(&mut self, shared: &mut Shared, buf: &mut [u8]) -> Result<PlainRead, Error> {
        let mut filled = 0;
        if let Err(e) = self.traffic.read(&mut shared.inbox, buf, &mut filled) {
            // Plaintext authenticated before the failure is delivered first.
            shared.failure = Some(e.clone());
            if filled == 0 {
                return Err(e);
            }
        }
        if filled > 0 {
            return Ok(PlainRead::Data(filled));
        }
        shared.nothing_read(self.traffic.peer_closed())
    }

    fn plaintext_pending(&self, shared: &Shared) -> usize {
        if shared.failure.is_some() {
            // After a failure, only what was opened (authenticated) counts.
            self.traffic.opened_plaintext()
        } else {
            self.traffic.plaintext_pending(&shared.inbox)
        }
    }

    fn write(&mut self, shared: &mut Shared, buf: &[u8], out: &mut Output) -> Result<usize, Error> {
        self.write_vectored(shared, &[std::io::IoSlice::new(buf)], out)
    }

    fn write_vectored(
        &mut self,
        shared: &mut Shared,
        bufs: &[std::io::IoSlice<'_>],
        out: &mut Output,
    ) -> Result<usize, Error> {
        shared.held.take_out(out);
        match self.traffic.write_vectored(bufs, out) {
            Ok(()) => Ok(bufs.iter().map(|b| b.len()).sum()),
            Err(Error::WriteAfterShutdown) => Err(Error::WriteAfterShutdown),
            Err(e) => {
                shared.failure = Some(e.clone());
                Err(e)
            }
        }
    }

    fn take_ciphertext(&mut self, out: &mut Output) {
        self.traffic.take_control(out);
    }

    fn has_ciphertext(&self) -> bool {
        self.traffic.has_control()
    }

    fn close_notify(&mut self, _: &mut Shared) {
        self.traffic.close_notify();
    }

    fn abort(&mut self, alert: u8) -> Option<Error> {
        Some(self.traffic.abort(alert))
    }

    fn peer_closed(&self) -> bool {
        self.traffic.peer_closed()
    }

    fn refresh_keys(&mut self, _: &mut Shared) -> Result<(), Error> {
        self.traffic.refresh_keys()
    }

    fn protocol_version(&self) -> Option<rustls::ProtocolVersion> {
        Some(rustls::ProtocolVersion::TLSv1_3)
    }

    fn suite(&self) -> Option<SupportedCipherSuite> {
        Some(self.traffic.suite())
    }

    fn alpn(&self) -> Option<Vec<u8>> {
        self.alpn.clone()
    }

    fn resumed(&self) -> Option<bool> {
        self.resumed
    }

    fn peer_certificates(&self) -> Option<Vec<Vec<u8>>> {
        self.peer_certificates.clone()
    }
}

/// The receiving direction of the record layer with the input buffer, lent to a split
/// stream's read half ([`RustlsEngine::lend`](super::RustlsEngine::lend)): it reads
/// ciphertext into the buffer and opens application data on its own, without the session's
/// lock, until a record of another kind or a failure ends its run and it gives them back.
pub(crate) struct Lent {
    opening: Opening,
    inbox: Inbox,
    /// What ended the run: the record it stopped at, or the refusal.
    ended: Option<Result<Control, Refusal>>,
}

impl Lent {
    /// Room to read ciphertext into, so that at most `capacity` bytes are buffered.
    pub(crate) fn spare(&mut self, capacity: usize) -> &mut [u8] {
        self.inbox.spare(capacity)
    }

    /// Reports `n` bytes read into the last [`spare`](Self::spare).
    pub(crate) fn filled(&mut self, n: usize) {
        assert!(
            self.inbox.can_fill(n),
            "more input reported than space given"
        );
        self.inbox.filled(n);
    }

    /// Reads plaintext into `buf[*filled..]` as [`Opening::read`] does. Returns `true` when
    /// the run is over (a record that is not application data, or a failure): the lent
    /// state must then go back before anything else is read.
    pub(crate) fn read(&mut self, buf: &mut [u8], filled: &mut usize) -> bool {
        if self.ended.is_some() {
            return true;
        }
        match self.opening.read(&mut self.inbox, buf, filled, true) {
            Ok(None) => false,
            Ok(Some(control)) => {
                self.ended = Some(Ok(control));
                true
            }
            Err(refusal) => {
                self.ended = Some(Err(refusal));
                true
            }
        }
    }

    /// Whether a read would find plaintext or a record without more input.
    pub(crate) fn has_record(&self) -> bool {
        self.ended.is_some() || self.opening.has_record(&self.inbox)
    }

    /// Received ciphertext not opened yet, and opened plaintext not read yet.
    pub(crate) fn pending(&self) -> (usize, usize) {
        let plain = self.opening.plain();
        (self.inbox.len() - self.opening.opened(), plain)
    }

    /// Frees the input buffer when it holds nothing.
    pub(crate) fn release(&mut self) {
        self.inbox.release();
    }

    pub(crate) fn capacity(&self) -> usize {
        self.inbox.capacity()
    }
}

impl Layer {
    /// Lends the receiving direction and the input buffer (see [`Lent`]), when the record
    /// layer is between records of application data.
    pub(super) fn lend(&mut self, shared: &mut Shared) -> Option<Lent> {
        let opening = self.traffic.lend()?;
        Some(Lent {
            opening,
            inbox: std::mem::take(&mut shared.inbox),
            ended: None,
        })
    }

    /// Takes back what [`lend`](Self::lend) gave, and handles what ended the run.
    pub(super) fn give_back(&mut self, shared: &mut Shared, lent: Lent) -> Result<(), Error> {
        shared.inbox = lent.inbox;
        self.traffic
            .give_back(lent.opening, lent.ended, &mut shared.inbox)
            .inspect_err(|e| shared.failure = Some(e.clone()))
    }
}
