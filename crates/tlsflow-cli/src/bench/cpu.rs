//! CPU time of this process (both ends of the benchmark run in it), from `getrusage`, as
//! `tlsflow-bench` measures it.

use std::time::Duration;

use nix::sys::resource::{getrusage, UsageWho};
use nix::sys::time::{TimeVal, TimeValLike};

/// User and system CPU time consumed so far by all threads of the process.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuTime {
    pub(crate) user: Duration,
    pub(crate) system: Duration,
}

impl CpuTime {
    /// The time spent between `earlier` and `self`.
    pub(crate) fn since(self, earlier: CpuTime) -> CpuTime {
        CpuTime {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }

    pub(crate) fn total(self) -> Duration {
        self.user + self.system
    }
}

/// The process's CPU time, or `None` where the kernel will not say.
pub(crate) fn process_cpu_time() -> Option<CpuTime> {
    let usage = getrusage(UsageWho::RUSAGE_SELF).ok()?;
    Some(CpuTime {
        user: duration(usage.user_time()),
        system: duration(usage.system_time()),
    })
}

fn duration(time: TimeVal) -> Duration {
    Duration::from_micros(u64::try_from(time.num_microseconds()).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_grows_with_work() {
        let before = process_cpu_time().unwrap();
        let mut x = 1u64;
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_millis(50) {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        }
        assert_ne!(x, 0);
        let spent = process_cpu_time().unwrap().since(before);
        assert!(spent.total() >= Duration::from_millis(20), "{spent:?}");
    }
}
