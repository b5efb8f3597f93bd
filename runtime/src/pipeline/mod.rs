//! The pipeline model: what `sluice validate` checks and `sluice run` builds.
//!
//! [`load_pipeline`] reads a file, substitutes `${VAR}`s, parses every
//! component's options into its typed config through the [`Registry`], and
//! checks the graph: references, unused channels, cycles. It collects every
//! problem before failing; each [`Diagnostic`] names file, line and column.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod api;
mod graph;
mod groups;
mod keys;
#[cfg(test)]
mod tests;

pub use api::ApiSpec;
use graph::check_graph;
pub use groups::{Balance, GroupStrategy, SinkGroupSpec};
use keys::{
    batch_size, batch_timeout, check_keys, component, list, report, section, selector, string_list,
    string_opt, workers,
};
use sluice_core::config::node::{self, Node, NodeKind, Pos};
use sluice_core::registry::{
    AnyChannelConfig, AnyProcessorConfig, AnySinkConfig, AnySourceConfig, Entry, Registry,
};

/// One problem in a pipeline file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file.
    pub file: PathBuf,
    /// Where in it.
    pub pos: Pos,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.pos.line,
            self.pos.col,
            self.message
        )
    }
}

/// Where a component's events go after its processors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SelectorSpec {
    /// Every event to every listed channel (the default).
    Replicating,
    /// By the value of `field`: `mapping` value → channels, else `default`.
    Multiplexing {
        /// The field whose text chooses the channels.
        field: String,
        /// Value → channel ids.
        mapping: BTreeMap<String, Vec<String>>,
        /// Channels for events whose value is not mapped (may be empty: such
        /// events are counted as discarded).
        default: Vec<String>,
    },
}

/// A source as declared.
#[derive(Clone)]
pub struct SourceSpec {
    /// Its id.
    pub id: String,
    /// Its `type`.
    pub type_name: String,
    /// Its typed options.
    pub config: Arc<dyn AnySourceConfig>,
    /// Ids of the channels it writes.
    pub channels: Vec<String>,
    /// Ids of its inline processors, in order.
    pub processors: Vec<String>,
    /// Its selector.
    pub selector: SelectorSpec,
    /// Its declaration in canonical form (see [`Node::canonical`]): equal
    /// fingerprints mean the same options and wiring.
    pub fingerprint: String,
    /// Where it is declared.
    pub pos: Pos,
}

/// A channel as declared.
#[derive(Clone)]
pub struct ChannelSpec {
    /// Its id.
    pub id: String,
    /// Its `type`.
    pub type_name: String,
    /// Its typed options.
    pub config: Arc<dyn AnyChannelConfig>,
    /// Its declaration in canonical form (see [`Node::canonical`]): equal
    /// fingerprints mean the same options and wiring.
    pub fingerprint: String,
    /// Where it is declared.
    pub pos: Pos,
}

/// A processor as declared: a stage when it has an `input`, else inline-only.
#[derive(Clone)]
pub struct ProcessorSpec {
    /// Its id.
    pub id: String,
    /// Its `type`.
    pub type_name: String,
    /// Its typed options.
    pub config: Arc<dyn AnyProcessorConfig>,
    /// The channel a stage takes from.
    pub input: Option<String>,
    /// The channels a stage writes.
    pub channels: Vec<String>,
    /// A stage's selector.
    pub selector: SelectorSpec,
    /// Where failed events go.
    pub dead_letter: Option<String>,
    /// Events taken per batch by a stage.
    pub batch_size: usize,
    /// How many threads one batch's work may be split over.
    pub workers: Workers,
    /// Its declaration in canonical form (see [`Node::canonical`]): equal
    /// fingerprints mean the same options and wiring.
    pub fingerprint: String,
    /// Where it is declared.
    pub pos: Pos,
}

/// How many threads a processor's work on one batch may be split over
/// (its `workers` key). Only a processor that keeps no state between
/// events ([`ProcessorConfig::stateless`](sluice_core::registry::ProcessorConfig::stateless))
/// is split; the parts are put back in order, so order is kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Workers {
    /// As many as the machine has cores, for batches whose work is worth
    /// the hand-over (measured as the pipeline runs); one thread for a
    /// processor that keeps state.
    #[default]
    Auto,
    /// At most this many threads for every batch large enough to split
    /// (1: never split).
    Fixed(usize),
}

/// The most `workers` a processor may have.
pub const MAX_WORKERS: usize = 64;

/// A sink as declared.
#[derive(Clone)]
pub struct SinkSpec {
    /// Its id.
    pub id: String,
    /// Its `type`.
    pub type_name: String,
    /// Its typed options.
    pub config: Arc<dyn AnySinkConfig>,
    /// The channel it drains.
    pub channel: String,
    /// Where rejected events go.
    pub dead_letter: Option<String>,
    /// Events taken per batch.
    pub batch_size: usize,
    /// How long a batch smaller than `batch_size` may wait to fill.
    pub batch_timeout: Option<std::time::Duration>,
    /// Its declaration in canonical form (see [`Node::canonical`]): equal
    /// fingerprints mean the same options and wiring.
    pub fingerprint: String,
    /// Where it is declared.
    pub pos: Pos,
}

/// A validated pipeline.
#[derive(Clone)]
pub struct Pipeline {
    /// The file it was read from.
    pub path: PathBuf,
    /// Where checkpoints and durable channels live.
    pub data_dir: PathBuf,
    /// Whether the file sets `data_dir`; when not, `data_dir` is
    /// `./.sluice/<file stem>` and the agent's settings may move it.
    pub data_dir_set: bool,
    /// Sources in file order.
    pub sources: Vec<SourceSpec>,
    /// Channels in file order.
    pub channels: Vec<ChannelSpec>,
    /// Processors in file order.
    pub processors: Vec<ProcessorSpec>,
    /// Sinks in file order.
    pub sinks: Vec<SinkSpec>,
    /// Sink groups in file order.
    pub sink_groups: Vec<SinkGroupSpec>,
    /// The HTTP endpoint for health, metrics and the dashboard, when set.
    pub api: Option<ApiSpec>,
}

impl fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline")
            .field("path", &self.path)
            .field("summary", &self.summary())
            .finish()
    }
}

impl Pipeline {
    /// A processor by id.
    pub fn processor(&self, id: &str) -> Option<&ProcessorSpec> {
        self.processors.iter().find(|p| p.id == id)
    }

    /// A one-line summary: `4 sources, 2 channels, ...`.
    pub fn summary(&self) -> String {
        let n = |k: usize, one: &str| format!("{k} {one}{}", if k == 1 { "" } else { "s" });
        let stages = self.processors.iter().filter(|p| p.input.is_some()).count();
        format!(
            "{}, {}, {} ({} stage{}), {}",
            n(self.sources.len(), "source"),
            n(self.channels.len(), "channel"),
            n(self.processors.len(), "processor"),
            stages,
            if stages == 1 { "" } else { "s" },
            n(self.sinks.len(), "sink"),
        )
    }
}

const TOP_KEYS: &[&str] = &[
    "data_dir",
    "sources",
    "channels",
    "processors",
    "sinks",
    "sink_groups",
    "api",
    // Unit tests for `sluice test`; `run` and `validate` leave them alone.
    "tests",
];
const SOURCE_KEYS: &[&str] = &["type", "channels", "processors", "selector"];
const CHANNEL_KEYS: &[&str] = &["type"];
const PROCESSOR_KEYS: &[&str] = &[
    "type",
    "input",
    "channels",
    "selector",
    "dead_letter",
    "batch_size",
    "workers",
];
const SINK_KEYS: &[&str] = &[
    "type",
    "channel",
    "dead_letter",
    "batch_size",
    "batch_timeout",
];
const DEFAULT_BATCH_SIZE: usize = sluice_core::defaults::BATCH_SIZE;

struct Ctx<'a> {
    file: &'a Path,
    diags: Vec<Diagnostic>,
    /// Channels named by components whose own options are broken: they
    /// still count as written or read, so that one mistake is reported once.
    loose_refs: BTreeSet<String>,
    /// Channels declared whose own options are broken (already reported):
    /// references to them are not reported again as undeclared.
    broken_channels: Vec<String>,
    /// The channel references of components whose own options are broken
    /// (`what`, channel id, position): still checked, so that a misspelt
    /// channel name is reported together with the option error.
    broken_refs: Vec<(String, String, Pos)>,
    /// Candidates that "did you mean" may still compare words with: a file
    /// with thousands of misspelt references among thousands of names
    /// would otherwise take time quadratic in its size. Suggestions stop
    /// when it runs out; the errors are reported all the same.
    suggest_budget: usize,
}

/// Comparisons "did you mean" may make in one file.
const SUGGEST_BUDGET: usize = 500_000;

impl Ctx<'_> {
    /// The name among `candidates` closest to `word`, while the budget
    /// for suggestions lasts.
    fn nearest<'a>(&mut self, word: &str, candidates: &[&'a str]) -> Option<&'a str> {
        if candidates.len() > self.suggest_budget {
            self.suggest_budget = 0;
            return None;
        }
        self.suggest_budget -= candidates.len();
        sluice_core::config::suggest::nearest(word, candidates.iter().copied())
    }

    fn err(&mut self, pos: Pos, message: impl Into<String>) {
        self.diags.push(Diagnostic {
            file: self.file.to_path_buf(),
            pos,
            message: message.into(),
        });
    }
}

/// Reads and validates the pipeline file at `path`, taking `${VAR}`s from
/// the process environment.
///
/// # Errors
///
/// Every problem found, sorted by position.
pub fn load_pipeline(path: &Path, registry: &Registry) -> Result<Pipeline, Vec<Diagnostic>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![Diagnostic {
            file: path.to_path_buf(),
            pos: Pos { line: 1, col: 1 },
            message: format!("cannot read the file: {e}"),
        }]
    })?;
    parse_pipeline(path, &text, registry, &|name| std::env::var(name).ok())
}

/// Validates pipeline `text` as if read from `path`, with `env` for `${VAR}`s.
///
/// # Errors
///
/// Every problem found, sorted by position.
pub fn parse_pipeline(
    path: &Path,
    text: &str,
    registry: &Registry,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Pipeline, Vec<Diagnostic>> {
    let mut cx = Ctx {
        file: path,
        diags: Vec::new(),
        loose_refs: BTreeSet::new(),
        broken_channels: Vec::new(),
        broken_refs: Vec::new(),
        suggest_budget: SUGGEST_BUDGET,
    };
    // Lines with an unset variable: what else goes wrong on them (the value
    // is empty) follows from it and is not reported.
    let mut unset_lines = BTreeSet::new();
    let root = match node::parse(text, env) {
        Ok(root) => root,
        Err(problems) => {
            // An unset variable still lets the rest be checked; a syntax
            // error or a refused limit does not.
            let fatal = problems.iter().any(|p| p.fatal);
            for p in problems {
                if !p.fatal {
                    unset_lines.insert(p.pos.line);
                }
                cx.err(p.pos, p.message);
            }
            if fatal {
                return Err(cx.diags);
            }
            match node::parse(text, &|name| env(name).or_else(|| Some(String::new()))) {
                Ok(root) => root,
                Err(_) => return Err(cx.diags),
            }
        }
    };
    let first = cx.diags.len();
    let pipeline = build_model(&mut cx, path, &root, registry);
    let mut i = 0;
    cx.diags.retain(|d| {
        i += 1;
        i <= first || !unset_lines.contains(&d.pos.line)
    });
    if cx.diags.is_empty() {
        if let Some(p) = pipeline {
            return Ok(p);
        }
    }
    cx.diags.sort_by_key(|d| d.pos);
    cx.diags.dedup();
    Err(cx.diags)
}

/// Checks one component (its `type` and keys), parses its own options into
/// its typed config and runs its `validate`. `None` when anything failed
/// (already reported).
fn typed<'r, T: ?Sized + 'r>(
    cx: &mut Ctx,
    (id, pos, node): (&str, Pos, &Node),
    common: &[&str],
    kind: &str,
    lookup: impl Fn(&str) -> Option<&'r Entry<T>>,
    names: &[&str],
    validate: impl Fn(&T) -> Vec<sluice_core::registry::Problem>,
) -> Option<(String, Arc<T>)> {
    let (type_name, own) = component(
        cx,
        id,
        pos,
        node,
        common,
        kind,
        |t| lookup(t).map(|e| e.fields),
        names,
    )?;
    let entry = lookup(&type_name)?;
    match (entry.parse)(&own) {
        Ok(config) => {
            report(cx, node, pos, &format!("{kind} `{id}`"), validate(&config));
            Some((type_name, config))
        }
        Err(e) => {
            cx.err(
                e.pos.unwrap_or(pos),
                format!("{kind} `{id}`: {}", e.message),
            );
            None
        }
    }
}

/// Records the channel references under `keys` of a component whose own
/// options are broken, for [`graph::check_graph`] to check.
fn keep_refs(cx: &mut Ctx, what: String, node: &Node, keys: &[&str]) {
    for key in keys {
        match node.get(key).map(|n| (n, &n.kind)) {
            Some((n, NodeKind::Str(s))) => cx.broken_refs.push((what.clone(), s.clone(), n.pos)),
            Some((_, NodeKind::Seq(items))) => {
                for item in items {
                    if let Some(s) = item.as_str() {
                        cx.broken_refs.push((what.clone(), s.to_string(), item.pos));
                    }
                }
            }
            _ => {}
        }
    }
}

/// The keys that name channels: `channels`, `channel`, `input`,
/// `dead_letter`, and any misspelling of them (`chanels: [main]` still
/// means that `main` is written, for the report).
fn refers_to_channels(key: &Node) -> bool {
    const KEYS: [&str; 4] = ["channels", "channel", "input", "dead_letter"];
    key.as_str().is_some_and(|k| {
        KEYS.contains(&k) || sluice_core::config::suggest::nearest(k, KEYS).is_some()
    })
}

fn loose_refs(root: &Node) -> BTreeSet<String> {
    let mut refs = BTreeSet::new();
    for sec in ["sources", "processors", "sinks"] {
        for (_, comp) in root.get(sec).and_then(Node::as_map).unwrap_or(&[]) {
            let keys = comp.as_map().unwrap_or(&[]);
            for (_, value) in keys.iter().filter(|(k, _)| refers_to_channels(k)) {
                match &value.kind {
                    NodeKind::Str(s) => {
                        refs.insert(s.clone());
                    }
                    NodeKind::Seq(items) => {
                        refs.extend(items.iter().filter_map(|i| i.as_str().map(String::from)))
                    }
                    _ => {}
                }
            }
        }
    }
    refs
}

fn build_model(cx: &mut Ctx, path: &Path, root: &Node, registry: &Registry) -> Option<Pipeline> {
    let Some(entries) = root.as_map() else {
        cx.err(
            root.pos,
            format!(
                "a pipeline file must be a mapping with {}, found {}",
                list(TOP_KEYS),
                root.type_name()
            ),
        );
        return None;
    };
    check_keys(cx, entries, TOP_KEYS, &[], "pipeline");
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "pipeline".into());
    let data_dir = match root.get("data_dir") {
        None => PathBuf::from(".sluice").join(stem),
        Some(n) => match &n.kind {
            NodeKind::Str(s) if !s.is_empty() => PathBuf::from(s),
            _ => {
                cx.err(
                    n.pos,
                    format!("`data_dir` must be a path, found {}", n.type_name()),
                );
                PathBuf::new()
            }
        },
    };

    let mut sources = Vec::new();
    for (id, node, pos) in section(cx, root, "sources") {
        let lookup = |t: &str| registry.source(t);
        let Some((type_name, config)) = typed(
            cx,
            (&id, pos, node),
            SOURCE_KEYS,
            "source",
            lookup,
            &registry.names("source"),
            |c| c.validate(),
        ) else {
            keep_refs(cx, format!("source `{id}`"), node, &["channels"]);
            continue;
        };
        let channels = string_list(cx, node, "channels", true);
        let processors = string_list(cx, node, "processors", false);
        let selector = selector(cx, node);
        sources.push(SourceSpec {
            id,
            type_name,
            config,
            channels,
            processors,
            selector,
            fingerprint: node.canonical(),
            pos,
        });
    }

    let mut channels = Vec::new();
    for (id, node, pos) in section(cx, root, "channels") {
        let lookup = |t: &str| registry.channel(t);
        if let Some((type_name, config)) = typed(
            cx,
            (&id, pos, node),
            CHANNEL_KEYS,
            "channel",
            lookup,
            &registry.names("channel"),
            |c| c.validate(),
        ) {
            channels.push(ChannelSpec {
                id,
                type_name,
                config,
                fingerprint: node.canonical(),
                pos,
            });
        } else {
            cx.broken_channels.push(id);
        }
    }

    let mut processors = Vec::new();
    for (id, node, pos) in section(cx, root, "processors") {
        let lookup = |t: &str| registry.processor(t);
        let Some((type_name, config)) = typed(
            cx,
            (&id, pos, node),
            PROCESSOR_KEYS,
            "processor",
            lookup,
            &registry.names("processor"),
            |c| c.validate(),
        ) else {
            let keys = ["input", "channels", "dead_letter"];
            keep_refs(cx, format!("processor `{id}`"), node, &keys);
            continue;
        };
        let input = string_opt(cx, node, "input");
        let channels = string_list(cx, node, "channels", false);
        let selector = selector(cx, node);
        let dead_letter = string_opt(cx, node, "dead_letter");
        let batch_size = batch_size(cx, node);
        let workers = workers(cx, node, &id, &type_name, &*config);
        if input.is_none() {
            for key in ["channels", "selector", "batch_size"] {
                if let Some(k) = node.key(key) {
                    cx.err(k.pos, format!("processor `{id}`: `{key}` applies only to a stage; add `input: CHANNEL` to make `{id}` a stage, or list it in a source's `processors:`"));
                }
            }
        } else if channels.is_empty() {
            let p = node.key("input").map_or(pos, |k| k.pos);
            cx.err(
                p,
                format!("processor `{id}`: a stage needs `channels: [..]` to write to"),
            );
        }
        processors.push(ProcessorSpec {
            id,
            type_name,
            config,
            input,
            channels,
            selector,
            dead_letter,
            batch_size,
            workers,
            fingerprint: node.canonical(),
            pos,
        });
    }

    let mut sinks = Vec::new();
    for (id, node, pos) in section(cx, root, "sinks") {
        let lookup = |t: &str| registry.sink(t);
        let Some((type_name, config)) = typed(
            cx,
            (&id, pos, node),
            SINK_KEYS,
            "sink",
            lookup,
            &registry.names("sink"),
            |c| c.validate(),
        ) else {
            keep_refs(
                cx,
                format!("sink `{id}`"),
                node,
                &["channel", "dead_letter"],
            );
            continue;
        };
        let channel = string_opt(cx, node, "channel");
        if channel.is_none() && node.get("channel").is_none() {
            cx.err(
                pos,
                format!("sink `{id}`: missing required option `channel`"),
            );
        }
        let dead_letter = string_opt(cx, node, "dead_letter");
        let batch_size = batch_size(cx, node);
        let batch_timeout = batch_timeout(cx, node);
        sinks.push(SinkSpec {
            id,
            type_name,
            config,
            channel: channel.unwrap_or_default(),
            dead_letter,
            batch_size,
            batch_timeout,
            fingerprint: node.canonical(),
            pos,
        });
    }

    if sources.is_empty()
        && root
            .get("sources")
            .is_some_and(|n| n.as_map().is_some_and(|m| m.is_empty()))
        || root.get("sources").is_none()
    {
        cx.err(
            root.pos,
            "the pipeline has no sources: add one under `sources:`",
        );
    }
    if sinks.is_empty()
        && (root.get("sinks").is_none()
            || root
                .get("sinks")
                .is_some_and(|n| n.as_map().is_some_and(|m| m.is_empty())))
    {
        cx.err(
            root.pos,
            "the pipeline has no sinks: add one under `sinks:`",
        );
    }

    let sink_groups = groups::sink_groups(cx, root, &sinks);

    let pipeline = Pipeline {
        path: path.to_path_buf(),
        data_dir,
        data_dir_set: root.get("data_dir").is_some(),
        sources,
        channels,
        processors,
        sinks,
        sink_groups,
        api: api::api_spec(cx, root),
    };
    if !cx.diags.is_empty() {
        cx.loose_refs = loose_refs(root);
    }
    check_graph(cx, root, &pipeline);
    Some(pipeline)
}
