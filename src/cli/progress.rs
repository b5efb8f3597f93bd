//! The progress bar of a bounded `sluice run` on a terminal.
//!
//! A source that knows how much it will read (a `file` source with
//! `follow: false`: the bytes left in its files; a `generator` with `count`)
//! declares it in its counters ([`ComponentMetrics::progress`]). When every
//! source of the pipeline does, and stderr is a terminal, and `--quiet` is
//! not given, a bar on stderr shows what was read of the total, events per
//! second and the time left. Anything else shows nothing.

use std::io::{IsTerminal, Write};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sluice_core::metrics::ComponentMetrics;
use sluice_runtime::topology::ComponentInfo;
use tokio::sync::oneshot;

/// How long sources get to declare their totals before the bar gives up.
const DECLARE_WITHIN: Duration = Duration::from_secs(2);
/// How often the bar is redrawn.
const REDRAW_EVERY: Duration = Duration::from_millis(100);

/// The bar on screen, if any: log lines are written above it.
static SHOWN: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Where log lines go: standard error, above the progress bar when one is
/// shown (so that neither garbles the other).
pub(super) struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let shown = SHOWN.lock().ok().and_then(|b| b.clone());
        match shown {
            Some(bar) => bar.suspend(|| std::io::stderr().write(buf)),
            None => std::io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// A running progress display; [`finish`](Self::finish) draws the final state.
pub(super) struct Progress {
    done: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Progress {
    /// Starts watching the sources of `components` when stderr is a
    /// terminal; the bar appears once every source has declared a total.
    pub(super) fn start(components: &[ComponentInfo]) -> Option<Progress> {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        let sources: Vec<Arc<ComponentMetrics>> = components
            .iter()
            .filter(|c| c.kind == "source")
            .map(|c| c.metrics.clone())
            .collect();
        if sources.is_empty() {
            return None;
        }
        let (done, rx) = oneshot::channel();
        let task = tokio::spawn(show(sources, rx));
        Some(Progress { done, task })
    }

    /// Draws the final state and leaves it on the terminal.
    pub(super) async fn finish(self) {
        let _ = self.done.send(());
        let _ = self.task.await;
    }
}

/// The sums over every source.
struct Totals {
    done: u64,
    total: u64,
    /// All in bytes; all in events; or mixed (shown as a percentage).
    unit: Unit,
    events: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Unit {
    Bytes,
    Events,
    Mixed,
}

/// `None` while some source has not declared a total (or never will).
fn totals(sources: &[Arc<ComponentMetrics>]) -> Option<Totals> {
    let mut t = Totals {
        done: 0,
        total: 0,
        unit: Unit::Mixed,
        events: 0,
    };
    let (mut bytes, mut events) = (0, 0);
    let mut permille = 0u64;
    for m in sources {
        let p = m.progress()?;
        t.done += p.done;
        t.total += p.total;
        if p.bytes {
            bytes += 1;
        } else {
            events += 1;
        }
        permille += (p.done.min(p.total) * 1000)
            .checked_div(p.total)
            .unwrap_or(1000);
        t.events += m.events_in.load(Relaxed);
    }
    if bytes == sources.len() {
        t.unit = Unit::Bytes;
    } else if events == sources.len() {
        t.unit = Unit::Events;
    } else {
        t.done = permille / sources.len() as u64;
        t.total = 1000;
    }
    Some(t)
}

fn show_bar(bar: Option<ProgressBar>) {
    if let Ok(mut shown) = SHOWN.lock() {
        *shown = bar;
    }
}

fn style(unit: Unit) -> ProgressStyle {
    let template = match unit {
        Unit::Bytes => "[{elapsed_precise}] [{wide_bar}] {binary_bytes}/{binary_total_bytes} read, {msg}, ETA {eta}",
        Unit::Events => "[{elapsed_precise}] [{wide_bar}] {human_pos}/{human_len} events, {msg}, ETA {eta}",
        Unit::Mixed => "[{elapsed_precise}] [{wide_bar}] {percent}%, {msg}, ETA {eta}",
    };
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

async fn show(sources: Vec<Arc<ComponentMetrics>>, mut done: oneshot::Receiver<()>) {
    let started = Instant::now();
    let mut ticker = tokio::time::interval(REDRAW_EVERY);
    // Wait for every source to declare its total.
    let first = loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = &mut done => return,
        }
        if let Some(t) = totals(&sources) {
            break t;
        }
        if started.elapsed() > DECLARE_WITHIN {
            // An unbounded source: no bar.
            return;
        }
    };
    let bar = ProgressBar::with_draw_target(Some(first.total), ProgressDrawTarget::stderr());
    bar.set_style(style(first.unit));
    bar.set_message("0 events/s");
    show_bar(Some(bar.clone()));
    // Events per second over the last second or so; at the end, the average.
    let mut window = (Instant::now(), first.events);
    let mut rate = 0.0;
    let mut finished = false;
    loop {
        if let Some(t) = totals(&sources) {
            let elapsed = window.0.elapsed();
            if finished {
                rate = t.events as f64 / started.elapsed().as_secs_f64().max(0.001);
            } else if elapsed >= Duration::from_millis(250) {
                rate = t.events.saturating_sub(window.1) as f64 / elapsed.as_secs_f64();
                if elapsed >= Duration::from_secs(1) {
                    window = (Instant::now(), t.events);
                }
            }
            bar.set_length(t.total);
            bar.set_position(t.done.min(t.total));
            bar.set_message(format!("{} events/s", rate.round() as u64));
        }
        if finished {
            show_bar(None);
            bar.finish();
            // The bar leaves the cursor at its end; logs go on below it.
            eprintln!();
            return;
        }
        tokio::select! {
            _ = ticker.tick() => {}
            _ = &mut done => finished = true,
        }
    }
}
