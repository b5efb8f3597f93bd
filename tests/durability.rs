//! Durability end to end: the real agent with a `disk` channel, killed with
//! SIGKILL at random moments, fed damaged segments, and held at its cap.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use crate::util::*;

/// Tallies the numbers in `lines`: how often each appears, and how many
/// lines are not a number below `n` (a line cut by a kill in the middle of
/// a write, followed by the next run's output).
fn tally(lines: &[String], n: u64) -> (HashMap<u64, u32>, usize) {
    let mut seen = HashMap::with_capacity(n as usize);
    let mut garbled = 0;
    for l in lines {
        match l.parse::<u64>() {
            Ok(x) if x < n => *seen.entry(x).or_insert(0) += 1,
            _ => garbled += 1,
        }
    }
    (seen, garbled)
}

/// Asserts every number below `n` is present; returns the duplicates.
fn assert_complete(seen: &HashMap<u64, u32>, n: u64) -> u64 {
    let missing: Vec<u64> = (0..n).filter(|x| !seen.contains_key(x)).take(20).collect();
    assert!(missing.is_empty(), "lost events, first ones: {missing:?}");
    seen.values().map(|&c| u64::from(c - 1)).sum()
}

fn check(d: &Dir, dir: &str) -> (i32, String) {
    let o = d.run(&["channel", "check", dir], Duration::from_secs(60));
    (o.status.code().unwrap_or(-1), stdout(&o))
}

/// The value of `name: N` in `sluice channel check` output.
fn count(report: &str, name: &str) -> u64 {
    report
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `{name}` in:\n{report}"))
}

const SINK_BATCH: u64 = 500;
const SOURCE_BATCH: u64 = 1000;

#[test]
fn kill_9_at_random_moments_loses_no_generated_event() {
    let d = Dir::new();
    let n = 1_000_000u64;
    d.write(
        "p.yaml",
        &format!("data_dir: ./state\nsources:\n  gen: {{type: generator, count: {n}, rate: 100000, batch_size: {SOURCE_BATCH}, resume: true, channels: [buf]}}\nchannels:\n  buf: {{type: disk, max_segment_bytes: 1MiB}}\nsinks:\n  out: {{type: file, channel: buf, batch_size: {SINK_BATCH}, path: ./out/seq.log}}\n"),
    );
    // At most 100,000 events a second: the kills fall in the middle of the
    // run, and a last run finishes it.
    let mut rng = Rng(0x5EED_D15C);
    let mut kills = 0u64;
    while kills < 12 {
        let child = d.start(&["run", "p.yaml"]);
        std::thread::sleep(Duration::from_millis(150 + rng.below(600)));
        kill9(child);
        kills += 1;
    }
    let before = d.lines("out/seq.log").len();
    // The last run finishes the count and drains the channel.
    let o = d.run(&["run", "p.yaml"], Duration::from_secs(300));
    assert!(o.status.success(), "{}", stderr(&o));
    let lines = d.lines("out/seq.log");
    assert!(
        before > 0 && before < lines.len(),
        "the kills must hit a run in progress ({before} of {} lines before the last run)",
        lines.len()
    );
    let (seen, garbled) = tally(&lines, n);
    let dups = assert_complete(&seen, n);
    eprintln!("{kills} kills: {dups} duplicates, {garbled} cut lines");
    // Per kill at most one sink batch written but not committed, and one
    // generator batch accepted but not yet checkpointed.
    assert!(
        dups <= kills * (SINK_BATCH + SOURCE_BATCH),
        "{dups} duplicates after {kills} kills"
    );
    assert!(garbled as u64 <= kills, "{garbled} cut lines");
    // Everything was committed: the channel holds nothing and is clean.
    let (code, report) = check(&d, "state/channels/buf");
    assert_eq!(code, 0, "{report}");
    assert_eq!(count(&report, "pending events"), 0, "{report}");
}

#[test]
fn kill_9_while_a_file_is_appended_loses_no_line() {
    let d = Dir::new();
    d.write("logs/app.log", "");
    d.write(
        "p.yaml",
        &format!("data_dir: ./state\nsources:\n  app: {{type: file, include: [./logs/app.log], read_from: beginning, poll_interval: 20ms, channels: [buf]}}\nchannels:\n  buf: {{type: disk, sync: always}}\nsinks:\n  out: {{type: file, channel: buf, batch_size: {SINK_BATCH}, path: ./out/app.log}}\n"),
    );
    // Another writer appends 200 lines every 10 ms (at most 20,000 a second).
    let total = 100_000u64;
    let log = d.join("logs/app.log");
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(log)
            .expect("open log");
        for chunk in 0..total / 200 {
            let text: String = (chunk * 200..(chunk + 1) * 200)
                .map(|i| format!("{i}\n"))
                .collect();
            f.write_all(text.as_bytes()).expect("append");
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    let mut rng = Rng(0xF11E_5EED);
    let mut kills = 0u64;
    while kills < 10 || !writer.is_finished() {
        let child = d.start(&["run", "p.yaml"]);
        std::thread::sleep(Duration::from_millis(200 + rng.below(600)));
        kill9(child);
        kills += 1;
    }
    writer.join().expect("writer");
    let child = d.start(&["run", "p.yaml"]);
    wait_for(Duration::from_secs(120), "every line", || {
        let (seen, _) = tally(&d.lines("out/app.log"), total);
        seen.len() as u64 == total
    });
    signal(&child, libc::SIGTERM);
    let o = wait_output(child, Duration::from_secs(30));
    assert!(o.status.success(), "{}", stderr(&o));
    let (seen, garbled) = tally(&d.lines("out/app.log"), total);
    let dups = assert_complete(&seen, total);
    eprintln!("{kills} kills: {dups} duplicate lines, {garbled} cut lines");
    // The file source saves its offsets at most once a second: a kill
    // repeats at most what was read in that second (here at most 20,000
    // lines, twice for slack) plus one sink batch.
    assert!(
        dups <= kills * (2 * 20_000 + SINK_BATCH),
        "{dups} duplicates after {kills} kills"
    );
    assert!(garbled as u64 <= kills, "{garbled} cut lines");
}

/// Fills a disk channel behind a sink that cannot write (its stdout is
/// never read), then kills the agent: the channel is left holding most of
/// the events.
fn fill_channel(d: &Dir, n: u64) {
    d.write(
        "fill.yaml",
        &format!("data_dir: ./state\nsources:\n  gen: {{type: generator, count: {n}, resume: true, channels: [buf]}}\nchannels:\n  buf: {{type: disk, max_segment_bytes: 64KiB}}\nsinks:\n  out: {{type: console, channel: buf}}\n"),
    );
    let mut child = d
        .sluice(&["run", "fill.yaml"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let _stdout = child.stdout.take();
    wait_for(Duration::from_secs(60), "the generator to finish", || {
        std::fs::read_to_string(d.join("state/sources/gen/checkpoints.json"))
            .is_ok_and(|s| s.contains(&format!("\"next\":{n}")))
    });
    kill9(child);
}

#[test]
fn damaged_segments_are_reported_and_everything_else_is_delivered() {
    let d = Dir::new();
    fill_channel(&d, 50_000);
    let dir = d.join("state/channels/buf");
    let (code, report) = check(&d, "state/channels/buf");
    assert_eq!(code, 0, "{report}");
    let mut segs: Vec<_> = std::fs::read_dir(&dir)
        .expect("channel dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    assert!(segs.len() >= 3, "{report}");
    // Flip bytes in the middle of one segment, cut the last one mid-record.
    let flipped = &segs[segs.len() - 2];
    let mut data = std::fs::read(flipped).expect("read");
    let mid = data.len() / 2;
    for b in &mut data[mid..mid + 4] {
        *b ^= 0xFF;
    }
    std::fs::write(flipped, &data).expect("write");
    let cut = &segs[segs.len() - 1];
    let len = std::fs::metadata(cut).expect("stat").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(cut)
        .expect("open")
        .set_len(len - 100)
        .expect("truncate");

    let (code, report) = check(&d, "state/channels/buf");
    assert_eq!(code, 1, "check must report damage:\n{report}");
    assert_eq!(count(&report, "corrupt records"), 1, "{report}");
    assert_eq!(count(&report, "torn records"), 1, "{report}");
    let pending = count(&report, "pending events");
    let name = |p: &std::path::Path| p.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        report.contains(&name(flipped)) && report.contains(&name(cut)),
        "{report}"
    );

    // Repair, on a copy: the copy then checks clean with the same events.
    let copy = d.join("copy");
    std::fs::create_dir_all(&copy).expect("mkdir");
    for e in std::fs::read_dir(&dir).expect("dir").flatten() {
        std::fs::copy(e.path(), copy.join(e.file_name())).expect("copy");
    }
    let o = d.run(&["channel", "repair", "copy"], Duration::from_secs(60));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).matches("removed ").count(), 2, "{}", stdout(&o));
    let (code, fixed) = check(&d, "copy");
    assert_eq!(code, 0, "{fixed}");
    assert_eq!(count(&fixed, "pending events"), pending);

    // The agent starts on the damaged channel, says what it skipped and
    // where, and delivers every other event.
    d.write(
        "drain.yaml",
        "data_dir: ./state\nsources:\n  gen: {type: generator, count: 50000, resume: true, channels: [buf]}\nchannels:\n  buf: {type: disk, max_segment_bytes: 64KiB}\nsinks:\n  out: {type: file, channel: buf, path: ./out/rest.log}\n",
    );
    let o = d.run(&["run", "drain.yaml"], Duration::from_secs(120));
    assert!(o.status.success(), "{}", stderr(&o));
    let log = stderr(&o);
    let corrupt: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("skipped a corrupt record"))
        .collect();
    let torn: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("skipped a torn record"))
        .collect();
    assert_eq!((corrupt.len(), torn.len()), (1, 1), "{log}");
    assert!(
        corrupt[0].contains(&name(flipped)) && corrupt[0].contains("offset="),
        "{log}"
    );
    assert!(
        torn[0].contains(&name(cut)) && torn[0].contains("offset="),
        "{log}"
    );
    let rest = d.lines("out/rest.log");
    let (seen, garbled) = tally(&rest, 50_000);
    assert_eq!(garbled, 0);
    assert_eq!(seen.len(), rest.len(), "no duplicates");
    assert_eq!(rest.len() as u64, pending, "every intact pending event");
}

#[test]
fn a_full_disk_channel_blocks_the_source_and_memory_stays_bounded() {
    let d = Dir::new();
    d.write(
        "p.yaml",
        "data_dir: ./state\nsources:\n  gen: {type: generator, format: json, channels: [buf]}\nchannels:\n  buf: {type: disk, max_bytes: 8MiB, max_segment_bytes: 1MiB}\nsinks:\n  out: {type: console, channel: buf}\n",
    );
    // Nobody reads the sink's stdout for a while: the sink blocks, the
    // channel fills to its cap, and the endless generator must wait.
    let mut child = d
        .sluice(&["run", "p.yaml"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let disk = || -> u64 {
        std::fs::read_dir(d.join("state/channels/buf"))
            .map(|r| {
                r.flatten()
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    };
    let mut peak = 0;
    let mut sizes = Vec::new();
    for _ in 0..30 {
        std::thread::sleep(Duration::from_millis(100));
        peak = peak.max(rss_kib(pid).unwrap_or(0));
        sizes.push(disk());
    }
    // The channel reached its cap and stopped there: the records of at
    // most 8 MiB plus the rest of the segments they are in.
    let last = *sizes.last().unwrap_or(&0);
    eprintln!("channel on disk: {last} bytes; peak RSS {peak} KiB");
    assert!(last >= 7 << 20, "the channel should be full: {sizes:?}");
    assert!(last <= 10 << 20, "over the cap: {sizes:?}");
    assert_eq!(
        sizes[sizes.len() - 5..].iter().max(),
        Some(&last),
        "still growing: {sizes:?}"
    );
    assert!(peak > 0 && peak < 96 * 1024, "peak RSS {peak} KiB");
    // Repair refuses a directory a running agent holds.
    let o = d.run(
        &["channel", "repair", "state/channels/buf"],
        Duration::from_secs(30),
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("in use by another process"),
        "{}",
        stderr(&o)
    );
    // The stream is intact once the reader catches up.
    use std::io::BufRead;
    let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    for i in 0..100_000u64 {
        line.clear();
        out.read_line(&mut line).expect("read");
        assert!(line.starts_with(&format!("{{\"seq\":{i},")), "{line}");
    }
    kill9(child);
}
