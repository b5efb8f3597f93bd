//! The randomized check every channel passes: one writer, one reader, random
//! batch and take sizes, random rollbacks; nothing lost, duplicated or
//! reordered, and the channel's bounds held throughout.
//!
//! Public behind the `testing` feature so that a channel of another crate
//! (the `kafka` channel, a plugin's) is held to the same contract: add
//! `sluice-channels = { ..., features = ["testing"] }` to its
//! `[dev-dependencies]` and call [`one_writer_one_reader`].

use std::ops::Range;
use std::sync::Arc;

use sluice_core::prelude::*;

/// A small deterministic generator (xorshift), so failures reproduce.
pub struct Rng(pub u64);

impl Rng {
    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// The sizes of one run of [`one_writer_one_reader`].
pub struct Run {
    /// Printed with every failure, so the run can be repeated.
    pub seed: u64,
    /// The writer puts the numbers `0..total`.
    pub total: u32,
    /// The writer puts 1 to `max_put` events at a time.
    pub max_put: u64,
    /// The reader takes at most 1 to `max_take` events at a time.
    pub max_take: u64,
    /// Whether one rollback in two first takes the batch out of the
    /// transaction, so the channel must give back events it no longer holds
    /// a batch for.
    pub rollback_without_batch: bool,
}

/// A writer (drawing its sizes from `Rng(run.seed)`) puts `batch(range)` for
/// consecutive ranges covering `0..run.total`, then closes the channel.
/// Meanwhile one reader, drawing from `rng`, takes random amounts and rolls
/// back one take in four, committing the rest; `check` sees the channel's
/// stats after every take. Asserts that the committed events, read back by
/// `numbers`, are exactly `0..run.total` in order and that the drained
/// channel counts no events and no bytes.
pub async fn one_writer_one_reader<C: Channel>(
    ch: Arc<C>,
    rng: &mut Rng,
    run: &Run,
    batch: fn(Range<u32>) -> Batch,
    numbers: fn(&Batch) -> Vec<u32>,
    check: impl Fn(&ChannelStats),
) {
    let seed = run.seed;
    let total = run.total;
    let writer = {
        let ch = ch.clone();
        let mut rng = Rng(seed);
        let max_put = run.max_put;
        tokio::spawn(async move {
            let mut next = 0;
            while next < total {
                let n = (1 + rng.below(max_put) as u32).min(total - next);
                ch.put(batch(next..next + n)).await.unwrap();
                next += n;
            }
            ch.close();
        })
    };
    let mut committed: Vec<u32> = Vec::with_capacity(total as usize);
    while let Some(mut t) = ch.take(1 + rng.below(run.max_take) as usize).await.unwrap() {
        check(&ch.stats());
        match rng.below(4) {
            0 => t.rollback(),
            1 if run.rollback_without_batch => {
                let _ = t.take_batch();
                t.rollback();
            }
            _ => {
                committed.extend(numbers(t.batch()));
                t.commit().await.unwrap();
            }
        }
    }
    writer.await.unwrap();
    if let Some(at) = (0..total as usize).find(|&i| committed.get(i) != Some(&(i as u32))) {
        panic!(
            "seed {seed}: {} events committed of {total}; the first wrong one is #{at}: {:?} (the committed events around it: {:?})",
            committed.len(),
            committed.get(at),
            &committed[at.saturating_sub(3)..(at + 3).min(committed.len())]
        );
    }
    assert_eq!(
        committed.len(),
        total as usize,
        "seed {seed}: events committed twice"
    );
    let stats = ch.stats();
    assert_eq!(
        (stats.events, stats.bytes),
        (0, 0),
        "seed {seed}: event or byte accounting drifted"
    );
}
