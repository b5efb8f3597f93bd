//! The disk channel against hostile input: a second open of its directory,
//! paths that cannot be used, records that pass their checksum but do not
//! decode, and arbitrary bytes in a segment.

use std::path::Path;

use bytes::Bytes;
use proptest::prelude::*;

use super::log::{self, DamageKind, Header, HEADER_LEN};
use super::*;

fn config(dir: &Path) -> DiskConfig {
    sluice_core::config::from_yaml_str(&format!("path: {}\n", dir.display())).unwrap()
}

fn open(dir: &Path) -> std::io::Result<DiskChannel> {
    DiskChannel::open(&config(dir), Path::new("/nonexistent"))
}

fn events(tag: u32, n: u32) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let mut e = Event::new(format!("{tag}-{i}"), Timestamp(i64::from(i)));
            e.insert("tag", i64::from(tag));
            e
        })
        .collect()
}

/// One record's bytes: header and payload.
fn record(rid: u64, claimed_events: u32, payload: &[u8]) -> Vec<u8> {
    let header = Header {
        len: payload.len() as u32,
        rid,
        events: claimed_events,
        crc: crc32fast::hash(payload),
    };
    let mut out = header.encode().to_vec();
    out.extend_from_slice(payload);
    out
}

fn encoded(events: &[Event]) -> Vec<u8> {
    let mut p = Vec::new();
    codec::encode(events, &mut p);
    p
}

fn bodies(b: &Batch) -> Vec<String> {
    b.iter()
        .map(|e| String::from_utf8_lossy(&e.body).into_owned())
        .collect()
}

/// Takes and commits everything a closed channel holds.
async fn drain(ch: &DiskChannel) -> Vec<String> {
    ch.close();
    let mut out = Vec::new();
    while let Some(t) = ch.take(100).await.unwrap() {
        out.extend(bodies(t.batch()));
        t.commit().await.unwrap();
    }
    out
}

#[tokio::test]
async fn a_second_open_in_the_same_process_is_refused_naming_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ch");
    let first = open(&path).unwrap();
    first.put(Batch::from(events(1, 3))).await.unwrap();
    let err = open(&path).err().expect("a second open must fail");
    assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()) && msg.contains("already open"),
        "{msg}"
    );
    // Another name of the same directory too.
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    assert!(open(&link).is_err());
    // So is `repair`, and another lock of the directory.
    assert!(recover::repair(&path).is_err());
    drop(first);
    let again = open(&path).unwrap();
    assert_eq!(drain(&again).await.len(), 3);
}

#[tokio::test]
async fn a_closed_channel_is_taken_over_and_its_end_keeps_the_new_ones_lock() {
    let dir = tempfile::tempdir().unwrap();
    let old = Arc::new(open(dir.path()).unwrap());
    old.put(Batch::from(events(1, 5))).await.unwrap();
    // Still held elsewhere (as the API's view holds a channel a reload
    // rebuilds), but closed: the new channel takes the directory over.
    old.close();
    let new = open(dir.path()).unwrap();
    assert!(
        old.take(10).await.unwrap().is_none(),
        "the old one hands out nothing"
    );
    assert!(old.put(Batch::from(events(9, 1))).await.is_err());
    new.put(Batch::from(events(2, 2))).await.unwrap();
    // The old one going must not release the new one's lock.
    drop(old);
    let e = log::lock_dir(dir.path()).expect_err("still locked");
    assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
    assert!(open(dir.path()).is_err());
    assert_eq!(
        drain(&new).await,
        ["1-0", "1-1", "1-2", "1-3", "1-4", "2-0", "2-1"]
    );
}

#[tokio::test]
async fn a_channel_with_taken_events_is_not_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let old = open(dir.path()).unwrap();
    old.put(Batch::from(events(1, 5))).await.unwrap();
    let t = old.take(2).await.unwrap().unwrap();
    old.close();
    assert!(open(dir.path()).is_err());
    t.commit().await.unwrap();
    let new = open(dir.path()).unwrap();
    assert_eq!(drain(&new).await, ["1-2", "1-3", "1-4"]);
}

#[test]
fn open_errors_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    for path in [file.clone(), file.join("below")] {
        let err = open(&path).err().expect("a file is no directory");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }
    // A segment that cannot be read.
    let ch = dir.path().join("ch");
    std::fs::create_dir_all(log::segment_path(&ch, 0)).unwrap();
    let err = open(&ch).err().expect("a directory is no segment");
    assert!(
        err.to_string()
            .contains(&log::segment_path(&ch, 0).display().to_string()),
        "{err}"
    );
}

#[tokio::test]
async fn records_that_pass_their_checksum_but_do_not_decode_are_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let three = encoded(&events(2, 3));
    let mut seg = record(0, 2, &encoded(&events(1, 2)));
    let bad = [
        // Not an encoding at all, after the version byte.
        record(1, 1, b"\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"),
        // Three events where the header counts four, and two.
        record(2, 4, &three),
        record(3, 2, &three),
        // An unknown value tag.
        record(4, 1, b"\x01\x01x\x00\x01\x01k\x63"),
    ];
    for b in &bad {
        seg.extend_from_slice(b);
    }
    seg.extend_from_slice(&record(5, 3, &three));
    std::fs::write(log::segment_path(dir.path(), 0), &seg).unwrap();

    let (_, _, summary) = recover::inspect(dir.path(), |_, d| {
        assert_eq!(d.kind, DamageKind::Corrupt);
        assert!(d.reason.contains("does not decode"), "{}", d.reason);
    })
    .unwrap();
    assert_eq!((summary.records, summary.corrupt), (2, 4));
    assert_eq!(summary.pending_events, 5);
    // Repair removes them; recovery skips them and delivers the rest.
    let (repaired, _) = recover::repair(dir.path()).unwrap();
    assert_eq!(repaired[0].removed.len(), 4);
    let ch = open(dir.path()).unwrap();
    assert_eq!(drain(&ch).await, ["1-0", "1-1", "2-0", "2-1", "2-2"]);
}

#[tokio::test]
async fn a_record_in_an_unknown_wire_version_refuses_the_segment_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let mut newer = encoded(&events(2, 3));
    newer[0] = 9;
    let mut seg = record(0, 2, &encoded(&events(1, 2)));
    seg.extend_from_slice(&record(1, 3, &newer));
    let path = log::segment_path(dir.path(), 0);
    std::fs::write(&path, &seg).unwrap();
    for err in [
        open(dir.path()).err().expect("the channel must not open"),
        recover::repair(dir.path()).expect_err("repair must refuse"),
    ] {
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        let msg = err.to_string();
        assert!(
            msg.contains(&path.display().to_string())
                && msg.contains(&format!("byte {}", seg.len() - newer.len() - HEADER_LEN))
                && msg.contains("wire format version 9"),
            "{msg}"
        );
    }
    // Nothing was skipped or deleted.
    assert_eq!(std::fs::read(&path).unwrap(), seg);
}

/// A piece of a generated segment.
#[derive(Clone, Debug)]
enum Piece {
    /// An intact record of this many events.
    Record(u32),
    /// A record whose payload byte `at` is changed.
    Damaged(u32, usize),
    /// A record whose header byte `at` is changed.
    BadHeader(u32, usize),
    /// Arbitrary bytes.
    Garbage(Vec<u8>),
}

fn piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        3 => (1u32..6).prop_map(Piece::Record),
        1 => (1u32..6, any::<usize>()).prop_map(|(n, at)| Piece::Damaged(n, at)),
        1 => (1u32..6, 0usize..HEADER_LEN).prop_map(|(n, at)| Piece::BadHeader(n, at)),
        1 => proptest::collection::vec(any::<u8>(), 1..80).prop_map(Piece::Garbage),
    ]
}

/// The segment's bytes and, per intact record, its id and event bodies.
fn build(pieces: &[Piece]) -> (Vec<u8>, Vec<(u64, Vec<String>)>) {
    let mut seg = Vec::new();
    let mut intact = Vec::new();
    for (rid, p) in pieces.iter().enumerate() {
        let rid = rid as u64;
        let tag = rid as u32;
        match p {
            Piece::Record(n) => {
                let ev = events(tag, *n);
                seg.extend_from_slice(&record(rid, *n, &encoded(&ev)));
                intact.push((
                    rid,
                    ev.iter()
                        .map(|e| bodies(&Batch::from(vec![e.clone()]))[0].clone())
                        .collect(),
                ));
            }
            Piece::Damaged(n, at) => {
                let mut r = record(rid, *n, &encoded(&events(tag, *n)));
                let i = HEADER_LEN + at % (r.len() - HEADER_LEN);
                r[i] ^= 0x5a;
                seg.extend_from_slice(&r);
            }
            Piece::BadHeader(n, at) => {
                let mut r = record(rid, *n, &encoded(&events(tag, *n)));
                r[*at] ^= 0xa5;
                seg.extend_from_slice(&r);
            }
            Piece::Garbage(g) => seg.extend_from_slice(g),
        }
    }
    (seg, intact)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Arbitrary bytes: the scan never panics, and what it reports covers
    /// the file without overlap.
    #[test]
    fn any_bytes_scan_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let len = bytes.len() as u64;
        // Two checksums stand between random bytes and a record in an
        // unknown version.
        let scan = log::scan_bytes(Path::new("x.seg"), 0, Bytes::from(bytes)).unwrap();
        let mut spans: Vec<(u64, u64)> = scan
            .records
            .iter()
            .map(|r| (r.offset, r.total_len()))
            .chain(scan.damage.iter().map(|d| (d.offset, d.len)))
            .collect();
        spans.sort_unstable();
        let mut at = 0;
        for (offset, n) in spans {
            prop_assert_eq!(offset, at);
            at += n;
        }
        prop_assert_eq!(at, len);
    }

    /// Intact records among damaged ones and garbage: the scan finds every
    /// intact record and no damaged one.
    #[test]
    fn the_scan_keeps_every_intact_record(pieces in proptest::collection::vec(piece(), 0..24)) {
        let (seg, intact) = build(&pieces);
        let scan = log::scan_bytes(Path::new("x.seg"), 0, Bytes::from(seg)).unwrap();
        let found: Vec<u64> = scan.records.iter().map(|r| r.header.rid).collect();
        let want: Vec<u64> = intact.iter().map(|(rid, _)| *rid).collect();
        prop_assert_eq!(found, want);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// The same through recovery: a channel opened on such a segment
    /// delivers exactly the events of the intact records, in order.
    #[test]
    fn recovery_delivers_every_intact_record(pieces in proptest::collection::vec(piece(), 1..16)) {
        let (seg, intact) = build(&pieces);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(log::segment_path(dir.path(), 0), &seg).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let got = rt.block_on(async {
            let ch = open(dir.path()).unwrap();
            drain(&ch).await
        });
        let want: Vec<String> = intact.into_iter().flat_map(|(_, b)| b).collect();
        prop_assert_eq!(got, want);
    }
}

/// A tmpfs of `size` on `path` while it lives. Needs root: where mounting
/// is impossible the test fails and says so instead of passing unrun.
struct SmallFs(std::path::PathBuf);

impl SmallFs {
    fn mount(path: &Path, size: &str) -> SmallFs {
        std::fs::create_dir_all(path).unwrap();
        let o = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .expect("run mount(8)");
        assert!(
            o.status.success(),
            "this test needs a small file system that can fill up: `mount -t tmpfs` failed (run the tests as root): {}",
            String::from_utf8_lossy(&o.stderr)
        );
        SmallFs(path.to_path_buf())
    }

    /// Fills the file system with `name`.
    fn fill(&self, name: &str) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.0.join(name)).unwrap();
        let chunk = [0u8; 4096];
        while f.write(&chunk).is_ok_and(|n| n > 0) {}
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[tokio::test]
async fn with_sync_always_a_put_on_a_full_disk_waits_and_completes_once() {
    let dir = tempfile::tempdir().unwrap();
    let fs = SmallFs::mount(&dir.path().join("small"), "256k");
    let path = fs.0.join("ch");
    let cfg: DiskConfig = sluice_core::config::from_yaml_str(&format!(
        "path: {}\nsync: always\nmax_segment_bytes: 4MiB\n",
        path.display()
    ))
    .unwrap();
    let ch = Arc::new(DiskChannel::open(&cfg, Path::new("/nonexistent")).unwrap());
    ch.put(Batch::from(events(1, 2))).await.unwrap();
    fs.fill("filler");
    // Three pages' worth: more than the room left in the file's last page.
    let mut big = events(2, 3);
    for e in &mut big {
        let mut body = e.body.to_vec();
        body.resize(4096, b'.');
        e.body = Bytes::from(body);
    }
    let put = tokio::spawn({
        let ch = ch.clone();
        async move { ch.put(Batch::from(big)).await }
    });
    // It waits, and the channel says why.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while ch.degraded().is_none() {
        assert!(std::time::Instant::now() < deadline, "never reported full");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let why = ch.degraded().unwrap_or_default();
    assert!(
        why.starts_with("disk full: cannot write") && why.contains("ch/"),
        "{why}"
    );
    let sync = tokio::spawn({
        let ch = ch.clone();
        async move { ch.sync().await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(!put.is_finished(), "a put on a full disk must wait");
    assert!(!sync.is_finished(), "so must a sync behind it");
    // Readers still get what is on disk meanwhile.
    let t = ch.take(10).await.unwrap().unwrap();
    assert_eq!(bodies(t.batch()), ["1-0", "1-1"]);
    t.commit().await.unwrap();
    std::fs::remove_file(fs.0.join("filler")).unwrap();
    put.await.unwrap().unwrap();
    sync.await.unwrap().unwrap();
    assert!(ch.degraded().is_none());
    let rest: Vec<String> = drain(&ch)
        .await
        .iter()
        .map(|b| b.trim_end_matches('.').to_string())
        .collect();
    assert_eq!(rest, ["2-0", "2-1", "2-2"]);
    // Synced and whole: a restart finds nothing pending and no damage.
    drop(ch);
    let (_, _, s) = recover::inspect(&path, |_, d| panic!("damage: {d:?}")).unwrap();
    assert_eq!(s.pending_events, 0);
}

#[tokio::test]
async fn a_segment_that_cannot_be_created_makes_the_put_wait() {
    let dir = tempfile::tempdir().unwrap();
    let fs = SmallFs::mount(&dir.path().join("small"), "4m,nr_inodes=64");
    let path = fs.0.join("ch");
    let cfg: DiskConfig = sluice_core::config::from_yaml_str(&format!(
        "path: {}\nmax_segment_bytes: 4KiB\n",
        path.display()
    ))
    .unwrap();
    let ch = Arc::new(DiskChannel::open(&cfg, Path::new("/nonexistent")).unwrap());
    // Every put fills a segment of its own.
    let page = |tag: u32| {
        let mut e = events(tag, 1);
        let mut body = e[0].body.to_vec();
        body.resize(5000, b'.');
        e[0].body = Bytes::from(body);
        Batch::from(e)
    };
    ch.put(page(1)).await.unwrap();
    // No inode left: the next segment cannot be created.
    let mut fillers = Vec::new();
    for i in 0.. {
        let f = fs.0.join(format!("filler-{i}"));
        if std::fs::write(&f, "").is_err() {
            break;
        }
        fillers.push(f);
    }
    let put = tokio::spawn({
        let ch = ch.clone();
        async move { ch.put(page(2)).await }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while ch.degraded().is_none() {
        assert!(std::time::Instant::now() < deadline, "never reported full");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let why = ch.degraded().unwrap_or_default();
    assert!(
        why.contains("cannot create") && why.contains(".seg"),
        "{why}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(!put.is_finished(), "a put that needs a segment must wait");
    std::fs::remove_file(fillers.pop().unwrap()).unwrap();
    put.await.unwrap().unwrap();
    let got: Vec<String> = drain(&ch)
        .await
        .iter()
        .map(|b| b.trim_end_matches('.').to_string())
        .collect();
    assert_eq!(got, ["1-0", "2-0"]);
}

#[tokio::test]
async fn a_channel_opens_on_a_full_disk() {
    let dir = tempfile::tempdir().unwrap();
    let fs = SmallFs::mount(&dir.path().join("small"), "256k");
    let path = fs.0.join("ch");
    {
        let ch = open(&path).unwrap();
        for tag in 1..=3 {
            ch.put(Batch::from(events(tag, 2))).await.unwrap();
        }
        let t = ch.take(2).await.unwrap().unwrap();
        t.commit().await.unwrap();
        ch.sync().await.unwrap();
    }
    fs.fill("filler");
    // The commit log cannot be compacted (that needs room for a copy): it
    // is kept as it is, and the rest is delivered.
    let ch = open(&path).unwrap();
    assert_eq!(drain(&ch).await, ["2-0", "2-1", "3-0", "3-1"]);
}
