use super::*;
use serde::Deserialize;
use sluice_core::prelude::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Dummy {
    #[serde(default)]
    #[allow(dead_code)]
    count: Option<u64>,
}
struct Nop;
#[async_trait::async_trait]
impl Source for Nop {
    async fn run(self: Box<Self>, _cx: SourceContext) -> Result<(), ComponentError> {
        Ok(())
    }
}
impl Processor for Nop {
    fn process(&mut self, _b: &mut Batch, _cx: &mut ProcessContext) {}
}
#[async_trait::async_trait]
impl Sink for Nop {
    async fn write(&mut self, _b: &Batch) -> Result<(), SinkError> {
        Ok(())
    }
}
impl SourceConfig for Dummy {
    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Source>, BuildError> {
        Ok(Box::new(Nop))
    }
}
impl ProcessorConfig for Dummy {
    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Processor>, BuildError> {
        Ok(Box::new(Nop))
    }
}
impl SinkConfig for Dummy {
    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Sink>, BuildError> {
        Ok(Box::new(Nop))
    }
}
impl ChannelConfig for Dummy {
    fn validate(&self) -> Vec<Problem> {
        match self.count {
            Some(0) => vec![Problem::at("count", "must be positive")],
            _ => vec![],
        }
    }
    fn build(&self, _cx: &BuildContext) -> Result<Arc<dyn Channel>, BuildError> {
        Err(BuildError::Other("not for running".into()))
    }
}

fn registry() -> Registry {
    let mut r = Registry::new();
    r.add_source::<Dummy>("gen").unwrap();
    r.add_processor::<Dummy>("proc").unwrap();
    r.add_sink::<Dummy>("out").unwrap();
    r.add_channel::<Dummy>("mem").unwrap();
    r
}

fn check(yaml: &str) -> Result<Pipeline, Vec<String>> {
    parse_pipeline(Path::new("p.yaml"), yaml, &registry(), &|v| {
        (v == "SET").then(|| "5".into())
    })
    .map_err(|d| d.iter().map(ToString::to_string).collect())
}

#[test]
fn a_valid_pipeline_has_a_summary() {
    let p = check("sources:\n  a: {type: gen, count: '${SET}', channels: [c], processors: [p]}\nprocessors:\n  p: {type: proc}\n  s: {type: proc, input: c, channels: [d]}\nchannels:\n  c: {type: mem}\n  d: {type: mem}\nsinks:\n  o: {type: out, channel: d}\n").unwrap();
    assert_eq!(
        p.summary(),
        "1 source, 2 channels, 2 processors (1 stage), 1 sink"
    );
    assert_eq!(p.data_dir, PathBuf::from(".sluice/p"));
}

#[test]
fn every_problem_is_reported_with_position() {
    let errs = check(
        "sources:\n  a: {type: gen, chanels: [c], channels: [x]}\n  b: {type: gne, channels: [c]}\nchannels:\n  c: {type: mem, count: 0}\n  lonely: {type: mem}\nsinks:\n  o:\n    type: out\n    channel: c\n    count: ${UNSET}\n",
    )
    .unwrap_err();
    let want = [
        "p.yaml:2:18: source `a`: unknown option `chanels`: did you mean `channels`?",
        "p.yaml:2:43: source `a` refers to channel `x`, which is not declared (declared: `c`, `lonely`)",
        "p.yaml:3:13: source `b`: unknown source type `gne`: did you mean `gen`?",
        "p.yaml:5:25: channel `c`: must be positive",
        "p.yaml:6:3: channel `lonely`: nothing writes to it (list it in a source's or stage's `channels:`)",
        "p.yaml:6:3: channel `lonely`: nothing reads from it (give it a sink with `channel: lonely`, or a stage with `input: lonely`)",
        "p.yaml:11:12: environment variable `UNSET` is not set and has no default (write `${UNSET:-default}` to give one)",
    ];
    for w in want {
        assert!(errs.iter().any(|e| e == w), "missing {w:?} in {errs:#?}");
    }
}

#[test]
fn cycles_between_stages_are_errors() {
    let errs = check("sources:\n  a: {type: gen, channels: [c1]}\nprocessors:\n  p1: {type: proc, input: c1, channels: [c2]}\n  p2: {type: proc, input: c2, channels: [c1, c3]}\nchannels:\n  c1: {type: mem}\n  c2: {type: mem}\n  c3: {type: mem}\nsinks:\n  o: {type: out, channel: c3}\n").unwrap_err();
    assert!(
        errs.iter()
            .any(|e| e.contains("processor stages form a cycle") && e.contains("`p1` → `c2`")),
        "{errs:#?}"
    );
}

#[test]
fn yaml_syntax_errors_have_positions() {
    let errs = check("sources:\n  a: {type: gen\n").unwrap_err();
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("p.yaml:"), "{errs:?}");
    assert!(errs[0].contains("YAML syntax error"), "{errs:?}");
}

#[test]
fn unknown_top_level_key_and_missing_type() {
    let errs = check("source:\n  a: {channels: [c]}\nsources:\n  a: {channels: [c]}\nchannels:\n  c: {type: mem}\nsinks:\n  o: {type: out, channel: c}\n").unwrap_err();
    assert!(
        errs.iter().any(|e| e
            .starts_with("p.yaml:1:1: pipeline: unknown option `source`: did you mean `sources`?")),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("source `a`: missing required option `type`")),
        "{errs:#?}"
    );
}

#[test]
fn sink_groups_are_parsed_and_checked() {
    let base = "sources:\n  a: {type: gen, channels: [c, d]}\nchannels:\n  c: {type: mem}\n  d: {type: mem}\nsinks:\n  o1: {type: out, channel: c}\n  o2: {type: out, channel: c}\n  o3: {type: out, channel: d}\n";
    let p = check(&format!("{base}sink_groups:\n  g:\n    strategy: failover\n    sinks: [o1, o2]\n    priorities: {{o2: 10}}\n    penalty: 2s\n  h:\n    strategy: load_balance\n    selector: random\n    sinks: [o3]\n")).unwrap();
    assert_eq!(p.sink_groups.len(), 2);
    let g = &p.sink_groups[0];
    assert_eq!(g.channel, "c");
    assert_eq!(g.penalty, std::time::Duration::from_secs(2));
    let GroupStrategy::Failover { priorities } = &g.strategy else {
        panic!("failover expected");
    };
    assert!(priorities[1] > priorities[0], "{priorities:?}");
    assert_eq!(
        p.sink_groups[1].strategy,
        GroupStrategy::LoadBalance {
            selector: Balance::Random
        }
    );
    let errs = check(&format!("{base}sink_groups:\n  g:\n    strategy: failover\n    sinks: [o1, o3, o4]\n  h:\n    strategy: load_balance\n    sinks: [o1]\n    priorities: {{o1: 1}}\n  k:\n    strategy: fail_over\n    sinks: [o2]\n")).unwrap_err();
    let want = [
        "p.yaml:13:17: sink group `g`: sink `o3` reads channel `d` but `o1` reads `c`; the sinks of a group drain one channel",
        "p.yaml:13:21: sink group `g`: sink `o4` is not declared: did you mean `o1`?",
        "p.yaml:16:13: sink group `h`: sink `o1` already belongs to sink group `g`; a sink belongs to at most one group",
        "p.yaml:17:17: sink group `h`: `priorities` applies to `strategy: failover` only",
    ];
    for w in want {
        assert!(errs.iter().any(|e| e == w), "missing {w:?} in {errs:#?}");
    }
    assert!(
        errs.iter()
            .any(|e| e.starts_with("p.yaml:19:15: sink group `k`:") && e.contains("fail_over")),
        "{errs:#?}"
    );
}

/// A chain of `n` stages from channel `c0` to `c{n}`, closed into a cycle
/// when `cycle`.
fn chain(n: usize, cycle: bool) -> String {
    use std::fmt::Write;
    let mut y = String::from("sources:\n  a: {type: gen, channels: [c0]}\nprocessors:\n");
    for i in 0..n {
        let _ = writeln!(
            y,
            "  p{i}: {{type: proc, input: c{i}, channels: [c{}]}}",
            i + 1
        );
    }
    if cycle {
        let _ = writeln!(y, "  back: {{type: proc, input: c{n}, channels: [c0]}}");
    }
    y.push_str("channels:\n");
    for i in 0..=n {
        let _ = writeln!(y, "  c{i}: {{type: mem}}");
    }
    let _ = writeln!(y, "sinks:\n  o: {{type: out, channel: c{n}}}");
    y
}

#[test]
fn a_long_chain_of_stages_is_checked_without_deep_recursion() {
    // The cycle search recursed once per stage: 10,000 overflowed the
    // stack of a test thread.
    let p = check(&chain(10_000, false)).unwrap();
    assert_eq!(p.processors.len(), 10_000);
    let err = check(&chain(10_000, true)).unwrap_err();
    assert_eq!(err.len(), 1, "{:?}", &err[..err.len().min(3)]);
    assert!(
        err[0].starts_with("p.yaml:4:41: processor stages form a cycle: `p0` → `c1`, `p1` → `c2`"),
        "{}",
        &err[0][..err[0].len().min(300)]
    );
    assert!(err[0].ends_with("`back` → `c0`; events would loop forever"));
}

#[test]
fn many_misspelt_references_among_many_names_stay_fast() {
    use std::fmt::Write;
    let n = 5_000;
    let mut y = String::from("sources:\n");
    for i in 0..n {
        let _ = writeln!(y, "  s{i}: {{type: gen, channels: [x{i}]}}");
    }
    y.push_str("channels:\n");
    for i in 0..n {
        let _ = writeln!(y, "  c{i}: {{type: mem}}");
    }
    y.push_str("sinks:\n");
    for i in 0..n {
        let _ = writeln!(y, "  o{i}: {{type: out, channel: c{i}}}");
    }
    let start = std::time::Instant::now();
    let err = check(&y).unwrap_err();
    assert!(start.elapsed() < std::time::Duration::from_secs(10));
    // Every problem is reported: each source's reference, each channel unwritten.
    assert_eq!(err.len(), 2 * n);
    assert!(
        err[0].ends_with("which is not declared: did you mean `c0`?"),
        "{}",
        err[0]
    );
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    /// Text made of the characters that matter to YAML, in lines.
    fn yamlish() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("sources:".to_string()),
            Just("channels:".to_string()),
            Just("sinks:".to_string()),
            Just("processors:".to_string()),
            Just("type: gen".to_string()),
            Just("channels: [c]".to_string()),
            Just("&a".to_string()),
            Just("*a".to_string()),
            Just("<<: *a".to_string()),
            Just("---".to_string()),
            Just("...".to_string()),
            Just("\u{feff}".to_string()),
            Just("${X}".to_string()),
            Just("${SET:-d}".to_string()),
            "[a-z0-9 :{}\\[\\],&*!|>'\"#%@`?.\\-$\\\\]{0,12}",
            "\\PC{0,8}",
        ];
        prop::collection::vec((0usize..6, prop::collection::vec(piece, 0..5)), 0..30).prop_map(
            |lines| {
                lines
                    .into_iter()
                    .map(|(indent, parts)| format!("{}{}\n", "  ".repeat(indent), parts.join(" ")))
                    .collect()
            },
        )
    }

    /// Anchors that each alias the previous one `fanout` times.
    fn bombs() -> impl Strategy<Value = String> {
        (1usize..14, 1usize..30, any::<bool>()).prop_map(|(levels, fanout, flow)| {
            let mut t = String::from("l0: &l0 [x, y]\n");
            for i in 1..levels {
                let refs = vec![format!("*l{}", i - 1); fanout];
                if flow {
                    t.push_str(&format!("l{i}: &l{i} [{}]\n", refs.join(", ")));
                } else {
                    t.push_str(&format!("l{i}: &l{i}\n"));
                    for r in refs {
                        t.push_str(&format!("  - {r}\n"));
                    }
                }
            }
            t
        })
    }

    fn checked_quickly(text: &str) {
        let start = std::time::Instant::now();
        let lines = text.lines().count().max(1);
        if let Err(diags) = parse_pipeline(Path::new("p.yaml"), text, &registry(), &|v| {
            (v == "SET").then(|| "5".into())
        }) {
            assert!(!diags.is_empty());
            for d in &diags {
                assert!(
                    d.pos.line >= 1 && d.pos.line <= lines + 1,
                    "{d} in {text:?}"
                );
                assert!(d.pos.col >= 1, "{d}");
            }
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(2),
            "{:?} for {text:?}",
            start.elapsed()
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn yamlish_text_never_panics(text in yamlish()) {
            checked_quickly(&text);
        }

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
            checked_quickly(&text);
        }
    }

    proptest! {
        // Each case may expand to the whole alias budget: fewer cases.
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn alias_bombs_of_any_shape_are_bounded(text in bombs()) {
            checked_quickly(&text);
        }
    }
}

#[test]
fn a_sinks_batch_timeout_is_a_duration_longer_than_zero() {
    let yaml = |t: &str| {
        format!("sources:\n  a: {{type: gen, channels: [c]}}\nchannels:\n  c: {{type: mem}}\nsinks:\n  o: {{type: out, channel: c, batch_timeout: {t}}}\n")
    };
    let p = check(&yaml("1m30s")).unwrap();
    assert_eq!(
        p.sinks[0].batch_timeout,
        Some(std::time::Duration::from_secs(90))
    );
    let errs = check(&yaml("0s")).unwrap_err();
    assert!(
        errs[0].starts_with("p.yaml:6:45: `batch_timeout` must be longer than 0"),
        "{errs:?}"
    );
    let errs = check(&yaml("soon")).unwrap_err();
    assert!(
        errs[0].starts_with("p.yaml:6:45: `batch_timeout`: invalid duration `soon`"),
        "{errs:?}"
    );
}
