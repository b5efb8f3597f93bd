//! Splitting one batch's work over several threads (a processor's
//! `workers`).
//!
//! A run of consecutive links whose processors keep no state (each has
//! [`replicas`](super::emit::ChainLink::replicas)) is one segment. When a
//! batch is worth it, the segment cuts the batch into contiguous parts,
//! runs every part through the whole segment on its own thread (the
//! calling thread takes the first part, each other part one instance of
//! each processor), and joins the parts back in order: the events leave in
//! the order they came, and each part's failures keep their batch order.
//!
//! With `workers: auto` a batch is split only when the segment's measured
//! cost for it (a moving average of nanoseconds per event) is well above
//! what handing parts to threads costs, so cheap chains stay on one thread.

use std::time::{Duration, Instant};

use super::emit::{ChainLink, Failed};
use sluice_core::event::Batch;
use sluice_core::processor::{ProcessContext, Processor};

/// Fewest events in a part: smaller batches are not split.
const MIN_PART: usize = 64;
/// Least estimated work of a batch, in nanoseconds, for `auto` to split
/// it: starting a thread costs some tens of microseconds.
const MIN_WORK_NS: f64 = 400_000.0;
/// Weight of the newest measurement in the moving average.
const NEWEST: f64 = 0.2;

/// How to split one batch: over `parts` threads, for the first `links`
/// links of the chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Split {
    pub links: usize,
    pub parts: usize,
}

/// Whether a batch of `n` events is split at the start of `chain`, and how.
pub(crate) fn plan(chain: &[ChainLink], n: usize) -> Option<Split> {
    let links = chain.iter().take_while(|l| !l.replicas.is_empty()).count();
    let segment = &chain[..links];
    let threads = segment.iter().map(|l| l.replicas.len() + 1).min()?;
    let parts = threads.min(n / MIN_PART);
    if parts < 2 {
        return None;
    }
    let always = segment.iter().any(|l| l.always_split);
    let cost: f64 = segment.iter().map(|l| l.cost).sum();
    // An unmeasured link costs 0: its first batches run on one thread and
    // measure it.
    (always || cost * n as f64 >= MIN_WORK_NS).then_some(Split { links, parts })
}

/// Folds one measurement of `link` (`took` for `n` events) into its cost.
pub(crate) fn observe(link: &mut ChainLink, took: Duration, n: usize) {
    if n == 0 {
        return;
    }
    let per_event = took.as_nanos() as f64 / n as f64;
    link.cost = if link.cost == 0.0 {
        per_event
    } else {
        link.cost * (1.0 - NEWEST) + per_event * NEWEST
    };
}

/// Runs `links` over `batch` cut into `parts` parts on as many threads;
/// returns each link's failures, in batch order.
pub(crate) fn run(links: &mut [ChainLink], parts: usize, batch: &mut Batch) -> Vec<Failed> {
    let n = batch.len();
    // Cut from the end, so that the first part keeps the batch's vector.
    let mut cut: Vec<Batch> = Vec::with_capacity(parts);
    for p in (1..parts).rev() {
        let at = n * p / parts;
        cut.push(Batch::from(batch.events.split_off(at)));
    }
    cut.push(std::mem::take(batch));
    cut.reverse();

    // Each thread's processors: the links' own for the first part, their
    // replicas for the others.
    let mut own: Vec<Vec<&mut Box<dyn Processor>>> = (0..parts).map(|_| Vec::new()).collect();
    let mut shared = Vec::with_capacity(links.len());
    for link in links.iter_mut() {
        let ChainLink {
            id,
            processor,
            replicas,
            dead_letter,
            metrics,
            count_io,
            ..
        } = link;
        own[0].push(processor);
        for (w, r) in replicas.iter_mut().take(parts - 1).enumerate() {
            own[w + 1].push(r);
        }
        shared.push(Shared {
            id,
            metrics,
            to_dead_letter: dead_letter.is_some(),
            count_io: *count_io,
        });
    }
    let shared = &shared;

    let done: Vec<Part> = std::thread::scope(|s| {
        let mut work = own.into_iter().zip(cut);
        let first = work.next();
        let handles: Vec<_> = work
            .map(|(procs, part)| s.spawn(move || run_part(procs, shared, part)))
            .collect();
        let mut done = Vec::with_capacity(parts);
        if let Some((procs, part)) = first {
            done.push(run_part(procs, shared, part));
        }
        for h in handles {
            match h.join() {
                Ok(part) => done.push(part),
                // A processor panicked: the contract says it never does;
                // carry the panic to the task, as on one thread.
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        done
    });

    // Join the parts in order, and each link's failures in the same order.
    let mut failed: Vec<Failed> = (0..links.len()).map(|_| Failed::default()).collect();
    let mut busy = Duration::ZERO;
    for (i, part) in done.into_iter().enumerate() {
        busy += part.busy;
        if i == 0 {
            *batch = part.batch;
        } else {
            batch.events.extend(part.batch.events);
        }
        for (f, p) in failed.iter_mut().zip(part.failed) {
            f.append(p);
        }
    }
    // The segment is timed as a whole: its links share the time the
    // threads were busy.
    let per_link = busy / links.len().max(1) as u32;
    for link in links.iter_mut() {
        observe(link, per_link, n);
    }
    failed
}

/// What every thread may read of a link.
struct Shared<'a> {
    id: &'a str,
    metrics: &'a std::sync::Arc<sluice_core::metrics::ComponentMetrics>,
    to_dead_letter: bool,
    count_io: bool,
}

/// One part, run through the segment.
struct Part {
    batch: Batch,
    failed: Vec<Failed>,
    busy: Duration,
}

fn run_part(procs: Vec<&mut Box<dyn Processor>>, links: &[Shared<'_>], mut batch: Batch) -> Part {
    let started = Instant::now();
    let mut cx = ProcessContext::new();
    let mut failed = Vec::with_capacity(links.len());
    for (processor, link) in procs.into_iter().zip(links) {
        if batch.is_empty() {
            failed.push(Failed::default());
            continue;
        }
        if link.count_io {
            link.metrics.record_in(&batch);
        }
        let before = batch.len();
        cx.set_metrics(link.metrics.clone());
        processor.process(&mut batch, &mut cx);
        if batch.len() < before {
            link.metrics.record_discarded(before - batch.len());
        }
        let failures = cx.take_failures();
        failed.push(if failures.is_empty() {
            Failed::default()
        } else {
            Failed::sort_out(
                link.id,
                link.metrics,
                link.to_dead_letter,
                &mut batch,
                failures,
            )
        });
        if link.count_io {
            link.metrics.record_out(&batch);
            link.metrics.tap.offer(&batch);
        }
    }
    Part {
        batch,
        failed,
        busy: started.elapsed(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use sluice_core::event::{Event, Timestamp, Value};
    use sluice_core::metrics::ComponentMetrics;

    /// Marks each event with its thread, fails every seventh.
    struct Mark;
    impl Processor for Mark {
        fn process(&mut self, batch: &mut Batch, cx: &mut ProcessContext) {
            let thread = format!("{:?}", std::thread::current().id());
            for (i, e) in batch.events.iter_mut().enumerate() {
                let n: usize = std::str::from_utf8(&e.body)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                if n.is_multiple_of(7) {
                    cx.fail(i, format!("{n} is a multiple of 7"));
                }
                e.insert("thread", thread.as_str());
            }
        }
    }

    /// Drops odd events.
    struct Even;
    impl Processor for Even {
        fn process(&mut self, batch: &mut Batch, _cx: &mut ProcessContext) {
            batch
                .events
                .retain(|e| e.body.last().is_some_and(|b| b % 2 == 0));
        }
    }

    fn link(id: &str, p: fn() -> Box<dyn Processor>, threads: usize) -> ChainLink {
        let mut l = ChainLink::new(id, p(), None, Arc::new(ComponentMetrics::default()), true);
        l.replicas = (1..threads).map(|_| p()).collect();
        l.always_split = true;
        l
    }

    fn numbers(n: usize) -> Batch {
        let t = Timestamp::now();
        Batch::from(
            (0..n)
                .map(|i| Event::new(i.to_string().into_bytes(), t))
                .collect::<Vec<_>>(),
        )
    }

    fn bodies(events: &[Event]) -> Vec<String> {
        events
            .iter()
            .map(|e| String::from_utf8_lossy(&e.body).into_owned())
            .collect()
    }

    #[test]
    fn a_split_batch_comes_back_in_order_with_failures_in_order() {
        let mut chain = vec![
            link("mark", || Box::new(Mark), 3),
            link("even", || Box::new(Even), 3),
        ];
        let split = plan(&chain, 1000).expect("a batch of 1000 is split");
        assert_eq!(split, Split { links: 2, parts: 3 });
        let mut batch = numbers(1000);
        let failed = run(&mut chain, split.parts, &mut batch);

        let expected: Vec<String> = (0..1000)
            .filter(|n| n % 2 == 0)
            .map(|n| n.to_string())
            .collect();
        assert_eq!(bodies(&batch.events), expected);
        let threads: std::collections::BTreeSet<String> = batch
            .events
            .iter()
            .filter_map(|e| match e.get("thread") {
                Some(Value::String(b)) => Some(String::from_utf8_lossy(b).into_owned()),
                _ => None,
            })
            .collect();
        assert_eq!(threads.len(), 3, "three threads did the work");

        // Without a dead letter, failed events pass on; each is counted once.
        assert_eq!(failed[0].count, 143);
        assert_eq!(chain[0].metrics.errors.load(Relaxed), 143);
        assert_eq!(chain[0].metrics.events_in.load(Relaxed), 1000);
        assert_eq!(chain[1].metrics.events_out.load(Relaxed), 500);
        assert_eq!(chain[1].metrics.discarded.load(Relaxed), 500);
        assert!(chain[0].cost > 0.0, "the split run was measured");
    }

    #[test]
    fn failed_events_leave_for_the_dead_letter_in_batch_order() {
        let mut mark = link("mark", || Box::new(Mark), 4);
        // Only whether a dead letter is configured matters while splitting.
        mark.dead_letter = Some(Arc::new(Nowhere));
        let mut chain = vec![mark];
        let mut batch = numbers(1000);
        let failed = run(&mut chain, 4, &mut batch);
        let dead: Vec<String> = bodies(&failed[0].dead);
        let expected: Vec<String> = (0..1000)
            .filter(|n| n % 7 == 0)
            .map(|n| n.to_string())
            .collect();
        assert_eq!(dead, expected);
        assert_eq!(batch.len(), 1000 - expected.len());
        assert!(failed[0].dead.iter().all(|e| e.get("error").is_some()));
    }

    #[test]
    fn auto_splits_only_what_is_worth_it() {
        let mut chain = vec![link("mark", || Box::new(Mark), 2)];
        chain[0].always_split = false;
        assert_eq!(plan(&chain, 1000), None, "unmeasured: one thread first");
        chain[0].cost = 10.0;
        assert_eq!(
            plan(&chain, 1000),
            None,
            "10 µs a batch: not worth a thread"
        );
        chain[0].cost = 5_000.0;
        assert_eq!(plan(&chain, 1000), Some(Split { links: 1, parts: 2 }));
        assert_eq!(plan(&chain, 100), None, "too few events to split");
    }

    use std::sync::atomic::Ordering::Relaxed;

    struct Nowhere;
    #[async_trait::async_trait]
    impl sluice_core::channel::Channel for Nowhere {
        async fn put(&self, _batch: Batch) -> Result<(), sluice_core::channel::ChannelError> {
            Ok(())
        }
        async fn take(
            &self,
            _max: usize,
        ) -> Result<Option<sluice_core::channel::Transaction>, sluice_core::channel::ChannelError>
        {
            Ok(None)
        }
        fn close(&self) {}
        fn stats(&self) -> sluice_core::channel::ChannelStats {
            sluice_core::channel::ChannelStats::default()
        }
    }
}
