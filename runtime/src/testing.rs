//! Helpers for testing components without a whole pipeline.
//!
//! [`Collector`] is an unbounded channel that keeps everything put into it;
//! [`source_context`] builds a [`SourceContext`] that emits into collectors.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::topology::emit::{Emitter, Route, SourceEmitter};
use sluice_core::channel::{Channel, ChannelError, ChannelStats, Transaction};
use sluice_core::checkpoint::CheckpointStore;
use sluice_core::event::{Batch, Event};
use sluice_core::metrics::ComponentMetrics;
use sluice_core::source::SourceContext;

/// A channel that never has room and never has events: `put` and `take`
/// wait forever (for tests of what stops a wait).
pub struct Full;

#[async_trait]
impl Channel for Full {
    async fn put(&self, _batch: Batch) -> Result<(), ChannelError> {
        std::future::pending().await
    }
    async fn take(&self, _max: usize) -> Result<Option<Transaction>, ChannelError> {
        std::future::pending().await
    }
    fn close(&self) {}
    fn stats(&self) -> ChannelStats {
        ChannelStats::default()
    }
}

/// A channel that keeps every event put into it. `take` is not supported.
#[derive(Default)]
pub struct Collector {
    events: Mutex<Vec<Event>>,
    closed: std::sync::atomic::AtomicBool,
}

impl Collector {
    /// A new, empty collector.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Everything put so far.
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// The bodies put so far, as strings.
    pub fn bodies(&self) -> Vec<String> {
        self.events()
            .iter()
            .map(|e| String::from_utf8_lossy(&e.body).into_owned())
            .collect()
    }

    /// How many events were put.
    pub fn len(&self) -> usize {
        self.events.lock().map(|e| e.len()).unwrap_or(0)
    }

    /// Whether nothing was put.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl Channel for Collector {
    async fn put(&self, batch: Batch) -> Result<(), ChannelError> {
        if self.closed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(ChannelError::Closed(batch));
        }
        if let Ok(mut e) = self.events.lock() {
            e.extend(batch.events);
        }
        Ok(())
    }
    async fn take(&self, _max: usize) -> Result<Option<Transaction>, ChannelError> {
        Err(ChannelError::Other(
            "a Collector cannot be taken from".into(),
        ))
    }
    fn close(&self) {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
    }
    fn stats(&self) -> ChannelStats {
        ChannelStats {
            events: self.len() as u64,
            ..Default::default()
        }
    }
}

/// A [`SourceContext`] whose events go to `output`, with its data under
/// `data_dir`, stopped through `shutdown`.
pub fn source_context(
    id: &str,
    data_dir: impl Into<PathBuf>,
    output: Arc<dyn Channel>,
    shutdown: CancellationToken,
) -> SourceContext {
    source_context_and_emitter(id, data_dir, output, shutdown).0
}

/// [`source_context`] with the emitter behind it, for the runtime's tests.
pub(crate) fn source_context_and_emitter(
    id: &str,
    data_dir: impl Into<PathBuf>,
    output: Arc<dyn Channel>,
    shutdown: CancellationToken,
) -> (SourceContext, Arc<SourceEmitter>) {
    let data_dir = data_dir.into();
    let metrics = Arc::new(ComponentMetrics::default());
    let emitter = Arc::new(SourceEmitter(tokio::sync::Mutex::new(Emitter::new(
        id,
        Vec::new(),
        Route::Replicating,
        vec![output],
        metrics.clone(),
    ))));
    let cx = SourceContext::new(
        id,
        shutdown,
        CheckpointStore::new(data_dir.join("checkpoint.json")),
        data_dir,
        metrics,
        emitter.clone(),
    );
    (cx, emitter)
}

/// Helpers for a processor's unit tests: build from YAML, run over a batch.
pub mod processor {
    use sluice_core::prelude::*;

    /// A build context for tests.
    pub fn cx() -> BuildContext {
        BuildContext {
            id: "test".into(),
            pipeline_data_dir: ".".into(),
            data_dir: ".".into(),
            durable_input: false,
        }
    }

    /// Parses a config from YAML, panicking with the error.
    pub fn config<C: serde::de::DeserializeOwned>(yaml: &str) -> C {
        match sluice_core::config::from_yaml_str(yaml) {
            Ok(c) => c,
            Err(e) => panic!("{yaml}: {e} at {:?}", e.pos),
        }
    }

    /// Builds the processor from YAML after checking that it validates.
    pub fn build<C: ProcessorConfig>(yaml: &str) -> Box<dyn Processor> {
        let c: C = config(yaml);
        let problems = c.validate();
        assert!(problems.is_empty(), "{problems:?}");
        match c.build(&cx()) {
            Ok(p) => p,
            Err(e) => panic!("build: {e}"),
        }
    }

    /// The unknown-key error of a config, as text.
    pub fn unknown_key<C: serde::de::DeserializeOwned>(yaml: &str) -> String {
        match sluice_core::config::from_yaml_str::<C>(yaml) {
            Ok(_) => panic!("{yaml} should not parse"),
            Err(e) => e.message,
        }
    }

    /// A batch of events with these bodies, stamped 0.
    pub fn batch(bodies: &[&str]) -> Batch {
        bodies
            .iter()
            .map(|b| Event::new(b.to_string(), Timestamp(0)))
            .collect::<Vec<_>>()
            .into()
    }

    /// The bodies of a batch's events, as text.
    pub fn bodies(b: &Batch) -> Vec<String> {
        b.events
            .iter()
            .map(|e| String::from_utf8_lossy(&e.body).into_owned())
            .collect()
    }

    /// Runs a processor over a batch; returns the failures.
    pub fn run(p: &mut dyn Processor, batch: &mut Batch) -> Vec<(usize, String)> {
        let mut cx = ProcessContext::new();
        p.process(batch, &mut cx);
        cx.take_failures()
    }

    /// The configs of every processor of type `ty` in the example pipeline
    /// `pipelines/processor-<ty>.yaml`, common keys removed as the runtime
    /// does, each parsed as `C` and validated.
    pub fn examples<C: ProcessorConfig>(ty: &str) -> Vec<C> {
        use sluice_core::config::{from_node, node, Node, NodeKind};
        let path = format!(
            "{}/../pipelines/processor-{ty}.yaml",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = match std::fs::read_to_string(&path) {
            Ok(s) => s,
            Err(e) => panic!("{path}: {e}"),
        };
        let root = match node::parse(&text, &|_| None) {
            Ok(n) => n,
            Err(p) => panic!("{path}: {p:?}"),
        };
        let mut out = Vec::new();
        let procs = root
            .get("processors")
            .and_then(Node::as_map)
            .unwrap_or_default();
        for (id, def) in procs {
            if def.get("type").and_then(Node::as_str) != Some(ty) {
                continue;
            }
            let own: Vec<(Node, Node)> = def
                .as_map()
                .unwrap_or_default()
                .iter()
                .filter(|(k, _)| {
                    !matches!(
                        k.as_str(),
                        Some("type" | "input" | "channels" | "selector" | "dead_letter")
                    )
                })
                .cloned()
                .collect();
            let own = Node {
                kind: NodeKind::Map(own),
                pos: def.pos,
            };
            let c: C = match from_node(&own) {
                Ok(c) => c,
                Err(e) => panic!("{path}: processor {id:?}: {e} at {:?}", e.pos),
            };
            let problems = c.validate();
            assert!(problems.is_empty(), "{path}: {id:?}: {problems:?}");
            out.push(c);
        }
        assert!(!out.is_empty(), "{path} has no processor of type {ty}");
        out
    }
}
