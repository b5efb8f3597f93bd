//! A sink that acknowledges later, run by the sink runner over a real
//! memory channel: takes are committed only once durable, a lost sync
//! brings its batches back in order, and the end of input syncs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use sluice_channels::memory::{MemoryChannel, MemoryConfig};
use sluice_core::channel::Channel;
use sluice_core::event::{Batch, Event, Timestamp};
use sluice_core::sink::{Sink, SinkError};
use sluice_core::warn::WarnLimiter;
use tokio_util::sync::CancellationToken;

use super::runner::SinkRunner;

/// Keeps written events in `pending` until a sync moves them to `stored`;
/// the `fail_syncs` first syncs fail, losing what was pending.
#[derive(Default)]
struct Shared {
    stored: Mutex<Vec<String>>,
    /// At each sync: the channel's committed events, and the events stored.
    committed_at_sync: Mutex<Vec<(u64, u64)>>,
}

struct Later {
    shared: Arc<Shared>,
    input: Arc<MemoryChannel>,
    pending: Vec<String>,
    written: u64,
    durable: u64,
    fail_syncs: usize,
    syncs: Arc<AtomicU64>,
}

#[async_trait]
impl Sink for Later {
    async fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        for e in &batch.events {
            self.pending
                .push(String::from_utf8_lossy(&e.body).into_owned());
        }
        self.written += 1;
        Ok(())
    }
    fn acknowledges_later(&self) -> bool {
        true
    }
    fn durable(&self) -> u64 {
        self.durable
    }
    async fn sync(&mut self) -> Result<(), SinkError> {
        self.syncs.fetch_add(1, Ordering::SeqCst);
        let committed = self.input.stats().committed_events;
        let stored = self.shared.stored.lock().unwrap().len() as u64;
        self.shared
            .committed_at_sync
            .lock()
            .unwrap()
            .push((committed, stored));
        if self.fail_syncs > 0 {
            self.fail_syncs -= 1;
            self.pending.clear();
            self.written = self.durable;
            return Err(SinkError::Retry("commit failed".into()));
        }
        self.shared.stored.lock().unwrap().append(&mut self.pending);
        self.durable = self.written;
        Ok(())
    }
    fn sync_interval(&self) -> Duration {
        Duration::from_millis(50)
    }
}

fn numbered(from: usize, n: usize) -> Batch {
    Batch::from(
        (from..from + n)
            .map(|i| Event::new(i.to_string(), Timestamp(0)))
            .collect::<Vec<_>>(),
    )
}

async fn run(fail_syncs: usize) -> (Vec<String>, Vec<(u64, u64)>, u64) {
    let config = MemoryConfig {
        capacity: std::num::NonZeroUsize::new(100).expect("non-zero"),
        max_bytes: None,
        when_full: Default::default(),
    };
    let input = Arc::new(MemoryChannel::new(&config));
    let shared = Arc::new(Shared::default());
    let syncs = Arc::new(AtomicU64::new(0));
    let writer = {
        let input = input.clone();
        tokio::spawn(async move {
            for b in 0..20 {
                input.put(numbered(b * 10, 10)).await.expect("put");
            }
            input.close();
        })
    };
    let runner = SinkRunner {
        id: "later".into(),
        input: input.clone(),
        sink: Box::new(Later {
            shared: shared.clone(),
            input: input.clone(),
            pending: Vec::new(),
            written: 0,
            durable: 0,
            fail_syncs,
            syncs: syncs.clone(),
        }),
        dead_letter: None,
        metrics: Arc::default(),
        batch_size: 10,
        batch_timeout: None,
        shutdown: CancellationToken::new(),
        stop: CancellationToken::new(),
        warn: WarnLimiter::default(),
        _guards: Vec::new(),
    };
    let ran = tokio::time::timeout(Duration::from_secs(30), runner.run()).await;
    assert!(matches!(ran, Ok(Ok(()))), "the runner ends: {ran:?}");
    writer.await.expect("writer");
    assert_eq!(input.stats().committed_events, 200, "every take committed");
    let stored = shared.stored.lock().unwrap().clone();
    let at_sync = shared.committed_at_sync.lock().unwrap().clone();
    (stored, at_sync, syncs.load(Ordering::SeqCst))
}

#[tokio::test]
async fn takes_are_committed_only_after_the_sync_that_covers_them() {
    let (stored, at_sync, syncs) = run(0).await;
    let expected: Vec<String> = (0..200).map(|i| i.to_string()).collect();
    assert_eq!(stored, expected, "every event once, in order");
    // A capacity of 100 events: the runner syncs once half of it is open,
    // so a sync covers several batches, never the whole input at once.
    assert!(syncs >= 4, "{syncs} syncs");
    // At each sync the channel has committed exactly what earlier syncs
    // made durable: nothing before it was stored, nothing stored left open.
    for (committed, stored) in at_sync {
        assert_eq!(committed, stored, "committed before a sync");
    }
}

#[tokio::test]
async fn a_failed_sync_brings_its_batches_back_in_order() {
    let (stored, _, _) = run(2).await;
    let expected: Vec<String> = (0..200).map(|i| i.to_string()).collect();
    assert_eq!(
        stored, expected,
        "what a failed sync lost is written again, in order, once stored"
    );
}
