//! Reloads that must stop what runs before its successor can start: a sink
//! group, a sink stuck retrying, a listening source, a store sink. Each
//! runs under traffic and checks that nothing is lost.

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::network::lines_text;
use crate::reload::{ends_at, replace, Reload, Reloaded, Trigger, Writer, FOLLOW, LIMIT};
use crate::util::*;

/// The drain timeout of `sluice run` by default: a reload that completes
/// within it did not wait on anything stuck.
const DRAIN: Duration = Duration::from_secs(30);

/// B1: a reload that changes an option of a member of a sink group restarts
/// the group (one task), completes, and every line arrives once.
#[test]
fn changing_a_sink_group_member_completes_and_loses_nothing() {
    let d = Dir::new();
    let before = FOLLOW.replace(
        "sinks:\n  one: {type: file, channel: a, path: ./out/a.log}\n",
        "sinks:\n  one: {type: file, channel: a, path: ./out/a.log}\n  two: {type: file, channel: a, path: ./out/b.log}\nsink_groups:\n  g:\n    strategy: failover\n    sinks: [one, two]\n    priorities: {one: 10, two: 1}\n",
    );
    let after = before.replace("path: ./out/b.log", "path: ./out/c.log");
    let Reloaded {
        written: n, log, ..
    } = Reload::new(&before, &after, Trigger::Sighup).run(&d, |n| ends_at(&d, "out/a.log", n));
    assert!(
        log.contains("reload: restarting component=sink group `g`"),
        "{log}"
    );
    // The preferred member took every batch, before and after the reload.
    assert_sequence(&d.lines("out/a.log"), n);
    assert!(d.lines("out/b.log").is_empty() && d.lines("out/c.log").is_empty());
}

/// A receiving agent: a hop source writing `out/r.log`, and the port it
/// bound.
fn receiver(d: &Dir) -> (Agent, u16) {
    d.write(
        "r.yaml",
        "data_dir: ./state/r\nsources:\n  hop: {type: sluice, address: '127.0.0.1:0', channels: [m]}\nchannels:\n  m: {type: memory}\nsinks:\n  out: {type: file, channel: m, path: ./out/r.log}\n",
    );
    let mut agent = Agent::start(d, &["run", "r.yaml"]);
    let port = agent.listening("hop");
    (agent, port)
}

/// B2: a sink stuck retrying (a hop to a port where nothing listens) is
/// stopped by the reload that fixes its address: the reload completes,
/// and every line written before and after it arrives, once.
#[test]
fn a_reload_fixes_a_sink_stuck_retrying_and_every_event_arrives() {
    let d = Dir::new();
    let (rx, good) = receiver(&d);
    // Where nothing listens.
    let wrong = free_port();
    let pipeline = |port: u16| {
        FOLLOW.replace(
            "one: {type: file, channel: a, path: ./out/a.log}",
            &format!("one: {{type: sluice, channel: a, address: '127.0.0.1:{port}', connect_timeout: 1s}}"),
        )
    };
    d.write("logs/app.log", "");
    d.write("p.yaml", &pipeline(wrong));
    let agent = Agent::start(&d, &["run", "p.yaml"]);
    let writer = Writer::start(&d);
    // Long enough for the back-off to grow past a second.
    agent.wait_log("write failed", 4);
    replace(&d, "p.yaml", &pipeline(good));
    let asked = Instant::now();
    signal(&agent.child, libc::SIGHUP);
    agent.wait_log("reload complete", 1);
    assert!(asked.elapsed() < DRAIN, "took {:?}", asked.elapsed());
    let at_reload = writer.written();
    wait_for(LIMIT, "lines after the reload", || {
        writer.written() >= at_reload + 500
    });
    let n = writer.stop();
    wait_for(LIMIT, "every line at the receiver", || {
        d.lines("out/r.log").len() >= n
    });
    let (status, log) = agent.stop();
    assert!(status.success(), "{log}");
    assert!(
        log.contains("stopped while retrying: the batch is rolled back"),
        "{log}"
    );
    rx.stop_ok();
    assert_sequence(&d.lines("out/r.log"), n);
}

/// Posts `0\n1\n...` in batches of 50 to the http source on `port` until
/// stopped, each batch again until it is answered 200 (a refused
/// connection or a 503 while the source restarts is retried).
struct Poster {
    acked: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Poster {
    fn start(port: u16) -> Poster {
        let acked = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (acked.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let next = a.load(Ordering::Relaxed);
                if post(port, &lines_text(next, next + 50)) {
                    a.store(next + 50, Ordering::Relaxed);
                } else {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        });
        Poster {
            acked,
            stop,
            thread,
        }
    }

    fn acked(&self) -> usize {
        self.acked.load(Ordering::Relaxed)
    }

    fn stop(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        self.acked.load(Ordering::Relaxed)
    }
}

/// One POST of `body`; whether it was answered 200.
fn post(port: u16, body: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let head = format!(
        "POST /events HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if s.write_all(head.as_bytes())
        .and_then(|_| s.write_all(body.as_bytes()))
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = BufReader::new(s).read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
}

/// B3: a reload that changes an http source's options on the same port is
/// accepted (the old listener stops before the new one binds), and every
/// line a client got a 200 for arrives.
#[test]
fn a_listening_source_reloaded_on_the_same_port_loses_nothing() {
    let d = Dir::new();
    let port = free_port();
    let yaml = format!("sources:\n  web: {{type: http, address: '127.0.0.1:{port}', busy_timeout: 1s, channels: [a]}}\nchannels:\n  a: {{type: memory, capacity: 200}}\nsinks:\n  one: {{type: file, channel: a, path: ./out/a.log}}\n");
    d.write("p.yaml", &yaml);
    let agent = Agent::start(&d, &["run", "p.yaml"]);
    let poster = Poster::start(port);
    wait_for(LIMIT, "the first lines", || {
        d.lines("out/a.log").len() >= 1000
    });
    replace(
        &d,
        "p.yaml",
        &yaml.replace("busy_timeout: 1s", "busy_timeout: 2s"),
    );
    signal(&agent.child, libc::SIGHUP);
    wait_for(LIMIT, "reload complete", || {
        let log = agent.log();
        assert!(!log.contains("reload refused"), "{log}");
        log.contains("reload complete")
    });
    let at_reload = poster.acked();
    wait_for(LIMIT, "lines after the reload", || {
        poster.acked() >= at_reload + 1000
    });
    let n = poster.stop();
    wait_for(LIMIT, "every line", || d.lines("out/a.log").len() >= n);
    let (status, log) = agent.stop();
    assert!(status.success(), "{log}");
    assert!(!log.contains("reload refused"), "{log}");
    assert!(
        log.contains("reload: restarting component=source `web`"),
        "{log}"
    );
    // Every acknowledged line, at least once (a batch refused with a 503
    // while the source stopped may have been put in part, then sent again).
    let mut seen: Vec<usize> = d
        .lines("out/a.log")
        .iter()
        .map(|l| l.parse().expect("a number"))
        .collect();
    seen.sort_unstable();
    seen.dedup();
    assert!(seen.len() >= n && seen[..n] == (0..n).collect::<Vec<_>>()[..]);
}

/// B3: a reload that changes a store sink's options is accepted (the old
/// sink lets go of the index's writer lock before the new one opens it),
/// and the index holds every line once.
#[test]
fn a_store_sink_reloaded_with_new_options_keeps_every_event() {
    let d = Dir::new();
    let before = FOLLOW.replace("channels: [a]", "channels: [a, s]").replace(
        "  a: {type: memory, capacity: 64}\n",
        "  a: {type: memory, capacity: 64}\n  s: {type: memory, capacity: 64}\n",
    ) + "  idx: {type: store, channel: s, path: ./idx, writer_memory: 20MiB}\n";
    let after = before.replace("writer_memory: 20MiB", "writer_memory: 30MiB");
    let Reloaded {
        written: n, log, ..
    } = Reload {
        // The index takes a few thousand events a second in a debug build.
        first: 200,
        more: 300,
        ..Reload::new(&before, &after, Trigger::Sighup)
    }
    .run(&d, |n| ends_at(&d, "out/a.log", n));
    assert!(
        log.contains("reload: restarting component=sink `idx`"),
        "{log}"
    );
    assert!(!log.contains("reload refused"), "{log}");
    assert_sequence(&d.lines("out/a.log"), n);
    let o = d.run(&["search", "./idx", "*", "--count"], LIMIT);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), n.to_string(), "{log}");
}

/// One valid variant of a pipeline following `logs/app.log` through disk
/// channel `a`: the choices vary the source's options, the channel's, a
/// sink's, whether a second source and its own channel and sink exist, and
/// whether sink `one` runs alone or in a failover group with `two`.
fn variant(port: u16, pick: [u64; 5]) -> String {
    let poll = ["20ms", "30ms"][pick[0] as usize];
    let max_bytes = ["8MiB", "16MiB"][pick[1] as usize];
    let batch = [50, 100][pick[2] as usize];
    let (noise, group) = (pick[3] == 1, pick[4] == 1);
    let mut y = format!("api: {{address: '127.0.0.1:{port}'}}\nsources:\n  app: {{type: file, include: [./logs/app.log], read_from: beginning, poll_interval: {poll}, channels: [a]}}\n");
    if noise {
        y += "  noise: {type: generator, rate: 500, channels: [n]}\n";
    }
    y += &format!("channels:\n  a: {{type: disk, max_bytes: {max_bytes}}}\n");
    if noise {
        y += "  n: {type: memory}\n";
    }
    y += &format!(
        "sinks:\n  one: {{type: file, channel: a, path: ./out/a.log, batch_size: {batch}}}\n"
    );
    if noise {
        y += "  quiet: {type: \"null\", channel: n}\n";
    }
    if group {
        y += "  two: {type: file, channel: a, path: ./out/a2.log}\nsink_groups:\n  g: {strategy: failover, sinks: [one, two], priorities: {one: 10, two: 1}}\n";
    }
    y
}

/// Twenty reloads drawn from a seeded sequence of pipeline variants, each
/// while lines are written and flow through a disk channel: every reload
/// completes, every line arrives at least once, and the agent is healthy.
#[test]
fn a_seeded_sequence_of_reloads_under_traffic_loses_nothing() {
    const SEED: u64 = 0x5eed_0014;
    let d = Dir::new();
    let mut rng = Rng(SEED);
    let mut pick = [0u64; 5];
    d.write("logs/app.log", "");
    // The API binds port 0 once, at start: a reload does not rebind it.
    d.write("p.yaml", &variant(0, pick));
    let mut agent = Agent::start(&d, &["run", "p.yaml"]);
    let port = agent.api_port();
    let writer = Writer::start(&d);
    // Running (and past installing its SIGHUP handler) once lines arrive.
    wait_for(LIMIT, "the first lines", || {
        d.lines("out/a.log").len() >= 100
    });
    for round in 1..=20 {
        let before = pick;
        while pick == before {
            pick = std::array::from_fn(|_| rng.below(2));
        }
        replace(&d, "p.yaml", &variant(0, pick));
        let at = writer.written();
        signal(&agent.child, libc::SIGHUP);
        let deadline = Instant::now() + LIMIT;
        while agent.log().matches("reload complete").count() < round {
            let log = agent.log();
            assert!(
                Instant::now() < deadline && !log.contains("reload refused"),
                "seed {SEED:#x}, round {round} ({pick:?}):\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        wait_for(LIMIT, "lines between reloads", || {
            writer.written() >= at + 100
        });
    }
    let n = writer.stop();
    let delivered = || {
        let mut seen = vec![false; n];
        for l in d.lines("out/a.log").iter().chain(&d.lines("out/a2.log")) {
            if let Some(s) = l.parse::<usize>().ok().and_then(|i| seen.get_mut(i)) {
                *s = true;
            }
        }
        seen.iter().filter(|s| !**s).count()
    };
    wait_for(LIMIT, "every line", || delivered() == 0);
    let url = format!("http://127.0.0.1:{port}");
    let health = crate::operations::get(&url, "/health");
    assert_eq!(health.as_ref().map(|h| h.0), Some(200), "{health:?}");
    let (status, log) = agent.stop();
    assert!(status.success(), "seed {SEED:#x}:\n{log}");
    // The sequence did exercise each kind of change.
    for what in [
        "reload: channel rebuilt channel=a",
        "reload: started component=sink group `g`",
        "reload: adding component=source `noise`",
        "reload: removing component=source `noise`",
        "reload: restarting component=source `app`",
    ] {
        assert!(log.contains(what), "seed {SEED:#x}: no `{what}` in\n{log}");
    }
}
