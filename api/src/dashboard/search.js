// The search: a query over the store sinks with `/search` (the query
// language and answers of `sluice search`), a time range, a histogram of
// matches over time (`count_by`) and the newest hits, each expandable to its
// fields. The query lives in the URL (`#search?q=...&from=...`), so a
// search can be shared and reloaded.
"use strict";

const Search = (() => {
  const RANGES = [["15m", "last 15 minutes"], ["1h", "last hour"], ["6h", "last 6 hours"], ["24h", "last 24 hours"],
    ["7d", "last 7 days"], ["30d", "last 30 days"], ["", "all time"], ["custom", "custom…"]];
  const STEPS = [1, 5, 10, 30, 60, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400];
  const HITS = 50;
  const BARS = 60;
  let last = null;

  function seconds(span) {
    const m = /^(\d+)([smhd])$/.exec(span || "");
    return m ? Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[m[2]] : null;
  }

  function interval(spanSeconds) {
    const want = spanSeconds / BARS;
    const s = STEPS.find(s => s >= want) || STEPS[STEPS.length - 1];
    return s % 86400 === 0 ? s / 86400 + "d" : s % 3600 === 0 ? s / 3600 + "h" : s % 60 === 0 ? s / 60 + "m" : s + "s";
  }

  // The form, filled from the URL's parameters.
  function fill(params) {
    document.getElementById("q").value = params.get("q") || "";
    const range = params.get("range");
    const from = params.get("from") || "", to = params.get("to") || "";
    const sel = document.getElementById("range");
    sel.value = range !== null ? range : (from || to ? "custom" : "1h");
    document.getElementById("from").value = from;
    document.getElementById("to").value = to;
    document.getElementById("store").value = params.get("store") || "";
    customShown();
  }

  function customShown() {
    document.getElementById("custom").hidden = document.getElementById("range").value !== "custom";
  }

  // The URL of the form's query.
  function hashOfForm() {
    const p = new URLSearchParams();
    p.set("q", document.getElementById("q").value.trim() || "*");
    const range = document.getElementById("range").value;
    if (range === "custom") {
      for (const k of ["from", "to"]) {
        const v = document.getElementById(k).value.trim();
        if (v) p.set(k, v);
      }
    } else {
      p.set("range", range);
    }
    const store = document.getElementById("store").value.trim();
    if (store) p.set("store", store);
    return "#search?" + p.toString();
  }

  // Runs the search the URL names.
  async function run(params) {
    fill(params);
    const key = params.toString();
    if (key === last) return;
    last = key;
    const q = params.get("q") || "*";
    const base = new URLSearchParams({ q });
    const range = params.get("range");
    let span = null;
    if (range) {
      base.set("from", range);
      span = seconds(range);
    } else {
      if (params.get("from")) base.set("from", params.get("from"));
      if (params.get("to")) base.set("to", params.get("to"));
    }
    if (params.get("store")) base.set("store", params.get("store"));
    const status = document.getElementById("search-status");
    status.textContent = "searching…";
    status.className = "";
    try {
      const hits = new URLSearchParams(base);
      hits.set("limit", HITS);
      const found = await api("/search?" + hits.toString());
      // The time range shown: the one asked for; without one, from the
      // oldest match to the newest (a custom range open at one end is
      // closed by the matches).
      const shown = {};
      if (range) {
        shown.to = Date.now();
        shown.from = shown.to - span * 1000;
      } else {
        const at = k => (params.get(k) && !isNaN(parseTime(params.get(k)))) ? parseTime(params.get(k)) : null;
        shown.from = at("from");
        shown.to = at("to");
        if (shown.to === null) shown.to = found.hits.length ? parseTime(found.hits[0].timestamp) + 1000 : Date.now();
        if (shown.from === null && found.hits.length && found.hits.length === found.total) {
          shown.from = parseTime(found.hits[found.hits.length - 1].timestamp);
        }
        if (shown.from === null) {
          // The oldest day with matches, then its oldest hour.
          const oldest = async (from, step) => {
            const p = new URLSearchParams(base);
            if (from !== null) p.set("from", new Date(from).toISOString());
            p.set("limit", 0);
            p.set("count_by", step);
            const r = await api("/search?" + p.toString());
            return r.buckets.length ? parseTime(r.buckets[0].start) : null;
          };
          const day = await oldest(null, "1d");
          shown.from = day === null ? shown.to - 3600e3 : (await oldest(day, "1h")) || day;
        }
        span = Math.max(60, (shown.to - shown.from) / 1000);
      }
      const counts = new URLSearchParams(base);
      counts.set("limit", 0);
      counts.set("count_by", interval(span));
      const histogram = await api("/search?" + counts.toString());
      status.textContent = "";
      draw(found, histogram, counts.get("count_by"), base, shown);
    } catch (e) {
      last = null;
      if (e instanceof NeedToken) throw e;
      status.className = "error";
      status.textContent = e.message + (e.body && e.body.stores ? " (stores: " + e.body.stores.join(", ") + ")" : "");
      document.getElementById("search-total").textContent = "";
      document.getElementById("histogram").replaceChildren();
      document.getElementById("hits").replaceChildren();
    }
  }

  function draw(found, histogram, step, base, range) {
    document.getElementById("search-total").textContent = String(found.total);
    document.getElementById("search-summary").textContent =
      (found.total === 1 ? " match" : " matches") + (found.hits.length < found.total ? ", newest " + found.hits.length + " shown" : "");
    drawHistogram(histogram.buckets, seconds(step) * 1000, base, range);
    const list = document.getElementById("hits");
    list.replaceChildren();
    found.hits.forEach((h, i) => {
      const d = el("details", { class: "hit", id: "hit-" + i });
      const s = el("summary");
      s.appendChild(el("time", { datetime: h.timestamp }, fmtTime(parseTime(h.timestamp))));
      s.appendChild(el("span", { class: "msg" }, h.message));
      d.appendChild(s);
      const t = el("table", { class: "fields" });
      for (const [k, v] of Object.entries(h.fields || {})) {
        const tr = el("tr");
        tr.appendChild(el("th", {}, k));
        tr.appendChild(el("td", {}, typeof v === "string" ? v : JSON.stringify(v)));
        t.appendChild(tr);
      }
      if (!t.childElementCount) t.appendChild(el("tr", {}, "no fields"));
      d.appendChild(t);
      list.appendChild(d);
    });
  }

  // Bars of matches per bucket; a bar's link narrows the search to it.
  function drawHistogram(buckets, stepMs, base, range) {
    const box = document.getElementById("histogram");
    box.replaceChildren();
    if (!buckets.length) {
      box.appendChild(el("p", { class: "muted" }, "no matches in this range"));
      return;
    }
    const W = 900, H = 140, pad = { l: 44, r: 8, t: 8, b: 20 };
    const svg = el("svg", { class: "chart wide", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "matches over time" });
    const starts = buckets.map(b => parseTime(b.start));
    // The range asked for, else the matches' own span (at least 10 bars).
    const x0 = Math.min(starts[0], range.from || Infinity);
    const x1 = Math.max(starts[starts.length - 1] + stepMs, range.to || 0, x0 + 10 * stepMs);
    const hi = Math.max(...buckets.map(b => b.count));
    const X = x => pad.l + (W - pad.l - pad.r) * (x - x0) / (x1 - x0);
    const bw = Math.max(1, (W - pad.l - pad.r) * stepMs / (x1 - x0) - 1);
    svg.appendChild(el("text", { x: pad.l - 4, y: pad.t + 8, "text-anchor": "end", class: "tick" }, fmtCount(hi)));
    svg.appendChild(el("text", { x: pad.l - 4, y: H - pad.b, "text-anchor": "end", class: "tick" }, "0"));
    svg.appendChild(el("text", { x: pad.l, y: H - 4, class: "tick" }, fmtTime(x0)));
    svg.appendChild(el("text", { x: W - pad.r, y: H - 4, "text-anchor": "end", class: "tick" }, fmtTime(x1)));
    buckets.forEach((b, i) => {
      const h = (H - pad.t - pad.b) * b.count / hi;
      const narrow = new URLSearchParams({ q: base.get("q") });
      narrow.set("from", new Date(starts[i]).toISOString());
      narrow.set("to", new Date(starts[i] + stepMs).toISOString());
      if (base.get("store")) narrow.set("store", base.get("store"));
      const a = document.createElementNS("http://www.w3.org/2000/svg", "a");
      a.setAttribute("href", "#search?" + narrow.toString());
      a.setAttribute("aria-label", b.count + " matches from " + fmtTime(starts[i]));
      a.appendChild(el("rect", { x: X(starts[i]), y: H - pad.b - h, width: bw, height: Math.max(h, 1), class: "histbar", "data-count": b.count }));
      a.lastChild.appendChild(el("title", {}, fmtTime(starts[i]) + ": " + b.count));
      svg.appendChild(a);
    });
    box.appendChild(svg);
  }

  function init() {
    const sel = document.getElementById("range");
    for (const [v, label] of RANGES) sel.appendChild(el("option", { value: v }, label));
    sel.value = "1h";
    sel.addEventListener("change", customShown);
    document.getElementById("search-form").addEventListener("submit", e => {
      e.preventDefault();
      last = null;
      if (location.hash === hashOfForm()) route(); else location.hash = hashOfForm();
    });
  }

  return { init, run };
})();
