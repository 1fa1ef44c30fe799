//! Sizes and durations as people type them (`64MiB`, `500KB`, `1.5s`), and as we print them.

use std::time::Duration;

/// Parses a byte count as people type it, the same way as `tlsflow-bench` (both through
/// the `parse-size` crate): `KB`, `MB`, `GB` and bare `K`, `M`, `G` are powers of 1000;
/// `KiB`, `MiB`, `GiB` powers of 1024; a fraction is allowed (`1.5MiB`).
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    parse_size::parse_size(text.trim())
        .map_err(|e| format!("invalid size {text:?}: {e} (use e.g. 64MiB, 500KB or 1GiB)"))
}

/// Parses a duration: `500ms`, `10s`, `2m`, `1h`, or a bare number of seconds (`1.5`).
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: expected e.g. 10s or 500ms"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "invalid duration {text:?}: unknown unit {other:?} (use ms, s, m or h)"
            ))
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("invalid duration {text:?}"))
}

/// A byte count for people: `1.0 GiB`, `64.0 MiB`, `512 B`.
pub(crate) fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A duration for people, in seconds with a sensible precision.
pub(crate) fn human_duration(duration: Duration) -> String {
    let secs = duration.as_secs_f64();
    if secs < 1.0 {
        format!("{:.0} ms", secs * 1000.0)
    } else {
        format!("{secs:.2} s")
    }
}

/// Throughput in MB/s (10^6 bytes per second), the unit of the `intact:` line.
pub(crate) fn megabytes_per_second(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / elapsed.as_secs_f64().max(1e-9) / 1e6
}

/// Lower-case hex, as `sha256sum` prints digests.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_accept_the_units_people_type() {
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("500KB"), Ok(500_000));
        assert_eq!(parse_size("500kb"), Ok(500_000));
        assert_eq!(parse_size("16 MiB"), Ok(16 << 20));
        assert_eq!(parse_size("1.5KiB"), Ok(1536));
        // As in tlsflow-bench: a bare M is a million.
        assert_eq!(parse_size("64M"), Ok(64_000_000));
        assert_eq!(parse_size("0"), Ok(0));
    }

    #[test]
    fn bad_sizes_are_explained() {
        for bad in ["", "MiB", "12XB", "1.2.3MiB", "-5", "99999999999TiB"] {
            let err = parse_size(bad).unwrap_err();
            assert!(err.contains("invalid size"), "{bad}: {err}");
        }
    }

    #[test]
    fn durations_accept_units() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 days").is_err());
    }

    #[test]
    fn formats_for_people() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(64 << 20), "64.0 MiB");
        assert_eq!(human_bytes(1 << 30), "1.0 GiB");
        assert_eq!(hex(&[0, 0xab, 0x10]), "00ab10");
        assert_eq!(human_duration(Duration::from_millis(250)), "250 ms");
    }
}
