// The anomalies: for each `anomaly` processor, its latest scores on a
// timeline with its threshold, and its flagged sessions or windows, newest
// first, each with the templates it holds in text and the ones that drove
// its score; for each `template` processor, the mined templates with their
// counts. Read from the reports the processors offer
// (`/api/components/{id}/reports/{anomalies,templates}`).
"use strict";

const Anomalies = (() => {
  let selected = null;
  // The reports last drawn: the view is redrawn only when they change, so
  // that focus and open rows stay while reading.
  let drawn = null;
  let first = true;

  function driverNote(t) {
    if (t.seen_in !== undefined) return "drove the score: in " + (t.seen_in * 100).toFixed(1) + "% of training sessions";
    if (t.deviation !== undefined) return "drove the score: " + (t.deviation > 0 ? "more" : "less") + " than usual (" + t.deviation.toFixed(2) + ")";
    return "drove the score";
  }

  function drawDetector(box, id, rep) {
    const sec = el("section", { class: "card wide", id: "detector-" + id });
    sec.appendChild(el("h3", {}, id));
    sec.appendChild(el("p", { class: "legend" },
      rep.scored + " scored, " + rep.flagged + " flagged" +
      (rep.threshold !== null ? ", threshold " + rep.threshold.toFixed(3) : ", no model yet")));
    const pts = rep.scores.map(s => [parseTime(s.time), s.score]);
    const flagged = rep.anomalies.map((a, i) => [parseTime(a.time), a.score,
      { tabindex: 0, role: "button", class: "flag", "data-anomaly": i, "aria-label": "anomaly " + a.key + " score " + a.score.toFixed(3) }]);
    const chart = lineChart({
      id: "timeline-" + id, width: 900, height: 160, label: "anomaly scores of " + id,
      series: [
        { color: "#8893a5", dots: true, points: pts.map(([x, y]) => [x, y, { r: 2 }]) },
        { color: "#c62828", dots: true, points: flagged },
      ],
      hline: rep.threshold !== null ? { y: rep.threshold, color: "#c62828", label: "threshold" } : null,
      xfmt: x => fmtTime(x), yfmt: y => y.toFixed(2), minSpan: 60e3,
    });
    chart.classList.add("wide");
    chart.addEventListener("click", e => { if (e.target.dataset.anomaly) select(id, Number(e.target.dataset.anomaly)); });
    chart.addEventListener("keydown", e => {
      if ((e.key === "Enter" || e.key === " ") && e.target.dataset.anomaly) { e.preventDefault(); select(id, Number(e.target.dataset.anomaly)); }
    });
    sec.appendChild(chart);
    const list = el("div", { class: "anomalies" });
    if (!rep.anomalies.length) list.appendChild(el("p", { class: "muted" }, "nothing flagged yet"));
    rep.anomalies.forEach((a, i) => {
      const open = selected && selected.id === id && selected.i === i;
      const d = el("details", { class: "anomaly", id: "anomaly-" + id + "-" + i });
      if (open) d.setAttribute("open", "");
      const s = el("summary");
      s.appendChild(el("span", { class: "score" }, a.score.toFixed(3)));
      s.appendChild(el("span", { class: "key" }, a.key || "(window)"));
      s.appendChild(el("time", { datetime: a.time },
        (a.start ? fmtTime(parseTime(a.start)) + " – " : "") + fmtTime(parseTime(a.end || a.time))));
      if (a.event_count !== null) s.appendChild(el("span", { class: "muted" }, a.event_count + (a.event_count === 1 ? " event" : " events")));
      d.appendChild(s);
      const t = el("table", { class: "templates" });
      const head = el("tr");
      for (const h of ["count", "template", ""]) head.appendChild(el("th", {}, h));
      t.appendChild(head);
      for (const tp of a.templates) {
        const tr = el("tr", { class: tp.driver ? "driver" : "" });
        tr.appendChild(el("td", { class: "num" }, tp.count === null ? "" : String(tp.count)));
        // A detector on numeric `fields` names fields, not templates.
        tr.appendChild(el("td", { class: "tpl" }, tp.text || tp.id));
        tr.appendChild(el("td", { class: "muted" }, tp.driver ? driverNote(tp) : ""));
        t.appendChild(tr);
      }
      d.appendChild(t);
      if (a.more_templates) d.appendChild(el("p", { class: "muted" }, "and " + a.more_templates + " more templates"));
      list.appendChild(d);
    });
    sec.appendChild(list);
    box.appendChild(sec);
  }

  function select(id, i) {
    selected = { id, i };
    const d = document.getElementById("anomaly-" + id + "-" + i);
    if (d) {
      d.open = true;
      d.querySelector("summary").focus();
      d.scrollIntoView({ block: "nearest" });
    }
  }

  function drawTemplates(box, id, rep) {
    const sec = el("section", { class: "card wide", id: "templates-" + id });
    sec.appendChild(el("h3", {}, "templates mined by " + id));
    sec.appendChild(el("p", { class: "legend" }, rep.templates + " templates from " + fmtCount(rep.lines) + " lines" +
      (rep.top.length < rep.templates ? ", the " + rep.top.length + " most frequent listed" : "")));
    const filter = el("input", { type: "search", placeholder: "filter templates", "aria-label": "filter the templates of " + id });
    sec.appendChild(filter);
    const t = el("table", { class: "templates" });
    const head = el("tr");
    for (const h of ["id", "count", "template"]) head.appendChild(el("th", {}, h));
    t.appendChild(head);
    for (const tp of rep.top) {
      const tr = el("tr", { "data-template": tp.id });
      tr.appendChild(el("td", { class: "num" }, String(tp.id)));
      tr.appendChild(el("td", { class: "num" }, fmtCount(tp.count)));
      tr.appendChild(el("td", { class: "tpl" }, tp.text));
      t.appendChild(tr);
    }
    filter.addEventListener("input", () => {
      const f = filter.value.toLowerCase();
      for (const tr of t.querySelectorAll("tr[data-template]")) tr.hidden = !tr.lastChild.textContent.toLowerCase().includes(f);
    });
    sec.appendChild(t);
    box.appendChild(sec);
  }

  async function refresh(state) {
    const box = document.getElementById("anomaly-views");
    const detectors = state.components.filter(c => c.reports.includes("anomalies"));
    const miners = state.components.filter(c => c.reports.includes("templates"));
    const reports = await Promise.all(detectors.concat(miners).map(c =>
      api("/api/components/" + encodeURIComponent(c.id) + "/reports/" + (c.reports.includes("anomalies") ? "anomalies" : "templates"))));
    const json = JSON.stringify(reports) + detectors.length;
    if (json === drawn) return;
    // Keep what the user typed and opened across refreshes.
    const active = document.activeElement && document.activeElement.closest("#anomaly-views") ? document.activeElement : null;
    if (active && active.tagName === "INPUT") return;
    drawn = json;
    const open = new Set([...box.querySelectorAll("details[open]")].map(d => d.id));
    box.replaceChildren();
    if (!detectors.length && !miners.length) {
      box.appendChild(el("p", { class: "muted" }, "This pipeline has no `anomaly` or `template` processor that has seen events yet (see docs/anomaly.md)."));
    }
    detectors.forEach((c, i) => drawDetector(box, c.id, reports[i]));
    miners.forEach((c, i) => drawTemplates(box, c.id, reports[detectors.length + i]));
    // At first, the newest flagged one is open.
    if (first && detectors.length) {
      const d = box.querySelector("details.anomaly");
      if (d) d.open = true;
      first = false;
    }
    for (const id of open) {
      const d = document.getElementById(id);
      if (d) d.open = true;
    }
  }

  return { refresh };
})();
