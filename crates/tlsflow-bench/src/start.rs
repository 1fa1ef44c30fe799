//! A start line for the threads of one measurement: everyone waits until all have finished
//! their setup (handshakes), and nobody waits forever for a party that failed.

use std::sync::{Condvar, Mutex, PoisonError};

use crate::failure::{Failure, Outcome};

#[derive(Debug)]
pub(crate) struct StartLine {
    state: Mutex<State>,
    changed: Condvar,
    parties: usize,
}

#[derive(Debug, Default)]
struct State {
    arrived: usize,
    failed: bool,
}

impl StartLine {
    pub(crate) fn new(parties: usize) -> StartLine {
        StartLine {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            parties,
        }
    }

    /// Waits until every party has arrived; fails if any party gave up instead.
    pub(crate) fn arrive(&self) -> Outcome<()> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.arrived += 1;
        self.changed.notify_all();
        while state.arrived < self.parties && !state.failed {
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if state.failed {
            return Err(Failure::io("another side of the connection failed"));
        }
        Ok(())
    }

    /// Releases everyone waiting: this party will not arrive.
    pub(crate) fn fail(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.failed = true;
        self.changed.notify_all();
    }

    /// Runs `setup`, then arrives; a failed setup releases the other parties.
    pub(crate) fn after<T>(&self, setup: impl FnOnce() -> Outcome<T>) -> Outcome<T> {
        match setup() {
            Ok(value) => {
                self.arrive()?;
                Ok(value)
            }
            Err(e) => {
                self.fail();
                Err(e)
            }
        }
    }
}

/// The outcome of a finished thread; a panic becomes a failure.
pub(crate) fn joined<T>(handle: std::thread::ScopedJoinHandle<'_, Outcome<T>>) -> Outcome<T> {
    handle
        .join()
        .unwrap_or_else(|_| Err(Failure::io("a benchmark thread panicked")))
}

/// Both outcomes, or the most telling failure: an abort first, then the first one's.
pub(crate) fn both<A, B>(first: Outcome<A>, second: Outcome<B>) -> Outcome<(A, B)> {
    match (first, second) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (Err(e), _) if e.is_abort() => Err(e),
        (_, Err(e)) if e.is_abort() => Err(e),
        (Err(e), _) | (_, Err(e)) => Err(e),
    }
}
