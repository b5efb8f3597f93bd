//! Throughput of the text parsers on typical lines, single-threaded:
//! `cargo test --release -p sluice-processors throughput -- --ignored --nocapture`.

use sluice_core::prelude::*;

use crate::test_util::*;

fn measure<C: ProcessorConfig>(name: &str, yaml: &str, line: &str) {
    let mut p = build::<C>(yaml);
    let lines: Vec<Event> = (0..1000)
        .map(|_| Event::new(line.to_string(), Timestamp(0)))
        .collect();
    let rounds = 200;
    let start = std::time::Instant::now();
    for _ in 0..rounds {
        let mut b = Batch::from(lines.clone());
        let f = run(p.as_mut(), &mut b);
        assert!(f.is_empty(), "{name}: {f:?}");
    }
    let secs = start.elapsed().as_secs_f64();
    let n = (rounds * lines.len()) as f64;
    println!(
        "{name:>24}: {:>6.0}k lines/s {:>6.1} MiB/s ({} B lines)",
        n / secs / 1e3,
        n * line.len() as f64 / secs / (1 << 20) as f64,
        line.len()
    );
}

#[test]
#[ignore]
fn throughput() {
    let auth = "Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186";
    let combined = r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)""#;
    let logfmt = r#"time=2026-12-03T07:51:25Z level=info msg="GET /api/users" status=200 took=0.25 user=alice"#;
    let csv = r#"10.0.0.1,alice,"said ""hi"", then left",200,0.25"#;
    measure::<crate::parse_syslog::Config>("parse_syslog", "{}", auth);
    measure::<crate::parse_grok::Config>("parse_grok SYSLOGLINE", "pattern: '%{SYSLOGLINE}'", auth);
    measure::<crate::parse_grok::Config>(
        "parse_grok COMBINEDAPACHE",
        "pattern: '%{COMBINEDAPACHELOG}'",
        combined,
    );
    measure::<crate::parse_logfmt::Config>("parse_logfmt", "{}", logfmt);
    measure::<crate::parse_csv::Config>("parse_csv", "columns: [ip, user, msg, status, took]", csv);
    measure::<crate::route::Config>(
        "route (2 conditions)",
        "routes: {a: '.message =~ \"error\"', b: 'starts_with(.message, \"Dec\")'}",
        auth,
    );
    measure::<crate::dedupe::Config>("dedupe (body)", "max_entries: 10", auth);
    measure::<crate::throttle::Config>("throttle", "limit: 1000000000\nwindow: 1h", auth);
}
