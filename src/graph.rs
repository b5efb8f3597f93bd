//! `sluice graph`: a pipeline as Graphviz DOT.
//!
//! Sources are ellipses, channels cylinders, processor stages boxes, sinks
//! houses; an edge from a source names its inline processors; dead-letter
//! edges are dashed.

use std::fmt::Write;

use sluice_runtime::pipeline::{Pipeline, SelectorSpec};

fn q(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Renders `pipeline` as a DOT digraph.
pub fn to_dot(pipeline: &Pipeline) -> String {
    let mut out = String::new();
    let name = pipeline
        .path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let _ = writeln!(out, "digraph {} {{", q(&name));
    let _ = writeln!(out, "  rankdir=LR;");
    for s in &pipeline.sources {
        let _ = writeln!(
            out,
            "  {} [shape=ellipse, label={}];",
            q(&format!("source:{}", s.id)),
            q(&format!("{}\n({})", s.id, s.type_name))
        );
    }
    for c in &pipeline.channels {
        let _ = writeln!(
            out,
            "  {} [shape=cylinder, label={}];",
            q(&format!("channel:{}", c.id)),
            q(&format!("{}\n({})", c.id, c.type_name))
        );
    }
    for p in pipeline.processors.iter().filter(|p| p.input.is_some()) {
        let _ = writeln!(
            out,
            "  {} [shape=box, label={}];",
            q(&format!("processor:{}", p.id)),
            q(&format!("{}\n({})", p.id, p.type_name))
        );
    }
    for s in &pipeline.sinks {
        let _ = writeln!(
            out,
            "  {} [shape=house, label={}];",
            q(&format!("sink:{}", s.id)),
            q(&format!("{}\n({})", s.id, s.type_name))
        );
    }
    let selector_label = |sel: &SelectorSpec, channel: &str| -> Option<String> {
        match sel {
            SelectorSpec::Replicating => None,
            SelectorSpec::Multiplexing {
                field,
                mapping,
                default,
            } => {
                let mut vals: Vec<&str> = mapping
                    .iter()
                    .filter(|(_, cs)| cs.iter().any(|c| c == channel))
                    .map(|(v, _)| v.as_str())
                    .collect();
                if default.iter().any(|c| c == channel) {
                    vals.push("default");
                }
                Some(format!("{field} = {}", vals.join(" | ")))
            }
        }
    };
    for s in &pipeline.sources {
        for c in &s.channels {
            let mut label: Vec<String> = Vec::new();
            if !s.processors.is_empty() {
                label.push(s.processors.join(" → "));
            }
            label.extend(selector_label(&s.selector, c));
            let _ = writeln!(
                out,
                "  {} -> {}{};",
                q(&format!("source:{}", s.id)),
                q(&format!("channel:{c}")),
                attr(&label.join("\n"))
            );
        }
        for pid in &s.processors {
            if let Some(dl) = pipeline.processor(pid).and_then(|p| p.dead_letter.as_ref()) {
                let _ = writeln!(
                    out,
                    "  {} -> {} [style=dashed, label={}];",
                    q(&format!("source:{}", s.id)),
                    q(&format!("channel:{dl}")),
                    q(&format!("dead letter ({pid})"))
                );
            }
        }
    }
    for p in pipeline.processors.iter().filter(|p| p.input.is_some()) {
        let node = q(&format!("processor:{}", p.id));
        if let Some(i) = &p.input {
            let _ = writeln!(out, "  {} -> {node};", q(&format!("channel:{i}")));
        }
        for c in &p.channels {
            let label = selector_label(&p.selector, c).unwrap_or_default();
            let _ = writeln!(
                out,
                "  {node} -> {}{};",
                q(&format!("channel:{c}")),
                attr(&label)
            );
        }
        if let Some(dl) = &p.dead_letter {
            let _ = writeln!(
                out,
                "  {node} -> {} [style=dashed, label=\"dead letter\"];",
                q(&format!("channel:{dl}"))
            );
        }
    }
    for s in &pipeline.sinks {
        let node = q(&format!("sink:{}", s.id));
        let _ = writeln!(out, "  {} -> {node};", q(&format!("channel:{}", s.channel)));
        if let Some(dl) = &s.dead_letter {
            let _ = writeln!(
                out,
                "  {node} -> {} [style=dashed, label=\"dead letter\"];",
                q(&format!("channel:{dl}"))
            );
        }
    }
    // A sink group is a dashed box around its members.
    for g in &pipeline.sink_groups {
        let strategy = match &g.strategy {
            sluice_runtime::pipeline::GroupStrategy::Failover { .. } => "failover",
            sluice_runtime::pipeline::GroupStrategy::LoadBalance { .. } => "load_balance",
        };
        let _ = writeln!(
            out,
            "  subgraph {} {{ style=dashed; label={};",
            q(&format!("cluster_group:{}", g.id)),
            q(&format!("{} ({strategy})", g.id))
        );
        for s in &g.sinks {
            let _ = writeln!(out, "    {};", q(&format!("sink:{s}")));
        }
        out.push_str("  }\n");
    }
    out.push_str("}\n");
    out
}

fn attr(label: &str) -> String {
    if label.is_empty() {
        String::new()
    } else {
        format!(" [label={}]", q(label))
    }
}
