// kemu dashboard: follows /api/stream (Server-Sent Events) and renders the rows it carries.
// Everything from the API is put in the page with textContent or as attribute values,
// never parsed as HTML. No polling: the server pushes every change; the only timer
// re-renders ages from the timestamps already here.
"use strict";

const MAX_EVENTS = 200;
const MAX_LOG_CHARS = 1 << 20;
const WORKLOADS = ["deployments", "statefulsets", "daemonsets", "replicasets", "jobs"];

const state = {
  rows: {},            // resource -> Map(key -> row)
  namespace: "",
  selected: null,      // {resource, key}
  logs: null,          // the EventSource of the shown log
  dirty: new Set(),
  frame: 0,
};

function $(id) { return document.getElementById(id); }

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

// kubectl's HumanDuration (apimachinery duration.HumanDuration).
function humanDuration(seconds) {
  const secs = Math.floor(seconds);
  if (secs < -1) return "<invalid>";
  if (secs < 0) return "0s";
  if (secs < 120) return secs + "s";
  const minutes = Math.floor(secs / 60);
  if (minutes < 10) return secs % 60 === 0 ? minutes + "m" : minutes + "m" + (secs % 60) + "s";
  if (minutes < 180) return minutes + "m";
  const hours = Math.floor(secs / 3600);
  if (hours < 8) return minutes % 60 === 0 ? hours + "h" : hours + "h" + (minutes % 60) + "m";
  if (hours < 48) return hours + "h";
  if (hours < 192) return hours % 24 === 0 ? Math.floor(hours / 24) + "d"
    : Math.floor(hours / 24) + "d" + (hours % 24) + "h";
  if (hours < 24 * 365 * 2) return Math.floor(hours / 24) + "d";
  const years = Math.floor(hours / 24 / 365), days = Math.floor(hours / 24) % 365;
  if (hours < 24 * 365 * 8) return days === 0 ? years + "y" : years + "y" + days + "d";
  return years + "y";
}

function age(epoch) {
  if (epoch === null || epoch === undefined) return "<unknown>";
  return humanDuration(Date.now() / 1000 - epoch);
}

function ageCell(epoch) {
  const td = el("td", age(epoch), "age");
  if (epoch !== null && epoch !== undefined) td.dataset.epoch = String(epoch);
  return td;
}

function rows(resource) {
  if (!state.rows[resource]) state.rows[resource] = new Map();
  return state.rows[resource];
}

function visible(resource) {
  const all = Array.from(rows(resource).values());
  const ns = state.namespace;
  return ns ? all.filter((r) => !r.namespace || r.namespace === ns) : all;
}

function byName(a, b) {
  return (a.namespace || "").localeCompare(b.namespace || "") || a.name.localeCompare(b.name);
}

function tableRow(resource, row, cells, className) {
  const tr = document.createElement("tr");
  tr.dataset.resource = resource;
  tr.dataset.key = row.key;
  tr.dataset.name = row.name;
  if (row.namespace) tr.dataset.namespace = row.namespace;
  if (className) tr.className = className;
  for (const cell of cells) tr.appendChild(cell instanceof Node ? cell : el("td", cell));
  const sel = state.selected;
  if (sel && sel.resource === resource && sel.key === row.key) tr.classList.add("selected");
  tr.addEventListener("click", () => select(resource, row.key));
  return tr;
}

function fill(sectionId, trs) {
  const section = $(sectionId);
  section.querySelector("tbody").replaceChildren(...trs);
  section.querySelector(".count").textContent = "(" + trs.length + ")";
}

function statusCell(text, good) {
  return el("td", text, "status " + (good ? "good" : "bad"));
}

const renderers = {
  nodes() {
    fill("nodes", visible("nodes").sort(byName).map((n) => tableRow("nodes", n, [
      el("td", n.name, "name"), statusCell(n.status, n.ready), n.roles, n.internalIP,
      n.podCIDR, n.version, ageCell(n.created)])));
  },
  namespaces() {
    const list = Array.from(rows("namespaces").values()).sort(byName);
    fill("namespaces", list.map((n) => tableRow("namespaces", n, [
      el("td", n.name, "name"), statusCell(n.status, n.status === "Active"),
      ageCell(n.created)])));
    const select = $("namespace");
    const options = [el("option", "all namespaces")];
    options[0].value = "";
    for (const n of list) {
      const option = el("option", n.name);
      option.value = n.name;
      options.push(option);
    }
    select.replaceChildren(...options);
    select.value = state.namespace;
  },
  workloads() {
    const trs = [];
    for (const resource of WORKLOADS) {
      for (const w of visible(resource).sort(byName)) {
        trs.push(tableRow(resource, w, [w.kind, w.namespace, el("td", w.name, "name"),
          statusCell(w.ready, w.complete), w.detail, ageCell(w.created)]));
      }
    }
    fill("workloads", trs);
  },
  pods() {
    fill("pods", visible("pods").sort(byName).map((p) => {
      const good = p.status === "Running" || p.status === "Completed" || p.status === "Succeeded";
      return tableRow("pods", p, [p.namespace, el("td", p.name, "name"), el("td", p.ready, "ready"),
        statusCell(p.status, good), p.restarts, p.node || "<none>", p.ip || "<none>",
        ageCell(p.created)], "phase-" + p.phase);
    }));
  },
  services() {
    const endpoints = rows("endpoints");
    fill("services", visible("services").sort(byName).map((s) => {
      const ep = endpoints.get(s.key);
      const text = ep ? ep.endpoints : "<none>";
      return tableRow("services", s, [s.namespace, el("td", s.name, "name"), s.type, s.clusterIP,
        s.externalIP, s.ports, el("td", text, "endpoints"), ageCell(s.created)]);
    }));
  },
  events() {
    const list = visible("events").sort((a, b) => (b.lastSeen || 0) - (a.lastSeen || 0))
      .slice(0, MAX_EVENTS);
    fill("events", list.map((e) => {
      const last = age(e.lastSeen) + (e.count > 1 ? " (x" + e.count + ")" : "");
      const td = el("td", last, "age");
      return tableRow("events", e, [td, statusCell(e.type, e.type !== "Warning"), e.namespace,
        e.reason, e.object, el("td", e.message, "message")]);
    }));
  },
};

// Which sections show which resources.
const SECTIONS = {
  nodes: ["nodes"], namespaces: ["namespaces"], pods: ["pods"], events: ["events"],
  services: ["services", "endpoints"], workloads: WORKLOADS,
};

function sectionsOf(resource) {
  return Object.keys(SECTIONS).filter((s) => SECTIONS[s].includes(resource));
}

function schedule(resource) {
  for (const s of sectionsOf(resource)) state.dirty.add(s);
  if (!state.frame) state.frame = requestAnimationFrame(flush);
}

function flush() {
  state.frame = 0;
  const dirty = Array.from(state.dirty);
  state.dirty.clear();
  for (const s of dirty) renderers[s]();
  if (state.selected) renderDetail(false);
}

function renderAll() {
  for (const s of Object.keys(SECTIONS)) state.dirty.add(s);
  flush();
}

// ---- the detail panel and logs --------------------------------------------------------

function dlEntry(dl, term, value) {
  dl.appendChild(el("dt", term));
  const dd = el("dd");
  if (value && typeof value === "object") {
    const keys = Object.keys(value);
    if (!keys.length) dd.textContent = "<none>";
    for (const k of keys) dd.appendChild(el("div", k + "=" + value[k], "kv"));
  } else {
    dd.textContent = value === undefined || value === null || value === "" ? "<none>" : value;
  }
  dl.appendChild(dd);
}

function dlList(dl, term, lines) {
  dl.appendChild(el("dt", term));
  const dd = el("dd", lines.length ? undefined : "<none>");
  for (const line of lines) dd.appendChild(el("div", line, "line"));
  dl.appendChild(dd);
}

// The newest events about an object, as `kemuctl describe` lists them.
function eventsOf(resource, row) {
  if (resource === "events") return [];
  const singular = resource === "endpoints" ? "endpoints" : resource.replace(/s$/, "");
  const object = singular + "/" + row.name;
  return Array.from(rows("events").values())
    .filter((e) => e.object === object && (e.namespace || "") === (row.namespace || "") ||
      e.object === object && !row.namespace)
    .sort((a, b) => (b.lastSeen || 0) - (a.lastSeen || 0)).slice(0, 10);
}

function renderDetail(fresh) {
  const sel = state.selected;
  const row = rows(sel.resource).get(sel.key);
  const panel = $("detail");
  panel.hidden = false;
  $("detail-title").textContent = sel.resource + " " + sel.key + (row ? "" : " (deleted)");
  const dl = $("detail-meta");
  dl.replaceChildren();
  if (row) {
    if (row.kind) dlEntry(dl, "Kind", row.kind);
    if (sel.resource === "pods") {
      dlEntry(dl, "Status", row.status);
      dlEntry(dl, "Node", row.node);
      dlEntry(dl, "Controlled by", row.owner);
    }
    if (sel.resource === "events") dlEntry(dl, "Message", row.message);
    dlEntry(dl, "Labels", row.labels);
    dlEntry(dl, "Annotations", row.annotations);
    if (sel.resource === "pods") {
      dlList(dl, "Containers", row.containerStatuses.map((c) => c.name + ": " + c.state +
        (c.ready ? ", ready" : ", not ready") + ", restarts " + c.restarts + ", " + c.image));
    }
    dlList(dl, "Events", eventsOf(sel.resource, row).map((e) =>
      age(e.lastSeen) + " " + e.type + " " + e.reason + ": " + e.message));
  }
  if (fresh) startLogs(sel.resource === "pods" ? row : null);
}

function stopLogs() {
  if (state.logs) state.logs.close();
  state.logs = null;
}

function startLogs(pod, container) {
  stopLogs();
  const box = $("logs");
  box.hidden = !pod;
  if (!pod) return;
  const choose = $("logs-container");
  if (container === undefined) {
    choose.replaceChildren(...pod.containers.map((c) => {
      const option = el("option", c);
      option.value = c;
      return option;
    }));
    container = pod.containers[0] || "";
  }
  const text = $("logs-text");
  const status = $("logs-state");
  text.textContent = "";
  text.classList.remove("failed");
  status.textContent = "loading";
  const query = new URLSearchParams({namespace: pod.namespace, pod: pod.name, container});
  const source = new EventSource("/api/logs?" + query.toString());
  state.logs = source;
  const append = (chunk) => {
    let all = text.textContent + chunk;
    if (all.length > MAX_LOG_CHARS) all = all.slice(all.length - MAX_LOG_CHARS);
    text.textContent = all;
    text.scrollTop = text.scrollHeight;
  };
  source.addEventListener("log", (e) => {
    status.textContent = "following";
    append(JSON.parse(e.data).text);
  });
  source.addEventListener("end", (e) => {
    append(JSON.parse(e.data).text);
    status.textContent = "ended";
    source.close();
  });
  source.addEventListener("failed", (e) => {
    text.textContent = JSON.parse(e.data).message;
    text.classList.add("failed");
    status.textContent = "failed";
    source.close();
  });
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) status.textContent = "disconnected";
  };
}

function select(resource, key) {
  state.selected = {resource, key};
  document.querySelectorAll("tr.selected").forEach((tr) => tr.classList.remove("selected"));
  document.querySelectorAll("tr[data-resource]").forEach((tr) => {
    if (tr.dataset.resource === resource && tr.dataset.key === key) tr.classList.add("selected");
  });
  renderDetail(true);
}

// ---- the cluster stream -----------------------------------------------------------------

function setState(text, className) {
  const badge = $("state");
  badge.textContent = text;
  badge.className = "state " + className;
}

// The server says when the apiserver stops answering (the rows shown are then stale).
function setProblem(problem) {
  const banner = $("problem");
  banner.textContent = problem;
  banner.hidden = !problem;
  if (problem) setState("apiserver unreachable", "connecting");
  else setState("live", "live");
}

function connect() {
  const source = new EventSource("/api/stream");
  source.addEventListener("snapshot", (e) => {
    const data = JSON.parse(e.data);
    $("server").textContent = data.server;
    state.rows = {};
    for (const [resource, list] of Object.entries(data.resources)) {
      const map = rows(resource);
      for (const row of list) map.set(row.key, row);
    }
    setProblem(data.problem);
    renderAll();
  });
  source.addEventListener("change", (e) => {
    const change = JSON.parse(e.data);
    if (change.row) rows(change.resource).set(change.key, change.row);
    else rows(change.resource).delete(change.key);
    schedule(change.resource);
  });
  source.addEventListener("status", (e) => setProblem(JSON.parse(e.data).problem));
  source.onerror = () => setState("reconnecting", "connecting");
}

document.addEventListener("DOMContentLoaded", () => {
  $("namespace").addEventListener("change", (e) => {
    state.namespace = e.target.value;
    renderAll();
  });
  $("detail-close").addEventListener("click", () => {
    state.selected = null;
    stopLogs();
    $("detail").hidden = true;
    document.querySelectorAll("tr.selected").forEach((tr) => tr.classList.remove("selected"));
  });
  $("logs-container").addEventListener("change", (e) => {
    const sel = state.selected;
    const pod = sel && rows("pods").get(sel.key);
    if (pod) startLogs(pod, e.target.value);
  });
  setInterval(() => {
    document.querySelectorAll("td.age[data-epoch]").forEach((td) => {
      td.textContent = age(Number(td.dataset.epoch));
    });
  }, 1000);
  connect();
});
