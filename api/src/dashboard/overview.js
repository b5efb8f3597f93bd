// The overview: the pipeline graph, live charts of rates and channel fill
// from the agent's history (`/api/history`, a sample a second for the last
// ten minutes, ending with the latest `/api/components` poll), and the
// tables of counters.
"use strict";

const Overview = (() => {
  // Recent polls of /api/components, oldest first (for the rates).
  const polls = [];
  let history = null;

  // Rates over at least one second of the agent's time: against the latest
  // earlier poll that old, else against the start (counters start at 0).
  function rates(state) {
    const base = polls.filter(p => p.uptime_seconds <= state.uptime_seconds - 1).pop();
    const out = new Map();
    for (const c of state.components) {
      const old = base && base.components.find(o => o.id === c.id);
      const m0 = old ? old.metrics : { events_in: 0, events_out: 0 };
      const dt = state.uptime_seconds - (old ? base.uptime_seconds : 0);
      out.set(c.id, dt > 0
        ? { in: (c.metrics.events_in - m0.events_in) / dt, out: (c.metrics.events_out - m0.events_out) / dt }
        : { in: null, out: null });
    }
    return out;
  }

  // Columns by depth: sources first, each channel after its writers, each
  // stage or sink after its input channel. Inline processors are listed in
  // the node of the source that runs them.
  function layout(state) {
    const level = new Map();
    const staged = state.components.filter(c => c.kind !== "processor" || c.inputs.length > 0);
    for (const c of staged) level.set("c:" + c.id, 0);
    for (const ch of state.channels) level.set("ch:" + ch.id, 1);
    for (let round = 0; round < 2 * (staged.length + state.channels.length); round++) {
      let changed = false;
      const raise = (key, min) => { if (level.get(key) < min) { level.set(key, min); changed = true; } };
      for (const c of staged) {
        for (const ch of c.inputs) if (level.has("ch:" + ch)) raise("c:" + c.id, level.get("ch:" + ch) + 1);
        for (const ch of c.outputs) if (level.has("ch:" + ch)) raise("ch:" + ch, level.get("c:" + c.id) + 1);
      }
      if (!changed) break;
    }
    const nodes = [];
    for (const c of staged) {
      const inline = state.components.filter(p => p.runs_in.includes(c.id)).map(p => p.id);
      nodes.push({ key: "c:" + c.id, label: c.id, sub: c.kind + " · " + c.type, comp: c, inline });
    }
    for (const ch of state.channels) nodes.push({ key: "ch:" + ch.id, label: ch.id, sub: "channel · " + ch.type, chan: ch, inline: [] });
    const edges = [];
    for (const c of staged) {
      for (const ch of c.outputs) edges.push(["c:" + c.id, "ch:" + ch]);
      for (const ch of c.inputs) edges.push(["ch:" + ch, "c:" + c.id]);
    }
    return { nodes, edges, level };
  }

  // Text width in the graph's font, measured once per string.
  const widths = new Map();
  function textWidth(s, bold) {
    const key = (bold ? "b" : "") + s;
    if (!widths.has(key)) {
      const c = textWidth.canvas || (textWidth.canvas = document.createElement("canvas"));
      const ctx = c.getContext("2d");
      ctx.font = (bold ? "600 " : "") + "12px system-ui, sans-serif";
      widths.set(key, ctx.measureText(s).width);
    }
    return widths.get(key);
  }

  function drawGraph(state, r) {
    const svg = document.getElementById("graph");
    svg.replaceChildren();
    const { nodes, edges, level } = layout(state);
    // Each node as wide as its longest line; each column as its widest node.
    for (const n of nodes) {
      const lines = [textWidth(n.label, true), textWidth(n.sub), textWidth("00000 ev/s in · 00000 out")]
        .concat(n.inline.map(p => textWidth("↳ " + p)));
      n.w = Math.max(130, ...lines) + 20;
      n.h = 58 + 15 * n.inline.length;
    }
    const cols = new Map();
    for (const n of nodes) {
      n.level = level.get(n.key) || 0;
      const col = cols.get(n.level) || { w: 0, h: 10 };
      col.w = Math.max(col.w, n.w);
      n.y = col.h;
      col.h += n.h + 18;
      cols.set(n.level, col);
    }
    const xs = new Map();
    let x = 10;
    for (const l of [...cols.keys()].sort((a, b) => a - b)) {
      xs.set(l, x);
      x += cols.get(l).w + 46;
    }
    for (const n of nodes) n.x = xs.get(n.level);
    const at = new Map(nodes.map(n => [n.key, n]));
    for (const [a, b] of edges) {
      const p = at.get(a), q = at.get(b);
      if (!p || !q) continue;
      const x1 = p.x + p.w, y1 = p.y + 20, x2 = q.x, y2 = q.y + 20;
      const mx = (x1 + x2) / 2;
      svg.appendChild(el("path", { d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`, fill: "none", class: "edge" }));
      svg.appendChild(el("polygon", { points: `${x2},${y2} ${x2 - 6},${y2 - 4} ${x2 - 6},${y2 + 4}`, class: "arrow" }));
    }
    let width = 0, height = 0;
    for (const n of nodes) {
      const g = el("g", { "data-node": n.key });
      const bad = n.comp && !n.comp.health.healthy;
      g.appendChild(el("rect", { x: n.x, y: n.y, width: n.w, height: n.h, rx: n.chan ? 2 : 8,
        class: n.chan ? "node chan" : "node" + (bad ? " bad" : "") }));
      g.appendChild(el("text", { x: n.x + 10, y: n.y + 17, "font-weight": "600" }, n.label));
      g.appendChild(el("text", { x: n.x + 10, y: n.y + 32, class: "muted" }, n.sub));
      let y = n.y + 49;
      if (n.chan) {
        const frac = n.chan.fill || 0;
        g.appendChild(el("rect", { x: n.x + 10, y: n.y + 41, width: n.w - 20, height: 8, class: "track" }));
        g.appendChild(el("rect", { x: n.x + 10, y: n.y + 41, width: (n.w - 20) * frac, height: 8,
          class: frac >= 0.9 ? "fillbar hot" : "fillbar" }));
      } else {
        const rr = r.get(n.comp.id);
        const text = n.comp.kind === "source" ? fmtRate(rr.out) + " ev/s out"
          : n.comp.kind === "sink" ? fmtRate(rr.in) + " ev/s in"
          : fmtRate(rr.in) + " ev/s in · " + fmtRate(rr.out) + " out";
        g.appendChild(el("text", { x: n.x + 10, y }, text));
        for (const p of n.inline) {
          y += 15;
          g.appendChild(el("text", { x: n.x + 10, y, class: "muted", "data-inline": p }, "↳ " + p));
        }
      }
      svg.appendChild(g);
      width = Math.max(width, n.x + n.w + 10);
      height = Math.max(height, n.y + n.h + 10);
    }
    // Drawn at its natural size, shrunk to the window's width down to two
    // thirds of it (past that it scrolls sideways: names stay readable).
    svg.setAttribute("width", width);
    svg.setAttribute("height", height);
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.style.minWidth = Math.round(width * 2 / 3) + "px";
  }

  function drawTables(state, r) {
    const body = document.querySelector("#components tbody");
    body.replaceChildren();
    for (const c of state.components) {
      const rr = r.get(c.id);
      const tr = el("tr", { id: "component-" + c.id, class: c.health.healthy ? "" : "unhealthy" });
      const cells = [
        [c.id], [c.kind], [c.type],
        [c.health.state + (c.health.healthy ? "" : " (" + (c.health.error || "unhealthy") + ")")],
        [fmtRate(rr.in), "num", "rate-in-" + c.id], [fmtRate(rr.out), "num", "rate-out-" + c.id],
        [c.metrics.events_in, "num"], [c.metrics.events_out, "num"],
        [c.metrics.errors, "num" + (c.metrics.errors ? " err" : "")], [c.metrics.discarded, "num"],
      ];
      for (const [text, cls, id] of cells) tr.appendChild(el("td", { class: cls, id }, String(text)));
      body.appendChild(tr);
    }
    const chans = document.querySelector("#channels tbody");
    chans.replaceChildren();
    for (const ch of state.channels) {
      const frac = ch.fill || 0;
      const tr = el("tr", { id: "channel-" + ch.id });
      tr.appendChild(el("td", {}, ch.id));
      tr.appendChild(el("td", {}, ch.type));
      const bar = el("span", { class: "bar" });
      bar.appendChild(el("span", { style: "width:" + (frac * 100).toFixed(1) + "%" }));
      const td = el("td", {});
      td.appendChild(bar);
      tr.appendChild(td);
      tr.appendChild(el("td", { id: "fill-" + ch.id, class: "num" },
        ch.events + (ch.capacity == null ? "" : " / " + ch.capacity) + " (" + (frac * 100).toFixed(0) + "%)"));
      tr.appendChild(el("td", { class: "num" }, ch.bytes + (ch.max_bytes == null ? "" : " / " + ch.max_bytes)));
      tr.appendChild(el("td", { class: "num" }, ch.discarded_events));
      chans.appendChild(tr);
    }
  }

  // The samples of a series, with the latest poll appended when newer.
  function series(h, live, t) {
    const out = { t: (h && h.t) ? h.t.slice() : [] };
    for (const k of Object.keys(live)) out[k] = (h && h[k]) ? h[k].slice() : [];
    if (out.t.length === 0 || out.t[out.t.length - 1] < t) {
      out.t.push(t);
      for (const [k, v] of Object.entries(live)) out[k].push(v);
    }
    return out;
  }

  // Per-second rates between samples: [[t, rate], ...].
  function perSecond(t, v) {
    const out = [];
    for (let i = 1; i < t.length; i++) {
      const dt = t[i] - t[i - 1];
      if (dt > 0) out.push([t[i], Math.max(0, (v[i] - v[i - 1]) / dt)]);
    }
    return out;
  }

  // Marks where a total grew: one tick per sample that added some.
  function growth(t, v, color, what) {
    const out = [];
    for (let i = 1; i < t.length; i++) {
      if (v[i] > v[i - 1]) out.push({ x: t[i], color, label: fmtCount(v[i] - v[i - 1]) + " " + what });
    }
    return out;
  }

  const ago = now => x => x >= now - 0.5 ? "now" : "-" + fmtSpan(now - x);
  function fmtSpan(s) {
    return s >= 60 ? Math.round(s / 60) + " min" : Math.round(s) + " s";
  }

  function drawCharts(state) {
    const box = document.getElementById("charts");
    box.replaceChildren();
    const now = state.uptime_seconds;
    const hc = (history && history.components) || {};
    for (const c of state.components) {
      const m = c.metrics;
      const s = series(hc[c.id], { events_in: m.events_in, events_out: m.events_out, errors: m.errors, discarded: m.discarded }, now);
      const fig = el("figure", { class: "card", id: "chart-card-" + c.id });
      fig.appendChild(el("figcaption", {}, c.id));
      fig.appendChild(legend([
        ["#3b7dd8", "in " + fmtCount(m.events_in), "total-in-" + c.id],
        ["#23843a", "out " + fmtCount(m.events_out), "total-out-" + c.id],
        ["#c62828", "errors " + fmtCount(m.errors), "total-errors-" + c.id],
        ["#c77c00", "discarded " + fmtCount(m.discarded), "total-discarded-" + c.id],
      ]));
      const lines = [];
      if (c.kind !== "source") lines.push({ color: "#3b7dd8", points: perSecond(s.t, s.events_in) });
      lines.push({ color: "#23843a", points: perSecond(s.t, s.events_out) });
      fig.appendChild(lineChart({
        id: "rates-" + c.id, label: "events per second of " + c.id, series: lines,
        marks: growth(s.t, s.errors, "#c62828", "errors").concat(growth(s.t, s.discarded, "#c77c00", "discarded")),
        xfmt: ago(now), yfmt: v => fmtRate(v) + "/s",
      }));
      box.appendChild(fig);
    }
    const hch = (history && history.channels) || {};
    for (const ch of state.channels) {
      const s = series(hch[ch.id], { fill: ch.fill || 0, discarded: ch.discarded_events }, now);
      const fig = el("figure", { class: "card", id: "chart-card-channel-" + ch.id });
      fig.appendChild(el("figcaption", {}, "channel " + ch.id));
      fig.appendChild(legend([
        ["#7b4bd6", "fill " + ((ch.fill || 0) * 100).toFixed(0) + "%", "total-fill-" + ch.id],
        ["#c77c00", "discarded " + fmtCount(ch.discarded_events), "total-chdiscarded-" + ch.id],
      ]));
      fig.appendChild(lineChart({
        id: "fillchart-" + ch.id, label: "fill of channel " + ch.id,
        series: [{ color: "#7b4bd6", points: s.t.map((t, i) => [t, s.fill[i] * 100]) }],
        marks: growth(s.t, s.discarded, "#c77c00", "discarded"),
        xfmt: ago(now), yfmt: v => v.toFixed(0) + "%", ymax: 100,
      }));
      box.appendChild(fig);
    }
    // Gauges a component reports (such as `anomaly_score`).
    const hg = (history && history.gauges) || {};
    const gbox = document.getElementById("gauges");
    gbox.replaceChildren();
    for (const c of state.components) {
      for (const [name, v] of Object.entries(c.gauges)) {
        const s = series(hg[c.id] && hg[c.id][name], { value: v }, now);
        const fig = el("figure", { class: "card" });
        fig.appendChild(el("figcaption", {}, name + " — " + c.id));
        fig.appendChild(lineChart({
          id: "chart-" + c.id + "-" + name, label: name + " of " + c.id,
          series: [{ color: "#c2410c", points: s.t.map((t, i) => [t, s.value[i]]) }],
          xfmt: ago(now), yfmt: y => y.toFixed(2), ylo: Math.min(...s.value),
        }));
        fig.appendChild(el("p", { id: "gauge-" + c.id + "-" + name, class: "legend" }, name + " = " + v.toFixed(3)));
        gbox.appendChild(fig);
      }
    }
  }

  function render(state) {
    const r = rates(state);
    drawGraph(state, r);
    drawCharts(state);
    drawTables(state, r);
    polls.push(state);
    if (polls.length > 10) polls.shift();
  }

  async function refreshHistory() {
    history = await api("/api/history");
  }

  return { render, refreshHistory };
})();
