//! CPU time of this process (both ends of the benchmark run in it), from `/proc/self/stat`
//! so no unsafe `getrusage` call is needed.

use std::time::Duration;

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

/// Linux reports these times in clock ticks of `USER_HZ`, which is 100 on every
/// architecture Linux supports today.
const TICKS_PER_SECOND: u64 = 100;

/// The process's CPU time, or `None` where `/proc` is not available.
pub(crate) fn process_cpu_time() -> Option<CpuTime> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_stat(&stat)
}

fn parse_stat(stat: &str) -> Option<CpuTime> {
    // The command name (field 2) may contain spaces and parentheses: skip past its end.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields after the name start at field 3 (state); utime is field 14, stime field 15.
    let ticks = |index: usize| -> Option<Duration> {
        let value: u64 = fields.get(index)?.parse().ok()?;
        Some(Duration::from_millis(value * 1000 / TICKS_PER_SECOND))
    };
    Some(CpuTime {
        user: ticks(11)?,
        system: ticks(12)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat() {
        let line = "4242 (tls (flow)) R 1 2 3 4 5 6 7 8 9 10 250 75 0 0 20 0 3 0";
        let cpu = parse_stat(line).unwrap();
        assert_eq!(cpu.user, Duration::from_millis(2500));
        assert_eq!(cpu.system, Duration::from_millis(750));
        assert!(parse_stat("garbage").is_none());
    }
}
