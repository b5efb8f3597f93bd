//! Dead-letter channels end to end: events a processor fails on and events a
//! sink refuses both reach the dead-letter channel tagged with `error` and
//! `component`; without one they are counted and logged.

use crate::util::*;

/// 300 JSON lines: every third has no `name` (the sink's path needs it),
/// and every tenth line is not JSON at all (parse_json fails on it).
fn input() -> (String, usize, usize) {
    let mut text = String::new();
    let (mut bad_json, mut no_name) = (0, 0);
    for i in 0..300 {
        if i % 10 == 9 {
            bad_json += 1;
            text.push_str(&format!("not json {i}\n"));
        } else if i % 3 == 0 {
            no_name += 1;
            text.push_str(&format!("{{\"n\":{i}}}\n"));
        } else {
            text.push_str(&format!("{{\"n\":{i},\"name\":\"app{}\"}}\n", i % 2));
        }
    }
    (text, bad_json, no_name)
}

fn pipeline(dead_letter: bool) -> String {
    let (dl, dl_channel, dl_sink) = if dead_letter {
        (
            "    dead_letter: dead\n",
            "  dead: {type: memory}\n",
            "  dead: {type: file, channel: dead, path: ./out/dead.json, format: json}\n",
        )
    } else {
        ("", "", "")
    };
    format!(
        "sources:\n  app:\n    type: file\n    include: [./logs/app.log]\n    read_from: beginning\n    follow: false\n    batch_size: 25\n    processors: [json]\n    channels: [main]\nprocessors:\n  json:\n    type: parse_json\n{dl}channels:\n  main: {{type: memory}}\n{dl_channel}sinks:\n  by_name:\n    type: file\n    channel: main\n    path: ./out/{{name}}\n{dl}{dl_sink}"
    )
}

#[test]
fn processor_failures_and_sink_rejections_reach_the_dead_letter_channel() {
    let d = Dir::new();
    let (text, bad_json, no_name) = input();
    d.write("logs/app.log", &text);
    d.write("p.yaml", &pipeline(true));
    let o = d.run_logged(&["run", "p.yaml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let counts = final_counts(&stderr(&o));
    assert_eq!(counts["json"]["errors"].as_u64(), Some(bad_json as u64));
    // A line that is not JSON has no `name` either: parse_json diverts it
    // before the sink sees it, so the sink refuses only the others.
    assert_eq!(counts["by_name"]["errors"].as_u64(), Some(no_name as u64));
    let dead = d.lines("out/dead.json");
    assert_eq!(dead.len(), bad_json + no_name);
    let (mut from_json, mut from_sink) = (0, 0);
    for l in &dead {
        let v: serde_json::Value = serde_json::from_str(l).expect("json");
        let error = v["fields"]["error"].as_str().unwrap_or_default();
        assert!(!error.is_empty(), "{l}");
        match v["fields"]["component"].as_str() {
            Some("json") => {
                from_json += 1;
                assert!(
                    v["message"]
                        .as_str()
                        .is_some_and(|m| m.starts_with("not json")),
                    "{l}"
                );
            }
            Some("by_name") => {
                from_sink += 1;
                assert!(error.contains("names no file"), "{l}");
                assert!(v["fields"].get("name").is_none(), "{l}");
            }
            other => panic!("unexpected component {other:?}: {l}"),
        }
    }
    assert_eq!((from_json, from_sink), (bad_json, no_name));
    let delivered = d.lines("out/app0").len() + d.lines("out/app1").len();
    assert_eq!(delivered, 300 - bad_json - no_name);
}

#[test]
fn without_a_dead_letter_channel_refused_events_are_counted_and_logged() {
    let d = Dir::new();
    let (text, bad_json, no_name) = input();
    d.write("logs/app.log", &text);
    d.write("p.yaml", &pipeline(false));
    let o = d.run_logged(&["run", "p.yaml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    let counts = final_counts(&err);
    assert_eq!(counts["json"]["errors"].as_u64(), Some(bad_json as u64));
    // Lines parse_json failed on pass on unchanged, without a `name`: the
    // sink refuses them too.
    assert_eq!(
        counts["by_name"]["errors"].as_u64(),
        Some((bad_json + no_name) as u64)
    );
    let warned = |component: &str| {
        err.lines().any(|l| {
            serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| {
                v["fields"]["component"] == component
                    && v["fields"]["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("events failed"))
            })
        })
    };
    assert!(warned("json"), "{err}");
    assert!(warned("by_name"), "{err}");
    let delivered = d.lines("out/app0").len() + d.lines("out/app1").len();
    assert_eq!(delivered, 300 - bad_json - no_name);
}
