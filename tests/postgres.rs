//! The `postgres` sink against a real PostgreSQL server (started by
//! `scripts/test.sh`, found through `SLUICE_TEST_POSTGRES_URL`), checked
//! with `psql`.

use std::process::Command;
use std::time::Duration;

use crate::util::*;

const LIMIT: Duration = Duration::from_secs(300);

fn url() -> String {
    std::env::var("SLUICE_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!(
            "SLUICE_TEST_POSTGRES_URL is not set: run the tests with scripts/test.sh, \
             which starts PostgreSQL (scripts/services/postgres.sh) and exports it"
        )
    })
}

/// Runs SQL through `psql`; returns its unaligned, tuples-only output.
fn psql(sql: &str) -> String {
    let o = Command::new("psql")
        .args([
            url().as_str(),
            "-X",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .output()
        .expect("psql (installed with PostgreSQL by scripts/services/postgres.sh)");
    assert!(
        o.status.success(),
        "psql failed on `{sql}`: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn number(sql: &str) -> i64 {
    let out = psql(sql);
    out.parse()
        .unwrap_or_else(|_| panic!("`{sql}` gave {out:?}, not a number"))
}

/// A table name of its own for each test run, dropped first.
fn fresh_table(name: &str) -> String {
    let table = format!("sluice_{name}_{}", std::process::id());
    psql(&format!("DROP TABLE IF EXISTS {table}"));
    table
}

/// The tests share one server and one of them restarts it: one at a time.
static SERVER: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn server() -> std::sync::MutexGuard<'static, ()> {
    SERVER.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn two_hundred_thousand_events_arrive_as_rows() {
    let _one_at_a_time = server();
    let table = fresh_table("bulk");
    let d = Dir::new();
    d.write(
        "p.yaml",
        &format!(
            r#"sources:
  gen:
    type: generator
    count: 200000
    format: json
    batch_size: 1000
    processors: [json]
    channels: [main]
processors:
  json: {{type: parse_json}}
channels:
  main: {{type: memory, capacity: 10000}}
sinks:
  db:
    type: postgres
    channel: main
    url: ${{SLUICE_TEST_POSTGRES_URL}}
    table: {table}
    batch_size: 2000
"#
        ),
    );
    let o = d.run_logged(&["run", "p.yaml"]);
    ok(&o);
    assert_eq!(
        final_counts(&stderr(&o))["db"]["events_out"].as_u64(),
        Some(200_000)
    );
    assert_eq!(number(&format!("SELECT count(*) FROM {table}")), 200_000);
    // Every sequence number once, the body and the typed fields intact.
    assert_eq!(
        number(&format!(
            "SELECT count(DISTINCT (fields->>'seq')::bigint) FROM {table}"
        )),
        200_000
    );
    assert_eq!(
        psql(&format!(
            "SELECT min((fields->>'seq')::bigint) || ' ' || max((fields->>'seq')::bigint) FROM {table}"
        )),
        "0 199999"
    );
    assert_eq!(
        number(&format!(
            "SELECT count(*) FROM {table} WHERE message <> format('{{\"seq\":%s,\"level\":\"%s\",\"service\":\"%s\",\"latency_ms\":%s,\"message\":\"request %s handled\"}}', \
             fields->>'seq', fields->>'level', fields->>'service', fields->>'latency_ms', fields->>'seq')"
        )),
        0,
        "every row's body is the JSON its fields came from"
    );
    assert_eq!(
        psql(&format!(
            "SELECT jsonb_typeof(fields->'latency_ms') || ' ' || jsonb_typeof(fields->'level') FROM {table} LIMIT 1"
        )),
        "number string"
    );
    // Timestamps are the events' own (now-ish, never null).
    assert_eq!(
        number(&format!(
            "SELECT count(*) FROM {table} WHERE \"timestamp\" > now() - interval '1 hour'"
        )),
        200_000
    );
    psql(&format!("DROP TABLE {table}"));
}

#[test]
fn a_database_restart_mid_stream_loses_nothing() {
    let _one_at_a_time = server();
    let ctl = std::env::var("SLUICE_TEST_POSTGRES_CTL").unwrap_or_else(|_| {
        panic!(
            "SLUICE_TEST_POSTGRES_CTL is not set: run the tests with scripts/test.sh \
             (scripts/services/postgres.sh env exports it)"
        )
    });
    let table = fresh_table("restart");
    const N: i64 = 60_000;
    let d = Dir::new();
    d.write(
        "p.yaml",
        &format!(
            r#"sources:
  gen:
    type: generator
    count: {N}
    rate: 10000
    batch_size: 200
    channels: [main]
channels:
  main: {{type: memory, capacity: 20000}}
sinks:
  db:
    type: postgres
    channel: main
    url: ${{SLUICE_TEST_POSTGRES_URL}}
    table: {table}
    batch_size: 500
"#
        ),
    );
    let child = d.start(&["run", "p.yaml"]);
    wait_for(Duration::from_secs(60), "the first rows", || {
        Command::new("psql")
            .args([url().as_str(), "-X", "-A", "-t", "-c"])
            .arg(format!("SELECT count(*) FROM {table}"))
            .output()
            .is_ok_and(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .trim()
                    .parse::<i64>()
                    .is_ok_and(|n| n >= 5_000)
            })
    });
    let mut parts = ctl.split_whitespace();
    let program = parts.next().expect("a command in SLUICE_TEST_POSTGRES_CTL");
    let restarted = Command::new(program)
        .args(parts)
        .arg("restart")
        .output()
        .expect("restart PostgreSQL");
    assert!(
        restarted.status.success(),
        "restart failed: {}",
        String::from_utf8_lossy(&restarted.stderr)
    );
    let before_end = number(&format!("SELECT count(*) FROM {table}"));
    assert!(before_end < N, "the restart came after the end");
    let o = wait_output(child, LIMIT);
    ok(&o);
    // Nothing lost: every sequence number is there.
    assert_eq!(
        number(&format!("SELECT count(DISTINCT message) FROM {table}")),
        N
    );
    assert_eq!(
        psql(&format!(
            "SELECT min(message::bigint) || ' ' || max(message::bigint) FROM {table}"
        )),
        format!("0 {}", N - 1)
    );
    // Duplicates only from a batch whose commit answer was lost: at most
    // one batch.
    let rows = number(&format!("SELECT count(*) FROM {table}"));
    assert!((N..=N + 500).contains(&rows), "{rows} rows");
    psql(&format!("DROP TABLE {table}"));
}

#[test]
fn a_row_the_database_refuses_goes_to_the_dead_letter_channel_and_the_rest_arrive() {
    let _one_at_a_time = server();
    let table = fresh_table("reject");
    let d = Dir::new();
    let mut input = String::new();
    for i in 0..1000 {
        if i % 100 == 7 {
            // PostgreSQL text cannot hold a NUL character.
            input.push_str(&format!("bad \u{0} line {i}\n"));
        } else {
            input.push_str(&format!("line {i}\n"));
        }
    }
    d.write("logs/app.log", &input);
    d.write(
        "p.yaml",
        &format!(
            r#"sources:
  app:
    type: file
    include: [./logs/app.log]
    read_from: beginning
    follow: false
    channels: [main]
channels:
  main: {{type: memory}}
  bad: {{type: memory}}
sinks:
  db:
    type: postgres
    channel: main
    dead_letter: bad
    url: ${{SLUICE_TEST_POSTGRES_URL}}
    table: {table}
    batch_size: 100
  bad: {{type: file, channel: bad, path: ./out/bad.json, format: json}}
"#
        ),
    );
    let o = d.run_logged(&["run", "p.yaml"]);
    ok(&o);
    assert_eq!(number(&format!("SELECT count(*) FROM {table}")), 990);
    assert_eq!(
        number(&format!(
            "SELECT count(*) FROM {table} WHERE message LIKE 'line %'"
        )),
        990
    );
    let bad = d.lines("out/bad.json");
    assert_eq!(bad.len(), 10);
    for l in &bad {
        let v: serde_json::Value = serde_json::from_str(l).expect("json");
        assert!(
            v["message"].as_str().is_some_and(|m| m.starts_with("bad ")),
            "{l}"
        );
        assert_eq!(v["fields"]["component"], "db");
        // The database's own reason.
        assert!(
            v["fields"]["error"]
                .as_str()
                .is_some_and(|e| e.contains("0x00") || e.contains("22021")),
            "{l}"
        );
    }
    let counts = final_counts(&stderr(&o));
    assert_eq!(counts["db"]["events_out"].as_u64(), Some(990));
    // Each good row once: the refused row made nothing go in twice.
    assert_eq!(
        number(&format!("SELECT count(DISTINCT message) FROM {table}")),
        990
    );
    psql(&format!("DROP TABLE {table}"));
}

#[test]
fn a_nul_in_a_body_or_a_field_rejects_that_row_only_and_stores_the_others_once() {
    let _one_at_a_time = server();
    let table = fresh_table("nul");
    let d = Dir::new();
    let mut input = String::new();
    for n in 0..500 {
        match n {
            // Not JSON (a raw NUL): parse_json passes it on unchanged, and
            // PostgreSQL text cannot hold it.
            123 => input.push_str(&format!("{{\"n\":{n}}} \u{0}\n")),
            // A NUL inside a field: jsonb cannot hold it either.
            321 => input.push_str(&format!("{{\"n\":{n},\"user\":\"a\\u0000b\"}}\n")),
            _ => input.push_str(&format!("{{\"n\":{n},\"user\":\"u{}\"}}\n", n % 7)),
        }
    }
    d.write("logs/app.log", &input);
    d.write(
        "p.yaml",
        &format!(
            r#"sources:
  app:
    type: file
    include: [./logs/app.log]
    read_from: beginning
    follow: false
    batch_size: 500
    processors: [json]
    channels: [main]
processors:
  json: {{type: parse_json}}
channels:
  main: {{type: memory, capacity: 1000}}
sinks:
  db:
    type: postgres
    channel: main
    url: ${{SLUICE_TEST_POSTGRES_URL}}
    table: {table}
    batch_size: 500
"#
        ),
    );
    let o = d.run_logged(&["run", "p.yaml"]);
    ok(&o);
    assert_eq!(number(&format!("SELECT count(*) FROM {table}")), 498);
    // Every good event exactly once.
    assert_eq!(
        number(&format!(
            "SELECT count(DISTINCT (fields->>'n')::int) FROM {table} \
             WHERE (fields->>'n')::int NOT IN (123, 321)"
        )),
        498
    );
    let err = stderr(&o);
    let counts = final_counts(&err);
    assert_eq!(counts["db"]["events_out"].as_u64(), Some(498));
    assert_eq!(counts["db"]["errors"].as_u64(), Some(2));
    // Logged with the server's reason.
    assert!(
        err.lines().any(|l| {
            serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| {
                v["fields"]["component"] == "db"
                    && v["fields"]["first_error"]
                        .as_str()
                        .is_some_and(|e| e.contains("22021") || e.contains("22P05"))
            })
        }),
        "{err}"
    );
    psql(&format!("DROP TABLE {table}"));
}

#[test]
fn a_deferred_constraint_refusing_one_row_rejects_that_row_only() {
    let _one_at_a_time = server();
    let table = fresh_table("deferred");
    // A table of the user's own: messages unique, checked at COMMIT.
    psql(&format!(
        "CREATE TABLE {table} (\"timestamp\" timestamptz NOT NULL, message text NOT NULL, \
         fields jsonb NOT NULL DEFAULT '{{}}'::jsonb, \
         CONSTRAINT {table}_once UNIQUE (message) DEFERRABLE INITIALLY DEFERRED)"
    ));
    let d = Dir::new();
    // Line 100 repeats line 50: the table refuses the second copy.
    let input: String = (0..200)
        .map(|i| format!("line {}\n", if i == 100 { 50 } else { i }))
        .collect();
    d.write("logs/app.log", &input);
    d.write(
        "p.yaml",
        &format!(
            r#"sources:
  app:
    type: file
    include: [./logs/app.log]
    read_from: beginning
    follow: false
    batch_size: 500
    channels: [main]
channels:
  main: {{type: memory}}
  bad: {{type: memory}}
sinks:
  db:
    type: postgres
    channel: main
    dead_letter: bad
    url: ${{SLUICE_TEST_POSTGRES_URL}}
    table: {table}
    batch_size: 500
  bad: {{type: file, channel: bad, path: ./out/bad.json, format: json}}
"#
        ),
    );
    // Without finding the row, the COMMIT fails for the whole batch, again
    // and again: the run would never end.
    let child = d
        .sluice(&["run", "p.yaml"])
        .env("SLUICE_LOG_FORMAT", "json")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let o = wait_output(child, Duration::from_secs(30));
    ok(&o);
    assert_eq!(number(&format!("SELECT count(*) FROM {table}")), 199);
    let bad = d.lines("out/bad.json");
    assert_eq!(bad.len(), 1, "{bad:?}");
    let v: serde_json::Value = serde_json::from_str(&bad[0]).expect("json");
    assert_eq!(v["message"], "line 50");
    assert!(
        v["fields"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("23505")),
        "{v}"
    );
    assert_eq!(
        final_counts(&stderr(&o))["db"]["events_out"].as_u64(),
        Some(199)
    );
    psql(&format!("DROP TABLE {table}"));
}

/// `batch_timeout` makes a sink wait for a fuller batch: a trickle of 60
/// events (six ticks of a rate-limited generator) becomes one insert, one
/// transaction (rows of one transaction share `xmin`); without it, the
/// sink writes what each tick brought.
#[test]
fn batch_timeout_gathers_a_trickle_into_one_insert() {
    let _one_at_a_time = server();
    // A generator (`gen` options) into `table` with `batch_size: 1000` and
    // the sink lines `more`.
    let pipeline = |gen: &str, table: &str, more: &str| {
        format!(
            r#"sources:
  gen: {{type: generator, {gen}, channels: [main]}}
channels:
  main: {{type: memory, capacity: 1000}}
sinks:
  db:
    type: postgres
    channel: main
    url: ${{SLUICE_TEST_POSTGRES_URL}}
    table: {table}
    batch_size: 1000
{more}"#
        )
    };
    let run = |name: &str, timeout: &str| {
        let table = fresh_table(name);
        let d = Dir::new();
        d.write("p.yaml", &pipeline("count: 60, rate: 100", &table, timeout));
        let o = d.run_logged(&["run", "p.yaml"]);
        ok(&o);
        assert_eq!(number(&format!("SELECT count(*) FROM {table}")), 60);
        let transactions = number(&format!("SELECT count(DISTINCT xmin::text) FROM {table}"));
        psql(&format!("DROP TABLE {table}"));
        transactions
    };
    // The input ends long before the timeout: the sink writes at once then.
    assert_eq!(run("linger", "    batch_timeout: 1m\n"), 1);
    assert!(
        run("eager", "") > 1,
        "without batch_timeout each tick is a batch"
    );

    // An endless trickle (two events a tick) still arrives, a batch per
    // timeout, each of several ticks.
    let table = fresh_table("trickle");
    let d = Dir::new();
    d.write(
        "p.yaml",
        &pipeline("rate: 20", &table, "    batch_timeout: 700ms\n"),
    );
    let agent = Agent::start(&d, &["run", "p.yaml"]);
    let rows = || {
        psql(&format!(
            "SELECT count(*) FROM pg_tables WHERE tablename = '{table}'"
        )) == "1"
            && number(&format!("SELECT count(*) FROM {table}")) >= 40
    };
    wait_for(LIMIT, "40 rows of the trickle", rows);
    agent.stop_ok();
    let (rows, transactions) = (
        number(&format!("SELECT count(*) FROM {table}")),
        number(&format!("SELECT count(DISTINCT xmin::text) FROM {table}")),
    );
    assert!(
        rows >= 3 * transactions,
        "{rows} rows in {transactions} transactions: batches of one or two ticks"
    );
    psql(&format!("DROP TABLE {table}"));
}
