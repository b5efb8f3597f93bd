//! Hot reload: applying a new version of the pipeline to a running topology,
//! restarting only what changed.
//!
//! # What counts as a change
//!
//! Every source, processor stage, sink and sink group is one task, known by
//! its [`TaskKey`] (the sinks of a group run in the group's task). A task is
//! compared by the canonical form of its declaration (options and wiring:
//! `channels`, `input`, `selector`, `dead_letter`, `batch_size`) and, for a
//! source, of its inline processors, for a group, of its member sinks (see
//! [`plan`](super::plan)). A channel is compared by its own declaration.
//!
//! * An unchanged task keeps running untouched, on the same channel objects.
//! * A removed or changed task is stopped through its own stop handle: a
//!   source stops reading, emits what it has read and saves its checkpoint;
//!   a stage, sink or group ends between two batches, or, when it is
//!   waiting to retry a failed write (or every member of a group is
//!   penalised), at once, rolling its batch back into the channel (see
//!   [`runner`](super::runner)). It then finishes its processors and
//!   flushes. Its new version starts once the old one has ended, on the
//!   same channels, and resumes from the same checkpoints.
//! * A task whose components declare [`Resource`]s (a listening port, a
//!   locked directory) starts only once every old task holding a
//!   conflicting resource has ended: then its `build` may bind and lock.
//! * An unchanged channel keeps its object, so a memory channel keeps what it
//!   holds and a disk channel its files. While the writers of a kept channel
//!   are swapped, the reload holds a writer guard on it, so it does not close
//!   between the old writer's end and the new writer's start.
//! * A channel whose own declaration changed, or that was removed: every task
//!   attached to it is restarted; its writers are stopped, its readers drain
//!   it to the end and stop, then it is built anew (or dropped) and the new
//!   versions of those tasks start on it.
//! * Before anything is stopped, the new version is checked: the file
//!   parsed and every component's pure `validate` passed (before the
//!   reloader sees it); the added channels are built; every task to start
//!   whose components declare no resources is built once on trial and
//!   dropped. A component that declares resources is not built on trial
//!   (it would find them taken by its running version). A new task that
//!   claims a resource a task that keeps running holds, or a new channel
//!   that claims one an old channel holds, is refused. When anything
//!   fails, the reload is refused, every problem is logged, and the running
//!   pipeline stays as it is. A component with resources whose `build`
//!   then fails when it starts stays stopped, and the error is logged.
//! * A channel that is closed because all its writers ended (a bounded
//!   source finished) is treated as changed, so that new writers get an
//!   open channel.
//! * Changing `data_dir` needs a restart; such a reload is refused.
//!
//! A reload that arrives while another is still being applied waits for it
//! (only the latest waiting one is kept).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::plan::{channel_resources, context, plan, TaskKey, TaskPlan};
use super::runner::StopHandle;
use super::start::{start, Spawn, Started};
use super::{ChannelSlot, ComponentInfo, WriterGuard};
use crate::pipeline::Pipeline;
use sluice_core::channel::Channel;
use sluice_core::resource::{any_conflict, Resource};

/// The running part of a topology that a reload changes.
pub(crate) struct Live<'a> {
    pub set: &'a mut JoinSet<Result<(), String>>,
    pub names: &'a mut HashMap<tokio::task::Id, TaskKey>,
    pub components: &'a mut Vec<ComponentInfo>,
    pub channels: &'a mut Vec<(String, Arc<dyn Channel>)>,
    /// What observers see: published again before an old channel is
    /// dropped, so that the view holds no handle on it.
    pub view: &'a super::view::LiveView,
}

/// Spawns `tasks` into `set`, remembering their keys.
pub(super) fn spawn(
    set: &mut JoinSet<Result<(), String>>,
    names: &mut HashMap<tokio::task::Id, TaskKey>,
    tasks: Vec<Spawn>,
) {
    for Spawn { key, span, task } in tasks {
        let handle = set.spawn(task.instrument(span));
        names.insert(handle.id(), key);
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

/// Builds `keys` of `pipeline` on a blocking thread: a component's `build`
/// may open files and take locks.
async fn start_blocking(
    pipeline: &Pipeline,
    slots: &HashMap<String, ChannelSlot>,
    shutdown: &CancellationToken,
    keys: BTreeSet<TaskKey>,
) -> Result<Started, Vec<String>> {
    let (p, sl, sh) = (pipeline.clone(), slots.clone(), shutdown.clone());
    match tokio::task::spawn_blocking(move || start(&p, &sl, &sh, &keys)).await {
        Ok(Ok(started)) => Ok(started),
        Ok(Err(errors)) => Err(errors.iter().map(ToString::to_string).collect()),
        Err(e) => Err(vec![format!("building panicked: {e}")]),
    }
}

/// Builds channel `id` of `pipeline` on a blocking thread, after dropping
/// `old` there (a durable channel's writer thread is joined and its files
/// synced and unlocked before the new one opens them).
async fn build_channel(
    pipeline: &Pipeline,
    id: &str,
    old: Option<Arc<dyn Channel>>,
) -> Result<Arc<dyn Channel>, String> {
    let Some(spec) = pipeline.channels.iter().find(|c| c.id == id) else {
        return Err(format!("channel `{id}` is not declared"));
    };
    let (config, cx) = (spec.config.clone(), context(pipeline, "channel", id));
    let built = tokio::task::spawn_blocking(move || {
        drop(old);
        config.build(&cx)
    })
    .await;
    match built {
        Ok(Ok(channel)) => Ok(channel),
        Ok(Err(e)) => Err(format!("channel `{id}`: {e}")),
        Err(e) => Err(format!("channel `{id}`: building panicked: {e}")),
    }
}

/// Drops channels on a blocking thread (see [`build_channel`]).
async fn drop_channels(channels: Vec<Arc<dyn Channel>>) {
    if !channels.is_empty() {
        let _ = tokio::task::spawn_blocking(move || drop(channels)).await;
    }
}

/// What differs between two versions of a pipeline.
struct Diff {
    /// Every task of the running version.
    old: BTreeMap<TaskKey, TaskPlan>,
    /// Every task of the new version.
    new: BTreeMap<TaskKey, TaskPlan>,
    /// Channels in both whose declaration changed (or that are closed).
    changed: BTreeSet<String>,
    /// Channels only in the running version.
    removed: BTreeSet<String>,
    /// Channels only in the new version.
    added: BTreeSet<String>,
    /// Channels in both, unchanged.
    kept: BTreeSet<String>,
    /// Old tasks to stop: removed, changed, or on a changed or removed channel.
    stopping: BTreeSet<TaskKey>,
    /// New tasks to start: added, or the new versions of stopped ones.
    starting: BTreeSet<TaskKey>,
}

/// A reload being applied.
struct Plan {
    target: Pipeline,
    /// Old tasks that must end before the reload is complete.
    ending: BTreeSet<TaskKey>,
    /// Channels to build anew, with the old tasks on them still running.
    rebuild: BTreeMap<String, BTreeSet<TaskKey>>,
    /// Tasks to start, with the old tasks they wait for (their own old
    /// version, and holders of resources they claim) and the channels they
    /// wait for (rebuilt ones).
    start: BTreeMap<TaskKey, (BTreeSet<TaskKey>, BTreeSet<String>)>,
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
    stops: HashMap<TaskKey, StopHandle>,
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
        stops: HashMap<TaskKey, StopHandle>,
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
    pub(crate) async fn request(&mut self, target: Pipeline, live: &mut Live<'_>) {
        if self.plan.is_some() {
            tracing::info!(
                "reload: the previous reload is still being applied; this one follows it"
            );
            self.queued = Some(target);
            return;
        }
        self.begin(target, live).await;
    }

    /// Task `key` ended.
    pub(crate) async fn ended(&mut self, key: &TaskKey, live: &mut Live<'_>) {
        self.stops.remove(key);
        let Some(plan) = self.plan.as_mut() else {
            return;
        };
        plan.ending.remove(key);
        for waiting in plan.rebuild.values_mut() {
            waiting.remove(key);
        }
        self.advance(live).await;
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
        let old = plan(&self.pipeline);
        let new = plan(target);
        let gone = |t: &TaskPlan| {
            t.touches
                .iter()
                .any(|c| changed.contains(c) || removed.contains(c))
        };
        let stopping: BTreeSet<TaskKey> = old
            .iter()
            .filter(|(key, t)| new.get(*key).is_none_or(|n| n.print != t.print) || gone(t))
            .map(|(key, _)| key.clone())
            .collect();
        let starting = new
            .keys()
            .filter(|key| !old.contains_key(*key) || stopping.contains(*key))
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

    /// Resources the new version claims that the old one keeps holding.
    fn resource_problems(&self, target: &Pipeline, diff: &Diff) -> Vec<String> {
        let mut problems = Vec::new();
        for key in &diff.starting {
            let Some(new) = diff.new.get(key) else {
                continue;
            };
            // Members of one consumer group may be many; ports and paths not.
            let exclusive: Vec<Resource> = new
                .resources
                .iter()
                .filter(|r| !matches!(r, Resource::ConsumerGroup(_)))
                .cloned()
                .collect();
            for (old_key, old) in diff.old.iter().filter(|(k, _)| !diff.stopping.contains(*k)) {
                if let Some(r) = conflict(&exclusive, &old.resources) {
                    problems.push(format!(
                        "{key} claims {r}, which {old_key} holds and keeps running"
                    ));
                }
            }
        }
        // A channel built by this reload against every old channel other
        // than its own old version.
        for id in diff.added.iter().chain(&diff.changed) {
            let new = channel_resources(target, id);
            for old_id in self.pipeline.channels.iter().map(|c| &c.id) {
                if old_id == id {
                    continue;
                }
                if let Some(r) = conflict(&new, &channel_resources(&self.pipeline, old_id)) {
                    problems.push(format!(
                        "channel `{id}` claims {r}, which channel `{old_id}` holds until the reload is complete: move it in two reloads, or restart"
                    ));
                }
            }
        }
        problems
    }

    /// Checks the new version: resources, the added channels (built for
    /// good), and every task to start that declares no resources (built on
    /// trial and dropped). The added channels, or every problem.
    async fn trial(
        &self,
        target: &Pipeline,
        diff: &Diff,
    ) -> Result<HashMap<String, ChannelSlot>, Vec<String>> {
        let errors = self.resource_problems(target, diff);
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut errors = Vec::new();
        let mut fresh = HashMap::new();
        for id in &diff.added {
            match build_channel(target, id, None).await {
                Ok(channel) => {
                    fresh.insert(id.clone(), ChannelSlot::new(channel));
                }
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            drop_channels(fresh.into_values().map(|s| s.channel).collect()).await;
            return Err(errors);
        }
        // Writer counts of their own, so that the trial closes nothing.
        let trial: HashMap<String, ChannelSlot> = self
            .slots
            .iter()
            .chain(fresh.iter())
            .map(|(id, s)| (id.clone(), ChannelSlot::new(s.channel.clone())))
            .collect();
        for s in trial.values() {
            s.writers.fetch_add(1, Ordering::AcqRel);
        }
        let (keys, holders): (BTreeSet<TaskKey>, BTreeSet<TaskKey>) = diff
            .starting
            .iter()
            .cloned()
            .partition(|k| diff.new.get(k).is_some_and(|t| t.resources.is_empty()));
        // A source that holds resources is not built on trial; its inline
        // processors are.
        let mut errors = Vec::new();
        for s in target
            .sources
            .iter()
            .filter(|s| holders.contains(&TaskKey::Source(s.id.clone())))
        {
            for spec in s.processors.iter().filter_map(|pid| target.processor(pid)) {
                if let Err(e) = spec.config.build(&context(target, "processor", &spec.id)) {
                    errors.push(format!("processor `{}`: {e}", spec.id));
                }
            }
        }
        if !errors.is_empty() {
            drop_channels(fresh.into_values().map(|s| s.channel).collect()).await;
            return Err(errors);
        }
        match start_blocking(target, &trial, &CancellationToken::new(), keys).await {
            Ok(_) => Ok(fresh),
            Err(failed) => {
                drop_channels(fresh.into_values().map(|s| s.channel).collect()).await;
                Err(failed)
            }
        }
    }

    async fn begin(&mut self, target: Pipeline, live: &mut Live<'_>) {
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
        // Check what is new first: a failure leaves everything as is.
        let fresh = match self.trial(&target, &diff).await {
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

        let running: BTreeSet<&TaskKey> = live.names.values().collect();
        let mut ending = BTreeSet::new();
        for (key, t) in diff.old.iter().filter(|(k, _)| diff.stopping.contains(*k)) {
            let action = if diff.starting.contains(key) {
                "restarting"
            } else {
                "removing"
            };
            if !running.contains(key) {
                tracing::info!(component = %key, "reload: {action} (it had already ended)");
                continue;
            }
            ending.insert(key.clone());
            let input_goes = t
                .reads
                .as_ref()
                .is_some_and(|c| diff.changed.contains(c) || diff.removed.contains(c));
            if input_goes {
                // It reads its input to the end first.
                tracing::info!(component = %key, "reload: {action} once its input channel is drained");
            } else {
                tracing::info!(component = %key, "reload: {action}");
                if let Some(stop) = self.stops.get(key) {
                    stop.cancel();
                }
            }
        }
        for key in diff.starting.difference(&diff.stopping) {
            tracing::info!(component = %key, "reload: adding");
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
                    .filter(|(key, t)| t.touches.contains(c) && ending.contains(*key))
                    .map(|(key, _)| key.clone())
                    .collect();
                (c.clone(), on)
            })
            .collect();
        // A task starts once its old version (also: the old task of a sink
        // that moves into or out of a group) and the old holders of the
        // resources it claims have ended, and its rebuilt channels are there.
        let start = diff
            .starting
            .iter()
            .map(|key| {
                let new = diff.new.get(key);
                let waits_for = |old: &TaskPlan| {
                    new.is_some_and(|n| {
                        any_conflict(&n.resources, &old.resources)
                            || !n.sinks.is_disjoint(&old.sinks)
                    })
                };
                let wait = ending
                    .iter()
                    .filter(|old| *old == key || diff.old.get(*old).is_some_and(waits_for))
                    .cloned()
                    .collect();
                let channels = new
                    .map(|t| t.touches.intersection(&diff.changed).cloned().collect())
                    .unwrap_or_default();
                (key.clone(), (wait, channels))
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
        self.advance(live).await;
    }

    /// Rebuilds the channels and starts the tasks whose wait is over;
    /// completes the reload when nothing is left to do.
    async fn advance(&mut self, live: &mut Live<'_>) {
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
            // Let go of the old one first: a durable channel may open the
            // same files.
            let old = self.slots.remove(&id).map(|s| s.channel);
            live.channels.retain(|(c, _)| *c != id);
            live.view
                .publish(&self.pipeline, live.components, live.channels);
            match build_channel(&plan.target, &id, old).await {
                Ok(channel) => {
                    let slot = ChannelSlot::new(channel.clone());
                    plan.hold.push(slot.guard());
                    self.slots.insert(id.clone(), slot);
                    live.channels.push((id.clone(), channel));
                    tracing::info!(channel = %id, "reload: channel rebuilt");
                }
                Err(e) => {
                    tracing::error!(channel = %id, "reload: cannot build {e}; the components on it stay stopped");
                    plan.failed.insert(id);
                }
            }
        }
        let ready: BTreeSet<TaskKey> = plan
            .start
            .iter()
            .filter(|(_, (wait, channels))| {
                wait.iter().all(|k| !plan.ending.contains(k))
                    && channels.iter().all(|c| !plan.rebuild.contains_key(c))
            })
            .map(|(key, _)| key.clone())
            .collect();
        let mut now = BTreeSet::new();
        for key in ready {
            if let Some((_, channels)) = plan.start.remove(&key) {
                if let Some(c) = channels.iter().find(|c| plan.failed.contains(*c)) {
                    tracing::error!(component = %key, "reload: not started: channel `{c}` could not be built");
                } else {
                    now.insert(key);
                }
            }
        }
        if !now.is_empty() {
            match start_blocking(&plan.target, &self.slots, &self.shutdown, now).await {
                Ok(built) => {
                    for c in built.components {
                        live.components
                            .retain(|old| !(old.kind == c.kind && old.id == c.id));
                        live.components.push(c);
                    }
                    self.stops.extend(built.stops);
                    for t in &built.tasks {
                        tracing::info!(component = %t.key, "reload: started");
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
        let mut gone = Vec::new();
        for id in &plan.removed {
            gone.extend(self.slots.remove(id).map(|s| s.channel));
            live.channels.retain(|(c, _)| c != id);
        }
        live.view
            .publish(&plan.target, live.components, live.channels);
        drop_channels(gone).await;
        let keep = super::plan::plan(&plan.target);
        live.components.retain(|c| {
            let target = &plan.target;
            match c.kind {
                "processor" => target.processor(&c.id).is_some(),
                "source" => keep.contains_key(&TaskKey::Source(c.id.clone())),
                _ => target.sinks.iter().any(|s| s.id == c.id),
            }
        });
        self.pipeline = plan.target;
        tracing::info!("reload complete: {}", self.pipeline.summary());
        if let Some(next) = self.queued.take() {
            Box::pin(self.begin(next, live)).await;
        }
    }
}

/// The first resource of `a` that conflicts with one of `b`.
fn conflict<'r>(a: &'r [Resource], b: &[Resource]) -> Option<&'r Resource> {
    a.iter().find(|x| b.iter().any(|y| x.conflicts(y)))
}

#[cfg(test)]
mod tests;
