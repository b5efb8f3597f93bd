//! Which tasks a reload stops and starts.

use std::path::Path;

use async_trait::async_trait;
use serde::Deserialize;

use super::*;
use crate::pipeline::parse_pipeline;
use sluice_core::prelude::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Opts {
    #[serde(default)]
    #[allow(dead_code)]
    n: Option<u64>,
    /// A port it would listen on.
    #[serde(default)]
    port: Option<u16>,
}
struct Nop;
#[async_trait]
impl Source for Nop {
    async fn run(self: Box<Self>, _cx: SourceContext) -> Result<(), ComponentError> {
        Ok(())
    }
}
impl Processor for Nop {
    fn process(&mut self, _b: &mut Batch, _cx: &mut ProcessContext) {}
}
#[async_trait]
impl Sink for Nop {
    async fn write(&mut self, _b: &Batch) -> Result<(), SinkError> {
        Ok(())
    }
}
impl SourceConfig for Opts {
    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Source>, BuildError> {
        Ok(Box::new(Nop))
    }
    fn resources(&self, _cx: &BuildContext) -> Vec<Resource> {
        self.port
            .and_then(|p| Resource::tcp(&format!("0.0.0.0:{p}")))
            .into_iter()
            .collect()
    }
}
impl ProcessorConfig for Opts {
    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Processor>, BuildError> {
        Ok(Box::new(Nop))
    }
}
impl SinkConfig for Opts {
    fn build(&self, _cx: &BuildContext) -> Result<Box<dyn Sink>, BuildError> {
        Ok(Box::new(Nop))
    }
}
impl ChannelConfig for Opts {
    fn build(&self, _cx: &BuildContext) -> Result<Arc<dyn Channel>, BuildError> {
        Err(BuildError::Other("not for running".into()))
    }
}

fn pipeline(yaml: &str) -> Pipeline {
    let mut r = Registry::new();
    r.add_source::<Opts>("gen").unwrap();
    r.add_processor::<Opts>("proc").unwrap();
    r.add_sink::<Opts>("out").unwrap();
    r.add_channel::<Opts>("mem").unwrap();
    parse_pipeline(Path::new("p.yaml"), yaml, &r, &|_| None).unwrap()
}

const BASE: &str = "sources:
  a: {type: gen, channels: [c], processors: [p]}
  b: {type: gen, channels: [e]}
processors:
  p: {type: proc}
  s: {type: proc, input: c, channels: [d]}
channels:
  c: {type: mem}
  d: {type: mem}
  e: {type: mem}
sinks:
  o: {type: out, channel: d}
  x: {type: out, channel: e}
";

/// (stopping, starting) when going from `BASE` to `yaml`.
fn plan(yaml: &str) -> (Vec<String>, Vec<String>) {
    let r = Reloader::new(
        pipeline(BASE),
        HashMap::new(),
        HashMap::new(),
        CancellationToken::new(),
    );
    let d = r.diff(&pipeline(yaml));
    let sorted = |keys: &BTreeSet<TaskKey>| {
        let mut names: Vec<String> = keys.iter().map(ToString::to_string).collect();
        names.sort();
        names
    };
    (sorted(&d.stopping), sorted(&d.starting))
}

fn names(n: &[&str]) -> Vec<String> {
    n.iter().map(|s| s.to_string()).collect()
}

#[test]
fn layout_and_key_order_change_nothing() {
    let same = "sources:\n  b: {channels: [e], type: gen}\n  a:\n    type: gen\n    processors: [p]\n    channels: [c]\nprocessors:\n  s: {input: c, type: proc, channels: [d]}\n  p: {type: proc}\nchannels:\n  e: {type: mem}\n  c: {type: mem}\n  d: {type: mem}\nsinks:\n  x: {type: out, channel: e}\n  o: {channel: d, type: out}\n";
    assert_eq!(plan(same), (vec![], vec![]));
}

#[test]
fn a_sink_option_restarts_that_sink_only() {
    let y = BASE.replace(
        "o: {type: out, channel: d}",
        "o: {type: out, channel: d, n: 1}",
    );
    let both = names(&["sink `o`"]);
    assert_eq!(plan(&y), (both.clone(), both));
}

#[test]
fn an_inline_processor_restarts_the_sources_that_use_it() {
    let y = BASE.replace("p: {type: proc}", "p: {type: proc, n: 2}");
    let both = names(&["source `a`"]);
    assert_eq!(plan(&y), (both.clone(), both));
}

#[test]
fn a_channel_restarts_everything_on_it() {
    let y = BASE.replace("c: {type: mem}", "c: {type: mem, n: 5}");
    let both = names(&["processor `s`", "source `a`"]);
    assert_eq!(plan(&y), (both.clone(), both));
}

#[test]
fn added_and_removed_components() {
    // `b`, `e` and `x` go; `y` reads `d` beside `o`.
    let y = BASE
        .replace("  b: {type: gen, channels: [e]}\n", "")
        .replace("  e: {type: mem}\n", "")
        .replace(
            "  x: {type: out, channel: e}\n",
            "  y: {type: out, channel: d}\n",
        );
    let (stopping, starting) = plan(&y);
    assert_eq!(stopping, names(&["sink `x`", "source `b`"]));
    assert_eq!(starting, names(&["sink `y`"]));
}

#[test]
fn a_group_member_option_restarts_the_group_task() {
    let y = format!(
        "{BASE}  z: {{type: out, channel: e}}\nsink_groups:\n  g: {{strategy: failover, sinks: [x, z]}}\n"
    );
    let changed = y.replace(
        "z: {type: out, channel: e}",
        "z: {type: out, channel: e, n: 3}",
    );
    let r = Reloader::new(
        pipeline(&y),
        HashMap::new(),
        HashMap::new(),
        CancellationToken::new(),
    );
    let d = r.diff(&pipeline(&changed));
    let group = BTreeSet::from([TaskKey::Group("g".into())]);
    assert_eq!(d.stopping, group);
    assert_eq!(d.starting, group);
    // The stop handle a group's task is started with is found under the
    // same key the reload looks up.
    let p = pipeline(&y);
    assert!(super::super::plan::plan(&p).contains_key(&TaskKey::Group("g".into())));
}

#[test]
fn every_task_started_has_its_stop_handle_under_its_own_key() {
    let y = format!(
        "{BASE}  z: {{type: out, channel: e}}\nsink_groups:\n  g: {{strategy: failover, sinks: [x, z]}}\n"
    );
    let p = pipeline(&y);
    let slots: HashMap<String, ChannelSlot> = p
        .channels
        .iter()
        .map(|c| {
            let ch: Arc<dyn Channel> = crate::testing::Collector::new();
            (c.id.clone(), ChannelSlot::new(ch))
        })
        .collect();
    let keys: BTreeSet<TaskKey> = super::super::plan::plan(&p).into_keys().collect();
    let started = start(&p, &slots, &CancellationToken::new(), &keys).expect("builds");
    let stops: BTreeSet<TaskKey> = started.stops.keys().cloned().collect();
    let tasks: BTreeSet<TaskKey> = started.tasks.iter().map(|t| t.key.clone()).collect();
    assert_eq!(stops, keys);
    assert_eq!(tasks, keys);
    assert!(keys.contains(&TaskKey::Group("g".into())));
    assert!(!keys.contains(&TaskKey::Sink("x".into())));
}

/// Problems of going from `from` to `to`.
fn resource_problems(from: &str, to: &str) -> Vec<String> {
    let r = Reloader::new(
        pipeline(from),
        HashMap::new(),
        HashMap::new(),
        CancellationToken::new(),
    );
    let target = pipeline(to);
    let d = r.diff(&target);
    r.resource_problems(&target, &d)
}

#[test]
fn a_port_held_by_a_source_that_keeps_running_refuses_the_reload() {
    let base = BASE.replace(
        "b: {type: gen, channels: [e]}",
        "b: {type: gen, channels: [e], port: 80}",
    );
    // A new source on the same port beside the old one: refused.
    let both = base.replace(
        "processors:\n",
        "  q: {type: gen, channels: [e], port: 80}\nprocessors:\n",
    );
    let problems = resource_problems(&base, &both);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("source `q` claims tcp port 0.0.0.0:80, which source `b` holds"),
        "{problems:?}"
    );
    // The same port, taken over from a source that goes or changes: fine
    // (the new one waits for the old one to end).
    let moved = base.replace(
        "  b: {type: gen, channels: [e], port: 80}\n",
        "  q: {type: gen, channels: [e], port: 80}\n",
    );
    assert_eq!(resource_problems(&base, &moved), Vec::<String>::new());
    let changed = base.replace("port: 80}", "port: 80, n: 1}");
    assert_eq!(resource_problems(&base, &changed), Vec::<String>::new());
}
