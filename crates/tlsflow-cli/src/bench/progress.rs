//! Progress on stderr: a redrawn bar on a terminal, a plain line every 10 % otherwise (logs
//! and CI output stay readable).

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::units::{human_bytes, megabytes_per_second};

const TICK: Duration = Duration::from_millis(100);
const BAR_WIDTH: usize = 30;

/// A progress reporter running on its own thread until [`finish`](Progress::finish).
pub(crate) struct Progress {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    /// Reports `done` (read from `count`) against `total` until finished.
    pub(crate) fn start<C>(total: u64, count: C) -> Progress
    where
        C: Fn() -> u64 + Send + 'static,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let terminal = std::io::stderr().is_terminal();
        let thread = thread::Builder::new()
            .name("progress".into())
            .spawn(move || report(total, &count, &flag, terminal))
            .ok();
        Progress { stop, thread }
    }

    /// Stops reporting (drawing the bar one last time).
    pub(crate) fn finish(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop_now();
    }
}

fn report(total: u64, count: &dyn Fn() -> u64, stop: &AtomicBool, terminal: bool) {
    let started = Instant::now();
    let mut tenths = 1u64; // the next tenth of the total to report as a plain line
    let mut ticks = 0u64;
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        let done = count().min(total);
        let rate = megabytes_per_second(done, started.elapsed());
        if terminal {
            if stopping || ticks.is_multiple_of(2) {
                draw_bar(done, total, rate, stopping);
            }
        } else {
            // At most one line per tick, for the highest tenth crossed.
            let crossed = if total == 0 {
                10
            } else {
                (u128::from(done) * 10 / u128::from(total)) as u64
            };
            if crossed >= tenths {
                eprintln!(
                    "progress: {:3}% ({} of {}, {rate:.1} MB/s)",
                    crossed * 10,
                    human_bytes(done),
                    human_bytes(total)
                );
                tenths = crossed + 1;
            }
        }
        if stopping {
            return;
        }
        ticks += 1;
        thread::sleep(TICK);
    }
}

fn draw_bar(done: u64, total: u64, rate: f64, last: bool) {
    let fraction = if total == 0 {
        1.0
    } else {
        done as f64 / total as f64
    };
    let filled = ((fraction * BAR_WIDTH as f64) as usize).min(BAR_WIDTH);
    let bar = format!("{}{}", "#".repeat(filled), "-".repeat(BAR_WIDTH - filled));
    let mut stderr = std::io::stderr().lock();
    let _ = write!(
        stderr,
        "\r[{bar}] {:5.1}%  {} / {}  {rate:8.1} MB/s ",
        fraction * 100.0,
        human_bytes(done),
        human_bytes(total)
    );
    if last {
        let _ = writeln!(stderr);
    }
    let _ = stderr.flush();
}
