// The fleet page: one card per device from /ws/fleet/ (a snapshot, then one
// "device" message per change, at most 10 a second per device), and the dialog
// that adds a device.

import { live } from "./live.js";
import { ago, element, formatNumber, keepAgoFresh } from "./format.js";

const devices = new Map(JSON.parse(document.getElementById("fleet-data").textContent).map((d) => [d.device_id, d]));
const grid = document.getElementById("devices");
const cards = new Map(); // device_id -> card element

function card(device) {
  const values = Object.entries(device.last_values).slice(0, 6).map(([metric, value]) =>
    element("div", "metric", null, element("span", "metric-name", metric), element("span", "metric-value", formatNumber(value))));
  const alerts = device.open_alerts
    ? element("span", "badge bad", `${device.open_alerts} alert${device.open_alerts === 1 ? "" : "s"}`)
    : element("span", "badge", "no alerts");
  const seen = element("span", "muted", ago(device.last_seen));
  seen.dataset.ago = device.last_seen ?? "";
  const link = element("a", "device-card card", null,
    element("div", "device-top", null,
      element("div", "device-title", null, element("h2", null, device.name), element("span", "mono muted", device.device_id)),
      element("span", `badge ${device.online ? "ok" : ""}`, device.online ? "online" : "offline")),
    element("div", "metrics", null, ...(values.length ? values : [element("div", "muted", "no readings yet")])),
    element("div", "device-foot", null, seen, alerts,
      ...(device.bad_payloads ? [element("span", "badge warn", `${device.bad_payloads} bad`)] : [])),
  );
  link.href = `/devices/${encodeURIComponent(device.device_id)}/`;
  link.dataset.device = device.device_id;
  link.dataset.online = device.online;
  return link;
}

// Only changed cards are rebuilt; the grid is re-sorted when a device is new.
const dirty = new Set(devices.keys());
let scheduled = false;

function render() {
  scheduled = false;
  let added = false;
  for (const id of dirty) {
    const fresh = card(devices.get(id));
    const old = cards.get(id);
    if (old) old.replaceWith(fresh);
    else added = true;
    cards.set(id, fresh);
  }
  dirty.clear();
  const all = [...devices.values()];
  if (added) {
    all.sort((a, b) => a.name.localeCompare(b.name) || a.device_id.localeCompare(b.device_id));
    grid.replaceChildren(...all.map((d) => cards.get(d.device_id)));
  }
  const total = (key) => all.reduce((sum, d) => sum + Number(d[key]), 0);
  document.getElementById("devices-empty").hidden = all.length > 0;
  document.getElementById("total-devices").textContent = all.length;
  document.getElementById("total-online").textContent = all.filter((d) => d.online).length;
  document.getElementById("total-alerts").textContent = total("open_alerts");
  document.getElementById("total-bad").textContent = total("bad_payloads");
}

function update(device) {
  devices.set(device.device_id, device);
  dirty.add(device.device_id);
  if (!scheduled) {
    scheduled = true;
    requestAnimationFrame(render);
  }
}

function receive(message) {
  if (message.type === "snapshot") {
    for (const device of message.devices) update(device);
  } else if (message.type === "device") {
    update(message.device);
  }
}

const dialog = document.getElementById("add-device");
document.getElementById("add-open").addEventListener("click", () => {
  dialog.close();
  dialog.showModal();
  dialog.querySelector("input").focus();
});
document.getElementById("add-close").addEventListener("click", () => dialog.close());

render();
live("/ws/fleet/", receive);
keepAgoFresh();
