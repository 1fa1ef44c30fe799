//! `tlsflow bench` as users run it: 64 MiB for each I/O model and both ways at once, each
//! ending with exit status 0 and the `intact:` line(s).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::run;

/// Checks that the output ends with `count` lines `intact: <size> bytes, sha256 <hex>, <rate>
/// MB/s`, and returns their digests.
fn intact_lines(stdout: &str, size: u64, count: usize) -> Vec<String> {
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines.len() >= count, "{stdout}");
    lines[lines.len() - count..]
        .iter()
        .map(|line| {
            let rest = line
                .strip_prefix(&format!("intact: {size} bytes, sha256 "))
                .unwrap_or_else(|| panic!("not an intact line: {line:?}\n{stdout}"));
            let (digest, rate) = rest.split_once(", ").unwrap();
            assert_eq!(digest.len(), 64, "{line}");
            assert!(digest.bytes().all(|b| b.is_ascii_hexdigit()), "{line}");
            let rate = rate.strip_suffix(" MB/s").unwrap();
            assert!(rate.parse::<f64>().unwrap() > 0.0, "{line}");
            digest.to_owned()
        })
        .collect()
}

fn bench(args: &[&str]) -> String {
    let mut all = vec!["bench"];
    all.extend_from_slice(args);
    let out = run(&all, None);
    out.assert_code(0);
    // Not a terminal here: plain progress lines, never a redrawn bar.
    assert!(out.stderr.contains("progress: 100%"), "{}", out.stderr);
    assert!(!out.stderr.contains('\r'), "{}", out.stderr);
    out.stdout_text()
}

#[test]
fn nonblocking_64_mib() {
    let stdout = bench(&["--size", "64MiB", "--io", "nonblocking"]);
    intact_lines(&stdout, 64 << 20, 1);
    assert!(stdout.contains("nonblocking client"), "{stdout}");
    assert!(stdout.contains("negotiated: TLSv1.3"), "{stdout}");
    assert!(stdout.contains("cpu: "), "{stdout}");
}

#[test]
fn blocking_64_mib() {
    let stdout = bench(&["--size", "64MiB", "--io", "blocking"]);
    intact_lines(&stdout, 64 << 20, 1);
}

#[test]
fn tokio_64_mib() {
    let stdout = bench(&["--size", "64MiB", "--io", "tokio"]);
    intact_lines(&stdout, 64 << 20, 1);
}

#[test]
fn duplex_64_mib_each_way() {
    let stdout = bench(&["--size", "64MiB", "--duplex"]);
    let digests = intact_lines(&stdout, 64 << 20, 2);
    assert_ne!(
        digests[0], digests[1],
        "each direction carries its own payload"
    );
    assert!(stdout.contains("server -> client"), "{stdout}");
}

/// Every I/O model, split halves both ways, several connections at once.
#[test]
fn duplex_over_parallel_connections_in_every_model() {
    for io in ["blocking", "nonblocking", "tokio"] {
        let stdout = bench(&[
            "--size",
            "4MiB",
            "--io",
            io,
            "--duplex",
            "--connections",
            "3",
            "--write-size",
            "1000",
        ]);
        intact_lines(&stdout, 4 << 20, 6);
    }
}

#[test]
fn fast_reader_and_custom_buffers() {
    let stdout = bench(&[
        "--size",
        "8MiB",
        "--no-slow-reader",
        "--sndbuf",
        "256KiB",
        "--rcvbuf",
        "256KiB",
    ]);
    intact_lines(&stdout, 8 << 20, 1);
    assert!(stdout.contains("reader at full speed"), "{stdout}");
}
