// The traffic page: iot.traffic batches, newest first, at most MAX_ROWS kept in
// the page; filters hide rows without discarding them; Pause freezes the view
// (batches arriving meanwhile still count, and are shown on resume, bounded).

import { badge, cell, live } from "./live.js";

const MAX_ROWS = 500;
const ARROWS = { in: "↓ in", out: "↑ out" };

const body = document.getElementById("entries");
const empty = document.getElementById("entries-empty");
const counts = document.getElementById("counts");
const droppedNotice = document.getElementById("dropped");
const protocol = document.getElementById("filter-protocol");
const direction = document.getElementById("filter-direction");
const text = document.getElementById("filter-text");
const pause = document.getElementById("pause");
const time = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit", minute: "2-digit", second: "2-digit", fractionalSecondDigits: 3,
});

let held = []; // rows received while paused, newest first
let dropped = 0;

function toRow(entry) {
  const tr = document.createElement("tr");
  tr.dataset.protocol = entry.protocol;
  tr.dataset.direction = entry.direction;
  tr.dataset.search = `${entry.device ?? ""} ${entry.topic} ${entry.summary}`.toLowerCase();
  const kind = cell("");
  kind.append(badge(entry.protocol));
  tr.append(
    cell(time.format(new Date(entry.at)), "time"), kind,
    cell(ARROWS[entry.direction] ?? entry.direction, `dir ${entry.direction}`),
    cell(entry.device ?? "–", entry.device ? "mono" : "muted"),
    cell(entry.topic, "topic"), cell(entry.summary, "summary"),
  );
  return tr;
}

function visible(tr) {
  const needle = text.value.trim().toLowerCase();
  return (!protocol.value || tr.dataset.protocol === protocol.value)
    && (!direction.value || tr.dataset.direction === direction.value)
    && (!needle || tr.dataset.search.includes(needle));
}

function refreshCounts() {
  const shown = [...body.rows].filter((tr) => !tr.hidden).length;
  const total = body.rows.length;
  counts.textContent = shown === total
    ? `${total} entr${total === 1 ? "y" : "ies"} (last ${MAX_ROWS} kept)`
    : `${shown} of ${total} entries match`;
  empty.hidden = total > 0;
  if (held.length) counts.textContent += ` · ${held.length} waiting`;
}

function show(rows) {
  for (const tr of rows) tr.hidden = !visible(tr);
  body.prepend(...rows);
  while (body.rows.length > MAX_ROWS) body.lastElementChild.remove();
  refreshCounts();
}

function receive(message) {
  const rows = message.entries.map(toRow).reverse();
  if (message.dropped) {
    dropped += message.dropped;
    droppedNotice.textContent = `${dropped} entr${dropped === 1 ? "y was" : "ies were"} dropped before reaching this page (the gateway was busier than the log allows).`;
    droppedNotice.hidden = false;
  }
  if (pause.getAttribute("aria-pressed") === "true") {
    held = [...rows, ...held].slice(0, MAX_ROWS);
    refreshCounts();
  } else {
    show(rows);
  }
}

function refilter() {
  for (const tr of body.rows) tr.hidden = !visible(tr);
  refreshCounts();
}

protocol.addEventListener("change", refilter);
direction.addEventListener("change", refilter);
text.addEventListener("input", refilter);
pause.addEventListener("click", () => {
  const paused = pause.getAttribute("aria-pressed") !== "true";
  pause.setAttribute("aria-pressed", String(paused));
  pause.textContent = paused ? "Resume" : "Pause";
  if (!paused && held.length) {
    const rows = held;
    held = [];
    show(rows);
  }
});
document.getElementById("clear").addEventListener("click", () => {
  body.replaceChildren();
  held = [];
  refreshCounts();
});

live("/ws/traffic/", receive);
refreshCounts();
