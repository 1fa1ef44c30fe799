//! The run: every measure, round-robin over contenders, and the figures it collects.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::cli::{Measure, Plan};
use crate::contender::Contender;
use crate::cpu::Mark;
use crate::failure::Outcome;
use crate::machine::Machine;
use crate::scaling::{self, BusyPoint, Scaling};
use crate::tls::{Identity, Negotiated, Tls};
use crate::{duplex, handshake, memory, oneway, rtt};

/// Bytes in a GiB, for CPU seconds per GiB.
pub(crate) const GIB: f64 = (1u64 << 30) as f64;

/// One run's figure for one contender.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Sample {
    pub(crate) value: f64,
    /// Process CPU (user + system) seconds per GiB moved, for transfers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cpu_s_per_gib: Option<f64>,
}

/// What one measurement of one contender returns.
#[derive(Debug)]
pub(crate) struct Measured {
    pub(crate) sample: Sample,
    pub(crate) negotiated: Option<Negotiated>,
}

impl Measured {
    /// A transfer of `bytes` between two marks: MB/s and CPU s/GiB.
    pub(crate) fn transfer(
        start: Mark,
        end: Mark,
        bytes: u64,
        negotiated: Option<Negotiated>,
    ) -> Measured {
        let seconds = end.at.saturating_duration_since(start.at).as_secs_f64();
        let cpu = end.cpu.saturating_sub(start.cpu).as_secs_f64();
        Measured {
            sample: Sample {
                value: bytes as f64 / seconds.max(1e-9) / 1e6,
                cpu_s_per_gib: Some(cpu / (bytes as f64 / GIB)),
            },
            negotiated,
        }
    }

    /// `count` events between two instants, per second.
    pub(crate) fn rate(
        start: Instant,
        end: Instant,
        count: u32,
        negotiated: Option<Negotiated>,
    ) -> Measured {
        let seconds = end.saturating_duration_since(start).as_secs_f64();
        Measured {
            sample: Sample {
                value: f64::from(count) / seconds.max(1e-9),
                cpu_s_per_gib: None,
            },
            negotiated,
        }
    }
}

/// One table of the report: one figure per contender per run.
#[derive(Debug, Serialize)]
pub(crate) struct Table {
    pub(crate) id: String,
    pub(crate) measure: Measure,
    pub(crate) title: String,
    pub(crate) unit: String,
    pub(crate) higher_is_better: bool,
    pub(crate) runs: u32,
    /// Write size (transfers) or connection count (memory).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) parameter: Option<u64>,
    pub(crate) rows: Vec<Row>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Row {
    pub(crate) contender: String,
    pub(crate) samples: Vec<Sample>,
}

impl Table {
    pub(crate) fn row(&self, contender: &str) -> Option<&Row> {
        self.rows
            .iter()
            .find(|r| r.contender == contender && !r.samples.is_empty())
    }
}

/// Everything the report shows, and what results.json holds.
#[derive(Debug, Serialize)]
pub(crate) struct Results {
    pub(crate) date: String,
    pub(crate) command: String,
    pub(crate) machine: Machine,
    pub(crate) plan: Plan,
    pub(crate) nofile_limit: u64,
    pub(crate) elapsed_s: f64,
    /// Contender and the version and suite it negotiated.
    pub(crate) negotiated: Vec<(String, String)>,
    pub(crate) tables: Vec<Table>,
    /// The scaling measure, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) scaling: Option<Scaling>,
    pub(crate) notes: Vec<String>,
    pub(crate) failures: Vec<String>,
}

impl Results {
    pub(crate) fn table(&self, id: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.id == id)
    }
}

/// The write size of the duplex measure.
pub(crate) const DUPLEX_WRITE: usize = 256 << 10;

/// Runs every measure of `plan`.
pub(crate) fn run_all(plan: &Plan, nofile_limit: u64) -> Outcome<Results> {
    let started = Instant::now();
    let machine = Machine::describe();
    let identity = Identity::generate()?;
    let tls = Arc::new(Tls::new(&identity)?);
    let mut run = Run {
        plan,
        negotiated: Vec::new(),
        failures: Vec::new(),
    };
    let mut tables = Vec::new();
    let mut notes = Vec::new();
    let mut scaled = None;
    for &measure in &plan.measures {
        let contenders = plan.contenders_for(measure);
        if contenders.is_empty() {
            continue;
        }
        match measure {
            Measure::Oneway => {
                for &write in &plan.oneway_writes {
                    let spec = Spec::new(
                        format!(
                            "oneway-{}",
                            crate::report::bytes(write as u64).replace(' ', "")
                        ),
                        measure,
                        format!(
                            "One-way transfer, {} writes",
                            crate::report::bytes(write as u64)
                        ),
                        "MB/s",
                    )
                    .parameter(write as u64);
                    tables.push(run.round_robin(spec, plan.runs, &contenders, |c| {
                        oneway::run(c, &tls, plan.size, write)
                    })?);
                }
            }
            Measure::Duplex => {
                let spec = Spec::new(
                    "duplex".into(),
                    measure,
                    format!(
                        "Duplex: both directions at once, {} KiB writes, aggregate",
                        DUPLEX_WRITE >> 10
                    ),
                    "MB/s",
                )
                .parameter(DUPLEX_WRITE as u64);
                tables.push(run.round_robin(spec, plan.runs, &contenders, |c| {
                    duplex::run(c, &tls, plan.size, DUPLEX_WRITE)
                })?);
            }
            Measure::Rtt => {
                let cpus = crate::cpu::usable_cpus();
                let first = cpus.first().copied().unwrap_or(0);
                let mut placements = vec![("one-core", "one CPU", (first, first))];
                match cpus.get(1) {
                    Some(&second) => placements.push(("two-cores", "two CPUs", (first, second))),
                    None => notes.push(
                        "Round trips on two CPUs skipped: this process may use only one.".into(),
                    ),
                }
                for (id, label, pair) in placements {
                    let spec = Spec::new(
                        format!("rtt-{id}"),
                        measure,
                        format!(
                            "Round trips, client and server threads on {label}: 1 KiB request, \
                             1 KiB response, {} per run",
                            plan.round_trips
                        ),
                        "round trips/s",
                    );
                    tables.push(run.round_robin(spec, plan.runs, &contenders, |c| {
                        rtt::run(c, &tls, plan.round_trips, pair)
                    })?);
                }
            }
            Measure::Handshake => {
                let spec = Spec::new(
                    "handshake".into(),
                    measure,
                    format!(
                        "Handshakes: full TLS 1.3, no resumption, {} per run",
                        plan.handshakes
                    ),
                    "handshakes/s",
                );
                tables.push(run.round_robin(spec, plan.runs, &contenders, |c| {
                    handshake::run(c, &tls, plan.handshakes, plan.handshakes_in_flight)
                })?);
            }
            Measure::Memory => {
                for &count in &plan.connections {
                    // Each process holds `count` sockets, plus a few files of its own.
                    let needed = u64::from(count) + 64;
                    if needed > nofile_limit {
                        let note = format!(
                            "Memory at {count} connections skipped: the open-file limit is \
                             {nofile_limit}, and each process needs about {needed}."
                        );
                        eprintln!("{note}");
                        notes.push(note);
                        continue;
                    }
                    let spec = Spec::new(
                        format!("memory-{count}"),
                        measure,
                        format!("Memory per idle connection, {count} connections"),
                        "bytes/connection",
                    )
                    .parameter(u64::from(count))
                    .lower_is_better();
                    tables.push(run.round_robin(spec, plan.memory_runs, &contenders, |c| {
                        memory::run(c, &identity, &tls, count)
                    })?);
                }
            }
            Measure::Scaling => {
                scaled =
                    Some(run.scaling(&contenders, &identity, &tls, nofile_limit, &mut notes)?);
            }
        }
    }
    let mut negotiated = run.negotiated;
    negotiated.sort_by_key(|(name, _)| {
        crate::contender::ALL
            .iter()
            .position(|c| c.name == name.as_str())
    });
    Ok(Results {
        date: crate::machine::utc_now(),
        command: plan.command_line.clone(),
        machine,
        plan: plan.clone(),
        nofile_limit,
        elapsed_s: started.elapsed().as_secs_f64(),
        negotiated,
        tables,
        scaling: scaled,
        notes,
        failures: run.failures,
    })
}

/// A table about to be measured.
struct Spec {
    table: Table,
}

impl Spec {
    fn new(id: String, measure: Measure, title: String, unit: &str) -> Spec {
        Spec {
            table: Table {
                id,
                measure,
                title,
                unit: unit.to_owned(),
                higher_is_better: true,
                runs: 0,
                parameter: None,
                rows: Vec::new(),
            },
        }
    }

    fn parameter(mut self, value: u64) -> Spec {
        self.table.parameter = Some(value);
        self
    }

    fn lower_is_better(mut self) -> Spec {
        self.table.higher_is_better = false;
        self
    }
}

struct Run<'a> {
    plan: &'a Plan,
    negotiated: Vec<(String, String)>,
    failures: Vec<String>,
}

impl Run<'_> {
    /// `runs` rounds; each round measures every contender once, in order. A contender that
    /// fails is dropped from the rest of the table; a failed byte check stops everything.
    fn round_robin(
        &mut self,
        spec: Spec,
        runs: u32,
        contenders: &[&'static Contender],
        mut measure: impl FnMut(&'static Contender) -> Outcome<Measured>,
    ) -> Outcome<Table> {
        let mut table = spec.table;
        table.runs = runs;
        table.rows = contenders
            .iter()
            .map(|c| Row {
                contender: c.name.to_owned(),
                samples: Vec::new(),
            })
            .collect();
        let mut dropped = BTreeSet::new();
        for run in 0..runs {
            for (i, contender) in contenders.iter().enumerate() {
                if dropped.contains(contender.name) {
                    continue;
                }
                let measured = match measure(contender) {
                    Ok(measured) => measured,
                    Err(e) if e.is_abort() => {
                        return Err(e.context(&format!("{} {}", table.id, contender.name)))
                    }
                    Err(e) => {
                        let message =
                            format!("{} {} run {}: {e}", table.id, contender.name, run + 1);
                        eprintln!("FAILED {message}");
                        self.failures.push(message);
                        dropped.insert(contender.name);
                        continue;
                    }
                };
                if let Some(negotiated) = &measured.negotiated {
                    negotiated.check()?;
                    self.note_negotiated(contender.name, negotiated);
                }
                eprintln!(
                    "[{}] run {}/{} {:<28} {}",
                    table.id,
                    run + 1,
                    runs,
                    contender.name,
                    describe(&measured.sample, &table.unit)
                );
                table.rows[i].samples.push(measured.sample);
            }
        }
        Ok(table)
    }

    /// The scaling measure: the busy points round-robin over contenders, connection
    /// counts and runs; then each contender's idle connections with a trickle, once.
    fn scaling(
        &mut self,
        contenders: &[&'static Contender],
        identity: &Identity,
        tls: &Arc<Tls>,
        nofile_limit: u64,
        notes: &mut Vec<String>,
    ) -> Outcome<Scaling> {
        let plan = self.plan;
        let mut found = Scaling {
            busy_seconds: plan.busy_seconds,
            runs: plan.scaling_runs,
            idle_seconds: plan.trickle_seconds,
            ..Scaling::default()
        };
        for &connections in &scaling::BUSY {
            for contender in contenders {
                found.busy.push(BusyPoint {
                    contender: contender.name.to_owned(),
                    connections,
                    samples: Vec::new(),
                });
            }
        }
        let mut dropped = BTreeSet::new();
        for run in 0..plan.scaling_runs {
            for &connections in &scaling::BUSY {
                // Both ends of every connection live in this process.
                if u64::from(connections) * 2 + 64 > nofile_limit {
                    if run == 0 {
                        notes.push(format!(
                            "Scaling at {connections} busy connections skipped: the open-file \
                             limit is {nofile_limit}."
                        ));
                    }
                    continue;
                }
                for contender in contenders {
                    if dropped.contains(contender.name) {
                        continue;
                    }
                    match scaling::busy(contender, tls, connections, plan.busy_seconds) {
                        Ok((sample, negotiated)) => {
                            if let Some(negotiated) = &negotiated {
                                negotiated.check()?;
                                self.note_negotiated(contender.name, negotiated);
                            }
                            eprintln!(
                                "[scaling-{connections}] run {}/{} {:<28} {:.0} round trips/s, \
                                 {:.2} CPU-s/GiB, p50 {:.0} µs, p99 {:.0} µs",
                                run + 1,
                                plan.scaling_runs,
                                contender.name,
                                sample.round_trips_per_s,
                                sample.cpu_s_per_gib,
                                sample.p50_us,
                                sample.p99_us
                            );
                            if let Some(point) = found.busy.iter_mut().find(|p| {
                                p.contender == contender.name && p.connections == connections
                            }) {
                                point.samples.push(sample);
                            }
                        }
                        Err(e) if e.is_abort() => {
                            return Err(e.context(&format!("scaling {}", contender.name)))
                        }
                        Err(e) => {
                            let message = format!(
                                "scaling-{connections} {} run {}: {e}",
                                contender.name,
                                run + 1
                            );
                            eprintln!("FAILED {message}");
                            self.failures.push(message);
                            dropped.insert(contender.name);
                        }
                    }
                }
            }
        }
        let idle = plan.trickle_connections;
        if u64::from(idle) + 64 > nofile_limit {
            notes.push(format!(
                "Scaling with {idle} idle connections skipped: the open-file limit is \
                 {nofile_limit}."
            ));
            return Ok(found);
        }
        for contender in contenders {
            if dropped.contains(contender.name) {
                continue;
            }
            match scaling::idle(contender, identity, tls, idle, plan.trickle_seconds) {
                Ok((point, _)) => {
                    eprintln!(
                        "[scaling-idle-{idle}] {:<28} server {:.0} B/connection, {:.1}% CPU, \
                         p50 {:.0} µs, p99 {:.0} µs",
                        contender.name,
                        point.server_bytes_per_conn,
                        point.server_cpu_percent,
                        point.p50_us,
                        point.p99_us
                    );
                    found.idle.push(point);
                }
                Err(e) if e.is_abort() => {
                    return Err(e.context(&format!("scaling idle {}", contender.name)))
                }
                Err(e) => {
                    let message = format!("scaling-idle-{idle} {}: {e}", contender.name);
                    eprintln!("FAILED {message}");
                    self.failures.push(message);
                }
            }
        }
        Ok(found)
    }

    fn note_negotiated(&mut self, contender: &str, negotiated: &Negotiated) {
        if self.negotiated.iter().any(|(c, _)| c == contender) {
            return;
        }
        if self.plan.verbose {
            eprintln!("{contender}: negotiated {negotiated}");
        }
        self.negotiated
            .push((contender.to_owned(), negotiated.to_string()));
    }
}

fn describe(sample: &Sample, unit: &str) -> String {
    match sample.cpu_s_per_gib {
        Some(cpu) => format!("{:.0} {unit}, {cpu:.2} CPU-s/GiB", sample.value),
        None => format!("{:.0} {unit}", sample.value),
    }
}
