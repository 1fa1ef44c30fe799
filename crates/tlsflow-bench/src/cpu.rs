//! Process-wide CPU time (both ends of every connection run in this process) and the
//! open-file limit.

use std::time::Duration;

use nix::sys::resource::{getrlimit, getrusage, setrlimit, Resource, UsageWho};
use nix::sys::time::TimeValLike;

/// User plus system CPU time of all threads of this process so far (zero if the kernel
/// will not say).
pub(crate) fn process_cpu() -> Duration {
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(usage) => {
            let micros =
                usage.user_time().num_microseconds() + usage.system_time().num_microseconds();
            Duration::from_micros(micros.max(0) as u64)
        }
        Err(_) => Duration::ZERO,
    }
}

/// A point in time together with the process's CPU time then.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mark {
    pub(crate) at: std::time::Instant,
    pub(crate) cpu: Duration,
}

impl Mark {
    pub(crate) fn now() -> Mark {
        Mark {
            cpu: process_cpu(),
            at: std::time::Instant::now(),
        }
    }
}

/// Raises the soft limit on open files to the hard limit; returns the limit in force.
pub(crate) fn raise_nofile_limit() -> u64 {
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 1024;
    };
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return hard;
    }
    soft
}
