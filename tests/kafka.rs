//! The Kafka source, sink and channel against a real broker, found through
//! `SLUICE_TEST_KAFKA_BROKERS` (set by `scripts/test.sh`). Tests that stop
//! or restart the broker need `SLUICE_TEST_KAFKA_PIDFILE` and
//! `SLUICE_TEST_KAFKA_RESTART` too.
//!
//! The tests take [`broker_lock`] so that one test stopping the broker does
//! not stall another.

use std::collections::{BTreeMap, HashMap};
use std::process::Stdio;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::util::*;

const LIMIT: Duration = Duration::from_secs(180);

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: the Kafka tests need a broker. Run them through scripts/test.sh, \
             which starts one (scripts/services/kafka.sh) and sets {name}"
        )
    })
}

/// The broker's address.
pub fn brokers() -> String {
    env("SLUICE_TEST_KAFKA_BROKERS")
}

/// Serializes the tests that use the broker.
pub fn broker_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// A name no earlier run used.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// Creates a topic with `partitions` partitions.
pub fn create_topic(name: &str, partitions: i32) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", brokers())
            .create()
            .expect("admin client");
        let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        let res = admin
            .create_topics([&topic], &opts)
            .await
            .expect("create topics");
        for r in res {
            r.unwrap_or_else(|(t, e)| panic!("creating topic {t}: {e}"));
        }
    });
}

/// Writes `count` generator events (bodies `0`..`count-1`) to `topic`.
pub fn produce_sequence(topic: &str, count: u64) {
    let d = Dir::new();
    d.write(
        "produce.yaml",
        &format!(
            "sources:\n  gen: {{type: generator, count: {count}, channels: [main]}}\nchannels:\n  main: {{type: memory, capacity: 20000}}\nsinks:\n  k:\n    type: kafka\n    channel: main\n    batch_size: 5000\n    brokers: {}\n    topic: {topic}\n",
            brokers()
        ),
    );
    let o = d.run_logged(&["run", "produce.yaml"]);
    assert!(o.status.success(), "producing failed: {}", stderr(&o));
    assert_eq!(
        final_counts(&stderr(&o))["k"]["events_out"].as_u64(),
        Some(count)
    );
}

/// A consumer pipeline: kafka source → `channel` → file sink (JSON lines
/// with the record's metadata).
fn consumer_yaml(topic: &str, group: &str, channel: &str) -> String {
    format!(
        "sources:\n  k:\n    type: kafka\n    brokers: {}\n    topics: [{topic}]\n    group_id: {group}\n    channels: [main]\nchannels:\n  main: {channel}\nsinks:\n  out: {{type: file, channel: main, path: ./out/events.json, format: json}}\n",
        brokers()
    )
}

/// One output line: the event number, its partition and offset.
struct Seen {
    n: u64,
    partition: i64,
    offset: i64,
}

fn read_json(d: &Dir) -> Vec<Seen> {
    d.lines("out/events.json")
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            Seen {
                n: v["message"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .expect("a number"),
                partition: v["fields"]["kafka"]["partition"]
                    .as_i64()
                    .expect("partition"),
                offset: v["fields"]["kafka"]["offset"].as_i64().expect("offset"),
            }
        })
        .collect()
}

/// Number of complete JSON lines written so far (cheap: no parsing).
fn count_lines(d: &Dir) -> usize {
    std::fs::read(d.join("out/events.json"))
        .map(|b| b.iter().filter(|&&c| c == b'\n').count())
        .unwrap_or(0)
}

/// Asserts that every number below `total` was seen; returns how many were
/// seen more than once.
fn assert_complete(seen: &[u64], total: u64) -> usize {
    let mut counts = vec![0u32; total as usize];
    for &n in seen {
        assert!(n < total, "unexpected event {n}");
        counts[n as usize] += 1;
    }
    let missing: Vec<usize> = (0..counts.len()).filter(|&i| counts[i] == 0).collect();
    assert!(
        missing.is_empty(),
        "{} of {total} events missing, first {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    counts.iter().map(|&c| c as usize - 1).sum()
}

#[test]
fn generator_to_a_six_partition_topic_and_back_delivers_every_event_once() {
    let _lock = broker_lock();
    let topic = unique("roundtrip");
    create_topic(&topic, 6);
    produce_sequence(&topic, 200_000);
    let d = Dir::new();
    d.write(
        "consume.yaml",
        &consumer_yaml(&topic, &unique("g"), "{type: memory, capacity: 20000}"),
    );
    let agent = Agent::start(&d, &["run", "consume.yaml"]);
    wait_for(LIMIT, "200,000 events to arrive", || {
        count_lines(&d) >= 200_000
    });
    agent.stop_ok();
    let seen = read_json(&d);
    let numbers: Vec<u64> = seen.iter().map(|s| s.n).collect();
    assert_eq!(
        assert_complete(&numbers, 200_000),
        0,
        "no event may arrive twice"
    );
    assert_eq!(seen.len(), 200_000);
    // Within a partition, records arrive in offset order, and events keep the
    // order they were produced in.
    let mut last: HashMap<i64, (i64, u64)> = HashMap::new();
    for s in &seen {
        if let Some(&(offset, n)) = last.get(&s.partition) {
            assert!(
                s.offset > offset && s.n > n,
                "reordered in partition {}",
                s.partition
            );
        }
        last.insert(s.partition, (s.offset, s.n));
    }
    assert_eq!(last.len(), 6, "every partition got events");
}

#[test]
fn three_agents_in_one_group_share_a_topic_and_survive_a_kill_9() {
    let _lock = broker_lock();
    let topic = unique("scale");
    let group = unique("aggregators");
    create_topic(&topic, 6);
    const TOTAL: u64 = 300_000;
    // Each aggregator buffers in its own durable `kafka` channel, so that
    // what its source committed survives a kill -9.
    let dirs: Vec<Dir> = (0..3).map(|_| Dir::new()).collect();
    for (i, d) in dirs.iter().enumerate() {
        let channel = format!(
            "{{type: kafka, brokers: {}, topic: {}, group_id: {}}}",
            brokers(),
            format_args!("{topic}-buffer-{i}"),
            format_args!("{group}-buffer-{i}")
        );
        d.write("agent.yaml", &consumer_yaml(&topic, &group, &channel));
    }
    let mut agents: Vec<Option<Agent>> = dirs
        .iter()
        .map(|d| Some(Agent::start(d, &["run", "agent.yaml"])))
        .collect();
    // Everyone has joined before the events come.
    wait_for(LIMIT, "all three agents to hold partitions", || {
        agents
            .iter()
            .flatten()
            .all(|a| a.log().contains("partitions assigned"))
    });
    let producer = {
        let topic = topic.clone();
        std::thread::spawn(move || produce_sequence(&topic, TOTAL))
    };
    let total = |dirs: &[Dir]| dirs.iter().map(count_lines).sum::<usize>();
    wait_for(LIMIT, "a third of the events", || total(&dirs) >= 100_000);
    if let Some(a) = agents[1].take() {
        a.kill9();
    }
    std::thread::sleep(Duration::from_secs(2));
    agents[1] = Some(Agent::start(&dirs[1], &["run", "agent.yaml"]));
    producer.join().expect("producer");
    let union = || -> Vec<u64> {
        dirs.iter()
            .flat_map(|d| read_json(d).into_iter().map(|s| s.n))
            .collect()
    };
    let start = std::time::Instant::now();
    loop {
        let mut u = union();
        u.sort_unstable();
        u.dedup();
        if u.len() == TOTAL as usize {
            break;
        }
        if start.elapsed() > LIMIT {
            let logs: Vec<String> = agents.iter().flatten().map(Agent::log).collect();
            panic!(
                "{} of {TOTAL} distinct events after {LIMIT:?}; per agent {:?}\n{}",
                u.len(),
                dirs.iter().map(count_lines).collect::<Vec<_>>(),
                logs.join("\n----\n")
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    for a in agents.iter_mut() {
        if let Some(a) = a.take() {
            a.stop_ok();
        }
    }
    let all = union();
    let duplicates = assert_complete(&all, TOTAL);
    let per_agent: Vec<usize> = dirs.iter().map(count_lines).collect();
    eprintln!("scale-out: {TOTAL} events, per agent {per_agent:?}, {duplicates} duplicates after the kill -9");
    assert!(
        per_agent.iter().all(|&n| n > 0),
        "the group spread the partitions: {per_agent:?}"
    );
    // Every record is in the topic once: duplicates are records read again.
    assert_eq!(records_in(&topic, 6), TOTAL);
    // A record is read again only where its partition changed owners (the
    // killed agent's partitions from its last commit; a hand-over whose
    // commit failed from the last one that succeeded), so per partition the
    // records read twice form a few contiguous runs of offsets, one per
    // hand-over at most, never scattered ones. How long a run is depends on
    // the broker's commit latency (offsets are committed asynchronously
    // after every batch).
    let mut copies: HashMap<(i64, i64), u32> = HashMap::new();
    for d in &dirs {
        for s in read_json(d) {
            *copies.entry((s.partition, s.offset)).or_default() += 1;
        }
    }
    let mut again: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for (&(p, o), &c) in &copies {
        if c > 1 {
            again.entry(p).or_default().push(o);
        }
    }
    for (p, offsets) in &mut again {
        offsets.sort_unstable();
        let runs = 1 + offsets.windows(2).filter(|w| w[1] != w[0] + 1).count();
        assert!(
            runs <= 6,
            "partition {p}: records read again in {runs} separate runs, not at a few hand-overs: {:?}",
            &offsets[..offsets.len().min(20)]
        );
    }
}

fn broker_pid() -> i32 {
    let file = env("SLUICE_TEST_KAFKA_PIDFILE");
    std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("reading {file}: {e}"))
        .trim()
        .parse()
        .expect("a pid")
}

fn kill(pid: i32, sig: i32) {
    // SAFETY: kill(2) on the broker's pid; no memory is involved.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill {pid}");
}

fn restart_broker() {
    let cmd = env("SLUICE_TEST_KAFKA_RESTART");
    let o = std::process::Command::new("sh")
        .args(["-c", &cmd])
        .output()
        .expect("restart the broker");
    assert!(
        o.status.success(),
        "restarting the broker failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Continues the broker even when an assertion fails while it is stopped.
struct Continue(i32);
impl Drop for Continue {
    fn drop(&mut self) {
        // SAFETY: as in `kill`.
        unsafe { libc::kill(self.0, libc::SIGCONT) };
    }
}

#[test]
fn a_stopped_and_a_restarted_broker_lose_nothing() {
    let _lock = broker_lock();
    let topic = unique("outage");
    create_topic(&topic, 3);
    const TOTAL: u64 = 60_000;
    let producer_dir = Dir::new();
    producer_dir.write(
        "produce.yaml",
        &format!(
            "sources:\n  gen: {{type: generator, count: {TOTAL}, rate: 2000, channels: [main]}}\nchannels:\n  main: {{type: memory, capacity: 2000}}\nsinks:\n  k: {{type: kafka, channel: main, brokers: {}, topic: {topic}}}\n",
            brokers()
        ),
    );
    let consumer_dir = Dir::new();
    consumer_dir.write(
        "consume.yaml",
        &consumer_yaml(&topic, &unique("g"), "{type: memory, capacity: 2000}"),
    );
    let consumer = Agent::start(&consumer_dir, &["run", "consume.yaml"]);
    let producer = Agent::start(&producer_dir, &["run", "produce.yaml"]);
    wait_for(LIMIT, "the first events", || {
        count_lines(&consumer_dir) >= 5_000
    });
    // The broker freezes for 30 s: producer and consumer wait, then go on.
    let pid = broker_pid();
    kill(pid, libc::SIGSTOP);
    let guard = Continue(pid);
    std::thread::sleep(Duration::from_secs(30));
    drop(guard);
    let before = count_lines(&consumer_dir);
    wait_for(LIMIT, "events after the outage", || {
        count_lines(&consumer_dir) >= before + 5_000
    });
    // The broker restarts; the consumer resumes from its committed offsets.
    restart_broker();
    producer.finish_ok(LIMIT);
    // Redelivery after the outage brings duplicates, so the line count can
    // reach TOTAL early: wait until every number is there.
    wait_for(LIMIT, "every event", || {
        count_lines(&consumer_dir) >= TOTAL as usize && {
            // Tolerant: the last line may be half written.
            let numbers: std::collections::HashSet<u64> = consumer_dir
                .lines("out/events.json")
                .iter()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter_map(|v| v["message"].as_str().and_then(|m| m.parse().ok()))
                .collect();
            numbers.len() >= TOTAL as usize
        }
    });
    consumer.stop_ok();
    let numbers: Vec<u64> = read_json(&consumer_dir).iter().map(|s| s.n).collect();
    let duplicates = assert_complete(&numbers, TOTAL);
    eprintln!("outage: {TOTAL} events, {duplicates} duplicates");
    assert!(duplicates <= 3 * 2000, "{duplicates} duplicates");
}

/// How many records `topic` holds (the sum of its partitions' high
/// watermarks; nothing is deleted during a test).
fn records_in(topic: &str, partitions: i32) -> u64 {
    use rdkafka::consumer::{BaseConsumer, Consumer as _};
    let c: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .expect("consumer");
    (0..partitions)
        .map(|p| {
            let (low, high) = c
                .fetch_watermarks(topic, p, Duration::from_secs(30))
                .expect("watermarks");
            (high - low) as u64
        })
        .sum()
}

#[test]
fn the_kafka_channel_keeps_fields_and_what_it_accepted_across_a_kill_9() {
    let _lock = broker_lock();
    let topic = unique("channel");
    create_topic(&topic, 3);
    let d = Dir::new();
    let yaml = format!(
        "sources:\n  gen: {{type: generator, count: \"${{COUNT}}\", rate: 20000, processors: [num], channels: [k]}}\nprocessors:\n  num: {{type: parse_regex, pattern: '^(?P<n>\\d+)$', types: {{n: integer}}}}\nchannels:\n  k: {{type: kafka, brokers: {}, topic: {topic}}}\nsinks:\n  out: {{type: file, channel: k, path: ./out/events.json, format: json}}\n",
        brokers()
    );
    d.write("p.yaml", &yaml);
    // Killed midway through 100,000 events.
    let mut child = d
        .sluice(&["run", "p.yaml"])
        .env("COUNT", "100000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    wait_for(LIMIT, "some events", || count_lines(&d) >= 5_000);
    signal(&child, libc::SIGKILL);
    let _ = child.wait();
    // Everything the channel accepted is in the topic.
    let accepted = records_in(&topic, 3);
    let first = count_lines(&d) as u64;
    assert!(
        accepted < 100_000,
        "the kill came too late to test anything"
    );
    // The next run generates nothing: it only drains what the killed run
    // accepted but its sink had not committed.
    let o = d
        .sluice(&["run", "p.yaml"])
        .env("COUNT", "0")
        .output()
        .expect("run");
    ok(&o);
    // Everything the channel accepted is in the topic (the second run put
    // nothing).
    let accepted = records_in(&topic, 3);
    assert!(
        accepted < 100_000,
        "the kill came too late to test anything"
    );
    let lines = d.lines("out/events.json");
    let mut numbers = Vec::with_capacity(lines.len());
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).expect("json");
        let n = v["message"]
            .as_str()
            .and_then(|s| s.parse::<u64>().ok())
            .expect("n");
        // The typed field made the trip through Kafka as an integer.
        assert_eq!(v["fields"]["n"].as_u64(), Some(n), "{l}");
        numbers.push(n);
    }
    // Every record in the topic reached the output (a batch cut by the kill
    // may have left a few records in some partitions only, so the numbers
    // need not be a prefix).
    let mut distinct = numbers.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(
        distinct.len() as u64,
        accepted,
        "records in the topic vs in the output"
    );
    let duplicates = numbers.len() - distinct.len();
    eprintln!(
        "kafka channel: {accepted} accepted before the kill, {first} written before it, {} after, {duplicates} duplicates",
        lines.len() as u64 - first
    );
}

#[test]
fn the_sink_routes_by_a_templated_topic_and_keys_by_a_field() {
    let _lock = broker_lock();
    let prefix = unique("route");
    let levels = ["info", "debug", "warn", "error"];
    for l in levels {
        create_topic(&format!("{prefix}-{l}"), 4);
    }
    let d = Dir::new();
    d.write(
        "produce.yaml",
        &format!(
            "sources:\n  gen: {{type: generator, count: 10000, format: json, processors: [json], channels: [main]}}\nprocessors:\n  json: {{type: parse_json}}\nchannels:\n  main: {{type: memory}}\nsinks:\n  k:\n    type: kafka\n    channel: main\n    brokers: {}\n    topic: '{prefix}-{{level}}'\n    key: service\n    compression: gzip\n    format: native\n",
            brokers()
        ),
    );
    ok(&d.run(&["run", "produce.yaml"], LIMIT));
    let topics: Vec<String> = levels.iter().map(|l| format!("{prefix}-{l}")).collect();
    d.write(
        "consume.yaml",
        &format!(
            "sources:\n  k:\n    type: kafka\n    brokers: {}\n    topics: [{}]\n    group_id: {}\n    format: native\n    channels: [main]\nchannels:\n  main: {{type: memory}}\nsinks:\n  out: {{type: file, channel: main, path: ./out/events.json, format: json}}\n",
            brokers(),
            topics.join(", "),
            unique("g")
        ),
    );
    let agent = Agent::start(&d, &["run", "consume.yaml"]);
    wait_for(LIMIT, "10,000 events", || count_lines(&d) >= 10_000);
    agent.stop_ok();
    let mut partition_of: BTreeMap<(String, String), i64> = BTreeMap::new();
    let mut numbers = Vec::new();
    for l in d.lines("out/events.json") {
        let v: serde_json::Value = serde_json::from_str(&l).expect("json");
        let f = &v["fields"];
        let level = f["level"].as_str().expect("level");
        let topic = f["kafka"]["topic"].as_str().expect("topic");
        assert_eq!(topic, format!("{prefix}-{level}"), "routed by level");
        let key = f["kafka"]["key"].as_str().expect("key");
        assert_eq!(f["service"].as_str(), Some(key), "keyed by service");
        let partition = f["kafka"]["partition"].as_i64().expect("partition");
        // Same key, same partition.
        let first = *partition_of
            .entry((topic.to_string(), key.to_string()))
            .or_insert(partition);
        assert_eq!(first, partition);
        // `native` kept the typed fields: `seq` is still an integer.
        numbers.push(f["seq"].as_u64().expect("integer seq"));
    }
    assert_eq!(assert_complete(&numbers, 10_000), 0);
}

#[test]
fn the_local_tiered_demo_delivers_every_line() {
    let _lock = broker_lock();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let d = Dir::new();
    let o = std::process::Command::new("bash")
        .arg(root.join("demos/kafka-tiered/run-local.sh"))
        .current_dir(d.path())
        .env("SLUICE_BIN", sluice_bin())
        .env("KAFKA_BROKERS", brokers())
        .env("DEMO_EVENTS", "5000")
        .env("DEMO_DIR", d.path())
        .env("DEMO_TOPIC", unique("demo"))
        .output()
        .expect("run-local.sh");
    assert!(
        o.status.success(),
        "run-local.sh failed:\n{}\n{}",
        stdout(&o),
        stderr(&o)
    );
    // Two edges of DEMO_EVENTS lines each, all in the aggregator's files.
    let mut lines = Vec::new();
    for e in std::fs::read_dir(d.join("out/aggregator")).expect("aggregator output") {
        let p = e.expect("entry").path();
        lines.extend(
            std::fs::read_to_string(&p)
                .expect("read")
                .lines()
                .map(String::from),
        );
    }
    let mut per_edge: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).expect("json");
        let edge = v["fields"]["edge"].as_str().expect("edge").to_string();
        let seq = v["fields"]["seq"].as_u64().expect("seq");
        per_edge.entry(edge).or_default().push(seq);
    }
    assert_eq!(per_edge.len(), 2, "both edges arrive");
    for (edge, seqs) in per_edge {
        assert_eq!(assert_complete(&seqs, 5000), 0, "edge {edge}");
    }
}

#[test]
fn a_native_record_in_an_unknown_wire_version_is_counted_and_passed_on_as_text() {
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer as _};
    let _lock = broker_lock();
    let topic = unique("wire-version");
    create_topic(&topic, 1);
    let producer: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .expect("producer");
    // One record as a `kafka` sink with `format: native` writes it (fields
    // `n: 1`), one with the fields header in wire format version 9.
    let ts = 1_700_000_000_000_000_000i64.to_be_bytes();
    let good: &[u8] = &[1, 1, 1, b'n', 3, 2];
    let newer: &[u8] = &[9, 1, 1, b'n', 3, 2];
    for (body, fields) in [("good", good), ("newer", newer)] {
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "sluice.ts",
                value: Some(&ts[..]),
            })
            .insert(Header {
                key: "sluice.fields",
                value: Some(fields),
            });
        producer
            .send(
                BaseRecord::<(), _>::to(&topic)
                    .payload(body)
                    .headers(headers),
            )
            .map_err(|(e, _)| e)
            .expect("send");
    }
    producer.flush(LIMIT).expect("flush");
    let d = Dir::new();
    d.write(
        "consume.yaml",
        &format!(
            "sources:\n  k:\n    type: kafka\n    brokers: {}\n    topics: [{topic}]\n    group_id: {}\n    format: native\n    metadata: false\n    channels: [main]\nchannels:\n  main: {{type: memory}}\nsinks:\n  out: {{type: file, channel: main, path: ./out/events.json, format: json}}\n",
            brokers(),
            unique("g")
        ),
    );
    let agent = Agent::start_json(&d, &["run", "consume.yaml"]);
    wait_for(LIMIT, "both records", || count_lines(&d) >= 2);
    let o = agent.stop_output();
    ok(&o);
    let events: Vec<serde_json::Value> = d
        .lines("out/events.json")
        .iter()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(events[0]["message"], "good");
    assert_eq!(events[0]["fields"]["n"], 1, "{}", events[0]);
    // Not misread: the body alone, no fields, counted as an error.
    assert_eq!(events[1]["message"], "newer");
    assert!(
        events[1]["fields"].as_object().is_none_or(|f| f.is_empty()),
        "{}",
        events[1]
    );
    let log = stderr(&o);
    assert!(log.contains("wire format version 9"), "{log}");
    assert_eq!(final_counts(&log)["k"]["errors"].as_u64(), Some(1), "{log}");
}
