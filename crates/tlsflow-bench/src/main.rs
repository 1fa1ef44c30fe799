//! `tlsflow-bench`: tlsflow side by side with plain TCP, tokio-rustls, tokio-openssl and
//! rustls's blocking `StreamOwned`, in one run and one process, over loopback.
//!
//! Every contender gets the same TLS configuration (one rustls pair and one OpenSSL pair:
//! TLS 1.3, `TLS_AES_128_GCM_SHA256`, no resumption), the same thread layout for its I/O
//! model, and the same byte check. Runs alternate round-robin between contenders so that
//! noise spreads evenly; each figure is the median of the runs, with the minimum and
//! maximum beside it.
//!
//! ```text
//! cargo run --release -p tlsflow-bench                 # the full run, docs/bench/results.md
//! cargo run --release -p tlsflow-bench -- --quick      # about a minute
//! ```

mod blocking;
mod chart;
mod cli;
mod contender;
mod cpu;
mod duplex;
mod failure;
mod handshake;
mod idle_server;
mod ktls;
mod machine;
mod memory;
mod nonblocking;
mod oneway;
mod pattern;
mod report;
mod results;
mod rtt;
mod scaling;
mod start;
mod stats;
mod tls;
mod tokio_conn;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    let outcome = match &args.command {
        Some(cli::Command::IdleServer { contender }) => idle_server::run(contender),
        None => run_bench(&args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("tlsflow-bench: {failure}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the selected measures and writes (or prints) the report.
fn run_bench(args: &cli::Args) -> Result<(), failure::Failure> {
    let plan = cli::Plan::from_args(args)?;
    let raised = cpu::raise_nofile_limit();
    let results = results::run_all(&plan, raised)?;
    let markdown = report::render(&results);
    if plan.write {
        std::fs::create_dir_all(&plan.out).map_err(|e| {
            failure::Failure::io(format!("cannot create {}: {e}", plan.out.display()))
        })?;
        let md = plan.out.join("results.md");
        let json = plan.out.join("results.json");
        let png = plan.out.join("throughput.png");
        let scaling_png = plan.out.join("scaling.png");
        write_file(&md, markdown.as_bytes())?;
        let encoded = serde_json::to_vec_pretty(&results)
            .map_err(|e| failure::Failure::io(format!("cannot encode the results: {e}")))?;
        write_file(&json, &encoded)?;
        chart::draw(&results, &png)?;
        chart::draw_scaling(&results, &scaling_png)?;
        println!("{markdown}");
        eprintln!(
            "wrote {}, {}, {} and {}",
            md.display(),
            json.display(),
            png.display(),
            scaling_png.display()
        );
    } else {
        println!("{markdown}");
    }
    if results.failures.is_empty() {
        Ok(())
    } else {
        Err(failure::Failure::io(format!(
            "{} contender run(s) failed: {}",
            results.failures.len(),
            results.failures.join("; ")
        )))
    }
}

fn write_file(path: &std::path::Path, bytes: &[u8]) -> Result<(), failure::Failure> {
    std::fs::write(path, bytes)
        .map_err(|e| failure::Failure::io(format!("cannot write {}: {e}", path.display())))
}
