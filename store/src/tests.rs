//! Unit tests over a real index in a temporary directory: the query
//! language, ordering, buckets, deduplication and retention.

use std::time::Duration as StdDuration;

use sluice_core::prelude::*;

use crate::search::{parse_time, SearchOptions, StoreReader};
use crate::sink::Config;

const SECOND: i64 = 1_000_000_000;

fn config(path: &std::path::Path, extra: &str) -> Config {
    let yaml = format!("path: {}\n{extra}", path.display());
    sluice_core::config::from_yaml_str(&yaml).unwrap()
}

fn cx() -> BuildContext {
    BuildContext {
        id: "store".to_string(),
        pipeline_data_dir: ".".into(),
        data_dir: ".".into(),
        durable_input: false,
    }
}

fn event(body: &str, t: i64, fields: &[(&str, Value)]) -> Event {
    let mut e = Event::new(body.to_string(), Timestamp(t));
    for (k, v) in fields {
        e.insert(k, v.clone());
    }
    e
}

/// Writes one batch and makes it durable, as the runtime does for a sink
/// that acknowledges later.
async fn write(sink: &mut Box<dyn Sink>, events: Vec<Event>) {
    let mut b = Batch::new();
    for e in events {
        b.push(e);
    }
    sink.write(&b).await.unwrap();
    assert!(sink.acknowledges_later());
    let before = sink.durable();
    sink.sync().await.unwrap();
    assert_eq!(sink.durable(), before + 1, "the sync covers the batch");
}

fn total(r: &StoreReader, q: &str) -> u64 {
    r.search(q, &SearchOptions::default()).unwrap().total
}

#[tokio::test]
async fn the_query_language_finds_what_it_says() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path(), "text_fields: [agent]\n");
    assert!(c.validate().is_empty());
    let mut sink = c.build(&cx()).unwrap();
    let base = 1_764_000_000 * SECOND;
    write(
        &mut sink,
        vec![
            event(
                "GET /index.html 200",
                base,
                &[
                    ("status", Value::Integer(200)),
                    ("host", "web-1".into()),
                    ("agent", "Mozilla Firefox".into()),
                    ("latency", Value::Float(0.25)),
                ],
            ),
            event(
                "GET /missing 404",
                base + SECOND,
                &[("status", Value::Integer(404)), ("host", "web-2".into())],
            ),
            event(
                "POST /api/orders 500 index html",
                base + 2 * SECOND,
                &[
                    ("status", Value::Integer(500)),
                    ("host", "web-1".into()),
                    ("latency", Value::Float(2.5)),
                ],
            ),
        ],
    )
    .await;
    // The same field as a string in another event.
    write(
        &mut sink,
        vec![event(
            "late",
            base - SECOND,
            &[
                ("status", "404".into()),
                ("http", Value::Map(Fields::new())),
            ],
        )],
    )
    .await;
    let r = StoreReader::open(dir.path()).unwrap();
    assert_eq!(total(&r, "status:404 AND late"), 1);
    assert_eq!(total(&r, "status:404"), 2);
    assert_eq!(total(&r, "-late"), 3);
    let mut nested = event("nested", base - 2 * SECOND, &[]);
    nested.insert("http.status", 503i64);
    write(&mut sink, vec![nested]).await;
    assert_eq!(total(&r, "http.status:503"), 1);
    assert_eq!(total(&r, "http.status:>500 AND nested"), 1);
    let r = StoreReader::open(dir.path()).unwrap();
    assert_eq!(total(&r, "* -late -nested"), 3);
    assert_eq!(total(&r, ""), 5);
    // Words of the body; the default is AND.
    assert_eq!(total(&r, "get"), 2);
    assert_eq!(total(&r, "GET missing"), 1);
    // A phrase keeps the order.
    assert_eq!(total(&r, "\"index html\""), 2);
    assert_eq!(total(&r, "\"html index\""), 0);
    // Fields: keywords are exact, numbers typed.
    assert_eq!(total(&r, "host:web-1"), 2);
    assert_eq!(total(&r, "host:web"), 0);
    assert_eq!(total(&r, "status:404 -late"), 1);
    assert_eq!(total(&r, "status:[400 TO 599]"), 2);
    assert_eq!(total(&r, "status:>=500"), 1);
    assert_eq!(total(&r, "latency:>1.0"), 1);
    // A set.
    assert_eq!(total(&r, "host: IN [web-2 web-9]"), 1);
    // Text fields are searchable by word.
    assert_eq!(total(&r, "agent:firefox"), 1);
    // Boolean operators.
    assert_eq!(total(&r, "host:web-1 AND NOT status:500"), 1);
    assert_eq!(total(&r, "status:404 OR status:500"), 3);
    assert_eq!(total(&r, "+get -status:200"), 1);
    assert_eq!(total(&r, "(status:200 OR status:404) AND host:web-2"), 1);
    // Time.
    let t = |s: i64| chrono::DateTime::from_timestamp(s, 0).unwrap().to_rfc3339();
    let q = format!("timestamp:[{} TO {}]", t(1_764_000_001), t(1_764_000_002));
    assert_eq!(total(&r, &q), 2);
    let opts = SearchOptions {
        from: Some(Timestamp(base + SECOND)),
        to: Some(Timestamp(base + 2 * SECOND)),
        limit: 10,
        ..Default::default()
    };
    let res = r.search("*", &opts).unwrap();
    assert_eq!(res.total, 1);
    assert_eq!(res.hits[0].message, "GET /missing 404");
    // Newest first, with the fields as written.
    let res = r
        .search(
            "*",
            &SearchOptions {
                limit: 2,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(res.total, 5);
    let messages: Vec<&str> = res.hits.iter().map(|h| h.message.as_str()).collect();
    assert_eq!(
        messages,
        ["POST /api/orders 500 index html", "GET /missing 404"]
    );
    assert_eq!(res.hits[0].fields["status"], 500);
    assert_eq!(res.hits[0].fields["host"], "web-1");
    assert!(res.hits[0].timestamp.ends_with('Z'));
    // Oldest first, and a page further on.
    let page = |oldest_first, offset| {
        let res = r
            .search(
                "*",
                &SearchOptions {
                    limit: 2,
                    oldest_first,
                    offset,
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(res.total, 5);
        res.hits
            .into_iter()
            .map(|h| h.timestamp)
            .collect::<Vec<_>>()
    };
    let (oldest, newest) = (page(true, 0), page(false, 0));
    assert!(oldest[0] < oldest[1] && newest[0] > newest[1]);
    assert_eq!(page(true, 3), [newest[1].clone(), newest[0].clone()]);
    assert_eq!(page(false, 4).len(), 1);
    // Buckets.
    let res = r
        .search(
            "*",
            &SearchOptions {
                count_by: Some(StdDuration::from_secs(2)),
                ..Default::default()
            },
        )
        .unwrap();
    let counts: Vec<u64> = res.buckets.iter().map(|b| b.count).collect();
    assert_eq!(counts, [2, 2, 1]);
    assert_eq!(res.total, 5);
    // A bad query is an error, not a panic.
    assert!(matches!(
        r.search("status:[1 TO", &SearchOptions::default()),
        Err(crate::StoreError::Query(_))
    ));
    // The JSON a caller (an HTTP API) gets.
    let json = serde_json::to_value(
        r.search(
            "status:404",
            &SearchOptions {
                limit: 5,
                ..Default::default()
            },
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(json["total"], 2);
    assert_eq!(json["hits"][0]["fields"]["status"], 404);
}

#[tokio::test]
async fn buckets_at_the_ends_of_the_time_range_do_not_wrap() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = config(dir.path(), "").build(&cx()).unwrap();
    write(
        &mut sink,
        vec![
            event("earliest", i64::MIN, &[]),
            event("epoch", 0, &[]),
            event("latest", i64::MAX, &[]),
        ],
    )
    .await;
    let r = StoreReader::open(dir.path()).unwrap();
    for width in [1, 60, 86_400] {
        let res = r
            .search(
                "*",
                &SearchOptions {
                    count_by: Some(StdDuration::from_secs(width)),
                    ..Default::default()
                },
            )
            .unwrap();
        let buckets: Vec<(&str, u64)> = res
            .buckets
            .iter()
            .map(|b| (&b.start[..4], b.count))
            .collect();
        // Oldest first: each event in its own year, none wrapped to 2262.
        assert_eq!(buckets, [("1677", 1), ("1970", 1), ("2262", 1)], "{width}s");
        assert_eq!(res.total, 3);
    }
    let earliest = r
        .search(
            "earliest",
            &SearchOptions {
                count_by: Some(StdDuration::from_secs(60)),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(earliest.buckets.len(), 1);
    assert_eq!(earliest.buckets[0].start, "1677-09-21T00:12:43.145224192Z");
    // The arithmetic itself, at the edges.
    use crate::search::bucket_start;
    assert_eq!(bucket_start(i64::MIN, 0, 60 * SECOND), i64::MIN);
    assert_eq!(
        bucket_start(i64::MAX, 0, 60 * SECOND),
        i64::MAX - i64::MAX % (60 * SECOND)
    );
    assert_eq!(bucket_start(-1, 0, SECOND), -SECOND);
    assert_eq!(bucket_start(5, i64::MIN, i64::MAX), -1);
    assert_eq!(bucket_start(i64::MAX, i64::MIN, 1), i64::MAX);
}

#[tokio::test]
async fn dedupe_by_makes_a_second_delivery_replace_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = config(dir.path(), "dedupe_by: [file, message]\n")
        .build(&cx())
        .unwrap();
    let batch = |t: i64| {
        (0..100)
            .map(|i| event(&format!("line {i}"), t, &[("file", "/var/log/a".into())]))
            .collect::<Vec<_>>()
    };
    write(&mut sink, batch(SECOND)).await;
    // Delivered again (later timestamps: read again after a crash), and
    // twice within one batch.
    let mut again = batch(2 * SECOND);
    again.extend(batch(3 * SECOND));
    write(&mut sink, again).await;
    sink.flush().await.unwrap();
    let r = StoreReader::open(dir.path()).unwrap();
    assert_eq!(total(&r, "*"), 100);
    // The last copy wins.
    assert_eq!(total(&r, "line"), 100);
    let res = r
        .search(
            "*",
            &SearchOptions {
                limit: 100,
                ..Default::default()
            },
        )
        .unwrap();
    assert!(res
        .hits
        .iter()
        .all(|h| h.timestamp == "1970-01-01T00:00:03Z"));
    // The same line in another file is another event.
    let mut sink = config(dir.path(), "dedupe_by: [file, message]\n")
        .build(&cx())
        .unwrap();
    write(
        &mut sink,
        vec![event("line 1", SECOND, &[("file", "/var/log/b".into())])],
    )
    .await;
    assert_eq!(total(&r, "*"), 101);
}

#[tokio::test]
async fn retention_deletes_by_age_and_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = config(dir.path(), "max_age: 1h\nretention_interval: 1ms\n")
        .build(&cx())
        .unwrap();
    let now = Timestamp::now().0;
    let old: Vec<Event> = (0..50)
        .map(|i| event(&format!("old {i}"), now - 7200 * SECOND, &[]))
        .collect();
    write(&mut sink, old).await;
    std::thread::sleep(StdDuration::from_millis(5));
    let new: Vec<Event> = (0..30)
        .map(|i| event(&format!("new {i}"), now, &[]))
        .collect();
    write(&mut sink, new).await;
    let r = StoreReader::open(dir.path()).unwrap();
    assert_eq!(total(&r, "*"), 30);
    assert_eq!(total(&r, "old"), 0);

    // By size: many events, a small limit; the oldest go.
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path(), "max_bytes: 200KiB\nretention_interval: 1ms\n");
    let mut sink = c.build(&cx()).unwrap();
    for round in 0..20i64 {
        let events: Vec<Event> = (0..500)
            .map(|i| {
                event(
                    &format!("round {round} event {i} padding padding padding padding padding"),
                    (round + 1) * SECOND,
                    &[("round", Value::Integer(round))],
                )
            })
            .collect();
        std::thread::sleep(StdDuration::from_millis(2));
        write(&mut sink, events).await;
    }
    let r = StoreReader::open(dir.path()).unwrap();
    let left = total(&r, "*");
    assert!(left > 0 && left < 10_000, "{left} events left");
    // What is left is the newest.
    assert_eq!(total(&r, "round:19"), 500);
    assert_eq!(total(&r, "round:0"), 0);
}

#[tokio::test]
async fn an_index_reopens_with_what_was_committed_and_rejects_foreign_directories() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut sink = config(dir.path(), "").build(&cx()).unwrap();
        write(&mut sink, vec![event("kept", SECOND, &[])]).await;
        // Dropped without flush, as a crash would.
    }
    let mut sink = config(dir.path(), "").build(&cx()).unwrap();
    write(&mut sink, vec![event("more", 2 * SECOND, &[])]).await;
    let r = StoreReader::open(dir.path()).unwrap();
    assert_eq!(total(&r, "*"), 2);
    let empty = tempfile::tempdir().unwrap();
    assert!(StoreReader::open(empty.path()).is_err());
}

#[tokio::test]
async fn a_field_called_message_can_be_a_text_field_apart_from_the_events_message() {
    // The syslog source: the event's message is the whole line, the field
    // `message` its free text.
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path(), "text_fields: [message, appname]\n");
    assert!(c.validate().is_empty(), "{:?}", c.validate());
    let mut sink = c.build(&cx()).unwrap();
    let base = 1_764_000_000 * SECOND;
    write(
        &mut sink,
        vec![
            event(
                "<34>Oct 11 22:14:15 host su: Disk full on /dev/sda1",
                base,
                &[
                    ("message", "Disk full on /dev/sda1".into()),
                    ("appname", "su".into()),
                ],
            ),
            event(
                "<34>Oct 11 22:14:16 host full: started",
                base + SECOND,
                &[("message", "started".into()), ("appname", "full".into())],
            ),
        ],
    )
    .await;
    drop(sink);
    let r = StoreReader::open(dir.path()).unwrap();
    // Word by word in the field only.
    assert_eq!(total(&r, "text.message:full"), 1);
    assert_eq!(total(&r, "text.message:sda1"), 1);
    assert_eq!(total(&r, "text.message:\"disk full\""), 1);
    // Exactly, as every string field.
    assert_eq!(total(&r, "fields.message:\"Disk full on /dev/sda1\""), 1);
    assert_eq!(total(&r, "fields.message:full"), 0);
    // The event's message is the whole line: both name `full`.
    assert_eq!(total(&r, "message:full"), 2);
}

/// Strings get a fast column only where `fast_fields` names them: ranges
/// over those work; numbers always have one.
#[tokio::test]
async fn string_columns_only_where_fast_fields_asks() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path(), "fast_fields: [user]\n");
    assert!(c.validate().is_empty());
    let mut sink = c.build(&cx()).unwrap();
    let events = ["alice", "bob", "carol"]
        .iter()
        .zip(1i64..)
        .map(|(name, n)| {
            event(
                name,
                n * SECOND,
                &[
                    ("user", (*name).into()),
                    ("host", (*name).into()),
                    ("code", Value::Integer(n)),
                ],
            )
        })
        .collect();
    write(&mut sink, events).await;
    let r = StoreReader::open(dir.path()).unwrap();
    assert_eq!(total(&r, "user:[alice TO bob]"), 2);
    // No column for `host`: its exact values are still found.
    assert_eq!(total(&r, "host:bob"), 1);
    assert_eq!(total(&r, "host:[alice TO bob]"), 0);
    assert_eq!(total(&r, "code:[1 TO 2]"), 2);
    assert_eq!(total(&r, "fields.code:>=2"), 2);
    assert_eq!(total(&r, "code:>1 AND host:carol"), 1);
    let meta = crate::schema::StoreMeta::load(dir.path()).unwrap();
    assert_eq!(meta.version, crate::schema::StoreMeta::VERSION);
}

/// An index written in layout 1 (every value of `fields` fast, no
/// `columns`) is written and searched in its own layout.
#[tokio::test]
async fn an_index_of_layout_1_keeps_its_layout() {
    use tantivy::schema::{
        DateOptions, DateTimePrecision, IndexRecordOption, JsonObjectOptions, NumericOptions,
        TextFieldIndexing, STORED, TEXT,
    };
    let dir = tempfile::tempdir().unwrap();
    let mut b = tantivy::schema::Schema::builder();
    b.add_date_field(
        "timestamp",
        DateOptions::default()
            .set_indexed()
            .set_fast()
            .set_stored()
            .set_precision(DateTimePrecision::Nanoseconds),
    );
    b.add_text_field("message", TEXT | STORED);
    let keyword = TextFieldIndexing::default()
        .set_tokenizer("raw")
        .set_index_option(IndexRecordOption::Basic);
    b.add_json_field(
        "fields",
        JsonObjectOptions::default()
            .set_indexing_options(keyword)
            .set_fast(None)
            .set_stored(),
    );
    let text = TextFieldIndexing::default()
        .set_tokenizer("default")
        .set_index_option(IndexRecordOption::WithFreqsAndPositions);
    b.add_json_field(
        "text",
        JsonObjectOptions::default().set_indexing_options(text),
    );
    b.add_u64_field("_id", NumericOptions::default().set_indexed());
    tantivy::Index::create_in_dir(dir.path(), b.build()).unwrap();

    let mut sink = config(dir.path(), "").build(&cx()).unwrap();
    let events = (1..=3i64)
        .map(|n| {
            event(
                "old",
                n * SECOND,
                &[("status", Value::Integer(400 + n)), ("user", "u".into())],
            )
        })
        .collect();
    write(&mut sink, events).await;
    let r = StoreReader::open(dir.path()).unwrap();
    assert_eq!(total(&r, "status:[402 TO 403]"), 2);
    assert_eq!(total(&r, "user:u AND status:401"), 1);
    assert_eq!(
        crate::schema::StoreMeta::load(dir.path()).unwrap().version,
        1
    );
}

#[test]
fn options_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(
        dir.path(),
        "text_fields: [timestamp]\nfast_fields: [columns, a.b]\nwriter_memory: 1MiB\nmax_age: 0s\n",
    );
    let keys: Vec<_> = c.validate().into_iter().filter_map(|p| p.key).collect();
    assert_eq!(
        keys,
        [
            "text_fields",
            "fast_fields",
            "fast_fields",
            "max_age",
            "writer_memory"
        ]
    );
    assert!(sluice_core::config::from_yaml_str::<Config>("path: x\npaht: y\n").is_err());
}

#[test]
fn times_parse_in_every_documented_form() {
    let now = Timestamp(1_764_000_000 * SECOND);
    assert_eq!(parse_time("now", now), Ok(now));
    assert_eq!(parse_time("15m", now), Ok(Timestamp(now.0 - 900 * SECOND)));
    assert_eq!(
        parse_time("2025-11-24T16:00:00Z", now),
        Ok(Timestamp(1_764_000_000 * SECOND))
    );
    assert_eq!(
        parse_time("1970-01-02", now),
        Ok(Timestamp(86_400 * SECOND))
    );
    assert!(parse_time("yesterday", now).is_err());
}
