use super::*;
use crate::test_util::*;

fn ev(body: &str, secs: i64, template: i64) -> Event {
    let mut e = Event::new(body.to_string(), Timestamp(secs * 1_000_000_000));
    e.insert("template_id", template);
    e
}

fn features(e: &Event) -> Vec<(String, i64)> {
    match e.get("features") {
        Some(Value::Map(m)) => m
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_f64().unwrap_or(-1.0) as i64))
            .collect(),
        _ => Vec::new(),
    }
}

#[test]
fn sessions_by_regex_count_templates_and_close_on_inactivity() {
    let mut p = build::<SessionConfig>("key_pattern: 'blk_-?\\d+'\ninactivity_timeout: 10s");
    let mut b: Batch = vec![
        ev("open blk_1", 0, 1),
        ev("copy blk_1 to blk_-2", 1, 2),
        ev("close blk_1", 2, 3),
        ev("open blk_-2", 3, 1),
    ]
    .into();
    assert!(run(p.as_mut(), &mut b).is_empty());
    assert!(b.is_empty(), "nothing closed yet");
    // 20 s later in event time: both sessions timed out.
    let mut b: Batch = vec![ev("open blk_3", 22, 1)].into();
    run(p.as_mut(), &mut b);
    assert_eq!(b.len(), 2);
    assert_eq!(
        b.events[0].get("key").and_then(Value::as_str),
        Some("blk_1")
    );
    assert_eq!(
        features(&b.events[0]),
        vec![("1".into(), 1), ("2".into(), 1), ("3".into(), 1)]
    );
    assert_eq!(
        b.events[1].get("key").and_then(Value::as_str),
        Some("blk_-2")
    );
    assert_eq!(
        features(&b.events[1]),
        vec![("1".into(), 1), ("2".into(), 1)]
    );
    assert_eq!(b.events[1].get("event_count"), Some(&Value::Integer(2)));
    assert_eq!(
        b.events[1].get("window_start"),
        Some(&Value::Timestamp(Timestamp(1_000_000_000)))
    );
    // End of input closes the rest.
    let mut out = Batch::new();
    p.finish(&mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(
        out.events[0].get("key").and_then(Value::as_str),
        Some("blk_3")
    );
}

#[test]
fn sessions_close_on_max_events_and_carry_fields_and_stats() {
    let mut p = build::<SessionConfig>(
        "key_field: user\nmax_events: 2\nnumeric_fields: [ms]\ncarry_fields: [label]",
    );
    let mut b = Batch::new();
    for (i, ms) in [10i64, 30, 50].iter().enumerate() {
        let mut e = ev("x", i as i64, 7);
        e.insert("user", "ann");
        e.insert("ms", *ms);
        if i == 1 {
            e.insert("label", "bad");
        }
        b.push(e);
    }
    run(p.as_mut(), &mut b);
    assert_eq!(b.len(), 1);
    let e = &b.events[0];
    assert_eq!(e.get("stats.ms.mean"), Some(&Value::Float(20.0)));
    assert_eq!(e.get("stats.ms.max"), Some(&Value::Float(30.0)));
    assert_eq!(e.get("label").and_then(Value::as_str), Some("bad"));
}

#[test]
fn a_tick_closes_idle_sessions_without_new_events() {
    let mut p = build::<SessionConfig>("key_field: user\ninactivity_timeout: 20ms");
    assert!(p.tick_interval().is_some());
    let mut e = ev("x", 0, 1);
    e.insert("user", "bob");
    let mut b: Batch = vec![e].into();
    run(p.as_mut(), &mut b);
    assert!(b.is_empty());
    std::thread::sleep(std::time::Duration::from_millis(40));
    let mut out = Batch::new();
    p.tick(Timestamp::now(), &mut out);
    assert_eq!(out.len(), 1);
}

#[test]
fn tumbling_and_sliding_time_windows() {
    let mut p = build::<WindowConfig>("size: 10s");
    let mut b: Batch = (0..25)
        .map(|s| ev("x", s, s % 2))
        .collect::<Vec<_>>()
        .into();
    run(p.as_mut(), &mut b);
    // Windows [0,10) and [10,20) closed by the event at 20 s.
    assert_eq!(b.len(), 2);
    assert_eq!(b.events[0].get("event_count"), Some(&Value::Integer(10)));
    assert_eq!(
        b.events[1].get("window_end"),
        Some(&Value::Timestamp(Timestamp(20_000_000_000)))
    );
    let mut p = build::<WindowConfig>("size: 10s\nslide: 5s");
    let mut b: Batch = (0..20).map(|s| ev("x", s, 1)).collect::<Vec<_>>().into();
    run(p.as_mut(), &mut b);
    let mut out = Batch::new();
    p.finish(&mut out);
    let counts: Vec<_> = b
        .events
        .iter()
        .chain(&out.events)
        .map(|e| e.get("event_count").cloned())
        .collect();
    // [-5,5) [0,10) [5,15) closed by 15 s; [10,20) [15,25) at the end.
    assert_eq!(
        counts,
        [5, 10, 10, 10, 5].map(|n| Some(Value::Integer(n))).to_vec()
    );
}

#[test]
fn count_windows_tumble_and_slide() {
    let mut p = build::<WindowConfig>("events: 3");
    let mut b: Batch = (0..7).map(|s| ev("x", s, s)).collect::<Vec<_>>().into();
    run(p.as_mut(), &mut b);
    assert_eq!(b.len(), 2);
    assert_eq!(
        features(&b.events[1]),
        vec![("3".into(), 1), ("4".into(), 1), ("5".into(), 1)]
    );
    let mut p = build::<WindowConfig>("events: 4\nslide_events: 2");
    let mut b: Batch = (0..8).map(|s| ev("x", s, s)).collect::<Vec<_>>().into();
    run(p.as_mut(), &mut b);
    let firsts: Vec<_> = b.events.iter().map(|e| features(e)[0].0.clone()).collect();
    assert_eq!(firsts, vec!["0", "2", "4"]);
}

#[test]
fn pass_through_keeps_the_events_and_bad_options_are_reported() {
    let mut p = build::<WindowConfig>("events: 2\npass_through: true");
    let mut b: Batch = (0..4).map(|s| ev("x", s, 1)).collect::<Vec<_>>().into();
    run(p.as_mut(), &mut b);
    assert_eq!(b.len(), 6);
    let c: SessionConfig = config("inactivity_timeout: 1s");
    assert_eq!(c.validate().len(), 1);
    let c: WindowConfig = config("size: 1s\nevents: 3");
    assert_eq!(c.validate().len(), 1);
    let c: WindowConfig = config("events: 3\nslide_events: 4");
    assert_eq!(c.validate().len(), 1);
    assert!(unknown_key::<WindowConfig>("sise: 1s").contains("sise"));
}

#[test]
fn max_open_closes_the_least_recently_active_session() {
    let mut p = build::<SessionConfig>("key_field: user\nmax_open: 2");
    let mut b = Batch::new();
    for u in ["a", "b", "a", "c"] {
        let mut e = ev("x", 0, 1);
        e.insert("user", u);
        b.push(e);
    }
    run(p.as_mut(), &mut b);
    // Adding `c` makes three: `b`, the least recently active, closes.
    assert_eq!(b.len(), 1);
    assert_eq!(b.events[0].get("key").and_then(Value::as_str), Some("b"));
}

#[test]
fn feature_events_name_their_templates() {
    let with_text = |body: &str, id: i64, text: &str| {
        let mut e = ev(body, 0, id);
        e.insert("template", text);
        e
    };
    let events = || -> Batch {
        vec![
            with_text("open blk_1", 1, "open <*>"),
            with_text("write blk_1", 2, "write <*>"),
            // The template became more general: the latest text is shown.
            with_text("open blk_1 again", 1, "open <*> <*>"),
        ]
        .into()
    };
    let mut p = build::<SessionConfig>("key_pattern: 'blk_\\d+'");
    let mut b = events();
    run(p.as_mut(), &mut b);
    let mut out = Batch::new();
    p.finish(&mut out);
    let named = out.events[0].get("templates").cloned();
    let mut want = Fields::new();
    want.insert("1", Value::from("open <*> <*>"));
    want.insert("2", Value::from("write <*>"));
    assert_eq!(named, Some(Value::Map(want)));
    let mut p = build::<SessionConfig>("key_pattern: 'blk_\\d+'\ntext_field: null");
    let mut b = events();
    run(p.as_mut(), &mut b);
    let mut out = Batch::new();
    p.finish(&mut out);
    assert_eq!(out.events[0].get("templates"), None);
    assert_eq!(
        features(&out.events[0]),
        vec![("1".into(), 2), ("2".into(), 1)]
    );
}
