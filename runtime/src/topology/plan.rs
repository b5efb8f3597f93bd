//! The plan of a pipeline: which tasks it runs, what each reads, writes and
//! holds. Pure: computed from the [`Pipeline`] alone, no I/O, nothing built.
//! [`start`](super::start) builds and starts tasks from it; a reload compares
//! the plans of two versions (see [`reload`](super::reload)).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::pipeline::Pipeline;
use sluice_core::registry::BuildContext;
use sluice_core::resource::Resource;

/// The identity of one task of a running pipeline: what wiring, stop
/// handles and task names are keyed by.
///
/// A sink that belongs to a sink group has no task of its own: it runs
/// inside its group's task, [`TaskKey::Group`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TaskKey {
    /// A source with its inline processors.
    Source(String),
    /// A processor with an `input` channel of its own (a stage).
    Stage(String),
    /// A sink outside any group.
    Sink(String),
    /// A sink group with its member sinks.
    Group(String),
}

impl TaskKey {
    /// The component's id in the pipeline file.
    pub fn id(&self) -> &str {
        match self {
            TaskKey::Source(id) | TaskKey::Stage(id) | TaskKey::Sink(id) | TaskKey::Group(id) => id,
        }
    }
}

/// How logs name a task: ``source `app` ``, ``processor `tag` ``,
/// ``sink `out` ``, ``sink group `g` ``.
impl fmt::Display for TaskKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskKey::Source(id) => write!(f, "source `{id}`"),
            TaskKey::Stage(id) => write!(f, "processor `{id}`"),
            TaskKey::Sink(id) => write!(f, "sink `{id}`"),
            TaskKey::Group(id) => write!(f, "sink group `{id}`"),
        }
    }
}

/// What one task is, for comparing two versions of a pipeline.
#[derive(Debug)]
pub(crate) struct TaskPlan {
    /// Its declaration (with its inline processors, or its group's member
    /// sinks) in canonical form: a different print means a changed task.
    pub print: String,
    /// Every channel it reads or writes (dead-letter channels included).
    pub touches: BTreeSet<String>,
    /// The channel it reads (stages, sinks and groups).
    pub reads: Option<String>,
    /// What its components will hold exclusively once built.
    pub resources: Vec<Resource>,
    /// The sinks it runs (one, or a group's members): a sink that moves
    /// into or out of a group is the same component in another task.
    pub sinks: BTreeSet<String>,
}

/// What `component` of kind `kind` is given at build time.
pub(crate) fn context(pipeline: &Pipeline, kind: &str, id: &str) -> BuildContext {
    BuildContext {
        id: id.to_string(),
        pipeline_data_dir: pipeline.data_dir.clone(),
        data_dir: pipeline.data_dir.join(format!("{kind}s")).join(id),
        durable_input: false,
    }
}

/// The group that runs sink `id`, if any.
pub(crate) fn group_of<'p>(pipeline: &'p Pipeline, id: &str) -> Option<&'p str> {
    pipeline
        .sink_groups
        .iter()
        .find(|g| g.sinks.iter().any(|s| s == id))
        .map(|g| g.id.as_str())
}

/// Every task of `p`.
pub(crate) fn plan(p: &Pipeline) -> BTreeMap<TaskKey, TaskPlan> {
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
        let resources = s.config.resources(&context(p, "source", &s.id));
        let task = TaskPlan {
            print,
            touches,
            reads: None,
            resources,
            sinks: BTreeSet::new(),
        };
        out.insert(TaskKey::Source(s.id.clone()), task);
    }
    for st in p.processors.iter().filter(|st| st.input.is_some()) {
        let mut touches: BTreeSet<String> = st.channels.iter().cloned().collect();
        touches.extend(st.input.iter().cloned());
        touches.extend(st.dead_letter.iter().cloned());
        let task = TaskPlan {
            print: st.fingerprint.clone(),
            touches,
            reads: st.input.clone(),
            resources: Vec::new(),
            sinks: BTreeSet::new(),
        };
        out.insert(TaskKey::Stage(st.id.clone()), task);
    }
    for s in &p.sinks {
        let mut touches = BTreeSet::from([s.channel.clone()]);
        touches.extend(s.dead_letter.iter().cloned());
        let task = TaskPlan {
            print: s.fingerprint.clone(),
            touches,
            reads: Some(s.channel.clone()),
            resources: s.config.resources(&context(p, "sink", &s.id)),
            sinks: BTreeSet::from([s.id.clone()]),
        };
        out.insert(TaskKey::Sink(s.id.clone()), task);
    }
    // A group and its sinks are one task: any change to one restarts it.
    for g in &p.sink_groups {
        let mut group = TaskPlan {
            print: format!("{g:?}"),
            touches: BTreeSet::new(),
            reads: Some(g.channel.clone()),
            resources: Vec::new(),
            sinks: BTreeSet::new(),
        };
        for id in &g.sinks {
            if let Some(member) = out.remove(&TaskKey::Sink(id.clone())) {
                group.print.push('|');
                group.print.push_str(&member.print);
                group.touches.extend(member.touches);
                group.resources.extend(member.resources);
                group.sinks.extend(member.sinks);
            }
        }
        out.insert(TaskKey::Group(g.id.clone()), group);
    }
    out
}

/// What channel `id` of `p` will hold exclusively once built.
pub(crate) fn channel_resources(p: &Pipeline, id: &str) -> Vec<Resource> {
    p.channels
        .iter()
        .find(|c| c.id == id)
        .map(|c| c.config.resources(&context(p, "channel", id)))
        .unwrap_or_default()
}
