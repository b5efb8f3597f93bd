use super::*;
use crate::prelude::*;
use serde::Deserialize;

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
