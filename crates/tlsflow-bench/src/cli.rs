//! The command line, and the plan it resolves to.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use serde::Serialize;

use crate::contender::{self, Contender, Stack};
use crate::failure::{Failure, Outcome};

/// Benchmarks tlsflow side by side with plain TCP, tokio-rustls, tokio-openssl and
/// rustls's blocking stream, over loopback, in one process.
///
/// Measures one-way throughput (16 KiB and 256 KiB writes, see --write-size), duplex
/// throughput, round trips, handshakes and memory per idle connection. Writes results.md,
/// results.json and throughput.png into target/bench; `--out docs/bench` publishes them
/// (see --no-write).
#[derive(Debug, Parser)]
#[command(name = "tlsflow-bench", version, after_help = EXAMPLES)]
pub(crate) struct Args {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,

    /// About a minute: 128 MiB transfers, 3 runs, 1,000 idle connections, fewer round
    /// trips and handshakes.
    #[arg(long)]
    pub(crate) quick: bool,

    /// Runs per figure (default 5, or 3 with --quick).
    #[arg(long, value_name = "N")]
    pub(crate) runs: Option<u32>,

    /// Bytes per transfer and direction, e.g. 64MiB or 1GiB (default 1GiB, or 128MiB with
    /// --quick).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub(crate) size: Option<u64>,

    /// Only contenders whose name contains SUBSTRING (repeatable); the plain-TCP baselines
    /// of their I/O models stay (see --no-baselines).
    #[arg(long = "only", value_name = "SUBSTRING")]
    pub(crate) only: Vec<String>,

    /// Only the contender named exactly NAME (repeatable, combines with --only): `--exact
    /// tokio-rustls` leaves out tlsflow-tokio-rustls, which `--only tokio-rustls` takes.
    #[arg(long = "exact", value_name = "NAME")]
    pub(crate) exact: Vec<String>,

    /// With --only or --exact: leave out the plain-TCP baselines of the selected
    /// contenders' I/O models (the "× TCP" columns then show "—").
    #[arg(long)]
    pub(crate) no_baselines: bool,

    /// Only these measures (repeatable; default all).
    #[arg(long = "measure", value_enum, value_name = "MEASURE")]
    pub(crate) measures: Vec<Measure>,

    /// Write size of the one-way measure, e.g. 16KiB (repeatable; default 16KiB and
    /// 256KiB). The reader reads with a buffer of the same size.
    #[arg(long = "write-size", value_name = "SIZE", value_parser = parse_size)]
    pub(crate) write_sizes: Vec<u64>,

    /// Where to write results.md, results.json and throughput.png [default: target/bench in
    /// the workspace]; `--out docs/bench` replaces the published results.
    #[arg(long, value_name = "DIR")]
    pub(crate) out: Option<PathBuf>,

    /// Print the tables on stdout only; write no files.
    #[arg(long)]
    pub(crate) no_write: bool,

    /// Idle connections for the memory measure (repeatable; default 1000 and 10000, or 1000
    /// with --quick).
    #[arg(long = "connections", value_name = "N")]
    pub(crate) connections: Vec<u32>,

    /// Runs of the memory measure (default: --runs, at most 3).
    #[arg(long, value_name = "N")]
    pub(crate) memory_runs: Option<u32>,

    /// Round trips per run (default 20000, or 2000 with --quick).
    #[arg(long, value_name = "N")]
    pub(crate) round_trips: Option<u32>,

    /// Handshakes per run (default 2000, or 300 with --quick).
    #[arg(long, value_name = "N")]
    pub(crate) handshakes: Option<u32>,

    /// Seconds each busy point of the scaling measure runs (default 2, or 0.5 with
    /// --quick).
    #[arg(long, value_name = "SECONDS")]
    pub(crate) busy_seconds: Option<f64>,

    /// Idle connections of the scaling measure's trickle (default 10000, or 2000 with
    /// --quick).
    #[arg(long, value_name = "N")]
    pub(crate) idle_connections: Option<u32>,

    /// Seconds the trickle runs (default 5, or 1 with --quick).
    #[arg(long, value_name = "SECONDS")]
    pub(crate) trickle_seconds: Option<f64>,

    /// Also print each contender's negotiated protocol and cipher suite.
    #[arg(short, long)]
    pub(crate) verbose: bool,
}

const EXAMPLES: &str = "Examples:
  cargo run --release -p tlsflow-bench
  cargo run --release -p tlsflow-bench -- --quick
  cargo run --release -p tlsflow-bench -- --only tokio --measure oneway --size 256MiB --no-write
  cargo run --release -p tlsflow-bench -- --exact tokio-rustls --no-baselines --measure oneway --write-size 16KiB --no-write";

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// The server of the memory measure, run as a child process: reads its certificate and
    /// key (PEM) on stdin, prints `port N`, and serves until killed.
    #[command(hide = true)]
    IdleServer {
        /// The contender whose server to run.
        #[arg(long)]
        contender: String,
    },
}

/// One kind of measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Measure {
    /// One-way transfer with 16 KiB and 256 KiB writes (see --write-size).
    Oneway,
    /// Both directions at once, 256 KiB writes.
    Duplex,
    /// 1 KiB request, 1 KiB response.
    Rtt,
    /// Full TLS 1.3 handshakes.
    Handshake,
    /// Memory per idle established connection.
    Memory,
    /// 1, 10, 100 and 1,000 busy connections on a multi-thread runtime; 10,000 idle ones
    /// with a trickle of requests.
    Scaling,
}

impl Measure {
    pub(crate) const ALL: [Measure; 6] = [
        Measure::Oneway,
        Measure::Duplex,
        Measure::Rtt,
        Measure::Handshake,
        Measure::Memory,
        Measure::Scaling,
    ];
}

/// Everything a run needs, resolved from the command line.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Plan {
    pub(crate) quick: bool,
    pub(crate) size: u64,
    pub(crate) runs: u32,
    pub(crate) memory_runs: u32,
    pub(crate) measures: Vec<Measure>,
    pub(crate) contenders: Vec<&'static str>,
    /// Write sizes of the one-way measure, smallest first.
    pub(crate) oneway_writes: Vec<usize>,
    pub(crate) connections: Vec<u32>,
    pub(crate) round_trips: u32,
    pub(crate) handshakes: u32,
    /// Connections a handshake client keeps in flight.
    pub(crate) handshakes_in_flight: u32,
    /// Seconds each busy point of the scaling measure runs.
    pub(crate) busy_seconds: f64,
    /// Runs of each busy point.
    pub(crate) scaling_runs: u32,
    /// Idle connections of the scaling measure, and the seconds its trickle runs.
    pub(crate) trickle_connections: u32,
    pub(crate) trickle_seconds: f64,
    #[serde(skip)]
    pub(crate) out: PathBuf,
    #[serde(skip)]
    pub(crate) write: bool,
    #[serde(skip)]
    pub(crate) verbose: bool,
    pub(crate) command_line: String,
}

impl Plan {
    pub(crate) fn from_args(args: &Args) -> Outcome<Plan> {
        let quick = args.quick;
        let runs = args.runs.unwrap_or(if quick { 3 } else { 5 });
        if runs == 0 {
            return Err(Failure::Usage("--runs must be at least 1".into()));
        }
        let size = args.size.unwrap_or(if quick { 128 << 20 } else { 1 << 30 });
        if size == 0 {
            return Err(Failure::Usage("--size must be at least 1 byte".into()));
        }
        let mut measures = if args.measures.is_empty() {
            Measure::ALL.to_vec()
        } else {
            args.measures.clone()
        };
        measures.sort();
        measures.dedup();
        let mut connections = if args.connections.is_empty() {
            if quick {
                vec![1000]
            } else {
                vec![1000, 10_000]
            }
        } else {
            args.connections.clone()
        };
        connections.sort_unstable();
        connections.dedup();
        if connections.contains(&0) {
            return Err(Failure::Usage("--connections must be at least 1".into()));
        }
        if args.no_baselines && args.only.is_empty() && args.exact.is_empty() {
            return Err(Failure::Usage(
                "--no-baselines needs --only or --exact: every contender, the baselines \
                 included, runs without them"
                    .into(),
            ));
        }
        let oneway_writes = oneway_writes(&args.write_sizes)?;
        let positive = |value: Option<u32>, default: u32, name: &str| match value {
            Some(0) => Err(Failure::Usage(format!("{name} must be at least 1"))),
            Some(n) => Ok(n),
            None => Ok(default),
        };
        let seconds = |value: Option<f64>, default: f64, name: &str| match value {
            Some(s) if !(s > 0.0 && s <= 3600.0) => Err(Failure::Usage(format!(
                "{name} must be more than 0 and at most 3600"
            ))),
            Some(s) => Ok(s),
            None => Ok(default),
        };
        Ok(Plan {
            quick,
            size,
            runs,
            memory_runs: positive(args.memory_runs, runs.min(3), "--memory-runs")?,
            measures,
            contenders: select(&args.only, &args.exact, !args.no_baselines)?,
            oneway_writes,
            connections,
            round_trips: positive(
                args.round_trips,
                if quick { 2000 } else { 20_000 },
                "--round-trips",
            )?,
            handshakes: positive(
                args.handshakes,
                if quick { 300 } else { 2000 },
                "--handshakes",
            )?,
            handshakes_in_flight: 4,
            busy_seconds: seconds(
                args.busy_seconds,
                if quick { 0.5 } else { 2.0 },
                "--busy-seconds",
            )?,
            scaling_runs: runs.min(3),
            trickle_connections: positive(
                args.idle_connections,
                if quick { 2000 } else { 10_000 },
                "--idle-connections",
            )?,
            trickle_seconds: seconds(
                args.trickle_seconds,
                if quick { 1.0 } else { 5.0 },
                "--trickle-seconds",
            )?,
            out: args.out.clone().unwrap_or_else(default_out),
            write: !args.no_write,
            verbose: args.verbose,
            command_line: command_line(),
        })
    }

    /// The selected contenders taking part in `measure`, in report order.
    pub(crate) fn contenders_for(&self, measure: Measure) -> Vec<&'static Contender> {
        contender::ALL
            .iter()
            .filter(|c| self.contenders.contains(&c.name) && c.takes_part_in(measure))
            .collect()
    }
}

/// Contenders whose names contain one of `only` or equal one of `exact`, plus (with
/// `baselines`) the TCP baselines of their models; every contender when both are empty.
fn select(only: &[String], exact: &[String], baselines: bool) -> Outcome<Vec<&'static str>> {
    if only.is_empty() && exact.is_empty() {
        return Ok(contender::ALL.iter().map(|c| c.name).collect());
    }
    let names = || {
        let names: Vec<&str> = contender::ALL.iter().map(|c| c.name).collect();
        names.join(", ")
    };
    if let Some(unknown) = exact.iter().find(|e| Contender::by_name(e).is_none()) {
        return Err(Failure::Usage(format!(
            "--exact {unknown:?} names no contender; the contenders are {}",
            names()
        )));
    }
    let chosen: Vec<&Contender> = contender::ALL
        .iter()
        .filter(|c| {
            only.iter().any(|s| c.name.contains(s.as_str()))
                || exact.iter().any(|e| c.name == e.as_str())
        })
        .collect();
    if chosen.is_empty() {
        return Err(Failure::Usage(format!(
            "--only matches no contender; the contenders are {}",
            names()
        )));
    }
    Ok(contender::ALL
        .iter()
        .filter(|c| {
            chosen.iter().any(|x| x.name == c.name)
                || (baselines && c.stack == Stack::Tcp && chosen.iter().any(|x| x.model == c.model))
        })
        .map(|c| c.name)
        .collect())
}

/// The one-way write sizes: `--write-size`, or 16 KiB and 256 KiB; sorted, no repeats.
fn oneway_writes(sizes: &[u64]) -> Outcome<Vec<usize>> {
    if sizes.is_empty() {
        return Ok(ONEWAY_WRITES.to_vec());
    }
    let mut writes = Vec::with_capacity(sizes.len());
    for &size in sizes {
        if size == 0 {
            return Err(Failure::Usage(
                "--write-size must be at least 1 byte".into(),
            ));
        }
        // Writer and reader each hold a buffer this long.
        if size > MAX_WRITE {
            return Err(Failure::Usage(format!(
                "--write-size {size} is more than the {} MiB this benchmark allows",
                MAX_WRITE >> 20
            )));
        }
        writes.push(usize::try_from(size).map_err(|_| {
            Failure::Usage(format!("--write-size {size} is too large for this machine"))
        })?);
    }
    writes.sort_unstable();
    writes.dedup();
    Ok(writes)
}

/// The default write sizes of the one-way measure.
const ONEWAY_WRITES: [usize; 2] = [16 << 10, 256 << 10];
/// The largest `--write-size`.
const MAX_WRITE: u64 = 256 << 20;

/// `target/bench` in the workspace this program was built from: a plain run never touches
/// the published results in `docs/bench`.
fn default_out() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/bench"))
}

/// The command line as typed, program name shortened to `tlsflow-bench`.
fn command_line() -> String {
    let mut words = vec!["tlsflow-bench".to_owned()];
    for arg in std::env::args().skip(1) {
        let plain = !arg.is_empty()
            && arg
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@".contains(c));
        words.push(if plain {
            arg
        } else {
            format!("'{}'", arg.replace('\'', r"'\''"))
        });
    }
    words.join(" ")
}

/// `4096`, `500KB`, `64M`, `64MiB`, `1GiB`, `1.5GB`: decimal units (and bare `K`, `M`,
/// `G`) are powers of 1000, binary units (`KiB`, `MiB`, `GiB`) powers of 1024, as in the
/// `tlsflow` command (both through the `parse-size` crate).
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    parse_size::parse_size(text.trim())
        .map_err(|e| format!("invalid size {text:?}: {e} (use e.g. 64MiB, 500KB or 1GiB)"))
}

#[cfg(test)]
mod tests {
    use super::{oneway_writes, parse_size, select};

    fn strings(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| (*w).to_owned()).collect()
    }

    #[test]
    fn selection_by_substring_or_exact_name_with_or_without_baselines() {
        let only = strings(&["tokio-rustls"]);
        let none = Vec::new();
        assert_eq!(
            select(&only, &none, true).ok(),
            Some(vec!["tcp-tokio", "tlsflow-tokio-rustls", "tokio-rustls"])
        );
        assert_eq!(
            select(&only, &none, false).ok(),
            Some(vec!["tlsflow-tokio-rustls", "tokio-rustls"])
        );
        assert_eq!(select(&none, &only, false).ok(), Some(vec!["tokio-rustls"]));
        assert_eq!(
            select(
                &strings(&["rustls-stream"]),
                &strings(&["tcp-tokio"]),
                false
            )
            .ok(),
            Some(vec!["tcp-tokio", "rustls-stream"])
        );
        assert!(select(&none, &strings(&["tokio"]), true).is_err());
        assert_eq!(select(&none, &none, false).map(|c| c.len()).ok(), Some(12));
    }

    #[test]
    fn write_sizes_sorted_without_repeats() {
        assert_eq!(oneway_writes(&[]).ok(), Some(vec![16 << 10, 256 << 10]));
        assert_eq!(
            oneway_writes(&[256 << 10, 4096, 256 << 10]).ok(),
            Some(vec![4096, 256 << 10])
        );
        assert!(oneway_writes(&[0]).is_err());
        assert!(oneway_writes(&[1 << 40]).is_err());
    }

    #[test]
    fn sizes_take_units() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("500KB"), Ok(500_000));
        assert_eq!(parse_size("1.5GB"), Ok(1_500_000_000));
        assert_eq!(parse_size("64M"), Ok(64_000_000));
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("MiB").is_err());
    }
}
