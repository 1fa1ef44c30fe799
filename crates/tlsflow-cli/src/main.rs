//! `tlsflow`: move data over TLS from the command line.
//!
//! - `bench`: the scenario that breaks other TLS streams (a non-blocking client socket with
//!   the smallest send buffer, a slow reader, 1 GiB), checked by SHA-256, with no setup.
//! - `serve`: a TLS server that echoes, sinks, forwards to a TCP service or sends a file.
//! - `connect`: a TLS client from stdin to stdout, with half-close.
//! - `tunnel`: plain TCP in, TLS out (the client side of stunnel).
//! - `cert`: a self-signed certificate and key for local use.
//!
//! Built only on the public API of the `tlsflow` library.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing::level_filters::LevelFilter;

mod acceptor;
mod bench;
mod cert;
mod chunks;
mod cli;
mod connect;
mod failure;
mod modes;
mod net;
mod relay;
mod serve;
mod trust;
mod tunnel;
mod units;
mod x509;

use cli::{Cli, Command};
use failure::Failure;

fn main() -> ExitCode {
    // clap prints usage errors and exits with status 2, help and version with 0.
    let cli = Cli::parse();
    init_logging(&cli);
    let result = match &cli.command {
        Command::Bench(args) => bench::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Connect(args) => connect::run(args, cli.verbose > 0),
        Command::Tunnel(args) => tunnel::run(args),
        Command::Cert(args) => cert::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => report(&failure),
    }
}

fn report(failure: &Failure) -> ExitCode {
    eprintln!("tlsflow: error: {failure}");
    ExitCode::from(failure.exit_code())
}

/// Logs go to stderr so that stdout carries only data (`connect`) or results (`bench`).
fn init_logging(cli: &Cli) {
    let level = if cli.quiet {
        LevelFilter::ERROR
    } else {
        match cli.verbose {
            0 => LevelFilter::WARN,
            1 => LevelFilter::INFO,
            2 => LevelFilter::DEBUG,
            _ => LevelFilter::TRACE,
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
