//! `/metrics` in the Prometheus text exposition format (version 0.0.4).
//!
//! Components are labelled `component_id`, `component_kind` and
//! `component_type`; channels `channel_id` and `channel_type`.

use std::fmt::Write;

use sluice_core::metrics::LATENCY_BUCKETS;

use crate::state::Current;

/// The content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Escapes a label value: backslash, double quote and newline.
fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A metric name part from a free-form gauge name: `[a-zA-Z0-9_]` only.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A float as the text format writes it.
fn float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

/// Appends the API's own connection counts.
pub fn render_api(out: &mut String, gate: &sluice_net::conn::Gate) {
    header(
        out,
        "sluice_api_connections",
        "gauge",
        "Connections to the API open now.",
    );
    let _ = writeln!(out, "sluice_api_connections {}", gate.open());
    header(
        out,
        "sluice_api_connections_refused_total",
        "counter",
        "Connections to the API closed at once because max_connections were open.",
    );
    let _ = writeln!(
        out,
        "sluice_api_connections_refused_total {}",
        gate.refused()
    );
}

/// Renders every metric of `state`.
pub fn render(state: &Current) -> String {
    let mut out = String::new();
    let labels: Vec<String> = state
        .components
        .iter()
        .map(|c| {
            format!(
                "component_id=\"{}\",component_kind=\"{}\",component_type=\"{}\"",
                escape(&c.id),
                c.kind,
                escape(&c.type_name)
            )
        })
        .collect();
    let snaps: Vec<_> = state
        .components
        .iter()
        .map(|c| c.metrics.snapshot())
        .collect();

    type Field = fn(&sluice_core::metrics::MetricsSnapshot) -> u64;
    let counters: [(&str, &str, Field); 6] = [
        (
            "sluice_component_received_events_total",
            "Events received: read by a source, taken by a stage or sink.",
            |m| m.events_in,
        ),
        (
            "sluice_component_received_bytes_total",
            "Body bytes received.",
            |m| m.bytes_in,
        ),
        (
            "sluice_component_sent_events_total",
            "Events sent on: put into channels, or delivered by a sink.",
            |m| m.events_out,
        ),
        (
            "sluice_component_sent_bytes_total",
            "Body bytes sent on.",
            |m| m.bytes_out,
        ),
        (
            "sluice_component_errors_total",
            "Events that failed: processing, parsing or delivery.",
            |m| m.errors,
        ),
        (
            "sluice_component_discarded_events_total",
            "Events dropped on purpose (a filter, unrouted events).",
            |m| m.discarded,
        ),
    ];
    for (name, help, field) in counters {
        header(&mut out, name, "counter", help);
        for (l, m) in labels.iter().zip(&snaps) {
            let _ = writeln!(out, "{name}{{{l}}} {}", field(m));
        }
    }

    header(
        &mut out,
        "sluice_component_healthy",
        "gauge",
        "1 while the component neither failed nor fails to write, else 0.",
    );
    for (l, c) in labels.iter().zip(&state.components) {
        let h = u8::from(state.health_of(c).healthy);
        let _ = writeln!(out, "sluice_component_healthy{{{l}}} {h}");
    }

    // Gauges a component reports about itself, one metric family per name.
    let mut gauges: Vec<(String, Vec<(usize, f64)>)> = Vec::new();
    for (i, c) in state.components.iter().enumerate() {
        for (name, v) in c.metrics.gauges.snapshot() {
            let name = format!("sluice_component_{}", sanitize(&name));
            match gauges.iter_mut().find(|(n, _)| *n == name) {
                Some((_, vals)) => vals.push((i, v)),
                None => gauges.push((name, vec![(i, v)])),
            }
        }
    }
    for (name, vals) in gauges {
        header(
            &mut out,
            &name,
            "gauge",
            "A value the component reports about itself.",
        );
        for (i, v) in vals {
            let _ = writeln!(out, "{name}{{{}}} {}", labels[i], float(v));
        }
    }

    // Totals a component takes from elsewhere (the kernel's drop count).
    let mut counters: Vec<(String, Vec<(usize, f64)>)> = Vec::new();
    for (i, c) in state.components.iter().enumerate() {
        for (name, v) in c.metrics.counters.snapshot() {
            let name = format!("sluice_component_{}_total", sanitize(&name));
            match counters.iter_mut().find(|(n, _)| *n == name) {
                Some((_, vals)) => vals.push((i, v)),
                None => counters.push((name, vec![(i, v)])),
            }
        }
    }
    for (name, vals) in counters {
        header(
            &mut out,
            &name,
            "counter",
            "A total the component reports about itself.",
        );
        for (i, v) in vals {
            let _ = writeln!(out, "{name}{{{}}} {}", labels[i], float(v));
        }
    }

    // Values per item of a component (a file source's bytes behind per file).
    let mut families: Vec<(String, Vec<String>)> = Vec::new();
    for (i, c) in state.components.iter().enumerate() {
        for f in c.metrics.labelled.snapshot() {
            let name = format!("sluice_component_{}", sanitize(&f.name));
            let label = sanitize(&f.label);
            let lines = f.values.iter().map(|(item, v)| {
                format!(
                    "{name}{{{},{label}=\"{}\"}} {}",
                    labels[i],
                    escape(item),
                    float(*v)
                )
            });
            match families.iter_mut().find(|(n, _)| *n == name) {
                Some((_, all)) => all.extend(lines),
                None => families.push((name.clone(), lines.collect())),
            }
        }
    }
    for (name, lines) in families {
        header(
            &mut out,
            &name,
            "gauge",
            "A value the component reports per item (e.g. per file).",
        );
        for l in lines {
            let _ = writeln!(out, "{l}");
        }
    }

    let name = "sluice_sink_batch_duration_seconds";
    header(
        &mut out,
        name,
        "histogram",
        "Time a sink takes to deliver one batch.",
    );
    for (l, c) in labels.iter().zip(&state.components) {
        if c.kind != "sink" {
            continue;
        }
        let (cumulative, sum, count) = c.metrics.batch_latency.snapshot();
        for (bound, n) in LATENCY_BUCKETS.iter().zip(&cumulative) {
            let _ = writeln!(out, "{name}_bucket{{{l},le=\"{}\"}} {n}", float(*bound));
        }
        let _ = writeln!(out, "{name}_bucket{{{l},le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum{{{l}}} {}", float(sum));
        let _ = writeln!(out, "{name}_count{{{l}}} {count}");
    }

    let chans: Vec<(String, sluice_core::channel::ChannelStats)> = state
        .channels
        .iter()
        .map(|c| {
            (
                format!(
                    "channel_id=\"{}\",channel_type=\"{}\"",
                    escape(&c.id),
                    escape(&c.type_name)
                ),
                c.channel.stats(),
            )
        })
        .collect();
    type ChanField = fn(&sluice_core::channel::ChannelStats) -> Option<u64>;
    let channel_metrics: [(&str, &str, &str, ChanField); 7] = [
        (
            "sluice_channel_events",
            "gauge",
            "Events held, including taken but uncommitted ones.",
            |s| Some(s.events),
        ),
        (
            "sluice_channel_bytes",
            "gauge",
            "Approximate bytes held.",
            |s| Some(s.bytes),
        ),
        (
            "sluice_channel_capacity_events",
            "gauge",
            "Capacity in events, for channels bounded by events.",
            |s| s.capacity,
        ),
        (
            "sluice_channel_capacity_bytes",
            "gauge",
            "Capacity in bytes, for channels bounded by bytes.",
            |s| s.max_bytes,
        ),
        (
            "sluice_channel_put_events_total",
            "counter",
            "Events accepted since start.",
            |s| Some(s.put_events),
        ),
        (
            "sluice_channel_committed_events_total",
            "counter",
            "Events committed by readers since start.",
            |s| Some(s.committed_events),
        ),
        (
            "sluice_channel_discarded_events_total",
            "counter",
            "Events dropped because the channel was full.",
            |s| Some(s.discarded_events),
        ),
    ];
    for (name, kind, help, field) in channel_metrics {
        header(&mut out, name, kind, help);
        for (l, s) in &chans {
            if let Some(v) = field(s) {
                let _ = writeln!(out, "{name}{{{l}}} {v}");
            }
        }
    }

    let name = "sluice_channel_fill_ratio";
    header(
        &mut out,
        name,
        "gauge",
        "How full the channel is, 0 to 1: the larger of events over capacity and bytes over max_bytes.",
    );
    for (l, s) in &chans {
        if let Some(v) = s.fill() {
            let _ = writeln!(out, "{name}{{{l}}} {}", float(v));
        }
    }

    header(
        &mut out,
        "sluice_uptime_seconds",
        "gauge",
        "Seconds since the agent started.",
    );
    let _ = writeln!(
        out,
        "sluice_uptime_seconds {}",
        float(state.started.elapsed().as_secs_f64())
    );
    render_build_info(&mut out);
    crate::process::render(&mut out);
    out
}

/// `sluice_build_info`: always 1, labelled with the agent's version and the
/// compiler that built it.
fn render_build_info(out: &mut String) {
    header(
        out,
        "sluice_build_info",
        "gauge",
        "Always 1; its labels say which version of the agent runs, built by which compiler.",
    );
    let _ = writeln!(
        out,
        "sluice_build_info{{version=\"{}\",rust_version=\"{}\"}} 1",
        escape(env!("CARGO_PKG_VERSION")),
        escape(env!("SLUICE_RUSTC_VERSION"))
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_and_names_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(sanitize("anomaly-score.p99"), "anomaly_score_p99");
        assert_eq!(float(f64::INFINITY), "+Inf");
        assert_eq!(float(0.5), "0.5");
    }
}
