//! Process-wide CPU time (both ends of every connection run in this process), the
//! open-file limit, and pinning threads to CPUs.

use std::time::Duration;

use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::sys::resource::{getrlimit, getrusage, setrlimit, Resource, UsageWho};
use nix::sys::time::TimeValLike;
use nix::unistd::Pid;

use crate::failure::{Failure, Outcome};

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

/// The CPUs this process may run on.
pub(crate) fn usable_cpus() -> Vec<usize> {
    match sched_getaffinity(Pid::from_raw(0)) {
        Ok(set) => (0..CpuSet::count())
            .filter(|&cpu| set.is_set(cpu).unwrap_or(false))
            .collect(),
        Err(_) => vec![0],
    }
}

/// Keeps the calling thread on `cpu`.
pub(crate) fn pin_to(cpu: usize) -> Outcome<()> {
    let mut set = CpuSet::new();
    set.set(cpu)
        .and_then(|()| sched_setaffinity(Pid::from_raw(0), &set))
        .map_err(|e| Failure::io(format!("cannot pin a thread to CPU {cpu}: {e}")))
}
