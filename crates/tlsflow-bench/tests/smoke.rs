//! The built program, end to end, with tiny sizes: every measure runs, every output is
//! written, and every contender is in the report.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const CONTENDERS: [&str; 12] = [
    "tcp-blocking",
    "tcp-nonblocking",
    "tcp-tokio",
    "tlsflow-blocking-rustls",
    "tlsflow-nonblocking-rustls",
    "tlsflow-tokio-rustls",
    "tlsflow-blocking-openssl",
    "tlsflow-nonblocking-openssl",
    "tlsflow-tokio-openssl",
    "rustls-stream",
    "tokio-rustls",
    "tokio-openssl",
];

fn bench(args: &[&str], out: Option<&Path>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tlsflow-bench"));
    command.args(args);
    if let Some(out) = out {
        command.arg("--out").arg(out);
    }
    command.output().expect("cannot run tlsflow-bench")
}

fn fresh_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn a_tiny_run_writes_every_output_and_names_every_contender() {
    let out = fresh_dir("smoke");
    let output = bench(
        &[
            "--size",
            "4MiB",
            "--runs",
            "1",
            "--measure",
            "oneway",
            "--measure",
            "duplex",
            "--measure",
            "rtt",
            "--measure",
            "handshake",
            "--measure",
            "memory",
            "--measure",
            "scaling",
            "--busy-seconds",
            "0.2",
            "--idle-connections",
            "50",
            "--trickle-seconds",
            "0.2",
            "--connections",
            "50",
            "--round-trips",
            "200",
            "--handshakes",
            "20",
        ],
        Some(&out),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "tlsflow-bench failed:\n{stderr}");

    let report = std::fs::read_to_string(out.join("results.md")).expect("results.md");
    for contender in CONTENDERS {
        assert!(report.contains(contender), "{contender} missing:\n{report}");
    }
    for section in [
        "One-way transfer, 16 KiB writes",
        "One-way transfer, 256 KiB writes",
        "Duplex",
        "Round trips, client and server threads on one CPU",
        "Handshakes",
        "Memory per idle connection, 50 connections",
        "## Scaling: busy connections on a multi-thread runtime",
        "## Scaling: 50 idle connections and a trickle",
        "## Targets",
    ] {
        assert!(report.contains(section), "{section} missing:\n{report}");
    }
    assert!(!report.contains("FAILED"), "{report}");

    for chart in ["throughput.png", "scaling.png"] {
        let png = std::fs::read(out.join(chart)).expect(chart);
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{chart} is not a PNG"
        );
    }

    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).expect("results.json"))
            .expect("results.json is JSON");
    let tables = json["tables"].as_array().expect("tables");
    // One-way twice (16 KiB, 256 KiB), duplex, round trips on one CPU and (where there are
    // two) on two, handshakes, memory.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(tables.len(), if cpus >= 2 { 7 } else { 6 }, "{json}");
    // Every tokio contender at every busy count, once; and each with its idle trickle.
    let scaling = &json["scaling"];
    let busy = scaling["busy"].as_array().expect("scaling.busy");
    assert_eq!(busy.len(), 4 * 5, "{scaling}");
    for point in busy {
        assert_eq!(
            point["samples"].as_array().expect("samples").len(),
            1,
            "{point}"
        );
    }
    assert_eq!(
        scaling["idle"].as_array().expect("scaling.idle").len(),
        5,
        "{scaling}"
    );
    for table in tables {
        for row in table["rows"].as_array().expect("rows") {
            assert_eq!(
                row["samples"].as_array().expect("samples").len(),
                1,
                "{row}"
            );
        }
    }
}

#[test]
fn an_exact_contender_runs_alone_with_the_write_sizes_asked_for() {
    let output = bench(
        &[
            "--exact",
            "tokio-rustls",
            "--no-baselines",
            "--measure",
            "oneway",
            "--write-size",
            "16KiB",
            "--write-size",
            "100KB",
            "--size",
            "1MiB",
            "--runs",
            "1",
            "--no-write",
        ],
        None,
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "tlsflow-bench failed:\n{stderr}");
    let report = String::from_utf8_lossy(&output.stdout);
    // `--only tokio-rustls` would take tlsflow-tokio-rustls and tcp-tokio too.
    assert!(report.contains("| tokio-rustls | tokio |"), "{report}");
    for absent in [
        "| tlsflow-tokio-rustls |",
        "| tcp-tokio |",
        "One-way transfer, 256 KiB writes",
    ] {
        assert!(!report.contains(absent), "{absent} present:\n{report}");
    }
    for present in [
        "One-way transfer, 16 KiB writes",
        "One-way transfer, 100000 B writes",
        "## Targets",
    ] {
        assert!(report.contains(present), "{present} missing:\n{report}");
    }
    // No baseline: the "× TCP" column has no figure.
    let row = report
        .lines()
        .find(|l| l.starts_with("| tokio-rustls |"))
        .expect("a tokio-rustls row");
    assert_eq!(row.split('|').nth(5).map(str::trim), Some("—"), "{row}");
}

#[test]
fn mistakes_are_one_line_errors() {
    for args in [
        &["--size", "12 parsecs"][..],
        &["--only", "no-such-contender", "--no-write"],
        &["--runs", "0", "--no-write"],
        &["--no-baselines", "--no-write"],
        &["--exact", "tokio", "--no-write"],
        &["--write-size", "0", "--no-write"],
    ] {
        let output = bench(args, None);
        assert!(!output.status.success(), "{args:?} succeeded");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    let output = bench(&["--only", "no-such-contender", "--no-write"], None);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("tokio-rustls"), "{stderr}");
}
