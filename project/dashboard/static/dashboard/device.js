// A device's page: /ws/devices/<id>/ sends a snapshot (docs/dashboard.md), then
// readings, device summaries, alerts, commands and bad payloads as they happen.
// The page sends its commands and thresholds on the same socket.

import { live } from "./live.js";
import { LineChart } from "./chart.js";
import { ago, element, formatNumber, formatTime, keepAgoFresh } from "./format.js";

const HOUR = 3600 * 1000;
const MAX_COMMANDS = 10;
const MAX_ALERTS = 20;
const STATUS_CLASS = { pending: "warn", acknowledged: "ok", refused: "bad", failed: "bad", timed_out: "bad" };
const $ = (id) => document.getElementById(id);

const deviceId = $("live-status").dataset.device;
const charts = new Map(); // metric -> {chart, value element}
const alerts = new Map(); // id -> {metric, direction, limit, value, opened_at, cleared_at, clear_value}
const commands = new Map(); // id -> command info
let thresholds = [];
let socket = null; // live()'s sender, once started
let readings = 0;

// -- the device and its charts ------------------------------------------------------

function showDevice(device) {
  const presence = $("presence");
  presence.textContent = device.online ? "online" : "offline";
  presence.className = `badge ${device.online ? "ok" : ""}`;
  $("last-seen").textContent = ago(device.last_seen);
  $("last-seen").dataset.ago = device.last_seen ?? "";
  $("last-seen-at").textContent = formatTime(device.last_seen) || "\u00a0";
  $("open-alerts").textContent = device.open_alerts;
  $("bad-count").textContent = device.bad_payloads;
  for (const [metric, value] of Object.entries(device.last_values)) chartFor(metric).value.textContent = formatNumber(value);
}

function chartFor(metric) {
  let entry = charts.get(metric);
  if (!entry) {
    const value = element("span", "chart-value", "–");
    const box = element("div", "chart-box");
    const panel = element("figure", "chart-panel", null, element("figcaption", null, null, element("span", "chart-name", metric), value), box);
    panel.dataset.metric = metric;
    const all = [...charts.keys(), metric].sort();
    const container = $("charts");
    container.insertBefore(panel, container.querySelector(`[data-metric="${all[all.indexOf(metric) + 1]}"]`));
    entry = { chart: new LineChart(box, HOUR), value };
    charts.set(metric, entry);
    $("metric-names").append(element("option", null, null));
    $("metric-names").lastChild.value = metric;
    $("charts-empty").hidden = true;
    showLimits();
  }
  return entry;
}

function addPoints(points) {
  const byMetric = new Map();
  for (const [at, values] of points) {
    const time = Date.parse(at);
    for (const [metric, value] of Object.entries(values)) {
      if (!byMetric.has(metric)) byMetric.set(metric, []);
      byMetric.get(metric).push([time, value]);
    }
  }
  for (const [metric, series] of byMetric) {
    const { chart, value } = chartFor(metric);
    chart.add(series);
    value.textContent = formatNumber(series.at(-1)[1]);
  }
  readings += points.length;
  $("reading-count").textContent = readings;
}

function showLimits() {
  for (const [metric, { chart }] of charts) {
    chart.setLimits(thresholds.filter((t) => t.metric === metric && t.enabled)
      .map((t) => ({ value: t.limit, label: `${t.direction} ${formatNumber(t.limit)}` })));
  }
}

// -- alerts -------------------------------------------------------------------------------

function alertEvent(alert) {
  const known = alerts.get(alert.id) ?? { ...alert, opened_at: alert.at, cleared_at: null, clear_value: null };
  if (alert.state === "cleared") Object.assign(known, { cleared_at: alert.at, clear_value: alert.value });
  alerts.set(alert.id, known);
  showAlerts();
}

function showAlerts() {
  const sorted = [...alerts.values()].sort((a, b) =>
    (a.cleared_at !== null) - (b.cleared_at !== null) || Date.parse(b.opened_at) - Date.parse(a.opened_at));
  for (const old of sorted.slice(MAX_ALERTS)) alerts.delete(old.id);
  $("alerts").replaceChildren(...sorted.slice(0, MAX_ALERTS).map((a) => {
    const open = a.cleared_at === null;
    const li = element("li", open ? "open" : null, null,
      element("span", `badge ${open ? "bad" : ""}`, open ? "open" : "cleared"),
      element("span", "grow", `${a.metric} ${formatNumber(a.value)} ${a.direction} ${formatNumber(a.limit)}`),
      element("span", "muted", open ? ago(a.opened_at) : `cleared ${ago(a.cleared_at)}`));
    li.dataset.alert = a.id;
    return li;
  }));
  $("alerts-empty").hidden = alerts.size > 0;
}

// -- commands ----------------------------------------------------------------------------------

function commandEvent(command) {
  commands.set(command.id, command);
  const sorted = [...commands.values()].sort((a, b) => Date.parse(b.created_at) - Date.parse(a.created_at));
  for (const old of sorted.slice(MAX_COMMANDS)) commands.delete(old.id);
  $("commands").replaceChildren(...sorted.slice(0, MAX_COMMANDS).map((c) => {
    const detail = c.reason || (c.result !== null && c.result !== undefined ? `result ${JSON.stringify(c.result)}` : "");
    const li = element("li", null, null,
      element("span", `badge ${STATUS_CLASS[c.status] ?? ""}`, c.status.replace("_", " ")),
      element("span", "grow", null, element("strong", null, c.name), ` ${JSON.stringify(c.args)}`,
        ...(detail ? [element("div", "muted small", detail)] : [])),
      element("span", "muted", ago(c.created_at)));
    li.dataset.command = c.id;
    li.dataset.status = c.status;
    return li;
  }));
  $("commands-empty").hidden = commands.size > 0;
}

// -- thresholds and bad payloads -------------------------------------------------------------

function showThresholds(rows) {
  thresholds = rows;
  $("thresholds").replaceChildren(...rows.map((t) => {
    const edit = element("button", "button small", "Edit");
    edit.type = "button";
    edit.onclick = () => {
      $("threshold-metric").value = t.metric;
      $("threshold-direction").value = t.direction;
      $("threshold-limit").value = t.limit;
      $("threshold-hysteresis").value = t.hysteresis;
      $("threshold-limit").focus();
    };
    const remove = element("button", "button small danger", "Delete");
    remove.type = "button";
    remove.onclick = () => send({ type: "delete_threshold", metric: t.metric, direction: t.direction });
    const tr = element("tr", null, null, element("td", "mono", t.metric), element("td", null, t.direction),
      element("td", "num", formatNumber(t.limit)), element("td", "num", formatNumber(t.hysteresis)),
      element("td", "num actions", null, edit, " ", remove));
    tr.dataset.threshold = `${t.metric}-${t.direction}`;
    return tr;
  }));
  showLimits();
}

function showBadPayload({ reason, sample, at }) {
  $("bad-none").hidden = Boolean(at);
  $("bad-last").hidden = !at;
  $("bad-reason").textContent = reason;
  $("bad-when").textContent = at ? ago(at) : "";
  $("bad-sample").textContent = sample;
  $("bad-at").textContent = at ? `last ${ago(at)}` : "\u00a0";
}

// -- the socket ----------------------------------------------------------------------------------

function send(message) {
  if (!socket?.send(message)) showError("command-error", "Not connected: try again in a moment.");
}

function showError(id, message) {
  $(id).textContent = message;
  $(id).hidden = !message;
}

const handlers = {
  snapshot(m) {
    readings = 0;
    addPoints(m.points);
    showDevice(m.device);
    alerts.clear();
    for (const a of m.alerts) alerts.set(a.id, a);
    showAlerts();
    for (const c of m.commands) commandEvent(c);
    showThresholds(m.thresholds);
    showBadPayload(m.bad_payloads);
  },
  readings: (m) => addPoints(m.points),
  device: (m) => showDevice(m.device),
  alert: (m) => alertEvent(m.alert),
  command: (m) => commandEvent(m.command),
  bad_payload: (m) => showBadPayload(m),
  thresholds(m) {
    showError("threshold-error", "");
    showThresholds(m.thresholds);
  },
  error(m) {
    const fields = m.errors ? Object.entries(m.errors).map(([k, v]) => `${k}: ${v}`).join("; ") : "";
    showError(m.reason.includes("threshold") ? "threshold-error" : "command-error", fields || m.reason);
  },
};

$("command-form").addEventListener("submit", (event) => {
  event.preventDefault();
  let args;
  try {
    args = JSON.parse($("command-args").value || "{}");
  } catch (error) {
    showError("command-error", `Arguments are not JSON: ${error.message}`);
    return;
  }
  showError("command-error", "");
  send({ type: "command", name: $("command-name").value, args });
});

$("threshold-form").addEventListener("submit", (event) => {
  event.preventDefault();
  send({
    type: "threshold", metric: $("threshold-metric").value, direction: $("threshold-direction").value,
    limit: Number($("threshold-limit").value), hysteresis: Number($("threshold-hysteresis").value || 0),
  });
});

for (const button of document.querySelectorAll("[data-confirm]")) {
  button.addEventListener("click", (event) => {
    if (!confirm(button.dataset.confirm)) event.preventDefault();
  });
}

socket = live(`/ws/devices/${encodeURIComponent(deviceId)}/`, (m) => handlers[m.type]?.(m));
keepAgoFresh();
