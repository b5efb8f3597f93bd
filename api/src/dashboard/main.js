// The dashboard's frame: the token, the views (`#overview`, `#search?...`,
// `#anomalies`: the URL names the view and the search, so either can be
// shared), and the polling of `/api/components` once a second.
"use strict";

const POLL_MS = 1000;
const HISTORY_EVERY = 5;
const ANOMALIES_EVERY = 3;
let polls = 0;
let latest = null;

// With `api.token` set, /api/* and /search need `Authorization: Bearer
// TOKEN`. The token typed in (or given as `/#token=TOKEN`: a fragment never
// reaches the server or its logs) is kept for this tab only
// (sessionStorage) and sent with every request; the page holds no data.
if (location.hash.startsWith("#token=")) {
  sessionStorage.setItem("sluice-token", decodeURIComponent(location.hash.slice(7)));
  window.history.replaceState(null, "", location.pathname + location.search);
}

function view() {
  const h = location.hash.replace(/^#/, "");
  const [name, query] = h.split("?");
  return { name: ["search", "anomalies"].includes(name) ? name : "overview", params: new URLSearchParams(query || "") };
}

function setStatus(text, cls) {
  const status = document.getElementById("status");
  status.textContent = text;
  status.className = cls;
}

function needToken() {
  setStatus(token() ? "wrong token" : "token needed", "down");
  document.getElementById("login").hidden = false;
}

// Shows the view the URL names and runs its search.
async function route() {
  const v = view();
  for (const name of ["overview", "search", "anomalies"]) {
    document.getElementById("view-" + name).hidden = name !== v.name;
    const tab = document.getElementById("tab-" + name);
    if (name === v.name) tab.setAttribute("aria-current", "page"); else tab.removeAttribute("aria-current");
  }
  document.title = "Sluice — " + v.name;
  try {
    if (v.name === "search") await Search.run(v.params);
    if (v.name === "anomalies" && latest) await Anomalies.refresh(latest);
  } catch (e) {
    if (e instanceof NeedToken) needToken();
  }
}

async function poll() {
  try {
    const state = await api("/api/components");
    document.getElementById("login").hidden = true;
    setStatus({ ok: "healthy", degraded: "degraded", unhealthy: "unhealthy" }[state.status], state.status === "ok" ? "ok" : state.status);
    document.getElementById("uptime").textContent = "up " + state.uptime_seconds.toFixed(0) + " s";
    if (polls % HISTORY_EVERY === 0) await Overview.refreshHistory();
    latest = state;
    Overview.render(state);
    const v = view();
    if (v.name === "anomalies" && polls % ANOMALIES_EVERY === 0) await Anomalies.refresh(state);
    if (v.name === "search") await Search.run(v.params);
    polls += 1;
    document.body.setAttribute("data-polls", polls);
  } catch (e) {
    if (e instanceof NeedToken) needToken();
    else setStatus("agent not reachable", "down");
  }
  setTimeout(poll, POLL_MS);
}

document.getElementById("login").addEventListener("submit", e => {
  e.preventDefault();
  sessionStorage.setItem("sluice-token", document.getElementById("token").value.trim());
  document.getElementById("login").hidden = true;
});
window.addEventListener("hashchange", route);
Search.init();
route();
poll();
