// The health page: every process's heartbeat (gateway.health), totals and rates.
// Rates are counter deltas between two heartbeats of one process divided by the
// uptime between them; a process silent for three intervals, or that said it
// stopped, leaves the table.

import { badge, cell, live } from "./live.js";

const processes = new Map(); // id -> {now, before, seen, interval}
const LAYER_FIELDS = ["sent", "received", "group_sent", "expired", "dropped_full", "reconnects", "unavailable"];
const ALARMING = new Set(["expired", "dropped_full", "unavailable"]);

const number = new Intl.NumberFormat();
const rateFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });

function rate(entry, protocol, key) {
  const { now, before } = entry;
  if (!before) return 0;
  const seconds = now.uptime - before.uptime;
  const then = before.protocols[protocol];
  if (seconds <= 0 || !then) return 0;
  return Math.max(0, (now.protocols[protocol][key] - then[key]) / seconds);
}

function uptime(seconds) {
  const s = Math.floor(seconds);
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  if (m) return `${m}m ${s % 60}s`;
  return `${s}s`;
}

function receive(message) {
  const process = message.process;
  if (message.state === "stopped") {
    processes.delete(process.id);
  } else {
    const known = processes.get(process.id);
    processes.set(process.id, {
      now: process,
      before: known ? known.now : null,
      seen: Date.now(),
      interval: message.interval,
    });
  }
  render();
}

function forgetSilent() {
  const now = Date.now();
  let changed = false;
  for (const [id, entry] of processes) {
    if (now - entry.seen > entry.interval * 3000 + 1000) {
      processes.delete(id);
      changed = true;
    }
  }
  if (changed) render();
}

function row(cells) {
  const tr = document.createElement("tr");
  tr.append(...cells);
  return tr;
}

function render() {
  const entries = [...processes.values()].sort((a, b) =>
    `${a.now.kind}${a.now.host}${a.now.pid}`.localeCompare(`${b.now.kind}${b.now.host}${b.now.pid}`));
  const totals = new Map(); // protocol -> {connections, in, out, inRate, outRate}
  let instances = 0;
  const processRows = [];
  const layerRows = [];
  const layerTotals = Object.fromEntries(LAYER_FIELDS.map((f) => [f, 0]));

  for (const entry of entries) {
    const p = entry.now;
    let open = 0, inRate = 0, outRate = 0;
    for (const [protocol, counters] of Object.entries(p.protocols)) {
      const r = { in: rate(entry, protocol, "messages_in"), out: rate(entry, protocol, "messages_out") };
      const t = totals.get(protocol) ?? { connections: 0, in: 0, out: 0, inRate: 0, outRate: 0 };
      t.connections += counters.connections;
      t.in += counters.messages_in;
      t.out += counters.messages_out;
      t.inRate += r.in;
      t.outRate += r.out;
      totals.set(protocol, t);
      open += counters.connections;
      inRate += r.in;
      outRate += r.out;
    }
    const servers = Object.entries(p.servers);
    const live = servers.reduce((sum, [, s]) => sum + s.instances, 0);
    instances += live;
    const links = document.createElement("td");
    for (const [name, server] of servers) {
      if (server.link_up !== null) links.append(badge(`${name} ${server.link_up ? "up" : "down"}`, server.link_up ? "ok" : "bad"), " ");
    }
    const name = cell("");
    name.append(badge(p.kind, "channel"), ` ${p.id}`);
    processRows.push(row([
      name, cell(`${p.host} · pid ${p.pid}`, "muted"), cell(uptime(p.uptime), "num"),
      cell(number.format(open), "num"), cell(rateFormat.format(inRate), "num"),
      cell(rateFormat.format(outRate), "num"), cell(number.format(live), "num"), links,
    ]));
    for (const [alias, layer] of Object.entries(p.layers)) {
      const cells = [cell(`${p.kind} ${p.id}`, "muted"), cell(`${alias} (${layer.backend})`)];
      for (const field of LAYER_FIELDS) {
        layerTotals[field] += layer[field];
        cells.push(cell(number.format(layer[field]), ALARMING.has(field) && layer[field] ? "num warn-value" : "num"));
      }
      layerRows.push(row(cells));
    }
  }

  const protocolRows = [...totals.entries()].sort().map(([protocol, t]) => {
    const tr = row([cell(""), cell(number.format(t.connections), "num"),
      cell(rateFormat.format(t.inRate), "num"), cell(rateFormat.format(t.outRate), "num"),
      cell(number.format(t.in), "num"), cell(number.format(t.out), "num")]);
    tr.firstChild.append(badge(protocol));
    tr.dataset.protocol = protocol;
    tr.children[1].dataset.cell = `${protocol}-open`;
    return tr;
  });
  document.getElementById("protocols").replaceChildren(...protocolRows);
  document.getElementById("protocols-empty").hidden = protocolRows.length > 0;
  document.getElementById("processes").replaceChildren(...processRows);
  document.getElementById("layers").replaceChildren(...layerRows);
  const footer = layerRows.length > 1
    ? [row([cell("All processes"), cell(""), ...LAYER_FIELDS.map((f) => cell(number.format(layerTotals[f]), "num"))])]
    : [];
  document.getElementById("layers-total").replaceChildren(...footer);

  const sum = (key) => [...totals.values()].reduce((s, t) => s + t[key], 0);
  const kinds = new Map();
  for (const entry of entries) kinds.set(entry.now.kind, (kinds.get(entry.now.kind) ?? 0) + 1);
  document.getElementById("total-processes").textContent = number.format(entries.length);
  document.getElementById("total-kinds").textContent =
    [...kinds].map(([kind, count]) => `${count} ${kind}`).join(" · ") || "\u00a0";
  document.getElementById("total-connections").textContent = number.format(sum("connections"));
  document.getElementById("total-in").textContent = rateFormat.format(sum("inRate"));
  document.getElementById("total-out").textContent = rateFormat.format(sum("outRate"));
  document.getElementById("total-instances").textContent = number.format(instances);
}

live("/ws/health/", receive);
setInterval(forgetSilent, 1000);
