//! Building tasks: from the [`plan`](super::plan) of a pipeline and its
//! channels, build the components of the chosen tasks (this is where a
//! component's `build` is called: it may bind ports, open files, take
//! locks) and wrap each in its runner with its own stop token. Spawning is
//! the caller's.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::emit::{ChainLink, Emitter, Route, SourceEmitter};
use super::plan::{context, group_of, TaskKey};
use super::runner::{run_source, run_stage, SinkRunner, StopHandle};
use super::{group, health, ChannelSlot, ComponentBuildError, ComponentInfo, WriterGuard};
use crate::pipeline::{Pipeline, ProcessorSpec, SelectorSpec, Workers, MAX_WORKERS};
use sluice_core::checkpoint::CheckpointStore;
use sluice_core::metrics::ComponentMetrics;
use sluice_core::source::SourceContext;
use sluice_core::warn::WarnLimiter;

/// The future of one task.
pub(crate) type Task =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>;

/// A task ready to spawn.
pub(crate) struct Spawn {
    pub key: TaskKey,
    pub span: tracing::Span,
    pub task: Task,
}

/// Tasks built by [`start`].
pub(crate) struct Started {
    pub tasks: Vec<Spawn>,
    /// Their components, with fresh counters.
    pub components: Vec<ComponentInfo>,
    /// The stop handle of each task.
    pub stops: HashMap<TaskKey, StopHandle>,
}

/// One writer guard for each of `channels`.
fn writer_guards(slots: &HashMap<String, ChannelSlot>, channels: &[String]) -> Vec<WriterGuard> {
    channels
        .iter()
        .filter_map(|c| slots.get(c).map(ChannelSlot::guard))
        .collect()
}

fn route(sel: &SelectorSpec, outputs: &[String]) -> Route {
    match sel {
        SelectorSpec::Replicating => Route::Replicating,
        SelectorSpec::Multiplexing {
            field,
            mapping,
            default,
        } => {
            let idx = |ids: &Vec<String>| -> Vec<usize> {
                ids.iter()
                    .filter_map(|c| outputs.iter().position(|o| o == c))
                    .collect()
            };
            Route::Multiplexing {
                field: field.clone(),
                mapping: mapping.iter().map(|(k, v)| (k.clone(), idx(v))).collect(),
                default: idx(default),
            }
        }
    }
}

/// Builds the tasks `keys` of `pipeline` on the channels of `slots`. A
/// source's shutdown token is a child of `shutdown`; a fatal sink error
/// cancels `shutdown`.
///
/// # Errors
///
/// Every component that failed to build; then nothing is returned (what
/// was built is dropped).
pub(crate) fn start(
    pipeline: &Pipeline,
    slots: &HashMap<String, ChannelSlot>,
    shutdown: &CancellationToken,
    keys: &BTreeSet<TaskKey>,
) -> Result<Started, Vec<ComponentBuildError>> {
    let mut errors = Vec::new();
    let mut stops = HashMap::new();
    let chan = |id: &str| slots.get(id).map(|s| s.channel.clone());

    // A processor's counters, shared by the places it runs in.
    let mut components = Vec::new();
    let mut proc_metrics: HashMap<String, Arc<ComponentMetrics>> = HashMap::new();
    let wanted = |pid: &str| {
        keys.contains(&TaskKey::Stage(pid.to_string()))
            || pipeline.sources.iter().any(|s| {
                s.processors.iter().any(|p| p == pid)
                    && keys.contains(&TaskKey::Source(s.id.clone()))
            })
    };
    for p in pipeline.processors.iter().filter(|p| wanted(&p.id)) {
        let m = Arc::new(ComponentMetrics::default());
        proc_metrics.insert(p.id.clone(), m.clone());
        components.push(ComponentInfo {
            kind: "processor",
            id: p.id.clone(),
            type_name: p.type_name.clone(),
            metrics: m,
        });
    }

    let mut tasks: Vec<Spawn> = Vec::new();

    // Builds the chain of inline processors `ids`, adding writer guards
    // for their dead-letter channels.
    let build_chain = |ids: &[String],
                       guards: &mut Vec<WriterGuard>,
                       errors: &mut Vec<ComponentBuildError>,
                       count_io: bool|
     -> Vec<ChainLink> {
        let mut chain = Vec::new();
        for pid in ids {
            let Some(spec) = pipeline.processor(pid) else {
                continue;
            };
            let cx = context(pipeline, "processor", pid);
            let built = spec.config.build(&cx).and_then(|processor| {
                let (threads, always_split) = threads(spec);
                let replicas = (1..threads)
                    .map(|_| spec.config.build(&cx))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((processor, replicas, always_split))
            });
            match built {
                Ok((processor, replicas, always_split)) => {
                    let dead_letter = spec.dead_letter.as_deref().and_then(|d| {
                        let slot = slots.get(d)?;
                        guards.push(slot.guard());
                        Some(slot.channel.clone())
                    });
                    let metrics = proc_metrics.get(pid).cloned().unwrap_or_default();
                    let mut link = ChainLink::new(pid, processor, dead_letter, metrics, count_io);
                    link.replicas = replicas;
                    link.always_split = always_split;
                    chain.push(link);
                }
                Err(error) => errors.push(ComponentBuildError {
                    kind: "processor",
                    id: pid.clone(),
                    error,
                }),
            }
        }
        chain
    };

    for s in &pipeline.sources {
        let key = TaskKey::Source(s.id.clone());
        if !keys.contains(&key) {
            continue;
        }
        let cx = context(pipeline, "source", &s.id);
        let source = match s.config.build(&cx) {
            Ok(src) => src,
            Err(error) => {
                errors.push(ComponentBuildError {
                    kind: "source",
                    id: s.id.clone(),
                    error,
                });
                continue;
            }
        };
        let mut guards = writer_guards(slots, &s.channels);
        let chain = build_chain(&s.processors, &mut guards, &mut errors, true);
        let metrics = Arc::new(ComponentMetrics::default());
        components.push(ComponentInfo {
            kind: "source",
            id: s.id.clone(),
            type_name: s.type_name.clone(),
            metrics: metrics.clone(),
        });
        let stop = StopHandle {
            stop: CancellationToken::new(),
            source: Some(shutdown.child_token()),
        };
        let outputs = s.channels.iter().filter_map(|c| chan(c)).collect();
        let route = route(&s.selector, &s.channels);
        let mut emitter = Emitter::new(&s.id, chain, route, outputs, metrics.clone());
        emitter.stop = Some(stop.stop.clone());
        let emitter = Arc::new(SourceEmitter(tokio::sync::Mutex::new(emitter)));
        let scx = SourceContext::new(
            &s.id,
            stop.source.clone().unwrap_or_default(),
            CheckpointStore::new(cx.data_dir.join("checkpoints.json")),
            cx.data_dir.clone(),
            metrics.clone(),
            emitter.clone(),
        );
        let span = tracing::info_span!("source", id = %s.id, r#type = %s.type_name);
        let run = run_source(source, scx, emitter, guards, stop.stop.clone());
        stops.insert(key.clone(), stop);
        tasks.push(Spawn {
            key,
            span,
            task: Box::pin(health::tracked(metrics, run)),
        });
    }

    for p in pipeline.processors.iter().filter(|p| p.input.is_some()) {
        let key = TaskKey::Stage(p.id.clone());
        if !keys.contains(&key) {
            continue;
        }
        let Some(input) = p.input.as_deref().and_then(chan) else {
            continue;
        };
        let stop = StopHandle::default();
        let mut guards = writer_guards(slots, &p.channels);
        let chain = build_chain(std::slice::from_ref(&p.id), &mut guards, &mut errors, false);
        let metrics = proc_metrics.get(&p.id).cloned().unwrap_or_default();
        let outputs = p.channels.iter().filter_map(|c| chan(c)).collect();
        let route = route(&p.selector, &p.channels);
        let mut emitter = Emitter::new(&p.id, chain, route, outputs, metrics.clone());
        emitter.stop = Some(stop.stop.clone());
        let span = tracing::info_span!("processor", id = %p.id, r#type = %p.type_name);
        let stage = run_stage(
            input,
            emitter,
            metrics.clone(),
            p.batch_size,
            guards,
            stop.stop.clone(),
        );
        stops.insert(key.clone(), stop);
        tasks.push(Spawn {
            key,
            span,
            task: Box::pin(health::tracked(metrics, stage)),
        });
    }

    // Runners of sinks that belong to a group: the group runs them.
    let mut grouped: HashMap<String, SinkRunner> = HashMap::new();
    for s in &pipeline.sinks {
        // A sink of a group runs inside the group's task: the group is
        // what a reload stops and starts.
        let key = match group_of(pipeline, &s.id) {
            Some(g) => TaskKey::Group(g.to_string()),
            None => TaskKey::Sink(s.id.clone()),
        };
        if !keys.contains(&key) {
            continue;
        }
        let Some(input) = chan(&s.channel) else {
            continue;
        };
        let stop = stops.entry(key.clone()).or_default().stop.clone();
        let mut cx = context(pipeline, "sink", &s.id);
        cx.durable_input = input.is_durable();
        let sink = match s.config.build(&cx) {
            Ok(sink) => sink,
            Err(error) => {
                errors.push(ComponentBuildError {
                    kind: "sink",
                    id: s.id.clone(),
                    error,
                });
                continue;
            }
        };
        let mut guards = Vec::new();
        let dead_letter = s.dead_letter.as_deref().and_then(|d| {
            let slot = slots.get(d)?;
            guards.push(slot.guard());
            Some(slot.channel.clone())
        });
        let metrics = Arc::new(ComponentMetrics::default());
        components.push(ComponentInfo {
            kind: "sink",
            id: s.id.clone(),
            type_name: s.type_name.clone(),
            metrics: metrics.clone(),
        });
        let runner = SinkRunner {
            id: s.id.clone(),
            input,
            sink,
            dead_letter,
            metrics: metrics.clone(),
            batch_size: s.batch_size,
            batch_timeout: s.batch_timeout,
            shutdown: shutdown.clone(),
            stop,
            warn: WarnLimiter::default(),
            _guards: guards,
        };
        if let TaskKey::Group(_) = key {
            grouped.insert(s.id.clone(), runner);
            continue;
        }
        let span = tracing::info_span!("sink", id = %s.id, r#type = %s.type_name);
        tasks.push(Spawn {
            key,
            span,
            task: Box::pin(health::tracked(metrics, runner.run())),
        });
    }
    tasks.extend(group::tasks(pipeline, &mut grouped));

    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Started {
        tasks,
        components,
        stops,
    })
}

/// How many threads a batch's work in processor `spec` may be split over,
/// and whether every batch large enough is split (`workers: N`) rather
/// than those worth it (`auto`). One for a processor that keeps state.
fn threads(spec: &ProcessorSpec) -> (usize, bool) {
    if !spec.config.stateless() {
        return (1, false);
    }
    match spec.workers {
        Workers::Fixed(n) => (n.clamp(1, MAX_WORKERS), n > 1),
        Workers::Auto => (
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(AUTO_WORKERS),
            false,
        ),
    }
}

/// The most threads `workers: auto` splits a batch over, whatever the
/// number of cores: a batch of 1,000 events gains little past that.
const AUTO_WORKERS: usize = 8;
