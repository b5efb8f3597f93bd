//! Checks of the pipeline as a graph: references, channels without writers
//! or readers, cycles between processor stages, selector targets.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::keys::list;
use super::{Ctx, Pipeline, ProcessorSpec, SelectorSpec};
use sluice_core::config::node::{Node, NodeKind, Pos};

/// The declarations of one section by id: the key node and the component.
/// Looked up by id, so that checking a pipeline stays linear in its size
/// (a scan of the section per reference made 50,000 components take
/// minutes).
type Decls<'a> = HashMap<String, (&'a Node, &'a Node)>;

fn decls<'a>(root: &'a Node, section: &str) -> Decls<'a> {
    let mut out = HashMap::new();
    for (k, v) in root.get(section).and_then(Node::as_map).unwrap_or(&[]) {
        let id = match &k.kind {
            NodeKind::Str(s) => s.clone(),
            NodeKind::Int(i) => i.to_string(),
            _ => continue,
        };
        // The first declaration wins, as in `section`.
        out.entry(id).or_insert((k, v));
    }
    out
}

/// Position of `key` inside component `id`, else of the component's id.
fn pos_in(decls: &Decls, id: &str, key: &str) -> Pos {
    let Some((k, comp)) = decls.get(id) else {
        return Pos::default();
    };
    comp.get(key).map_or(k.pos, |n| n.pos)
}

/// Position of the item `value` in list `key` of component `id`, else of
/// the key. Only asked for when reporting, so its scan of the list is paid
/// per problem, not per reference.
fn pos_of_item(decls: &Decls, id: &str, key: &str, value: &str) -> Pos {
    let list = decls.get(id).and_then(|(_, c)| c.get(key));
    if let Some(items) = list.and_then(Node::as_seq) {
        if let Some(item) = items.iter().find(|i| i.as_str() == Some(value)) {
            return item.pos;
        }
    }
    pos_in(decls, id, key)
}

pub(super) fn check_graph(cx: &mut Ctx, root: &Node, p: &Pipeline) {
    let sources = decls(root, "sources");
    let processors = decls(root, "processors");
    let sinks = decls(root, "sinks");
    // Channels whose own options are broken are declared all the same: a
    // reference to one is not a second mistake.
    let broken_channels = std::mem::take(&mut cx.broken_channels);
    let channel_ids: Vec<&str> = p
        .channels
        .iter()
        .map(|c| c.id.as_str())
        .chain(broken_channels.iter().map(String::as_str))
        .collect();
    let declared: HashSet<&str> = channel_ids.iter().copied().collect();
    let procs: HashMap<&str, &ProcessorSpec> = p
        .processors
        .iter()
        .rev()
        .map(|p| (p.id.as_str(), p))
        .collect();
    let mut writers: HashMap<&str, usize> = HashMap::new();
    let mut readers: HashMap<&str, usize> = HashMap::new();
    let check_channel = |cx: &mut Ctx, id: &str, pos: &dyn Fn() -> Pos, what: &str| -> bool {
        if declared.contains(id) {
            return true;
        }
        let msg = match cx.nearest(id, &channel_ids) {
            Some(s) => format!("{what} refers to channel `{id}`, which is not declared: did you mean `{s}`?"),
            None if channel_ids.is_empty() => format!("{what} refers to channel `{id}`, but no channels are declared (add it under `channels:`)"),
            None => format!("{what} refers to channel `{id}`, which is not declared (declared: {})", list(&channel_ids)),
        };
        cx.err(pos(), msg);
        false
    };

    // Components whose own options are broken: their references only.
    for (what, id, pos) in std::mem::take(&mut cx.broken_refs) {
        check_channel(cx, &id, &|| pos, &what);
    }

    for s in &p.sources {
        let what = format!("source `{}`", s.id);
        for c in &s.channels {
            let at = || pos_of_item(&sources, &s.id, "channels", c);
            if check_channel(cx, c, &at, &what) {
                *writers.entry(c.as_str()).or_default() += 1;
            }
        }
        check_selector(cx, &sources, &s.id, &s.selector, &s.channels, &what);
        for proc_id in &s.processors {
            let pos = || pos_of_item(&sources, &s.id, "processors", proc_id);
            match procs.get(proc_id.as_str()) {
                None => {
                    let ids: Vec<&str> = p.processors.iter().map(|p| p.id.as_str()).collect();
                    let msg = match cx.nearest(proc_id, &ids) {
                        Some(n) => format!("{what} uses processor `{proc_id}`, which is not declared: did you mean `{n}`?"),
                        None => format!("{what} uses processor `{proc_id}`, which is not declared under `processors:`"),
                    };
                    cx.err(pos(), msg);
                }
                Some(proc) if proc.input.is_some() => cx.err(pos(), format!("{what} lists processor `{proc_id}` inline, but it is a stage (it has `input`); a processor is either a stage or inline")),
                Some(proc) => {
                    if let Some(dl) = &proc.dead_letter {
                        let at = || pos_in(&processors, &proc.id, "dead_letter");
                        if check_channel(cx, dl, &at, &format!("processor `{}`", proc.id)) {
                            *writers.entry(dl.as_str()).or_default() += 1;
                        }
                    }
                }
            }
        }
    }

    let inline: HashSet<&str> = p
        .sources
        .iter()
        .flat_map(|s| s.processors.iter().map(String::as_str))
        .collect();
    for proc in &p.processors {
        let what = format!("processor `{}`", proc.id);
        match &proc.input {
            Some(input) => {
                let at = || pos_in(&processors, &proc.id, "input");
                if check_channel(cx, input, &at, &what) {
                    *readers.entry(input.as_str()).or_default() += 1;
                }
                for c in &proc.channels {
                    let at = || pos_of_item(&processors, &proc.id, "channels", c);
                    if check_channel(cx, c, &at, &what) {
                        *writers.entry(c.as_str()).or_default() += 1;
                    }
                }
                if let Some(dl) = &proc.dead_letter {
                    let at = || pos_in(&processors, &proc.id, "dead_letter");
                    if dl == input {
                        cx.err(
                            at(),
                            format!("{what}: `dead_letter` cannot be its own input channel"),
                        );
                    } else if check_channel(cx, dl, &at, &what) {
                        *writers.entry(dl.as_str()).or_default() += 1;
                    }
                }
                check_selector(
                    cx,
                    &processors,
                    &proc.id,
                    &proc.selector,
                    &proc.channels,
                    &what,
                );
            }
            None => {
                if !inline.contains(proc.id.as_str()) {
                    cx.err(proc.pos, format!("{what} is never used: list it in a source's `processors:` or give it `input:` and `channels:` to make it a stage"));
                }
            }
        }
    }

    for s in &p.sinks {
        let what = format!("sink `{}`", s.id);
        let at = || pos_in(&sinks, &s.id, "channel");
        if !s.channel.is_empty() && check_channel(cx, &s.channel, &at, &what) {
            *readers.entry(s.channel.as_str()).or_default() += 1;
        }
        if let Some(dl) = &s.dead_letter {
            let at = || pos_in(&sinks, &s.id, "dead_letter");
            if *dl == s.channel {
                cx.err(
                    at(),
                    format!("{what}: `dead_letter` cannot be the channel the sink reads"),
                );
            } else if check_channel(cx, dl, &at, &what) {
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

    for (first_stage, cycle) in cycles(p) {
        let desc = cycle
            .iter()
            .map(|(via, to)| format!("`{via}` → `{to}`"))
            .collect::<Vec<_>>()
            .join(", ");
        cx.err(
            pos_in(&processors, first_stage, "channels"),
            format!("processor stages form a cycle: {desc}; events would loop forever"),
        );
    }
}

/// Cycles between stages (channel → stage → channel), each as the stage
/// that starts it and its steps `(stage, channel it writes)`, one per
/// starting stage. An iterative depth-first search: a chain of many stages
/// uses no stack, and each channel is finished once.
fn cycles(p: &Pipeline) -> Vec<(&str, Vec<(&str, &str)>)> {
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
    let mut done: HashSet<&str> = HashSet::new();
    let mut reported: BTreeSet<&str> = BTreeSet::new();
    let mut found = Vec::new();
    for c in &p.channels {
        let start = c.id.as_str();
        if done.contains(start) {
            continue;
        }
        // The path: channels with the index of the next edge to follow;
        // `steps[i]` leads from `path[i]` to `path[i + 1]`.
        let mut path: Vec<(&str, usize)> = vec![(start, 0)];
        let mut steps: Vec<(&str, &str)> = Vec::new();
        let mut on_path: HashMap<&str, usize> = HashMap::from([(start, 0)]);
        while let Some((node, next)) = path.last_mut() {
            let out = edges.get(*node).map(Vec::as_slice).unwrap_or(&[]);
            let Some(&(to, via)) = out.get(*next) else {
                let (node, _) = path.pop().unwrap_or_default();
                on_path.remove(node);
                done.insert(node);
                steps.pop();
                continue;
            };
            *next += 1;
            if let Some(&j) = on_path.get(to) {
                let mut cycle = steps[j..].to_vec();
                cycle.push((via, to));
                let first = cycle[0].0;
                if reported.insert(first) {
                    found.push((first, cycle));
                }
            } else if !done.contains(to) {
                on_path.insert(to, path.len());
                path.push((to, 0));
                steps.push((via, to));
            }
        }
    }
    found
}

fn check_selector(
    cx: &mut Ctx,
    decls: &Decls,
    id: &str,
    sel: &SelectorSpec,
    channels: &[String],
    what: &str,
) {
    if let SelectorSpec::Multiplexing {
        mapping, default, ..
    } = sel
    {
        let listed: HashSet<&str> = channels.iter().map(String::as_str).collect();
        for c in mapping.values().flatten().chain(default.iter()) {
            if !listed.contains(c.as_str()) {
                cx.err(pos_in(decls, id, "selector"), format!("{what}: the selector sends to channel `{c}`, which is not in its `channels:` list"));
            }
        }
    }
}
