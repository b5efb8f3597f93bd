//! Hot reload: applying a new version of the pipeline to a running topology,
//! restarting only what changed.
//!
//! # What counts as a change
//!
//! Every source, processor stage and sink is one task, named `source `id``,
//! `processor `id`` or `sink `id``. A task is compared by the canonical form
//! of its declaration (options and wiring: `channels`, `input`, `selector`,
//! `dead_letter`, `batch_size`) and, for a source, of its inline
//! processors. A channel is compared by its own declaration.
//!
//! * An unchanged task keeps running untouched, on the same channel objects.
//! * A removed or changed task is stopped gracefully: a source through its
//!   own shutdown token (a child of the pipeline's), so it emits what it has
//!   read and saves its checkpoint; a stage or sink between two batches (its
//!   input stops handing out batches; a take is cancel safe), so it commits
//!   what it took, finishes its processors and flushes. Its new version
//!   starts once the old one has ended, on the same channels, and resumes
//!   from the same checkpoints.
//! * An unchanged channel keeps its object, so a memory channel keeps what it
//!   holds and a disk channel its files. While the writers of a kept channel
//!   are swapped, the reload holds a writer guard on it, so it does not close
//!   between the old writer's end and the new writer's start.
//! * A channel whose own declaration changed, or that was removed: every task
//!   attached to it is restarted; its writers are stopped, its readers drain
//!   it to the end and stop, then it is built anew (or dropped) and the new
//!   versions of those tasks start on it.
//! * Before anything is stopped, every component to start is built once on
//!   trial: when one fails, the reload is refused, every problem is logged,
//!   and the running pipeline stays as it is.
//! * A channel that is closed because all its writers ended (a bounded
//!   source finished) is treated as changed, so that new writers get an
//!   open channel.
//! * Changing `data_dir` needs a restart; such a reload is refused.
//!
//! A reload that arrives while another is still being applied waits for it
//! (only the latest waiting one is kept).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{context, ChannelSlot, ComponentInfo, Task, Topology, WriterGuard};
use crate::channel::{Channel, ChannelError, ChannelStats, Transaction};
use crate::config::pipeline::{Pipeline, ProcessorSpec};
use crate::event::Batch;

/// The running part of a topology that a reload changes.
pub(crate) struct Live<'a> {
    pub set: &'a mut JoinSet<Result<(), String>>,
    pub names: &'a mut HashMap<tokio::task::Id, String>,
    pub components: &'a mut Vec<ComponentInfo>,
    pub channels: &'a mut Vec<(String, Arc<dyn Channel>)>,
}

/// Spawns `tasks` into `set`, remembering their names.
pub(super) fn spawn(
    set: &mut JoinSet<Result<(), String>>,
    names: &mut HashMap<tokio::task::Id, String>,
    tasks: Vec<(String, tracing::Span, Task)>,
) {
    for (name, span, task) in tasks {
        let handle = set.spawn(task.instrument(span));
        names.insert(handle.id(), name);
    }
}

/// The next pipeline to apply; pending forever without a receiver or once
/// its sender is gone.
pub(super) async fn next(
    reloads: &mut Option<tokio::sync::mpsc::Receiver<Pipeline>>,
) -> Option<Pipeline> {
    if let Some(rx) = reloads.as_mut() {
        if let Some(p) = rx.recv().await {
            return Some(p);
        }
        *reloads = None;
    }
    std::future::pending().await
}

/// A source's shutdown token: a child of the pipeline's, kept under `name`.
pub(super) fn source_stop(
    stops: &mut HashMap<String, CancellationToken>,
    name: &str,
    shutdown: &CancellationToken,
) -> CancellationToken {
    let token = shutdown.child_token();
    stops.insert(name.to_string(), token.clone());
    token
}

/// A stage's or sink's input, which stops handing out batches once the
/// token kept under `name` is cancelled.
pub(super) fn stoppable(
    stops: &mut HashMap<String, CancellationToken>,
    name: &str,
    input: Arc<dyn Channel>,
) -> Arc<dyn Channel> {
    let stop = CancellationToken::new();
    stops.insert(name.to_string(), stop.clone());
    Arc::new(Stoppable { inner: input, stop })
}

/// Whether processor `p` belongs to a build limited to `wanted` tasks: as
/// a stage of its own, or inline in a wanted source.
pub(super) fn processor_wanted(
    pipeline: &Pipeline,
    p: &ProcessorSpec,
    wanted: &dyn Fn(&str) -> bool,
) -> bool {
    wanted(&format!("processor `{}`", p.id))
        || pipeline
            .sources
            .iter()
            .any(|s| s.processors.contains(&p.id) && wanted(&format!("source `{}`", s.id)))
}

/// A reader's view of a channel that ends (`take` gives `None`) once `stop`
/// is cancelled; everything else goes to the channel itself.
struct Stoppable {
    inner: Arc<dyn Channel>,
    stop: CancellationToken,
}

#[async_trait]
impl Channel for Stoppable {
    async fn put(&self, batch: Batch) -> Result<(), ChannelError> {
        self.inner.put(batch).await
    }

    async fn take(&self, max: usize) -> Result<Option<Transaction>, ChannelError> {
        tokio::select! {
            biased;
            _ = self.stop.cancelled() => Ok(None),
            taken = self.inner.take(max) => taken,
        }
    }

    fn close(&self) {
        self.inner.close();
    }

    fn stats(&self) -> ChannelStats {
        self.inner.stats()
    }

    fn is_durable(&self) -> bool {
        self.inner.is_durable()
    }
}

/// What one task is, for comparing two versions of a pipeline.
struct Wiring {
    /// Its declaration (with its inline processors) in canonical form.
    print: String,
    /// Every channel it reads or writes.
    touches: BTreeSet<String>,
    /// The channel it reads (stages and sinks).
    reads: Option<String>,
}

fn wirings(p: &Pipeline) -> BTreeMap<String, Wiring> {
    let mut out = BTreeMap::new();
    for s in &p.sources {
        let mut print = s.fingerprint.clone();
        let mut touches: BTreeSet<String> = s.channels.iter().cloned().collect();
        for pid in &s.processors {
            if let Some(proc) = p.processor(pid) {
                print.push('|');
                print.push_str(&proc.fingerprint);
                touches.extend(proc.dead_letter.iter().cloned());
            }
        }
        let w = Wiring {
            print,
            touches,
            reads: None,
        };
        out.insert(format!("source `{}`", s.id), w);
    }
    for st in p.processors.iter().filter(|st| st.input.is_some()) {
        let mut touches: BTreeSet<String> = st.channels.iter().cloned().collect();
        touches.extend(st.input.iter().cloned());
        touches.extend(st.dead_letter.iter().cloned());
        let w = Wiring {
            print: st.fingerprint.clone(),
            touches,
            reads: st.input.clone(),
        };
        out.insert(format!("processor `{}`", st.id), w);
    }
    for s in &p.sinks {
        let mut touches = BTreeSet::from([s.channel.clone()]);
        touches.extend(s.dead_letter.iter().cloned());
        let w = Wiring {
            print: s.fingerprint.clone(),
            touches,
            reads: Some(s.channel.clone()),
        };
        out.insert(format!("sink `{}`", s.id), w);
    }
    // A group and its sinks are one task: any change to one restarts it.
    for g in &p.sink_groups {
        let mut group = Wiring {
            print: format!("{g:?}"),
            touches: BTreeSet::new(),
            reads: Some(g.channel.clone()),
        };
        for id in &g.sinks {
            if let Some(w) = out.remove(&format!("sink `{id}`")) {
                group.print.push('|');
                group.print.push_str(&w.print);
                group.touches.extend(w.touches);
            }
        }
        out.insert(super::group::task_name(&g.id), group);
    }
    out
}

/// What differs between two versions of a pipeline.
struct Diff {
    /// Every task of the running version.
    old: BTreeMap<String, Wiring>,
    /// Every task of the new version.
    new: BTreeMap<String, Wiring>,
    /// Channels in both whose declaration changed (or that are closed).
    changed: BTreeSet<String>,
    /// Channels only in the running version.
    removed: BTreeSet<String>,
    /// Channels only in the new version.
    added: BTreeSet<String>,
    /// Channels in both, unchanged.
    kept: BTreeSet<String>,
    /// Old tasks to stop: removed, changed, or on a changed or removed channel.
    stopping: BTreeSet<String>,
    /// New tasks to start: added, or the new versions of stopped ones.
    starting: BTreeSet<String>,
}

/// A reload being applied.
struct Plan {
    target: Pipeline,
    /// Old tasks that must end before the reload is complete.
    ending: BTreeSet<String>,
    /// Channels to build anew, with the old tasks on them still running.
    rebuild: BTreeMap<String, BTreeSet<String>>,
    /// Tasks to start, with the old tasks they wait for (their own old
    /// version) and the channels they wait for (rebuilt ones).
    start: BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)>,
    /// Channels that failed to build anew: their tasks cannot start.
    failed: BTreeSet<String>,
    /// Channels that go away once the reload is complete.
    removed: BTreeSet<String>,
    /// Keeps kept and new channels open while their writers are swapped.
    hold: Vec<WriterGuard>,
}

/// Applies new versions of the pipeline to the running topology.
pub(crate) struct Reloader {
    /// The pipeline now running (the last one applied in full).
    pipeline: Pipeline,
    slots: HashMap<String, ChannelSlot>,
    stops: HashMap<String, CancellationToken>,
    shutdown: CancellationToken,
    plan: Option<Plan>,
    queued: Option<Pipeline>,
}

impl Reloader {
    /// The pipeline now running.
    pub(super) fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    pub(super) fn new(
        pipeline: Pipeline,
        slots: HashMap<String, ChannelSlot>,
        stops: HashMap<String, CancellationToken>,
        shutdown: CancellationToken,
    ) -> Self {
        Reloader {
            pipeline,
            slots,
            stops,
            shutdown,
            plan: None,
            queued: None,
        }
    }

    /// A new version of the pipeline arrived.
    pub(crate) fn request(&mut self, target: Pipeline, live: &mut Live<'_>) {
        if self.plan.is_some() {
            tracing::info!(
                "reload: the previous reload is still being applied; this one follows it"
            );
            self.queued = Some(target);
            return;
        }
        self.begin(target, live);
    }

    /// Task `name` ended.
    pub(crate) fn ended(&mut self, name: &str, live: &mut Live<'_>) {
        self.stops.remove(name);
        let Some(plan) = self.plan.as_mut() else {
            return;
        };
        plan.ending.remove(name);
        for waiting in plan.rebuild.values_mut() {
            waiting.remove(name);
        }
        self.advance(live);
    }

    /// What differs between the running pipeline and `target`.
    fn diff(&self, target: &Pipeline) -> Diff {
        let channel_prints = |p: &Pipeline| -> BTreeMap<String, String> {
            p.channels
                .iter()
                .map(|c| (c.id.clone(), c.fingerprint.clone()))
                .collect()
        };
        let (old_ch, new_ch) = (channel_prints(&self.pipeline), channel_prints(target));
        // A channel whose writers have all ended is closed for good (a
        // bounded source finished): it is built anew like a changed one.
        let closed = |id: &str| {
            self.slots
                .get(id)
                .is_some_and(|s| s.writers.load(Ordering::Acquire) == 0)
        };
        let changed: BTreeSet<String> = old_ch
            .iter()
            .filter(|(id, print)| new_ch.get(*id).is_some_and(|p| p != *print || closed(id)))
            .map(|(id, _)| id.clone())
            .collect();
        let only_in = |a: &BTreeMap<String, String>, b: &BTreeMap<String, String>| {
            a.keys()
                .filter(|id| !b.contains_key(*id))
                .cloned()
                .collect::<BTreeSet<String>>()
        };
        let removed = only_in(&old_ch, &new_ch);
        let added = only_in(&new_ch, &old_ch);
        let kept = new_ch
            .keys()
            .filter(|id| old_ch.contains_key(*id) && !changed.contains(*id))
            .cloned()
            .collect();
        let old = wirings(&self.pipeline);
        let new = wirings(target);
        let gone = |w: &Wiring| {
            w.touches
                .iter()
                .any(|c| changed.contains(c) || removed.contains(c))
        };
        let stopping: BTreeSet<String> = old
            .iter()
            .filter(|(name, w)| new.get(*name).is_none_or(|n| n.print != w.print) || gone(w))
            .map(|(name, _)| name.clone())
            .collect();
        let starting = new
            .keys()
            .filter(|name| !old.contains_key(*name) || stopping.contains(*name))
            .cloned()
            .collect();
        Diff {
            old,
            new,
            changed,
            removed,
            added,
            kept,
            stopping,
            starting,
        }
    }

    /// Builds the added channels, then every component to start on trial
    /// (with writer counts of their own, so that the trial closes nothing).
    /// The added channels, or every problem.
    fn trial(
        &self,
        target: &Pipeline,
        diff: &Diff,
    ) -> Result<HashMap<String, ChannelSlot>, Vec<String>> {
        let mut errors = Vec::new();
        let mut fresh = HashMap::new();
        for spec in target
            .channels
            .iter()
            .filter(|c| diff.added.contains(&c.id))
        {
            match spec.config.build(&context(target, "channel", &spec.id)) {
                Ok(channel) => {
                    let writers = Arc::new(AtomicUsize::new(0));
                    fresh.insert(spec.id.clone(), ChannelSlot { channel, writers });
                }
                Err(e) => errors.push(format!("channel `{}`: {e}", spec.id)),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let trial: HashMap<String, ChannelSlot> = self
            .slots
            .iter()
            .chain(fresh.iter())
            .map(|(id, s)| {
                let slot = ChannelSlot {
                    channel: s.channel.clone(),
                    writers: Arc::new(AtomicUsize::new(1)),
                };
                (id.clone(), slot)
            })
            .collect();
        let wanted = |n: &str| diff.starting.contains(n);
        match Topology::assemble(target, &trial, CancellationToken::new(), &wanted) {
            Ok(_) => Ok(fresh),
            Err(failed) => Err(failed.iter().map(ToString::to_string).collect()),
        }
    }

    fn begin(&mut self, target: Pipeline, live: &mut Live<'_>) {
        if target.data_dir != self.pipeline.data_dir {
            tracing::error!(
                old = %self.pipeline.data_dir.display(),
                new = %target.data_dir.display(),
                "reload refused: changing `data_dir` needs a restart; the running pipeline stays as it is"
            );
            return;
        }
        let diff = self.diff(&target);
        if diff.stopping.is_empty()
            && diff.starting.is_empty()
            && diff.changed.is_empty()
            && diff.removed.is_empty()
        {
            tracing::info!("reload: nothing changed");
            self.pipeline = target;
            return;
        }
        // Build what is new on trial first: a failure leaves everything as is.
        let fresh = match self.trial(&target, &diff) {
            Ok(fresh) => fresh,
            Err(errors) => {
                for e in &errors {
                    tracing::error!("reload refused: cannot build {e}");
                }
                tracing::error!("reload refused: the running pipeline stays as it is");
                return;
            }
        };

        // Hold every channel that stays, and the new ones, open meanwhile.
        let mut hold: Vec<WriterGuard> = diff
            .kept
            .iter()
            .filter_map(|id| self.slots.get(id).map(ChannelSlot::guard))
            .collect();
        for (id, slot) in fresh {
            hold.push(slot.guard());
            live.channels.push((id.clone(), slot.channel.clone()));
            self.slots.insert(id, slot);
        }

        let running: BTreeSet<&String> = live.names.values().collect();
        let mut ending = BTreeSet::new();
        for (name, w) in diff.old.iter().filter(|(n, _)| diff.stopping.contains(*n)) {
            let action = if diff.starting.contains(name) {
                "restarting"
            } else {
                "removing"
            };
            if !running.contains(name) {
                tracing::info!(component = %name, "reload: {action} (it had already ended)");
                continue;
            }
            ending.insert(name.clone());
            let input_goes = w
                .reads
                .as_ref()
                .is_some_and(|c| diff.changed.contains(c) || diff.removed.contains(c));
            if input_goes {
                // It reads its input to the end first.
                tracing::info!(component = %name, "reload: {action} once its input channel is drained");
            } else {
                tracing::info!(component = %name, "reload: {action}");
                if let Some(stop) = self.stops.get(name) {
                    stop.cancel();
                }
            }
        }
        for name in diff.starting.difference(&diff.stopping) {
            tracing::info!(component = %name, "reload: adding");
        }
        for id in &diff.changed {
            tracing::info!(channel = %id, "reload: channel changed: it is rebuilt once drained");
        }
        for id in &diff.removed {
            tracing::info!(channel = %id, "reload: channel removed: it goes once drained");
        }
        // A changed channel is rebuilt once every old task on it has ended.
        let rebuild = diff
            .changed
            .iter()
            .map(|c| {
                let on = diff
                    .old
                    .iter()
                    .filter(|(name, w)| w.touches.contains(c) && ending.contains(*name))
                    .map(|(name, _)| name.clone())
                    .collect();
                (c.clone(), on)
            })
            .collect();
        // A task starts once its old version has ended and its rebuilt
        // channels are there.
        let start = diff
            .starting
            .iter()
            .map(|name| {
                let own = ending.iter().filter(|n| *n == name).cloned().collect();
                let channels = diff
                    .new
                    .get(name)
                    .map(|w| w.touches.intersection(&diff.changed).cloned().collect())
                    .unwrap_or_default();
                (name.clone(), (own, channels))
            })
            .collect();
        self.plan = Some(Plan {
            target,
            ending,
            rebuild,
            start,
            failed: BTreeSet::new(),
            removed: diff.removed,
            hold,
        });
        self.advance(live);
    }

    /// Rebuilds the channels and starts the tasks whose wait is over;
    /// completes the reload when nothing is left to do.
    fn advance(&mut self, live: &mut Live<'_>) {
        let Some(plan) = self.plan.as_mut() else {
            return;
        };
        let drained: Vec<String> = plan
            .rebuild
            .iter()
            .filter(|(_, on)| on.is_empty())
            .map(|(id, _)| id.clone())
            .collect();
        for id in drained {
            plan.rebuild.remove(&id);
            let Some(spec) = plan.target.channels.iter().find(|c| c.id == id) else {
                continue;
            };
            // Let go of the old one first: a durable channel may open the
            // same files.
            self.slots.remove(&id);
            live.channels.retain(|(c, _)| *c != id);
            match spec.config.build(&context(&plan.target, "channel", &id)) {
                Ok(channel) => {
                    let slot = ChannelSlot {
                        channel: channel.clone(),
                        writers: Arc::new(AtomicUsize::new(0)),
                    };
                    plan.hold.push(slot.guard());
                    self.slots.insert(id.clone(), slot);
                    live.channels.push((id.clone(), channel));
                    tracing::info!(channel = %id, "reload: channel rebuilt");
                }
                Err(e) => {
                    tracing::error!(channel = %id, "reload: cannot build channel `{id}` anew: {e}; the components on it stay stopped");
                    plan.failed.insert(id);
                }
            }
        }
        let ready: BTreeSet<String> = plan
            .start
            .iter()
            .filter(|(_, (own, channels))| {
                own.iter().all(|n| !plan.ending.contains(n))
                    && channels.iter().all(|c| !plan.rebuild.contains_key(c))
            })
            .map(|(name, _)| name.clone())
            .collect();
        let mut now = BTreeSet::new();
        for name in ready {
            if let Some((_, channels)) = plan.start.remove(&name) {
                if let Some(c) = channels.iter().find(|c| plan.failed.contains(*c)) {
                    tracing::error!(component = %name, "reload: not started: channel `{c}` could not be built");
                } else {
                    now.insert(name);
                }
            }
        }
        if !now.is_empty() {
            let wanted = |n: &str| now.contains(n);
            match Topology::assemble(&plan.target, &self.slots, self.shutdown.clone(), &wanted) {
                Ok(built) => {
                    for c in built.components {
                        live.components
                            .retain(|old| !(old.kind == c.kind && old.id == c.id));
                        live.components.push(c);
                    }
                    self.stops.extend(built.stops);
                    for (name, _, _) in &built.tasks {
                        tracing::info!(component = %name, "reload: started");
                    }
                    spawn(live.set, live.names, built.tasks);
                }
                Err(errors) => {
                    for e in errors {
                        tracing::error!("reload: cannot start {e}");
                    }
                }
            }
        }
        if !(plan.start.is_empty() && plan.ending.is_empty() && plan.rebuild.is_empty()) {
            return;
        }
        let Some(plan) = self.plan.take() else {
            return;
        };
        for id in &plan.removed {
            self.slots.remove(id);
            live.channels.retain(|(c, _)| c != id);
        }
        let keep = wirings(&plan.target);
        live.components.retain(|c| {
            (c.kind == "processor" && plan.target.processor(&c.id).is_some())
                || keep.contains_key(&format!("{} `{}`", c.kind, c.id))
        });
        self.pipeline = plan.target;
        tracing::info!("reload complete: {}", self.pipeline.summary());
        if let Some(next) = self.queued.take() {
            self.begin(next, live);
        }
    }
}

#[cfg(test)]
mod tests;
