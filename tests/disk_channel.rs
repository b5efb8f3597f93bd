//! The disk channel against a hostile environment, end to end: a file
//! system that fills up, two channels on one directory, a reload that
//! rebuilds a channel, a record that passes its checksum but does not
//! decode.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::operations::get;
use crate::util::*;

const WAIT: Duration = Duration::from_secs(60);

/// A small tmpfs mounted on a directory for the length of a test. The
/// tests run as root in CI; where mounting is impossible the test fails
/// and says why rather than passing without having run.
struct SmallFs {
    path: PathBuf,
}

impl SmallFs {
    fn mount(path: PathBuf, size: &str) -> SmallFs {
        std::fs::create_dir_all(&path).expect("mkdir");
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .output()
            .expect("run mount(8)");
        assert!(
            o.status.success(),
            "this test needs a small file system that can fill up: `mount -t tmpfs` failed (run the tests as root): {}",
            String::from_utf8_lossy(&o.stderr)
        );
        SmallFs { path }
    }

    /// Writes `name` until the file system is full; returns its size.
    fn fill(&self, name: &str) -> u64 {
        use std::io::Write;
        let mut f = std::fs::File::create(self.path.join(name)).expect("filler");
        let chunk = vec![0x55u8; 4096];
        let mut n = 0u64;
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(k) => n += k as u64,
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("filling: {e}"),
            }
        }
        n
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// `n` JSON events from a generator through a disk channel on `./small/buf`
/// into `out/seq.log`, with the API on a port of its choosing.
fn pipeline(d: &Dir, n: usize) {
    d.write(
        "p.yaml",
        &format!("api: {{address: \"127.0.0.1:0\"}}\ndata_dir: ./state\nsources:\n  gen: {{type: generator, count: {n}, batch_size: 100, format: json, channels: [buf]}}\nchannels:\n  buf: {{type: disk, path: ./small/buf, max_segment_bytes: 4MiB}}\nsinks:\n  out: {{type: file, channel: buf, path: ./out/seq.log}}\n"),
    );
}

/// Asserts `out/seq.log` holds the generator's events 0..n once each, in order.
fn assert_every_event_once(d: &Dir, n: usize) {
    let lines = d.lines("out/seq.log");
    assert_eq!(lines.len(), n, "every event once");
    for (i, l) in lines.iter().enumerate() {
        assert!(l.starts_with(&format!("{{\"seq\":{i},")), "line {i}: {l}");
    }
    let o = d.run(&["channel", "check", "small/buf"], WAIT);
    assert!(o.status.success(), "{}", stdout(&o));
    assert!(stdout(&o).contains("pending events: 0"), "{}", stdout(&o));
}

/// The channel's own directory fills a disk with committed records: the
/// channel finds the disk full mid-run, starts a new segment so that the
/// committed one goes, and the run completes by itself.
#[test]
fn a_nearly_full_disk_is_enough_for_a_channel_whose_sink_keeps_up() {
    let d = Dir::new();
    let fs = SmallFs::mount(d.join("small"), "2m");
    // About 1.2 MiB of records through 256 KiB of room.
    let n = 12_000;
    pipeline(&d, n);
    let room = fs.fill("filler");
    std::fs::remove_file(fs.path.join("filler")).expect("rm");
    std::fs::write(
        fs.path.join("filler"),
        vec![0u8; (room - (256 << 10)) as usize],
    )
    .expect("filler");
    let agent = Agent::start(&d, &["run", "p.yaml"]);
    agent.wait_log("the disk is full", 1);
    agent.wait_log("room on the disk again", 1);
    agent.finish_ok(WAIT);
    assert_every_event_once(&d, n);
}

/// A disk with no room at all: writers wait, `/health` says why, nothing
/// is lost; once a file is deleted the run completes.
#[test]
fn a_full_disk_makes_writers_wait_and_loses_nothing() {
    let d = Dir::new();
    let fs = SmallFs::mount(d.join("small"), "2m");
    let n = 20_000;
    pipeline(&d, n);
    fs.fill("filler");
    let mut agent = Agent::start(&d, &["run", "p.yaml"]);
    let url = format!("http://127.0.0.1:{}", agent.api_port());
    // The channel says why it waits; the agent is degraded, not down.
    let mut health = String::new();
    wait_for(WAIT, "/health to report the full disk", || {
        if let Ok(Some(s)) = agent.child.try_wait() {
            panic!("the agent exited on a full disk: {s:?}");
        }
        match get(&url, "/health") {
            Some((200, body)) if body.contains("disk full") => {
                health = body;
                true
            }
            _ => false,
        }
    });
    let v: serde_json::Value = serde_json::from_str(&health).expect("json");
    assert_eq!(v["status"], "degraded", "{health}");
    let ch = &v["channels"][0];
    assert_eq!(
        (ch["id"].as_str(), ch["healthy"].as_bool()),
        (Some("buf"), Some(false)),
        "{health}"
    );
    assert!(
        ch["error"]
            .as_str()
            .is_some_and(|e| e.contains("small/buf") && e.contains("No space left")),
        "{health}"
    );
    // Nothing gets through, and the agent keeps waiting.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        agent.child.try_wait().expect("wait").is_none(),
        "{}",
        agent.log()
    );
    assert_eq!(d.lines("out/seq.log").len(), 0);
    // Room again: the run completes, every event exactly once, in order.
    std::fs::remove_file(fs.path.join("filler")).expect("free the disk");
    agent.wait_log("room on the disk again", 1);
    agent.finish_ok(WAIT);
    assert_every_event_once(&d, n);
}

#[test]
fn two_disk_channels_on_one_directory_are_refused() {
    let d = Dir::new();
    d.write(
        "p.yaml",
        "data_dir: ./state\nsources:\n  gen: {type: generator, count: 10, channels: [a, b]}\nchannels:\n  a: {type: disk, path: ./state/channels/b}\n  b: {type: disk}\nsinks:\n  one: {type: \"null\", channel: a}\n  two: {type: \"null\", channel: b}\n",
    );
    for cmd in [&["validate", "p.yaml"][..], &["run", "p.yaml"][..]] {
        let o = d.run(cmd, WAIT);
        assert_eq!(o.status.code(), Some(2), "{cmd:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains("p.yaml:6:3: channel `b`: its directory")
                && err.contains("is also the directory of channel `a`"),
            "{err}"
        );
    }
    assert!(!d.join("state/channels/b").exists(), "nothing was opened");
}

/// A reload that rebuilds a disk channel: the new channel takes the
/// directory over, and keeps it locked once the old one is gone.
#[test]
fn a_rebuilt_disk_channel_keeps_its_directory_locked() {
    let d = Dir::new();
    let pipeline = |cache: &str| {
        format!("data_dir: ./state\nsources:\n  gen: {{type: generator, rate: 2000, resume: true, channels: [buf]}}\nchannels:\n  buf: {{type: disk, cache_bytes: {cache}}}\nsinks:\n  out: {{type: file, channel: buf, path: ./out/seq.log}}\n")
    };
    d.write("p.yaml", &pipeline("1MiB"));
    let agent = Agent::start(&d, &["run", "p.yaml"]);
    wait_for(WAIT, "events", || d.lines("out/seq.log").len() > 100);
    d.write("p.yaml", &pipeline("2MiB"));
    signal(&agent.child, libc::SIGHUP);
    agent.wait_log("reload: channel rebuilt", 1);
    agent.wait_log("reload complete", 1);
    let before = d.lines("out/seq.log").len();
    wait_for(WAIT, "events after the reload", || {
        d.lines("out/seq.log").len() > before + 100
    });
    // Another process cannot take the directory.
    let o = d.run(&["channel", "repair", "state/channels/buf"], WAIT);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("in use"), "{}", stderr(&o));
    let (status, log) = agent.stop();
    assert!(status.success(), "{log}");
    assert!(!log.contains("cannot build channel"), "{log}");
    let n = assert_prefix(&d.lines("out/seq.log"));
    assert!(n > before, "{n} events");
}

/// Writes a segment holding one good record, one whose payload passes its
/// checksum but is no encoding of events, and one that holds three events
/// where its header says four.
fn crafted_segment(dir: &Path) {
    use sluice_channels::disk::log::{segment_path, Header};
    let record = |rid: u64, events: u32, payload: &[u8]| {
        let mut r = Header {
            len: payload.len() as u32,
            rid,
            events,
            crc: crc32fast::hash(payload),
        }
        .encode()
        .to_vec();
        r.extend_from_slice(payload);
        r
    };
    // The wire format's version, then one event: body "ok", timestamp 0,
    // no fields.
    let event = b"\x02ok\x00\x00";
    let one = [&b"\x01"[..], event].concat();
    let three = [&b"\x01"[..], event, event, event].concat();
    let mut seg = record(0, 1, &one);
    let mut garbage = [0xff; 16];
    garbage[0] = 1;
    seg.extend(record(1, 1, &garbage));
    seg.extend(record(2, 4, &three));
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::write(segment_path(dir, 0), seg).expect("segment");
}

#[test]
fn channel_check_finds_records_that_pass_their_checksum_but_do_not_decode() {
    let d = Dir::new();
    crafted_segment(&d.join("ch"));
    let o = d.run(&["channel", "check", "ch"], WAIT);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert_eq!(out.matches("does not decode").count(), 2, "{out}");
    assert!(
        out.contains("offset 34 ") && out.contains("corrupt records: 2"),
        "{out}"
    );
    assert!(out.contains("pending events: 1"), "{out}");
    let o = d.run(&["channel", "repair", "ch"], WAIT);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = d.run(&["channel", "check", "ch"], WAIT);
    assert!(o.status.success(), "{}", stdout(&o));
}

#[test]
fn a_segment_in_an_unknown_wire_version_is_refused_naming_file_and_version() {
    use sluice_channels::disk::log::{segment_path, Header};
    let d = Dir::new();
    // A sound record (both checksums hold) in wire format version 9.
    let payload = b"\x09\x02ok\x00\x00";
    let mut seg = Header {
        len: payload.len() as u32,
        rid: 0,
        events: 1,
        crc: crc32fast::hash(payload),
    }
    .encode()
    .to_vec();
    seg.extend_from_slice(payload);
    let dir = d.join("state/ch");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let path = segment_path(&dir, 0);
    std::fs::write(&path, &seg).expect("segment");
    d.write(
        "p.yaml",
        "data_dir: ./state\nsources:\n  gen: {type: generator, count: 10, channels: [d]}\nchannels:\n  d: {type: disk, path: ./state/ch}\nsinks:\n  out: {type: file, channel: d, path: ./out.log}\n",
    );
    let o = d.run(&["run", "p.yaml"], WAIT);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("cannot build channel")
            && err.contains("segment ./state/ch/00000000000000000000.seg: the record at byte 0")
            && err.contains("wire format version 9, which this build cannot read"),
        "{err}"
    );
    // `channel check` and `repair` say the same and touch nothing.
    for cmd in ["check", "repair"] {
        let o = d.run(&["channel", cmd, "state/ch"], WAIT);
        assert!(!o.status.success(), "{cmd}");
        let out = stderr(&o) + &stdout(&o);
        assert!(out.contains("wire format version 9"), "{cmd}: {out}");
    }
    assert_eq!(std::fs::read(&path).expect("segment"), seg);
    assert!(!d.join("out.log").exists());
}

#[test]
fn a_disk_channel_that_cannot_open_names_its_path() {
    let d = Dir::new();
    d.write("state/blocker", "a file where the channel's directory goes");
    d.write(
        "p.yaml",
        "data_dir: ./state\nsources:\n  gen: {type: generator, count: 10, channels: [d]}\nchannels:\n  d: {type: disk, path: ./state/blocker}\nsinks:\n  out: {type: \"null\", channel: d}\n",
    );
    let o = d.run(&["run", "p.yaml"], WAIT);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("cannot build channel") && err.contains("state/blocker"),
        "{err}"
    );
}
