//! The session's two byte queues: ciphertext to send, ciphertext received.

/// Ciphertext waiting for the transport, consumed only by the counts the transport reports.
#[derive(Debug, Default)]
pub(super) struct Outbox {
    pub(super) buf: Vec<u8>,
    pub(super) start: usize,
}

impl Outbox {
    pub(super) fn pending(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    pub(super) fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    pub(super) fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
    }

    /// Makes room at the end by dropping the consumed front, when that is worth a move.
    pub(super) fn prepare_append(&mut self) -> &mut Vec<u8> {
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        &mut self.buf
    }

    pub(super) fn clear(&mut self) {
        self.buf = Vec::new();
        self.start = 0;
    }
}

/// Ciphertext read from the transport and not yet taken by the engine.
#[derive(Debug)]
pub(super) struct Inbox {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    capacity: usize,
}

impl Inbox {
    pub(super) fn new(capacity: usize) -> Self {
        Inbox {
            buf: Vec::new(),
            start: 0,
            end: 0,
            capacity,
        }
    }

    pub(super) fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    pub(super) fn len(&self) -> usize {
        self.end - self.start
    }

    pub(super) fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    pub(super) fn spare(&mut self) -> &mut [u8] {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() < self.capacity {
            self.buf.resize(self.capacity, 0);
        }
        &mut self.buf[self.end..]
    }

    /// Whether `n` more bytes fit in the buffer last handed out by `spare`.
    pub(super) fn can_fill(&self, n: usize) -> bool {
        self.end + n <= self.buf.len()
    }

    pub(super) fn filled(&mut self, n: usize) {
        self.end += n;
    }
}
