use std::path::Path;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use super::*;
use crate::testing::{one_writer_one_reader, Rng, Run};

fn batch(range: std::ops::Range<u32>) -> Batch {
    range
        .map(|i| {
            let mut e = Event::new(i.to_string(), Timestamp(i64::from(i)));
            if i.is_multiple_of(3) {
                e.insert("n", i64::from(i));
            }
            e
        })
        .collect::<Vec<_>>()
        .into()
}

fn numbers(b: &Batch) -> Vec<u32> {
    b.iter()
        .map(|e| {
            let n: u32 = std::str::from_utf8(&e.body).unwrap().parse().unwrap();
            assert_eq!(e.timestamp, Timestamp(i64::from(n)));
            if n.is_multiple_of(3) {
                assert_eq!(e.get("n"), Some(&Value::Integer(i64::from(n))));
            }
            n
        })
        .collect()
}

fn config(dir: &Path, extra: &str) -> DiskConfig {
    sluice_core::config::from_yaml_str(&format!("path: {}\n{extra}", dir.display())).unwrap()
}

fn open(dir: &Path, extra: &str) -> DiskChannel {
    DiskChannel::open(&config(dir, extra), Path::new("/nonexistent")).unwrap()
}

fn segments(dir: &Path) -> usize {
    log::list_segments(dir).unwrap().len()
}

#[test]
fn config_defaults_and_unknown_keys() {
    let c: DiskConfig = sluice_core::config::from_yaml_str("{}").unwrap();
    assert_eq!(c.sync, SyncPolicy::Interval);
    assert_eq!(c.sync_interval.get(), StdDuration::from_secs(1));
    assert_eq!(c.max_bytes, ByteSize(1 << 30));
    assert_eq!(c.max_segment_bytes, ByteSize(64 << 20));
    assert!(c.validate().is_empty());
    let c: DiskConfig = sluice_core::config::from_yaml_str(
        "sync: always\nmax_bytes: 10MiB\nmax_segment_bytes: 1MiB\nwhen_full: drop_newest",
    )
    .unwrap();
    assert_eq!(c.sync, SyncPolicy::Always);
    let e = sluice_core::config::from_yaml_str::<DiskConfig>("max_byte: 5").unwrap_err();
    assert!(
        e.message.contains("did you mean `max_bytes`"),
        "{}",
        e.message
    );
    assert!(sluice_core::config::from_yaml_str::<DiskConfig>("sync: sometimes").is_err());
    let c: DiskConfig = sluice_core::config::from_yaml_str("max_segment_bytes: 10").unwrap();
    assert_eq!(c.validate().len(), 1);
}

#[tokio::test]
async fn take_commit_in_order_and_drains_after_close() {
    let dir = tempfile::tempdir().unwrap();
    let ch = open(dir.path(), "");
    assert!(ch.is_durable());
    ch.put(batch(0..5)).await.unwrap();
    ch.put(batch(5..10)).await.unwrap();
    let t = ch.take(7).await.unwrap().unwrap();
    assert_eq!(numbers(t.batch()), (0..7).collect::<Vec<_>>());
    t.commit().await.unwrap();
    ch.close();
    assert!(ch.put(batch(0..1)).await.is_err());
    let t = ch.take(100).await.unwrap().unwrap();
    assert_eq!(numbers(t.batch()), [7, 8, 9]);
    t.commit().await.unwrap();
    assert!(ch.take(100).await.unwrap().is_none());
    let s = ch.stats();
    assert_eq!((s.events, s.bytes, s.committed_events), (0, 0, 10));
}

#[tokio::test]
async fn rollback_puts_events_back_first_with_or_without_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let ch = open(dir.path(), "");
    ch.put(batch(0..3)).await.unwrap();
    ch.put(batch(3..6)).await.unwrap();
    let t = ch.take(4).await.unwrap().unwrap();
    drop(t);
    let mut t = ch.take(2).await.unwrap().unwrap();
    assert_eq!(numbers(t.batch()), [0, 1]);
    // A holder that consumed the batch: the events are read back from disk.
    let _ = t.take_batch();
    t.rollback();
    let t = ch.take(100).await.unwrap().unwrap();
    assert_eq!(numbers(t.batch()), [0, 1, 2, 3, 4, 5]);
    assert_eq!(ch.stats().events, 6);
}

#[tokio::test]
async fn uncommitted_events_come_back_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let ch = open(dir.path(), "");
        ch.put(batch(0..10)).await.unwrap();
        ch.put(batch(10..20)).await.unwrap();
        ch.put(batch(20..30)).await.unwrap();
        let t = ch.take(15).await.unwrap().unwrap();
        t.commit().await.unwrap();
        // Commit entries are written right after a commit returns; a crash
        // before that delivers the events again. Wait for them here.
        ch.sync().await.unwrap();
        // Taken, never committed: as if the process died here.
        let t = ch.take(3).await.unwrap().unwrap();
        std::mem::forget(t);
        ch.crash();
    }
    let ch = open(dir.path(), "");
    assert_eq!(ch.stats().events, 15);
    ch.close();
    let mut seen = Vec::new();
    while let Some(t) = ch.take(4).await.unwrap() {
        seen.extend(numbers(t.batch()));
        t.commit().await.unwrap();
    }
    assert_eq!(seen, (15..30).collect::<Vec<_>>());
    drop(ch);
    // Everything committed: the next open finds nothing and deletes the segment.
    tokio::time::sleep(StdDuration::from_millis(50)).await;
    let ch = open(dir.path(), "");
    assert_eq!(ch.stats().events, 0);
    assert_eq!(segments(dir.path()), 0);
}

#[tokio::test]
async fn committed_records_stay_committed_through_several_restarts() {
    let dir = tempfile::tempdir().unwrap();
    {
        let ch = open(dir.path(), "");
        ch.put(batch(0..10)).await.unwrap();
        ch.put(batch(10..20)).await.unwrap();
        ch.put(batch(20..30)).await.unwrap();
        let t = ch.take(10).await.unwrap().unwrap();
        t.commit().await.unwrap();
        ch.sync().await.unwrap();
    }
    // The first record is committed, its segment still holds the others:
    // each restart (which compacts the commit log) must remember it.
    for restart in 0..3 {
        let ch = open(dir.path(), "");
        assert_eq!(ch.stats().events, 20, "restart {restart}");
        drop(ch);
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
    let ch = open(dir.path(), "");
    ch.close();
    let mut seen = Vec::new();
    while let Some(t) = ch.take(7).await.unwrap() {
        seen.extend(numbers(t.batch()));
        t.commit().await.unwrap();
    }
    assert_eq!(seen, (10..30).collect::<Vec<_>>());
}

#[tokio::test]
async fn committed_segments_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let ch = open(dir.path(), "max_segment_bytes: 4KiB");
    for i in 0..50 {
        ch.put(batch(i * 20..(i + 1) * 20)).await.unwrap();
    }
    let before = segments(dir.path());
    assert!(before >= 3, "{before} segments");
    let mut seen = Vec::new();
    while seen.len() < 1000 {
        let t = ch.take(100).await.unwrap().unwrap();
        seen.extend(numbers(t.batch()));
        t.commit().await.unwrap();
    }
    assert_eq!(seen, (0..1000).collect::<Vec<_>>());
    // Only the active segment is left (deleted by the writer thread).
    let start = std::time::Instant::now();
    while segments(dir.path()) > 1 && start.elapsed() < StdDuration::from_secs(10) {
        tokio::time::sleep(StdDuration::from_millis(10)).await;
    }
    assert_eq!(segments(dir.path()), 1);
    assert_eq!(ch.stats().bytes, 0);
}

#[tokio::test]
async fn full_channel_blocks_until_commit_and_drop_newest_discards() {
    let dir = tempfile::tempdir().unwrap();
    let ch = Arc::new(open(dir.path(), "max_bytes: 200"));
    ch.put(batch(0..20)).await.unwrap();
    let c2 = ch.clone();
    let writer = tokio::spawn(async move { c2.put(batch(20..40)).await });
    tokio::time::sleep(StdDuration::from_millis(50)).await;
    assert!(!writer.is_finished(), "put must wait while full");
    let t = ch.take(100).await.unwrap().unwrap();
    tokio::time::sleep(StdDuration::from_millis(20)).await;
    assert!(!writer.is_finished(), "taken events count until commit");
    t.commit().await.unwrap();
    writer.await.unwrap().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let ch = open(dir.path(), "max_bytes: 200\nwhen_full: drop_newest");
    ch.put(batch(0..20)).await.unwrap();
    ch.put(batch(20..40)).await.unwrap();
    let s = ch.stats();
    assert_eq!((s.events, s.discarded_events), (20, 20));
}

#[tokio::test]
async fn capacity_bounds_events_until_commit_and_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let ch = Arc::new(open(dir.path(), "capacity: 30"));
        assert_eq!(ch.stats().capacity, Some(30));
        ch.put(batch(0..20)).await.unwrap();
        let c2 = ch.clone();
        let writer = tokio::spawn(async move { c2.put(batch(20..40)).await });
        tokio::time::sleep(StdDuration::from_millis(50)).await;
        assert!(!writer.is_finished(), "40 events do not fit in 30");
        let t = ch.take(5).await.unwrap().unwrap();
        t.commit().await.unwrap();
        tokio::time::sleep(StdDuration::from_millis(20)).await;
        assert!(!writer.is_finished(), "35 events do not fit either");
        let t = ch.take(10).await.unwrap().unwrap();
        t.commit().await.unwrap();
        writer.await.unwrap().unwrap();
        assert_eq!(ch.stats().events, 25);
        ch.sync().await.unwrap();
    }
    // The 25 pending events still count after a restart.
    let ch = open(
        dir.path(),
        "capacity: 30
when_full: drop_newest",
    );
    ch.put(batch(40..50)).await.unwrap();
    let s = ch.stats();
    assert_eq!((s.events, s.discarded_events), (25, 10));
    ch.close();
    let mut seen = Vec::new();
    while let Some(t) = ch.take(100).await.unwrap() {
        seen.extend(numbers(t.batch()));
        t.commit().await.unwrap();
    }
    assert_eq!(seen, (15..40).collect::<Vec<_>>());
    let e = config(dir.path(), "capacity: 0").validate();
    assert_eq!(e.len(), 1);
}

/// Flips a byte inside the second record's payload and cuts the segment in
/// the middle of the last one: both are skipped and counted, all else is
/// delivered, and `repair` leaves a channel that opens cleanly.
#[tokio::test]
async fn recovery_skips_corrupt_and_torn_records() {
    let dir = tempfile::tempdir().unwrap();
    {
        let ch = open(dir.path(), "");
        for i in 0..5 {
            ch.put(batch(i * 10..(i + 1) * 10)).await.unwrap();
        }
    }
    tokio::time::sleep(StdDuration::from_millis(50)).await;
    let (_, seg) = log::list_segments(dir.path()).unwrap().remove(0);
    let scan = log::scan_segment(&seg, 0).unwrap();
    assert_eq!(scan.records.len(), 5);
    let mut data = std::fs::read(&seg).unwrap();
    let second = scan.records[1].offset as usize + log::HEADER_LEN + 3;
    data[second] ^= 0x55;
    let last = scan.records[4].offset as usize + 10;
    data.truncate(last);
    std::fs::write(&seg, &data).unwrap();

    let (_, _, summary) = inspect(dir.path(), |_, _| {}).unwrap();
    assert_eq!((summary.records, summary.corrupt, summary.torn), (3, 1, 1));
    assert_eq!(summary.pending_events, 30);

    let ch = open(dir.path(), "");
    assert_eq!(ch.corrupt_records(), 2);
    ch.close();
    let mut seen = Vec::new();
    while let Some(t) = ch.take(100).await.unwrap() {
        seen.extend(numbers(t.batch()));
        t.commit().await.unwrap();
    }
    let want: Vec<u32> = (0..10).chain(20..40).collect();
    assert_eq!(seen, want);

    // Repair on a copy of the damaged data.
    let dir2 = tempfile::tempdir().unwrap();
    std::fs::write(log::segment_path(dir2.path(), 0), &data).unwrap();
    let (fixed, bad_commits) = repair(dir2.path()).unwrap();
    assert_eq!((fixed.len(), bad_commits), (1, 0));
    assert_eq!(fixed[0].removed.len(), 2);
    let (_, _, s) = inspect(dir2.path(), |_, _| {}).unwrap();
    assert_eq!(
        (s.records, s.corrupt, s.torn, s.pending_events),
        (3, 0, 0, 30)
    );
}

#[tokio::test]
async fn garbage_headers_are_skipped_by_resynchronising() {
    let dir = tempfile::tempdir().unwrap();
    {
        let ch = open(dir.path(), "");
        for i in 0..4 {
            ch.put(batch(i * 10..(i + 1) * 10)).await.unwrap();
        }
    }
    tokio::time::sleep(StdDuration::from_millis(50)).await;
    let (_, seg) = log::list_segments(dir.path()).unwrap().remove(0);
    let scan = log::scan_segment(&seg, 0).unwrap();
    let mut data = std::fs::read(&seg).unwrap();
    // Smash the header of the second record.
    let at = scan.records[1].offset as usize;
    for b in &mut data[at..at + 8] {
        *b = 0xAB;
    }
    std::fs::write(&seg, &data).unwrap();
    let ch = open(dir.path(), "");
    ch.close();
    let mut seen = Vec::new();
    while let Some(t) = ch.take(100).await.unwrap() {
        seen.extend(numbers(t.batch()));
        t.commit().await.unwrap();
    }
    assert_eq!(seen, (0..10).chain(20..40).collect::<Vec<_>>());
}

/// Two writers put their own numbers in random batch sizes while two
/// readers take random amounts, randomly commit or roll back (with or
/// without the batch), and the channel is reopened now and then with taken
/// events left uncommitted. Whatever happens: every number is committed at
/// least once, nothing is committed twice except what a reopen gave back,
/// and a tiny cache and small segments force reads from disk and deletions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_puts_takes_rollbacks_and_restarts_lose_nothing() {
    for seed in 1..=12u64 {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let extra = format!(
            "max_bytes: {}\nmax_segment_bytes: 4KiB\ncache_bytes: {}\nsync: {}",
            200 + rng.below(3000),
            rng.below(600),
            ["always", "interval", "never"][rng.below(3) as usize]
        );
        let per_writer = 1500u32;
        let mut committed: Vec<u32> = Vec::new();
        let mut next = [0u32; 2];
        for round in 0..3 {
            let ch = Arc::new(open(dir.path(), &extra));
            let last = round == 2;
            let writers: Vec<_> = (0..2u32)
                .map(|w| {
                    let ch = ch.clone();
                    let mut rng = Rng(seed * 31 + u64::from(w) + round * 7);
                    let start = next[w as usize];
                    let stop = if last {
                        per_writer
                    } else {
                        (per_writer / 3) * (round as u32 + 1)
                    };
                    tokio::spawn(async move {
                        let mut i = start;
                        while i < stop {
                            let n = (1 + rng.below(40) as u32).min(stop - i);
                            let b: Batch = (i..i + n)
                                .map(|x| Event::new((x + w * 1_000_000).to_string(), Timestamp(0)))
                                .collect::<Vec<_>>()
                                .into();
                            ch.put(b).await.unwrap();
                            i += n;
                        }
                        i
                    })
                })
                .collect();
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let readers: Vec<_> = (0..2u64)
                .map(|r| {
                    let ch = ch.clone();
                    let stop = stop.clone();
                    let mut rng = Rng(seed * 131 + r + round * 3);
                    tokio::spawn(async move {
                        let mut got = Vec::new();
                        loop {
                            let max = 1 + rng.below(60) as usize;
                            let t = match tokio::time::timeout(
                                StdDuration::from_millis(20),
                                ch.take(max),
                            )
                            .await
                            {
                                Ok(t) => t.unwrap(),
                                Err(_) if stop.load(std::sync::atomic::Ordering::SeqCst) => break,
                                Err(_) => continue,
                            };
                            let Some(mut t) = t else { break };
                            match rng.below(6) {
                                0 => t.rollback(),
                                1 => {
                                    let _ = t.take_batch();
                                    t.rollback();
                                }
                                _ => {
                                    got.extend(t.batch().iter().map(|e| {
                                        std::str::from_utf8(&e.body)
                                            .unwrap()
                                            .parse::<u32>()
                                            .unwrap()
                                    }));
                                    t.commit().await.unwrap();
                                }
                            }
                        }
                        got
                    })
                })
                .collect();
            for (w, h) in writers.into_iter().enumerate() {
                next[w] = h.await.unwrap();
            }
            if last {
                ch.close();
            } else {
                stop.store(true, std::sync::atomic::Ordering::SeqCst);
            }
            for h in readers {
                committed.extend(h.await.unwrap());
            }
            assert_eq!(
                ch.corrupt_records(),
                0,
                "seed {seed}: a record read back damaged"
            );
            if !last {
                ch.sync().await.unwrap();
                // Leave some events taken and uncommitted, then "crash".
                if let Ok(Ok(Some(t))) =
                    tokio::time::timeout(StdDuration::from_millis(20), ch.take(7)).await
                {
                    std::mem::forget(t);
                }
                ch.crash();
            }
        }
        let mut sorted = committed.clone();
        sorted.sort_unstable();
        sorted.dedup();
        let want: Vec<u32> = (0..per_writer)
            .chain(1_000_000..1_000_000 + per_writer)
            .collect();
        let lost: Vec<&u32> = want
            .iter()
            .filter(|x| sorted.binary_search(x).is_err())
            .collect();
        assert!(
            lost.is_empty(),
            "seed {seed} ({extra}): lost {} events: {:?}",
            lost.len(),
            &lost[..lost.len().min(20)]
        );
        assert_eq!(sorted, want, "seed {seed}: unexpected events");
        assert!(
            committed.len() - sorted.len() <= 2 * 7,
            "seed {seed}: {} duplicates",
            committed.len() - sorted.len()
        );
        let ch = open(dir.path(), &extra);
        assert_eq!(ch.stats().events, 0, "seed {seed}");
    }
}

/// One writer, one reader taking random amounts and rolling back at
/// random (with or without the batch), small segments and a tiny cache:
/// the committed events are exactly the put ones, in order, and the channel
/// never holds more than `max_bytes` (plus one record, which may pass alone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_reader_sees_everything_in_order_through_rollbacks() {
    for seed in 1..=10u64 {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D));
        let max_bytes = 300 + rng.below(2000);
        let ch = Arc::new(open(
            dir.path(),
            &format!(
                "max_bytes: {max_bytes}\nmax_segment_bytes: 4KiB\ncache_bytes: {}",
                rng.below(2000)
            ),
        ));
        let run = Run {
            seed,
            total: 3000,
            max_put: 30,
            max_take: 50,
            rollback_without_batch: true,
        };
        one_writer_one_reader(ch, &mut rng, &run, batch, numbers, |stats| {
            // A record is at most 30 events of at most 16 bytes plus its header.
            assert!(stats.bytes <= max_bytes + 600, "seed {seed}: {stats:?}");
        })
        .await;
    }
}

/// Several writers at once: a put finding the writer busy goes through the
/// writer thread, one finding it free writes itself; small segments make
/// rolls (always on the writer thread) frequent. After a restart halfway
/// every event is there exactly once, each writer's in its order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_through_both_write_paths_lose_nothing() {
    const WRITERS: u32 = 4;
    const PER_WRITER: u32 = 20_000;
    const BATCH: u32 = 50;
    let dir = tempfile::tempdir().unwrap();
    let extra = "max_segment_bytes: 64KiB\nsync: interval\nsync_interval: 10ms";
    let put_all = |ch: Arc<DiskChannel>, from: u32, to: u32| {
        (0..WRITERS)
            .map(|w| {
                let ch = ch.clone();
                tokio::spawn(async move {
                    let base = w * PER_WRITER;
                    for start in (from..to).step_by(BATCH as usize) {
                        let end = (start + BATCH).min(to);
                        ch.put(batch(base + start..base + end)).await.unwrap();
                    }
                })
            })
            .collect::<Vec<_>>()
    };
    let drain = |ch: Arc<DiskChannel>, until: usize| async move {
        let mut seen = Vec::new();
        while seen.len() < until {
            let Some(t) = ch.take(300).await.unwrap() else {
                break;
            };
            seen.extend(numbers(t.batch()));
            t.commit().await.unwrap();
        }
        seen
    };
    let half = PER_WRITER / 2;
    let mut seen = {
        let ch = Arc::new(open(dir.path(), extra));
        let reader = tokio::spawn(drain(ch.clone(), (WRITERS * half / 2) as usize));
        for w in put_all(ch.clone(), 0, half) {
            w.await.unwrap();
        }
        let seen = reader.await.unwrap();
        ch.sync().await.unwrap();
        seen
    };
    // Restarted: what was not committed comes again, then the second half.
    let ch = Arc::new(open(dir.path(), extra));
    let writers = put_all(ch.clone(), half, PER_WRITER);
    let reader = tokio::spawn(drain(ch.clone(), usize::MAX));
    for w in writers {
        w.await.unwrap();
    }
    ch.close();
    seen.extend(reader.await.unwrap());
    let mut per_writer = vec![Vec::new(); WRITERS as usize];
    for n in seen {
        per_writer[(n / PER_WRITER) as usize].push(n % PER_WRITER);
    }
    for (w, got) in per_writer.iter().enumerate() {
        assert_eq!(got.len(), PER_WRITER as usize, "writer {w}: count");
        assert!(
            got.iter().copied().eq(0..PER_WRITER),
            "writer {w}: every event once, in order"
        );
    }
}
