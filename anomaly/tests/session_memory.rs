//! Bytes held per open session, counted by the allocator.
//!
//! Events are made as the `file` source makes them: each body a slice of a
//! shared read chunk of 256 KiB, with `template_id` and the shared
//! `template` text set by the miner, in batches of 1,000. Many sessions
//! stay open (each block gets 3 lines, among other lines), and what the
//! allocator holds once the batches are gone is what the `session`
//! processor keeps. This binary
//! holds only this test, so no other test allocates meanwhile.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use bytes::Bytes;
use sluice_anomaly::session::SessionConfig;
use sluice_core::prelude::*;
use sluice_runtime::testing::processor::{build, run};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call forwards to the system allocator unchanged; only a
// counter is updated beside it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        LIVE.fetch_add(n as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

const TEMPLATES: [&str; 6] = [
    "Receiving block <*> src: <*> dest: <*>",
    "BLOCK* NameSystem.allocateBlock: <*> <*>",
    "PacketResponder <*> for block <*> terminating",
    "Received block <*> of size <*> from <*>",
    "BLOCK* NameSystem.addStoredBlock: blockMap updated: <*> is added to <*> size <*>",
    "Verification succeeded for <*>",
];

/// Bytes held per open session after `sessions` blocks of 3 lines each,
/// among 14 lines naming no block per block.
fn bytes_per_session(sessions: usize) -> f64 {
    let texts: Vec<Bytes> = TEMPLATES.iter().map(|t| Bytes::from(*t)).collect();
    let mut p = build::<SessionConfig>(
        "key_pattern: 'blk_-?\\d+'\ninactivity_timeout: 1h\nmax_open: 1000000",
    );
    let before = LIVE.load(Ordering::Relaxed);
    // Lines of interleaved blocks, each 3 times, in read chunks. As in a
    // real log, a block's first line comes among many lines of blocks
    // already open (here: lines naming no block), so a read chunk holds
    // the first lines of only a few sessions.
    let mut lines = Vec::with_capacity(sessions * 17);
    let line = |id: usize, round: usize| {
        format!(
            "081109 2035{round}2 143 INFO dfs.DataNode$PacketResponder: Received block blk_-{} of size 67108864 from /10.251.42.84",
            1_000_000_000_000u64 + id as u64 * 7919
        )
    };
    for b in 0..sessions {
        lines.push((line(b, 0), b % TEMPLATES.len()));
        for k in 0..14 {
            lines.push((
                format!("081109 203518 {k} INFO dfs.FSNamesystem: heartbeat from /10.250.19.{b}:50010 ok"),
                5,
            ));
        }
    }
    for round in 1..3 {
        for b in 0..sessions {
            lines.push((line(b, round), (b + round) % TEMPLATES.len()));
        }
    }
    let mut at = 0;
    while at < lines.len() {
        // One chunk of about 256 KiB of lines.
        let mut chunk = Vec::with_capacity(256 * 1024);
        let mut ranges = Vec::new();
        while at < lines.len() && chunk.len() + lines[at].0.len() < 256 * 1024 {
            let s = chunk.len();
            chunk.extend_from_slice(lines[at].0.as_bytes());
            ranges.push((s, chunk.len(), lines[at].1));
            chunk.push(b'\n');
            at += 1;
        }
        let chunk = Bytes::from(chunk);
        for part in ranges.chunks(1000) {
            let mut batch = Batch::new();
            for &(s, e, t) in part {
                let mut ev = Event::new(chunk.slice(s..e), Timestamp(0));
                ev.insert("template_id", Value::Integer(t as i64 + 1));
                ev.insert("template", Value::String(texts[t].clone()));
                batch.push(ev);
            }
            assert!(run(p.as_mut(), &mut batch).is_empty());
            assert!(batch.is_empty(), "every session stays open");
        }
    }
    drop(lines);
    let held = LIVE.load(Ordering::Relaxed) - before;
    let mut out = Batch::new();
    p.finish(&mut out);
    assert_eq!(out.len(), sessions);
    held as f64 / sessions as f64
}

#[test]
fn an_open_session_holds_few_bytes() {
    let per = bytes_per_session(20_000);
    println!("bytes held per open session: {per:.0}");
    // 1,791 bytes before keys were copied and counts made a vector.
    assert!(per < 800.0, "{per:.0} bytes per open session");
}
