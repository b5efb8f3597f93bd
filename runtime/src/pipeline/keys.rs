//! Reading the keys of the pipeline file: sections, components, common
//! keys and selectors, each problem reported with its position.

use std::collections::{BTreeMap, BTreeSet};

use super::{Ctx, SelectorSpec, Workers, DEFAULT_BATCH_SIZE, MAX_WORKERS};
use sluice_core::config::node::{Node, NodeKind, Pos};
use sluice_core::config::suggest::nearest;
use sluice_core::registry::AnyProcessorConfig;
use sluice_core::registry::Problem;

/// Names listed in a message before the rest is only counted.
const LISTED: usize = 20;

pub(super) fn list(keys: &[&str]) -> String {
    let mut out = keys
        .iter()
        .take(LISTED)
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if keys.len() > LISTED {
        out.push_str(&format!(" and {} more", keys.len() - LISTED));
    }
    out
}

/// Reports keys of `entries` that are neither common keys nor options.
pub(super) fn check_keys(
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
pub(super) fn section<'a>(
    cx: &mut Ctx,
    root: &'a Node,
    name: &str,
) -> Vec<(String, &'a Node, Pos)> {
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
pub(super) fn component(
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

pub(super) fn report(cx: &mut Ctx, node: &Node, pos: Pos, what: &str, problems: Vec<Problem>) {
    for p in problems {
        let at = p
            .key
            .as_deref()
            .and_then(|k| node.get(k))
            .map_or(pos, |n| n.pos);
        cx.err(at, format!("{what}: {}", p.message));
    }
}

pub(super) fn string_opt(cx: &mut Ctx, node: &Node, key: &str) -> Option<String> {
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

pub(super) fn string_list(cx: &mut Ctx, node: &Node, key: &str, required: bool) -> Vec<String> {
    let Some(n) = node.get(key) else {
        // A misspelling of `key` is reported as an unknown option with its
        // suggestion: the missing option follows from it.
        let misspelt = node.as_map().unwrap_or(&[]).iter().any(|(k, _)| {
            k.as_str()
                .is_some_and(|k| sluice_core::config::suggest::nearest(k, [key]).is_some())
        });
        if required && !misspelt {
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

pub(super) fn batch_size(cx: &mut Ctx, node: &Node) -> usize {
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

/// A sink's `batch_timeout`: a duration longer than 0, or absent.
pub(super) fn batch_timeout(cx: &mut Ctx, node: &Node) -> Option<std::time::Duration> {
    let n = node.get("batch_timeout")?;
    let parsed = match &n.kind {
        NodeKind::Str(s) => sluice_core::config::Duration::parse(s),
        NodeKind::Int(i) if *i >= 0 => Ok(std::time::Duration::from_secs(*i as u64).into()),
        _ => Err("expected a duration such as `1s` or `500ms`".to_string()),
    };
    match parsed {
        Ok(d) if d.get().is_zero() => {
            cx.err(n.pos, "`batch_timeout` must be longer than 0, such as `1s` (leave it out to write what the channel holds at once)");
            None
        }
        Ok(d) => Some(d.get()),
        Err(e) => {
            cx.err(n.pos, format!("`batch_timeout`: {e}"));
            None
        }
    }
}

/// A processor's `workers`: `auto` or a positive integer; more than one
/// only for a processor that keeps no state between events.
pub(super) fn workers(
    cx: &mut Ctx,
    node: &Node,
    id: &str,
    type_name: &str,
    config: &dyn AnyProcessorConfig,
) -> Workers {
    let Some(n) = node.get("workers") else {
        return Workers::Auto;
    };
    let workers = match n.kind {
        NodeKind::Int(i) if (1..=MAX_WORKERS as i64).contains(&i) => Workers::Fixed(i as usize),
        _ if n.as_str() == Some("auto") => Workers::Auto,
        _ => {
            cx.err(
                n.pos,
                format!("`workers` must be `auto` or an integer from 1 to {MAX_WORKERS}"),
            );
            return Workers::Auto;
        }
    };
    if matches!(workers, Workers::Fixed(w) if w > 1) && !config.stateless() {
        cx.err(
            n.pos,
            format!("processor `{id}`: `{type_name}` keeps state from one event to the next, so it runs on one thread; remove `workers` (or set it to 1)"),
        );
        return Workers::Fixed(1);
    }
    workers
}

pub(super) fn selector(cx: &mut Ctx, node: &Node) -> SelectorSpec {
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
