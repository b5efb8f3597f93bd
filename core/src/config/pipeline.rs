//! The pipeline model: what `sluice validate` checks and `sluice run` builds.
//!
//! [`load_pipeline`] reads a file, substitutes `${VAR}`s, parses every
//! component's options into its typed config through the [`Registry`], and
//! checks the graph: references, unused channels, cycles. It collects every
//! problem before failing; each [`Diagnostic`] names file, line and column.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::node::{self, Node, NodeKind, Pos};
use super::suggest::nearest;
use crate::registry::{
    AnyChannelConfig, AnyProcessorConfig, AnySinkConfig, AnySourceConfig, Problem, Registry,
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
    /// Where it is declared.
    pub pos: Pos,
}

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
    /// Sources in file order.
    pub sources: Vec<SourceSpec>,
    /// Channels in file order.
    pub channels: Vec<ChannelSpec>,
    /// Processors in file order.
    pub processors: Vec<ProcessorSpec>,
    /// Sinks in file order.
    pub sinks: Vec<SinkSpec>,
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

const TOP_KEYS: &[&str] = &["data_dir", "sources", "channels", "processors", "sinks"];
const SOURCE_KEYS: &[&str] = &["type", "channels", "processors", "selector"];
const CHANNEL_KEYS: &[&str] = &["type"];
const PROCESSOR_KEYS: &[&str] = &[
    "type",
    "input",
    "channels",
    "selector",
    "dead_letter",
    "batch_size",
];
const SINK_KEYS: &[&str] = &["type", "channel", "dead_letter", "batch_size"];
const DEFAULT_BATCH_SIZE: usize = 1000;

struct Ctx<'a> {
    file: &'a Path,
    diags: Vec<Diagnostic>,
    /// Channels named by components whose own options are broken: they
    /// still count as written or read, so that one mistake is reported once.
    loose_refs: BTreeSet<String>,
}

impl Ctx<'_> {
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
    };
    let root = match node::parse(text, env) {
        Ok(root) => root,
        Err(problems) => {
            for p in problems {
                cx.err(p.pos, p.message);
            }
            // An unset variable still lets the rest be checked; a syntax
            // error does not.
            if cx
                .diags
                .iter()
                .any(|d| d.message.starts_with("YAML syntax error"))
            {
                return Err(cx.diags);
            }
            match node::parse(text, &|name| env(name).or_else(|| Some(String::new()))) {
                Ok(root) => root,
                Err(_) => return Err(cx.diags),
            }
        }
    };
    let pipeline = build_model(&mut cx, path, &root, registry);
    if cx.diags.is_empty() {
        if let Some(p) = pipeline {
            return Ok(p);
        }
    }
    cx.diags.sort_by_key(|d| d.pos);
    cx.diags.dedup();
    Err(cx.diags)
}

fn loose_refs(root: &Node) -> BTreeSet<String> {
    let mut refs = BTreeSet::new();
    for sec in ["sources", "processors", "sinks"] {
        for (_, comp) in root.get(sec).and_then(Node::as_map).unwrap_or(&[]) {
            for key in ["channels", "channel", "input", "dead_letter"] {
                match comp.get(key).map(|n| &n.kind) {
                    Some(NodeKind::Str(s)) => {
                        refs.insert(s.clone());
                    }
                    Some(NodeKind::Seq(items)) => {
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
        let Some((type_name, rest)) = component(
            cx,
            &id,
            pos,
            node,
            SOURCE_KEYS,
            "source",
            |t| registry.source(t).map(|e| e.fields),
            &registry.names("source"),
        ) else {
            continue;
        };
        let Some(entry) = registry.source(&type_name) else {
            continue;
        };
        let config = match (entry.parse)(&rest) {
            Ok(c) => c,
            Err(e) => {
                cx.err(
                    e.pos.unwrap_or(pos),
                    format!("source `{id}`: {}", e.message),
                );
                continue;
            }
        };
        report(cx, node, pos, &format!("source `{id}`"), config.validate());
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
            pos,
        });
    }

    let mut channels = Vec::new();
    for (id, node, pos) in section(cx, root, "channels") {
        let Some((type_name, rest)) = component(
            cx,
            &id,
            pos,
            node,
            CHANNEL_KEYS,
            "channel",
            |t| registry.channel(t).map(|e| e.fields),
            &registry.names("channel"),
        ) else {
            continue;
        };
        let Some(entry) = registry.channel(&type_name) else {
            continue;
        };
        match (entry.parse)(&rest) {
            Ok(config) => {
                report(cx, node, pos, &format!("channel `{id}`"), config.validate());
                channels.push(ChannelSpec {
                    id,
                    type_name,
                    config,
                    pos,
                });
            }
            Err(e) => cx.err(
                e.pos.unwrap_or(pos),
                format!("channel `{id}`: {}", e.message),
            ),
        }
    }

    let mut processors = Vec::new();
    for (id, node, pos) in section(cx, root, "processors") {
        let Some((type_name, rest)) = component(
            cx,
            &id,
            pos,
            node,
            PROCESSOR_KEYS,
            "processor",
            |t| registry.processor(t).map(|e| e.fields),
            &registry.names("processor"),
        ) else {
            continue;
        };
        let Some(entry) = registry.processor(&type_name) else {
            continue;
        };
        let config = match (entry.parse)(&rest) {
            Ok(c) => c,
            Err(e) => {
                cx.err(
                    e.pos.unwrap_or(pos),
                    format!("processor `{id}`: {}", e.message),
                );
                continue;
            }
        };
        report(
            cx,
            node,
            pos,
            &format!("processor `{id}`"),
            config.validate(),
        );
        let input = string_opt(cx, node, "input");
        let channels = string_list(cx, node, "channels", false);
        let selector = selector(cx, node);
        let dead_letter = string_opt(cx, node, "dead_letter");
        let batch_size = batch_size(cx, node);
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
            pos,
        });
    }

    let mut sinks = Vec::new();
    for (id, node, pos) in section(cx, root, "sinks") {
        let Some((type_name, rest)) = component(
            cx,
            &id,
            pos,
            node,
            SINK_KEYS,
            "sink",
            |t| registry.sink(t).map(|e| e.fields),
            &registry.names("sink"),
        ) else {
            continue;
        };
        let Some(entry) = registry.sink(&type_name) else {
            continue;
        };
        let config = match (entry.parse)(&rest) {
            Ok(c) => c,
            Err(e) => {
                cx.err(e.pos.unwrap_or(pos), format!("sink `{id}`: {}", e.message));
                continue;
            }
        };
        report(cx, node, pos, &format!("sink `{id}`"), config.validate());
        let channel = string_opt(cx, node, "channel");
        if channel.is_none() && node.get("channel").is_none() {
            cx.err(
                pos,
                format!("sink `{id}`: missing required option `channel`"),
            );
        }
        let dead_letter = string_opt(cx, node, "dead_letter");
        let batch_size = batch_size(cx, node);
        sinks.push(SinkSpec {
            id,
            type_name,
            config,
            channel: channel.unwrap_or_default(),
            dead_letter,
            batch_size,
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

    let pipeline = Pipeline {
        path: path.to_path_buf(),
        data_dir,
        sources,
        channels,
        processors,
        sinks,
    };
    if !cx.diags.is_empty() {
        cx.loose_refs = loose_refs(root);
    }
    check_graph(cx, root, &pipeline);
    Some(pipeline)
}

fn list(keys: &[&str]) -> String {
    keys.iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reports keys of `entries` that are neither common keys nor options.
fn check_keys(
    cx: &mut Ctx,
    entries: &[(Node, Node)],
    common: &[&str],
    fields: &[&str],
    what: &str,
) {
    for (k, _) in entries {
        let Some(key) = k.as_str() else {
            cx.err(
                k.pos,
                format!("{what}: keys must be strings, found {}", k.type_name()),
            );
            continue;
        };
        if common.contains(&key) || fields.contains(&key) {
            continue;
        }
        let all = common.iter().chain(fields.iter()).copied();
        let msg = match nearest(key, all) {
            Some(s) => format!("{what}: unknown option `{key}`: did you mean `{s}`?"),
            None => format!(
                "{what}: unknown option `{key}` (valid options: {})",
                list(
                    &common
                        .iter()
                        .chain(fields.iter())
                        .copied()
                        .collect::<Vec<_>>()
                )
            ),
        };
        cx.err(k.pos, msg);
    }
}

/// The `(id, node, pos)` of every component under `name`.
fn section<'a>(cx: &mut Ctx, root: &'a Node, name: &str) -> Vec<(String, &'a Node, Pos)> {
    let Some(sec) = root.get(name) else {
        return Vec::new();
    };
    if matches!(sec.kind, NodeKind::Null) {
        return Vec::new();
    }
    let Some(entries) = sec.as_map() else {
        cx.err(
            sec.pos,
            format!(
                "`{name}` must be a mapping from id to component, found {}",
                sec.type_name()
            ),
        );
        return Vec::new();
    };
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (k, v) in entries {
        let id = match &k.kind {
            NodeKind::Str(s) => s.clone(),
            NodeKind::Int(i) => i.to_string(),
            _ => {
                cx.err(
                    k.pos,
                    format!("a component id must be a string, found {}", k.type_name()),
                );
                continue;
            }
        };
        if !seen.insert(id.clone()) {
            cx.err(k.pos, format!("`{id}` is declared twice under `{name}`"));
            continue;
        }
        out.push((id, v, k.pos));
    }
    out
}

/// Checks a component mapping: its `type` is registered, its keys are known.
/// Returns the type name and a mapping of its own options.
#[allow(clippy::too_many_arguments)]
fn component(
    cx: &mut Ctx,
    id: &str,
    at: Pos,
    node: &Node,
    common: &[&str],
    kind: &str,
    fields_of: impl Fn(&str) -> Option<&'static [&'static str]>,
    names: &[&str],
) -> Option<(String, Node)> {
    let what = format!("{kind} `{id}`");
    let Some(entries) = node.as_map() else {
        cx.err(
            node.pos,
            format!(
                "{what} must be a mapping with a `type`, found {}",
                node.type_name()
            ),
        );
        return None;
    };
    let Some(type_node) = node.get("type") else {
        cx.err(
            node.pos,
            format!(
                "{what}: missing required option `type` (one of {})",
                list(names)
            ),
        );
        return None;
    };
    // `type: null` reads as YAML null: take it as the name `null`.
    let type_name = match &type_node.kind {
        NodeKind::Null => Some("null"),
        _ => type_node.as_str(),
    };
    let Some(type_name) = type_name else {
        cx.err(
            type_node.pos,
            format!(
                "{what}: `type` must be a string, found {}",
                type_node.type_name()
            ),
        );
        return None;
    };
    let Some(fields) = fields_of(type_name) else {
        let msg = match nearest(type_name, names.iter().copied()) {
            Some(s) => format!("{what}: unknown {kind} type `{type_name}`: did you mean `{s}`?"),
            None => format!(
                "{what}: unknown {kind} type `{type_name}` (known: {})",
                list(names)
            ),
        };
        cx.err(type_node.pos, msg);
        return None;
    };
    // Unknown keys are reported here, against common keys and options at
    // once, so a misspelt common key gets a suggestion too.
    if !fields.is_empty() {
        check_keys(cx, entries, common, fields, &what);
    }
    let own: Vec<(Node, Node)> = entries
        .iter()
        .filter(|(k, _)| {
            k.as_str()
                .is_some_and(|k| !common.contains(&k) && (fields.is_empty() || fields.contains(&k)))
        })
        .cloned()
        .collect();
    // Errors about the mapping as a whole (a missing option) point at the id.
    Some((
        type_name.to_string(),
        Node {
            kind: NodeKind::Map(own),
            pos: at,
        },
    ))
}

fn report(cx: &mut Ctx, node: &Node, pos: Pos, what: &str, problems: Vec<Problem>) {
    for p in problems {
        let at = p
            .key
            .as_deref()
            .and_then(|k| node.get(k))
            .map_or(pos, |n| n.pos);
        cx.err(at, format!("{what}: {}", p.message));
    }
}

fn string_opt(cx: &mut Ctx, node: &Node, key: &str) -> Option<String> {
    let n = node.get(key)?;
    match &n.kind {
        NodeKind::Str(s) => Some(s.clone()),
        NodeKind::Null => None,
        _ => {
            cx.err(
                n.pos,
                format!(
                    "`{key}` must be a channel id (a string), found {}",
                    n.type_name()
                ),
            );
            None
        }
    }
}

fn string_list(cx: &mut Ctx, node: &Node, key: &str, required: bool) -> Vec<String> {
    let Some(n) = node.get(key) else {
        if required {
            cx.err(node.pos, format!("missing required option `{key}`"));
        }
        return Vec::new();
    };
    match &n.kind {
        NodeKind::Str(s) => vec![s.clone()],
        NodeKind::Seq(items) => items
            .iter()
            .filter_map(|i| match &i.kind {
                NodeKind::Str(s) => Some(s.clone()),
                _ => {
                    cx.err(
                        i.pos,
                        format!("`{key}` must list ids (strings), found {}", i.type_name()),
                    );
                    None
                }
            })
            .collect(),
        _ => {
            cx.err(
                n.pos,
                format!("`{key}` must be a list of ids, found {}", n.type_name()),
            );
            Vec::new()
        }
    }
}

fn batch_size(cx: &mut Ctx, node: &Node) -> usize {
    match node.get("batch_size") {
        None => DEFAULT_BATCH_SIZE,
        Some(n) => match n.kind {
            NodeKind::Int(i) if i > 0 => i as usize,
            _ => {
                cx.err(n.pos, "`batch_size` must be a positive integer");
                DEFAULT_BATCH_SIZE
            }
        },
    }
}

fn selector(cx: &mut Ctx, node: &Node) -> SelectorSpec {
    let Some(sel) = node.get("selector") else {
        return SelectorSpec::Replicating;
    };
    let Some(entries) = sel.as_map() else {
        cx.err(
            sel.pos,
            format!("`selector` must be a mapping, found {}", sel.type_name()),
        );
        return SelectorSpec::Replicating;
    };
    let kind = sel
        .get("type")
        .and_then(Node::as_str)
        .unwrap_or("replicating");
    match kind {
        "replicating" => {
            check_keys(cx, entries, &["type"], &[], "selector");
            SelectorSpec::Replicating
        }
        "multiplexing" => {
            check_keys(
                cx,
                entries,
                &["type", "field", "mapping", "default"],
                &[],
                "selector",
            );
            let field = match sel.get("field").and_then(Node::as_str) {
                Some(f) => f.to_string(),
                None => {
                    cx.err(sel.pos, "a multiplexing selector needs `field`");
                    String::new()
                }
            };
            let mut mapping = BTreeMap::new();
            match sel.get("mapping") {
                None => cx.err(
                    sel.pos,
                    "a multiplexing selector needs `mapping: {VALUE: [channels]}`",
                ),
                Some(m) => match m.as_map() {
                    Some(pairs) => {
                        for (k, v) in pairs {
                            let key = match &k.kind {
                                NodeKind::Str(s) => s.clone(),
                                NodeKind::Int(i) => i.to_string(),
                                NodeKind::Bool(b) => b.to_string(),
                                NodeKind::Float(f) => f.to_string(),
                                _ => {
                                    cx.err(k.pos, "a mapping value must be a scalar");
                                    continue;
                                }
                            };
                            let chans = string_list(
                                cx,
                                &Node {
                                    kind: NodeKind::Map(vec![(
                                        Node {
                                            kind: NodeKind::Str("c".into()),
                                            pos: k.pos,
                                        },
                                        v.clone(),
                                    )]),
                                    pos: k.pos,
                                },
                                "c",
                                true,
                            );
                            mapping.insert(key, chans);
                        }
                    }
                    None => cx.err(m.pos, "`mapping` must be a mapping from value to channels"),
                },
            }
            let default = string_list(cx, sel, "default", false);
            SelectorSpec::Multiplexing {
                field,
                mapping,
                default,
            }
        }
        other => {
            let p = sel.get("type").map_or(sel.pos, |n| n.pos);
            cx.err(
                p,
                format!("unknown selector type `{other}` (use `replicating` or `multiplexing`)"),
            );
            SelectorSpec::Replicating
        }
    }
}

/// Position of `key` inside the component `id` of `section`, else of the component.
fn pos_in(root: &Node, section: &str, id: &str, key: &str) -> Pos {
    let comp_key = root.get(section).and_then(|s| s.key(id));
    let comp = root.get(section).and_then(|s| s.get(id));
    comp.and_then(|c| c.get(key))
        .map(|n| n.pos)
        .or(comp_key.map(|k| k.pos))
        .unwrap_or_default()
}

/// Position of the item `value` in list `key` of component `id`, else of the key.
fn pos_of_item(root: &Node, section: &str, id: &str, key: &str, value: &str) -> Pos {
    let comp = root.get(section).and_then(|s| s.get(id));
    let list = comp.and_then(|c| c.get(key));
    if let Some(items) = list.and_then(Node::as_seq) {
        if let Some(item) = items.iter().find(|i| i.as_str() == Some(value)) {
            return item.pos;
        }
    }
    pos_in(root, section, id, key)
}

fn check_graph(cx: &mut Ctx, root: &Node, p: &Pipeline) {
    let channel_ids: Vec<&str> = p.channels.iter().map(|c| c.id.as_str()).collect();
    let mut writers: HashMap<&str, usize> = HashMap::new();
    let mut readers: HashMap<&str, usize> = HashMap::new();
    let check_channel = |cx: &mut Ctx, id: &str, pos: Pos, what: &str| -> bool {
        if channel_ids.contains(&id) {
            return true;
        }
        let msg = match nearest(id, channel_ids.iter().copied()) {
            Some(s) => format!("{what} refers to channel `{id}`, which is not declared: did you mean `{s}`?"),
            None if channel_ids.is_empty() => format!("{what} refers to channel `{id}`, but no channels are declared (add it under `channels:`)"),
            None => format!("{what} refers to channel `{id}`, which is not declared (declared: {})", list(&channel_ids)),
        };
        cx.err(pos, msg);
        false
    };

    for s in &p.sources {
        let what = format!("source `{}`", s.id);
        for c in &s.channels {
            if check_channel(
                cx,
                c,
                pos_of_item(root, "sources", &s.id, "channels", c),
                &what,
            ) {
                *writers.entry(c.as_str()).or_default() += 1;
            }
        }
        check_selector(cx, root, "sources", &s.id, &s.selector, &s.channels, &what);
        for proc_id in &s.processors {
            let pos = pos_of_item(root, "sources", &s.id, "processors", proc_id);
            match p.processor(proc_id) {
                None => {
                    let ids = p.processors.iter().map(|p| p.id.as_str());
                    let msg = match nearest(proc_id, ids) {
                        Some(n) => format!("{what} uses processor `{proc_id}`, which is not declared: did you mean `{n}`?"),
                        None => format!("{what} uses processor `{proc_id}`, which is not declared under `processors:`"),
                    };
                    cx.err(pos, msg);
                }
                Some(proc) if proc.input.is_some() => cx.err(pos, format!("{what} lists processor `{proc_id}` inline, but it is a stage (it has `input`); a processor is either a stage or inline")),
                Some(proc) => {
                    if let Some(dl) = &proc.dead_letter {
                        if check_channel(cx, dl, pos_in(root, "processors", &proc.id, "dead_letter"), &format!("processor `{}`", proc.id)) {
                            *writers.entry(dl.as_str()).or_default() += 1;
                        }
                    }
                }
            }
        }
    }

    for proc in &p.processors {
        let what = format!("processor `{}`", proc.id);
        match &proc.input {
            Some(input) => {
                if check_channel(
                    cx,
                    input,
                    pos_in(root, "processors", &proc.id, "input"),
                    &what,
                ) {
                    *readers.entry(input.as_str()).or_default() += 1;
                }
                for c in &proc.channels {
                    if check_channel(
                        cx,
                        c,
                        pos_of_item(root, "processors", &proc.id, "channels", c),
                        &what,
                    ) {
                        *writers.entry(c.as_str()).or_default() += 1;
                    }
                }
                if let Some(dl) = &proc.dead_letter {
                    let pos = pos_in(root, "processors", &proc.id, "dead_letter");
                    if dl == input {
                        cx.err(
                            pos,
                            format!("{what}: `dead_letter` cannot be its own input channel"),
                        );
                    } else if check_channel(cx, dl, pos, &what) {
                        *writers.entry(dl.as_str()).or_default() += 1;
                    }
                }
                check_selector(
                    cx,
                    root,
                    "processors",
                    &proc.id,
                    &proc.selector,
                    &proc.channels,
                    &what,
                );
            }
            None => {
                let used = p.sources.iter().any(|s| s.processors.contains(&proc.id));
                if !used {
                    cx.err(proc.pos, format!("{what} is never used: list it in a source's `processors:` or give it `input:` and `channels:` to make it a stage"));
                }
            }
        }
    }

    for s in &p.sinks {
        let what = format!("sink `{}`", s.id);
        if !s.channel.is_empty()
            && check_channel(
                cx,
                &s.channel,
                pos_in(root, "sinks", &s.id, "channel"),
                &what,
            )
        {
            *readers.entry(s.channel.as_str()).or_default() += 1;
        }
        if let Some(dl) = &s.dead_letter {
            let pos = pos_in(root, "sinks", &s.id, "dead_letter");
            if *dl == s.channel {
                cx.err(
                    pos,
                    format!("{what}: `dead_letter` cannot be the channel the sink reads"),
                );
            } else if check_channel(cx, dl, pos, &what) {
                *writers.entry(dl.as_str()).or_default() += 1;
            }
        }
    }

    for c in &p.channels {
        let w = writers.get(c.id.as_str()).copied().unwrap_or(0);
        let r = readers.get(c.id.as_str()).copied().unwrap_or(0);
        let loose = cx.loose_refs.contains(&c.id);
        if w == 0 && !loose {
            cx.err(c.pos, format!("channel `{}`: nothing writes to it (list it in a source's or stage's `channels:`)", c.id));
        }
        if r == 0 && !loose {
            cx.err(c.pos, format!("channel `{}`: nothing reads from it (give it a sink with `channel: {}`, or a stage with `input: {}`)", c.id, c.id, c.id));
        }
    }

    // Cycles: channel -> stage -> channel.
    let mut edges: HashMap<&str, Vec<(&str, &str)>> = HashMap::new();
    for proc in &p.processors {
        if let Some(input) = &proc.input {
            for out in proc.channels.iter().chain(proc.dead_letter.iter()) {
                edges
                    .entry(input.as_str())
                    .or_default()
                    .push((out.as_str(), proc.id.as_str()));
            }
        }
    }
    // Depth-first search; `nodes[i] --path[i]--> nodes[i+1]`.
    fn dfs<'a>(
        node: &'a str,
        edges: &HashMap<&'a str, Vec<(&'a str, &'a str)>>,
        done: &mut BTreeSet<&'a str>,
        nodes: &mut Vec<&'a str>,
        path: &mut Vec<(&'a str, &'a str)>,
        cycles: &mut Vec<Vec<(&'a str, &'a str)>>,
    ) {
        nodes.push(node);
        for &(next, via) in edges.get(node).map(Vec::as_slice).unwrap_or(&[]) {
            path.push((via, next));
            if let Some(j) = nodes.iter().position(|n| *n == next) {
                cycles.push(path[j..].to_vec());
            } else if !done.contains(next) {
                dfs(next, edges, done, nodes, path, cycles);
            }
            path.pop();
        }
        nodes.pop();
        done.insert(node);
    }
    let mut done = BTreeSet::new();
    let mut reported = BTreeSet::new();
    let mut cycles = Vec::new();
    for c in &p.channels {
        if !done.contains(c.id.as_str()) {
            dfs(
                c.id.as_str(),
                &edges,
                &mut done,
                &mut Vec::new(),
                &mut Vec::new(),
                &mut cycles,
            );
        }
    }
    for cycle in cycles {
        let Some((first_stage, _)) = cycle.first() else {
            continue;
        };
        if !reported.insert(*first_stage) {
            continue;
        }
        let desc = cycle
            .iter()
            .map(|(via, to)| format!("`{via}` → `{to}`"))
            .collect::<Vec<_>>()
            .join(", ");
        cx.err(
            pos_in(root, "processors", first_stage, "channels"),
            format!("processor stages form a cycle: {desc}; events would loop forever"),
        );
    }
}

fn check_selector(
    cx: &mut Ctx,
    root: &Node,
    section: &str,
    id: &str,
    sel: &SelectorSpec,
    channels: &[String],
    what: &str,
) {
    if let SelectorSpec::Multiplexing {
        mapping, default, ..
    } = sel
    {
        let sel_pos = pos_in(root, section, id, "selector");
        for c in mapping.values().flatten().chain(default.iter()) {
            if !channels.contains(c) {
                cx.err(sel_pos, format!("{what}: the selector sends to channel `{c}`, which is not in its `channels:` list"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
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
            errs.iter().any(|e| e.starts_with(
                "p.yaml:1:1: pipeline: unknown option `source`: did you mean `sources`?"
            )),
            "{errs:#?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("source `a`: missing required option `type`")),
            "{errs:#?}"
        );
    }
}
