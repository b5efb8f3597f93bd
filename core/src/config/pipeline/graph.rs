//! Checks of the pipeline as a graph: references, channels without writers
//! or readers, cycles between processor stages, selector targets.

use std::collections::{BTreeSet, HashMap};

use super::keys::list;
use super::{Ctx, Pipeline, SelectorSpec};
use crate::config::node::{Node, Pos};
use crate::config::suggest::nearest;

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

pub(super) fn check_graph(cx: &mut Ctx, root: &Node, p: &Pipeline) {
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
