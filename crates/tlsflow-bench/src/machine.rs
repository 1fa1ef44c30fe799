//! What the figures were measured on.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// CPU flags that matter for TLS and copying.
const RELEVANT_FLAGS: [&str; 8] = [
    "aes",
    "pclmulqdq",
    "avx",
    "avx2",
    "vaes",
    "vpclmulqdq",
    "sha_ni",
    "erms",
];

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Machine {
    pub(crate) nproc: usize,
    pub(crate) cpu: String,
    pub(crate) cpu_flags: Vec<String>,
    pub(crate) kernel: String,
    pub(crate) rustc: Option<String>,
    pub(crate) glibc: Option<String>,
    pub(crate) openssl: String,
    /// `GLIBC_TUNABLES`, when set: it changes how glibc copies memory.
    pub(crate) glibc_tunables: Option<String>,
    /// Whether the kernel offers TLS offload (kTLS).
    pub(crate) kernel_tls: crate::ktls::KernelTls,
}

impl Machine {
    pub(crate) fn describe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let field = |name: &str| {
            cpuinfo.lines().find_map(|line| {
                let (key, value) = line.split_once(':')?;
                (key.trim() == name).then(|| value.trim().to_owned())
            })
        };
        let flags = field("flags").unwrap_or_default();
        let cpu_flags = flags
            .split_whitespace()
            .filter(|f| RELEVANT_FLAGS.contains(f) || f.starts_with("avx512"))
            .map(str::to_owned)
            .collect();
        Machine {
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu: field("model name").unwrap_or_else(|| "unknown".to_owned()),
            cpu_flags,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map_or_else(|_| "unknown".to_owned(), |k| k.trim().to_owned()),
            rustc: first_line("rustc", &["-V"]),
            glibc: first_line("getconf", &["GNU_LIBC_VERSION"]),
            openssl: openssl::version::version().to_owned(),
            glibc_tunables: std::env::var("GLIBC_TUNABLES").ok(),
            kernel_tls: crate::ktls::probe(),
        }
    }
}

fn first_line(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    text.lines().next().map(|l| l.trim().to_owned())
}

/// Now, as `YYYY-MM-DD HH:MM UTC`.
pub(crate) fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::civil_from_days;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }
}
