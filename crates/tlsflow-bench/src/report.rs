//! results.md: the machine, the setup, one table per measure and the targets.

use std::fmt::Write as _;

use crate::cli::Measure;
use crate::contender::{Contender, Model, REFERENCE};
use crate::results::{Results, Table};
use crate::stats::Summary;

pub(crate) fn render(results: &Results) -> String {
    let mut out = String::new();
    header(&mut out, results);
    for table in &results.tables {
        render_table(&mut out, table);
    }
    if let Some(scaling) = &results.scaling {
        render_scaling(&mut out, scaling);
    }
    targets(&mut out, results);
    if !results.notes.is_empty() || !results.failures.is_empty() {
        out.push_str("\n## Notes\n\n");
        for note in &results.notes {
            let _ = writeln!(out, "- {note}");
        }
        for failure in &results.failures {
            let _ = writeln!(out, "- FAILED: {failure}");
        }
    }
    out
}

fn header(out: &mut String, r: &Results) {
    let m = &r.machine;
    let plan = &r.plan;
    let args = r.command.strip_prefix("tlsflow-bench").unwrap_or("").trim();
    let _ = writeln!(out, "# tlsflow benchmark: side by side, one run\n");
    let _ = writeln!(out, "- Command: `{}`", r.command);
    let _ = writeln!(
        out,
        "- Reproduce from the workspace root: `cargo run --release -p tlsflow-bench{}`",
        if args.is_empty() {
            String::new()
        } else {
            format!(" -- {args}")
        }
    );
    let _ = writeln!(out, "- Date: {}", r.date);
    let _ = writeln!(
        out,
        "- Machine: {} CPUs, {}; flags: {}",
        m.nproc,
        m.cpu,
        if m.cpu_flags.is_empty() {
            "(none of the relevant ones)".to_owned()
        } else {
            m.cpu_flags.join(" ")
        }
    );
    let _ = writeln!(
        out,
        "- Kernel {}; {}; {}; {}",
        m.kernel,
        m.rustc.as_deref().unwrap_or("rustc not found"),
        m.glibc.as_deref().unwrap_or("glibc version unknown"),
        m.openssl
    );
    let _ = writeln!(out, "- Kernel TLS (kTLS): {}", m.kernel_tls);
    if let Some(tunables) = &m.glibc_tunables {
        let _ = writeln!(out, "- `GLIBC_TUNABLES={tunables}`");
    }
    let _ = writeln!(
        out,
        "- Transfers: {} per direction; {} runs per figure (memory: {}), contenders alternating \
         round-robin within each run; {} round trips and {} handshakes per run; whole run {:.0} s",
        bytes(plan.size),
        plan.runs,
        plan.memory_runs,
        plan.round_trips,
        plan.handshakes,
        r.elapsed_s
    );
    out.push_str(SETUP);
    if !r.negotiated.is_empty() {
        out.push_str("\nNegotiated (checked on every measured connection): ");
        let list: Vec<String> = r
            .negotiated
            .iter()
            .map(|(c, n)| format!("{c} `{n}`"))
            .collect();
        out.push_str(&list.join(", "));
        out.push_str(".\n");
    }
}

const SETUP: &str = "
## Setup

Both ends of every connection run in this one process over 127.0.0.1, with Nagle off and
the kernel's default socket buffers. All TLS contenders share one rustls client/server
configuration pair (tokio-rustls, rustls's `StreamOwned` and tlsflow's rustls engine get the
same `Arc`s) and one OpenSSL `SslContext` pair (tokio-openssl and tlsflow's OpenSSL engine):
TLS 1.3 only, `TLS_AES_128_GCM_SHA256` only, X25519, an ECDSA P-256 self-signed certificate
verified as `localhost`, no session tickets or resumption. rustls uses the aws-lc-rs provider.

- **One-way**: a writer thread sends the same buffer of random bytes (as long as one write)
  again and again; a reader thread reads with a buffer of that size and compares every byte
  with what was sent (plain TCP too). tokio: a current-thread runtime on each of the two
  threads; non-blocking: each thread with its own mio `Poll`. Time and CPU run from the first
  write to the reader's end of stream; TLS connections then close cleanly (`close_notify`
  both ways). CPU is user + system time of the whole process (both ends) per GiB moved.
  \"× TCP\" divides by the plain-TCP contender of the same I/O model.
- **Duplex**: both ends send and receive at once through split halves. tokio: one
  multi-thread runtime with 2 workers, each end a reader task and a writer task (tlsflow's
  `into_split_tokio`, `tokio::io::split` for the peers, the socket's own halves for TCP);
  blocking: four threads (tlsflow's `into_split`). Aggregate MB/s of both directions.
- **Round trips**: 1 KiB request, 1 KiB echoed response, one connection, client and server
  each on its own thread (tokio: a current-thread runtime each), pinned twice over: both
  threads on one CPU (each round trip costs both sides' CPU work and two thread switches:
  where the libraries differ), and on two CPUs (each round trip also waits for two
  cross-CPU wake-ups, which dominate on virtual machines). Unpinned, the scheduler flips
  between these two regimes from run to run.
- **Handshakes**: the server runs on one thread pinned to one CPU and completes connections
  one after another (tokio: concurrent tasks on one current-thread runtime); the clients run
  on another thread pinned to the other CPU, a current-thread tokio runtime with 4 connections in flight, using the contender's
  library (tokio-rustls for `rustls-stream`, tlsflow on tokio for tlsflow's blocking and
  non-blocking contenders). Each connection echoes a 32-byte message and closes cleanly.
  The TCP rows are plain connections, for scale.
- **Memory**: the contender's tokio server runs in a child process (a current-thread
  runtime); each connection completes its handshake, echoes a 1 KiB message and stays idle,
  its task waiting on a read. Figure: growth of the child's resident set (VmRSS) from before
  the first connection (after one warm-up connection) to all connections idle, divided by
  the number of connections.
- **Scaling**: busy connections first: 1, 10, 100 and 1,000 connections at once on one
  multi-thread tokio runtime with a worker per CPU, each a client task sending a 1 KiB
  request and awaiting its echo from a server task, again and again for a fixed time,
  after every connection has completed its handshake. Figures: round trips per second of
  all connections together, CPU (both ends) per GiB moved (requests and responses), and
  the median and 99th-percentile round-trip latency over every round trip. Then idle
  connections with a trickle: the memory measure's server in a child process, the given
  number of connections open and idle, and one request per millisecond, each on the next
  connection in turn; figures: the server's resident memory per connection, the server's
  CPU use (percent of one CPU) while the trickle runs, and the trickle's latency.
  `scaling.png` draws the busy figures.
";

fn render_scaling(out: &mut String, s: &crate::scaling::Scaling) {
    let names: Vec<&str> = crate::contender::ALL
        .iter()
        .map(|c| c.name)
        .filter(|name| {
            s.busy
                .iter()
                .any(|p| p.contender == *name && !p.samples.is_empty())
        })
        .collect();
    if !names.is_empty() {
        let _ = writeln!(
            out,
            "\n## Scaling: busy connections on a multi-thread runtime\n\n\
             1 KiB request, 1 KiB response, {:.1} s per point, {} runs per point (median, \
             min–max of round trips/s); \"× ref\" divides by {REFERENCE} at the same count, \
             \"× TCP\" by tcp-tokio.\n",
            s.busy_seconds, s.runs
        );
        out.push_str(
            "| connections | contender | round trips/s | × ref | × TCP | CPU-s/GiB | p50 µs | p99 µs |\n\
             |---:|---|---:|---:|---:|---:|---:|---:|\n",
        );
        for &count in &crate::scaling::BUSY {
            for name in &names {
                let Some(point) = s.point(name, count) else {
                    continue;
                };
                let Some(rate) = point.summary(|x| x.round_trips_per_s) else {
                    continue;
                };
                let ratio = |other: &str| {
                    s.point(other, count)
                        .and_then(|p| p.summary(|x| x.round_trips_per_s))
                        .filter(|o| o.median > 0.0 && other != *name)
                        .map_or("—".to_owned(), |o| {
                            format!("{:.2}×", rate.median / o.median)
                        })
                };
                let median = |f: fn(&crate::scaling::BusySample) -> f64| {
                    point.summary(f).map_or(0.0, |x| x.median)
                };
                let _ = writeln!(
                    out,
                    "| {count} | {name} | {} ({}–{}) | {} | {} | {:.2} | {:.0} | {:.0} |",
                    thousands(rate.median),
                    thousands(rate.min),
                    thousands(rate.max),
                    ratio(REFERENCE),
                    ratio("tcp-tokio"),
                    median(|x| x.cpu_s_per_gib),
                    median(|x| x.p50_us),
                    median(|x| x.p99_us),
                );
            }
        }
    }
    if let Some(first) = s.idle.first() {
        let _ = writeln!(
            out,
            "\n## Scaling: {} idle connections and a trickle\n\n\
             The contender's server in a child process; one 1 KiB request per millisecond, \
             each on the next connection in turn, for {:.1} s.\n",
            thousands(f64::from(first.connections)),
            s.idle_seconds
        );
        out.push_str(
            "| contender | server memory/connection | server CPU during the trickle | requests | p50 µs | p99 µs |\n\
             |---|---:|---:|---:|---:|---:|\n",
        );
        for p in &s.idle {
            let _ = writeln!(
                out,
                "| {} | {} B | {:.1}% | {} | {:.0} | {:.0} |",
                p.contender,
                thousands(p.server_bytes_per_conn),
                p.server_cpu_percent,
                p.requests,
                p.p50_us,
                p.p99_us
            );
        }
    }
}

/// `n` bytes in the largest binary unit that divides it: `16 KiB`, `1 GiB`, `1000 B`.
pub(crate) fn bytes(n: u64) -> String {
    if n >= 1 << 30 && n.is_multiple_of(1 << 30) {
        format!("{} GiB", n >> 30)
    } else if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} B")
    }
}

/// `1234567.8` as `1,234,568`.
pub(crate) fn thousands(value: f64) -> String {
    let rounded = value.round();
    let digits = format!("{:.0}", rounded.abs());
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    if rounded < 0.0 {
        format!("−{grouped}")
    } else {
        grouped
    }
}

fn median_of(table: &Table, contender: &str) -> Option<f64> {
    table
        .row(contender)
        .and_then(Summary::value)
        .map(|s| s.median)
}

fn model_of(name: &str) -> Option<Model> {
    Contender::by_name(name).map(|c| c.model)
}

/// The contender's median over its own model's TCP baseline's median.
fn tcp_ratio(table: &Table, contender: &str) -> Option<f64> {
    let baseline = model_of(contender)?.baseline();
    Some(median_of(table, contender)? / median_of(table, baseline)?)
}

/// The contender's median over tokio-rustls's median.
fn reference_ratio(table: &Table, contender: &str) -> Option<f64> {
    Some(median_of(table, contender)? / median_of(table, REFERENCE)?)
}

fn ratio(value: Option<f64>) -> String {
    value.map_or_else(|| "—".to_owned(), |r| format!("{r:.2}×"))
}

fn render_table(out: &mut String, table: &Table) {
    let _ = writeln!(out, "\n## {}\n", table.title);
    let runs_note = format!("{} runs", table.runs);
    match table.measure {
        Measure::Oneway | Measure::Duplex => {
            let _ = writeln!(
                out,
                "| contender | model | MB/s (median of {runs_note}) | min–max | × TCP | × {REFERENCE} | CPU s/GiB | CPU min–max |"
            );
            out.push_str("|---|---|---:|---:|---:|---:|---:|---:|\n");
        }
        // The scaling measure has its own section (`render_scaling`), not tables.
        Measure::Rtt | Measure::Handshake | Measure::Scaling => {
            let _ = writeln!(
                out,
                "| contender | model | {} (median of {runs_note}) | min–max | × TCP | × {REFERENCE} |",
                table.unit
            );
            out.push_str("|---|---|---:|---:|---:|---:|\n");
        }
        Measure::Memory => {
            let _ = writeln!(
                out,
                "| contender | bytes per connection (median of {runs_note}) | min–max | above tcp-tokio |"
            );
            out.push_str("|---|---:|---:|---:|\n");
        }
    }
    for row in &table.rows {
        let name = row.contender.as_str();
        let Some(value) = Summary::value(row) else {
            let _ = writeln!(out, "| {name} | failed | | | | | | |");
            continue;
        };
        let model = model_of(name).map_or("?", Model::name);
        let is_tls = Contender::by_name(name).is_some_and(Contender::is_tls);
        let vs_reference = if is_tls {
            ratio(reference_ratio(table, name))
        } else {
            "—".to_owned()
        };
        let range = format!("{}–{}", thousands(value.min), thousands(value.max));
        match table.measure {
            Measure::Oneway | Measure::Duplex => {
                let cpu = Summary::cpu(row);
                let _ = writeln!(
                    out,
                    "| {name} | {model} | {} | {range} | {} | {vs_reference} | {} | {} |",
                    thousands(value.median),
                    ratio(tcp_ratio(table, name)),
                    cpu.map_or_else(|| "—".to_owned(), |c| format!("{:.2}", c.median)),
                    cpu.map_or_else(String::new, |c| format!("{:.2}–{:.2}", c.min, c.max)),
                );
            }
            Measure::Rtt | Measure::Handshake | Measure::Scaling => {
                let _ = writeln!(
                    out,
                    "| {name} | {model} | {} | {range} | {} | {vs_reference} |",
                    thousands(value.median),
                    ratio(tcp_ratio(table, name)),
                );
            }
            Measure::Memory => {
                let above = median_of(table, "tcp-tokio")
                    .filter(|_| is_tls)
                    .map_or_else(|| "—".to_owned(), |tcp| thousands(value.median - tcp));
                let _ = writeln!(
                    out,
                    "| {name} | {} | {range} | {above} |",
                    thousands(value.median)
                );
            }
        }
    }
    if table.measure == Measure::Memory {
        let _ = writeln!(
            out,
            "\nMemory runs: {} (the other measures: see the header).",
            table.runs
        );
    }
}

/// One line of the targets table.
struct Target {
    goal: &'static str,
    /// The best tlsflow contender and its figure, if measured.
    best: Option<(String, f64)>,
    met: fn(f64) -> bool,
    show: fn(f64) -> String,
}

fn best(
    table: Option<&Table>,
    kind: fn(&Contender) -> bool,
    figure: impl Fn(&Table, &str) -> Option<f64>,
    higher_is_better: bool,
) -> Option<(String, f64)> {
    let table = table?;
    let mut candidates: Vec<(String, f64)> = table
        .rows
        .iter()
        .filter(|r| Contender::by_name(&r.contender).is_some_and(kind))
        .filter_map(|r| Some((r.contender.clone(), figure(table, &r.contender)?)))
        .collect();
    candidates.sort_by(|a, b| a.1.total_cmp(&b.1));
    if higher_is_better {
        candidates.pop()
    } else {
        candidates.into_iter().next()
    }
}

fn tlsflow_any(c: &Contender) -> bool {
    c.is_tlsflow()
}

fn tlsflow_tokio(c: &Contender) -> bool {
    c.is_tlsflow() && c.model == Model::Tokio
}

fn cpu_median(table: &Table, contender: &str) -> Option<f64> {
    table
        .row(contender)
        .and_then(Summary::cpu)
        .map(|s| s.median)
}

fn above_tcp(table: &Table, contender: &str) -> Option<f64> {
    Some(median_of(table, contender)? - median_of(table, "tcp-tokio")?)
}

fn tlsflow_tokio_openssl(c: &Contender) -> bool {
    c.name == "tlsflow-tokio-openssl"
}

/// The contender's median over tokio-openssl's.
fn openssl_ratio(table: &Table, contender: &str) -> Option<f64> {
    Some(median_of(table, contender)? / median_of(table, "tokio-openssl")?)
}

/// tokio-openssl's CPU per GiB over the contender's: above 1 when the contender spends less.
fn openssl_cpu_ratio(table: &Table, contender: &str) -> Option<f64> {
    Some(cpu_median(table, "tokio-openssl")? / cpu_median(table, contender)?)
}

fn targets(out: &mut String, r: &Results) {
    let times = |v: f64| format!("{v:.2}×");
    let big = r.table("oneway-256KiB");
    let small = r.table("oneway-16KiB");
    let memory = r
        .tables
        .iter()
        .filter(|t| t.measure == Measure::Memory)
        .max_by_key(|t| t.parameter);
    let list = [
        Target {
            goal: "one-way 256 KiB writes ≥ 0.75× plain TCP (same I/O model)",
            best: best(big, tlsflow_any, tcp_ratio, true),
            met: |v| v >= 0.75,
            show: times,
        },
        Target {
            goal: "one-way 256 KiB writes ≥ 1.8× tokio-rustls (tlsflow on tokio)",
            best: best(big, tlsflow_tokio, reference_ratio, true),
            met: |v| v >= 1.8,
            show: times,
        },
        Target {
            goal: "one-way 16 KiB writes ≥ 0.85× plain TCP (same I/O model)",
            best: best(small, tlsflow_any, tcp_ratio, true),
            met: |v| v >= 0.85,
            show: times,
        },
        Target {
            goal: "≤ 0.75 CPU-s/GiB, one-way 256 KiB writes (both ends)",
            best: best(big, tlsflow_any, cpu_median, false),
            met: |v| v <= 0.75,
            show: |v| format!("{v:.2} s/GiB"),
        },
        Target {
            goal: "≤ 4 KB (4,000 bytes) per idle connection above TCP (largest count measured)",
            best: best(memory, tlsflow_tokio, above_tcp, false),
            met: |v| v <= 4000.0,
            show: |v| format!("{} bytes", thousands(v)),
        },
        Target {
            goal: "round trips ≥ tokio-rustls, one CPU (tlsflow on tokio)",
            best: best(
                r.table("rtt-one-core"),
                tlsflow_tokio,
                reference_ratio,
                true,
            ),
            met: |v| v >= 1.0,
            show: times,
        },
        Target {
            goal: "round trips ≥ tokio-rustls, two CPUs (tlsflow on tokio)",
            best: best(
                r.table("rtt-two-cores"),
                tlsflow_tokio,
                reference_ratio,
                true,
            ),
            met: |v| v >= 1.0,
            show: times,
        },
        Target {
            goal: "handshakes ≥ tokio-rustls (tlsflow on tokio)",
            best: best(r.table("handshake"), tlsflow_tokio, reference_ratio, true),
            met: |v| v >= 1.0,
            show: times,
        },
        Target {
            goal: "duplex ≥ 1.5× tokio-rustls (tlsflow on tokio)",
            best: best(r.table("duplex"), tlsflow_tokio, reference_ratio, true),
            met: |v| v >= 1.5,
            show: times,
        },
        Target {
            goal: "duplex ≥ 0.8× plain TCP (tlsflow on tokio)",
            best: best(r.table("duplex"), tlsflow_tokio, tcp_ratio, true),
            met: |v| v >= 0.8,
            show: times,
        },
        Target {
            goal: "OpenSSL engine ≥ tokio-openssl, one-way 16 KiB writes (tokio)",
            best: best(small, tlsflow_tokio_openssl, openssl_ratio, true),
            met: |v| v >= 1.0,
            show: times,
        },
        Target {
            goal: "OpenSSL engine ≥ tokio-openssl, one-way 256 KiB writes (tokio)",
            best: best(big, tlsflow_tokio_openssl, openssl_ratio, true),
            met: |v| v >= 1.0,
            show: times,
        },
        Target {
            goal: "OpenSSL engine CPU per GiB ≤ tokio-openssl's, 16 KiB writes (theirs over ours)",
            best: best(small, tlsflow_tokio_openssl, openssl_cpu_ratio, true),
            met: |v| v >= 1.0,
            show: times,
        },
        Target {
            goal: "OpenSSL engine CPU per GiB ≤ tokio-openssl's, 256 KiB writes (theirs over ours)",
            best: best(big, tlsflow_tokio_openssl, openssl_cpu_ratio, true),
            met: |v| v >= 1.0,
            show: times,
        },
        Target {
            goal: "OpenSSL engine ≥ tokio-openssl, duplex (tokio)",
            best: best(
                r.table("duplex"),
                tlsflow_tokio_openssl,
                openssl_ratio,
                true,
            ),
            met: |v| v >= 1.0,
            show: times,
        },
        Target {
            goal: "OpenSSL engine ≥ tokio-openssl, round trips on one CPU (tokio)",
            best: best(
                r.table("rtt-one-core"),
                tlsflow_tokio_openssl,
                openssl_ratio,
                true,
            ),
            met: |v| v >= 1.0,
            show: times,
        },
        Target {
            goal: "OpenSSL engine ≥ tokio-openssl, round trips on two CPUs (tokio)",
            best: best(
                r.table("rtt-two-cores"),
                tlsflow_tokio_openssl,
                openssl_ratio,
                true,
            ),
            met: |v| v >= 1.0,
            show: times,
        },
        Target {
            goal: "OpenSSL engine ≥ tokio-openssl, handshakes (tokio)",
            best: best(
                r.table("handshake"),
                tlsflow_tokio_openssl,
                openssl_ratio,
                true,
            ),
            met: |v| v >= 1.0,
            show: times,
        },
        Target {
            goal:
                "OpenSSL engine ≤ 0.5× tokio-openssl's memory per idle connection (largest count)",
            best: best(memory, tlsflow_tokio_openssl, openssl_ratio, false),
            met: |v| v <= 0.5,
            show: times,
        },
    ];
    out.push_str("\n## Targets\n\nEach with the best tlsflow contender of the kind named.\n\n");
    out.push_str("| target | best tlsflow contender | measured | verdict |\n|---|---|---:|---|\n");
    for target in list {
        match target.best {
            Some((name, value)) => {
                let _ = writeln!(
                    out,
                    "| {} | {name} | {} | {} |",
                    target.goal,
                    (target.show)(value),
                    if (target.met)(value) { "MET" } else { "MISSED" }
                );
            }
            None => {
                let _ = writeln!(out, "| {} | — | not measured | — |", target.goal);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn groups_thousands() {
        assert_eq!(thousands(0.4), "0");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1234.5), "1,235");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
        assert_eq!(thousands(-4321.0), "−4,321");
    }
}
