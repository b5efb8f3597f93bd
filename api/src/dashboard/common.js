// Shared by the dashboard's views: elements, requests with the API's token,
// number and time formats, and a small SVG line chart.
"use strict";

const SVG_TAGS = new Set(["svg", "rect", "line", "text", "polyline", "polygon", "g", "path", "circle", "title"]);

function el(tag, attrs, text) {
  const ns = SVG_TAGS.has(tag) ? "http://www.w3.org/2000/svg" : "http://www.w3.org/1999/xhtml";
  const e = document.createElementNS(ns, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null) e.setAttribute(k, v);
  }
  if (text !== undefined && text !== null) e.textContent = text;
  return e;
}

// The token typed in (or given as `#token=TOKEN`), kept for this tab only.
function token() {
  return sessionStorage.getItem("sluice-token");
}

class NeedToken extends Error {}

// GET `path` as JSON with the token; throws NeedToken on 401, an Error
// carrying the API's message on another failure.
async function api(path) {
  const t = token();
  const res = await fetch(path, { cache: "no-store", headers: t ? { "Authorization": "Bearer " + t } : {} });
  if (res.status === 401) throw new NeedToken();
  let body = null;
  try { body = await res.json(); } catch (e) { body = null; }
  if (!res.ok) {
    const err = new Error((body && body.error) || ("HTTP " + res.status));
    err.body = body;
    throw err;
  }
  return body;
}

function fmtRate(r) {
  if (r === null || r === undefined || !isFinite(r)) return "-";
  return r >= 100 ? r.toFixed(0) : r.toFixed(1);
}

// 1234567 -> "1,234,567" (the number /metrics shows, grouped).
function fmtCount(n) {
  return Math.round(n).toLocaleString("en-US");
}

function fmtTime(ms) {
  const d = new Date(ms);
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

function fmtClock(ms) {
  return new Date(ms).toISOString().slice(11, 19);
}

// RFC 3339 with up to nanoseconds -> milliseconds since the epoch.
function parseTime(s) {
  const m = /^(.*T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$/.exec(s || "");
  if (!m) return Date.parse(s);
  const frac = m[2] ? m[2].slice(0, 4) : "";
  return Date.parse(m[1] + frac + m[3]);
}

// A line chart of `series` ([{label, color, points: [[x, y], ...]}]) with
// optional `marks` ([{x, color, label}]: vertical ticks at the bottom) and
// `hline` ({y, color, label}). `xfmt` labels the x axis ends.
function lineChart(opts) {
  const W = opts.width || 420, H = opts.height || 130;
  const pad = { l: 44, r: 8, t: 8, b: 20 };
  const svg = el("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img",
    "aria-label": opts.label || "" });
  if (opts.id) svg.setAttribute("id", opts.id);
  const pts = opts.series.flatMap(s => s.points);
  if (pts.length === 0) {
    svg.appendChild(el("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "muted" }, "no samples yet"));
    return svg;
  }
  let x0 = opts.x0 !== undefined ? opts.x0 : Math.min(...pts.map(p => p[0]));
  let x1 = Math.max(...pts.map(p => p[0]), x0 + 1e-9);
  // A span too short to read (every point at one time) is widened around it.
  if (opts.minSpan && x1 - x0 < opts.minSpan) {
    const mid = (x0 + x1) / 2;
    x0 = mid - opts.minSpan / 2;
    x1 = mid + opts.minSpan / 2;
  }
  let hi = Math.max(opts.ymin || 0, ...pts.map(p => p[1]));
  if (opts.hline) hi = Math.max(hi, opts.hline.y);
  let lo = opts.ylo !== undefined ? opts.ylo : Math.min(0, ...pts.map(p => p[1]));
  if (opts.ymax !== undefined) hi = opts.ymax;
  if (hi === lo) hi = lo + 1;
  const X = x => pad.l + (W - pad.l - pad.r) * (x - x0) / (x1 - x0);
  const Y = y => H - pad.b - (H - pad.t - pad.b) * (y - lo) / (hi - lo);
  svg.appendChild(el("line", { x1: pad.l, y1: Y(lo), x2: W - pad.r, y2: Y(lo), class: "axis" }));
  svg.appendChild(el("text", { x: pad.l - 4, y: Y(hi) + 4, "text-anchor": "end", class: "tick" }, opts.yfmt ? opts.yfmt(hi) : fmtRate(hi)));
  svg.appendChild(el("text", { x: pad.l - 4, y: Y(lo), "text-anchor": "end", class: "tick" }, opts.yfmt ? opts.yfmt(lo) : "0"));
  const xfmt = opts.xfmt || (x => x.toFixed(0));
  svg.appendChild(el("text", { x: pad.l, y: H - 4, class: "tick" }, xfmt(x0)));
  svg.appendChild(el("text", { x: W - pad.r, y: H - 4, "text-anchor": "end", class: "tick" }, xfmt(x1)));
  if (opts.hline) {
    svg.appendChild(el("line", { x1: pad.l, x2: W - pad.r, y1: Y(opts.hline.y), y2: Y(opts.hline.y),
      stroke: opts.hline.color, "stroke-dasharray": "4 3" }));
    svg.appendChild(el("text", { x: W - pad.r, y: Y(opts.hline.y) - 3, "text-anchor": "end", class: "tick" }, opts.hline.label));
  }
  for (const s of opts.series) {
    if (s.dots) {
      for (const [x, y, attrs] of s.points) {
        svg.appendChild(el("circle", Object.assign({ cx: X(x).toFixed(1), cy: Y(y).toFixed(1), r: 3, fill: s.color }, attrs || {})));
      }
      continue;
    }
    if (s.points.length === 0) continue;
    svg.appendChild(el("polyline", { points: s.points.map(([x, y]) => X(x).toFixed(1) + "," + Y(y).toFixed(1)).join(" "),
      fill: "none", stroke: s.color, "stroke-width": 1.8 }));
  }
  for (const m of opts.marks || []) {
    const g = el("line", { x1: X(m.x), x2: X(m.x), y1: H - pad.b, y2: H - pad.b - 8, stroke: m.color, "stroke-width": 2 });
    g.appendChild(el("title", {}, m.label));
    svg.appendChild(g);
  }
  return svg;
}

// A legend: [[color, text, id?], ...].
function legend(items) {
  const p = el("p", { class: "legend" });
  for (const [color, text, id] of items) {
    const s = el("span", id ? { id } : {});
    s.appendChild(el("i", { style: "background:" + color }));
    s.appendChild(document.createTextNode(text));
    p.appendChild(s);
  }
  return p;
}
