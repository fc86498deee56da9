// A small live line chart in plain SVG: one metric over a sliding time window.
// Points are [Date, number]; at most MAX_POINTS are kept (the oldest go first) and
// anything older than the window is forgotten, so a chart's memory is bounded
// however long the page stays open. Redraws are batched to one per animation frame.
// The time axis starts at the oldest point kept and spans at least MIN_SPAN_MS: a
// device heard from for seconds fills the chart from the left as it publishes, rather
// than a sliver at the right edge of an empty hour; past the window it slides.

const SVG = "http://www.w3.org/2000/svg";
const MAX_POINTS = 2000;
const HEIGHT = 170;
const PAD = { top: 12, right: 12, bottom: 22, left: 44 };
const MIN_SPAN_MS = 60 * 1000;
const clock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const clockSeconds = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
const figure = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });

function node(name, attributes = {}, text) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  if (text !== undefined) element.textContent = text;
  return element;
}

export class LineChart {
  constructor(container, windowMs) {
    this.windowMs = windowMs;
    this.points = [];
    this.limits = [];
    this.svg = node("svg", { class: "chart", role: "img", height: HEIGHT });
    container.append(this.svg);
    this.pending = false;
    new ResizeObserver(() => this.draw()).observe(container);
  }

  // Append points (oldest first); a point not newer than the last one is a repeat.
  add(points) {
    const last = this.points.at(-1)?.[0] ?? 0;
    for (const point of points) if (point[0] > last) this.points.push(point);
    const since = Date.now() - this.windowMs;
    const stale = this.points.findIndex(([at]) => at >= since);
    this.points.splice(0, stale === -1 ? this.points.length : Math.max(stale, this.points.length - MAX_POINTS));
    this.redraw();
  }

  // Threshold lines: [{value, label}].
  setLimits(limits) {
    this.limits = limits;
    this.redraw();
  }

  redraw() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.draw();
    });
  }

  draw() {
    const width = this.svg.parentElement.clientWidth || 300;
    this.svg.setAttribute("viewBox", `0 0 ${width} ${HEIGHT}`);
    this.svg.setAttribute("width", width);
    this.svg.dataset.points = this.points.length;
    const now = Date.now();
    const oldest = this.points[0]?.[0] ?? now - this.windowMs;
    const start = Math.max(now - this.windowMs, oldest);
    const end = Math.max(now, start + MIN_SPAN_MS);
    const span = end - start;
    const time = span < 10 * 60 * 1000 ? clockSeconds : clock;
    const values = [...this.points.map(([, v]) => v), ...this.limits.map((l) => l.value)];
    let low = Math.min(...values), high = Math.max(...values);
    if (!values.length) [low, high] = [0, 1];
    if (low === high) [low, high] = [low - 1, high + 1];
    const margin = (high - low) * 0.1;
    low -= margin;
    high += margin;
    const w = width - PAD.left - PAD.right, h = HEIGHT - PAD.top - PAD.bottom;
    const x = (at) => PAD.left + ((at - start) / span) * w;
    const y = (v) => PAD.top + (1 - (v - low) / (high - low)) * h;

    const parts = [];
    for (let i = 0; i <= 3; i++) {
      const v = low + ((high - low) * i) / 3;
      parts.push(node("line", { class: "grid", x1: PAD.left, x2: width - PAD.right, y1: y(v), y2: y(v) }));
      parts.push(node("text", { class: "axis", x: PAD.left - 6, y: y(v) + 4, "text-anchor": "end" }, figure.format(v)));
    }
    for (const [at, anchor] of [[start, "start"], [start + span / 2, "middle"], [end, "end"]]) {
      parts.push(node("text", { class: "axis", x: x(at), y: HEIGHT - 5, "text-anchor": anchor }, time.format(at)));
    }
    for (const limit of this.limits) {
      parts.push(node("line", { class: "limit", x1: PAD.left, x2: width - PAD.right, y1: y(limit.value), y2: y(limit.value) }));
      parts.push(node("text", { class: "limit-label", x: width - PAD.right - 4, y: y(limit.value) - 4, "text-anchor": "end" }, limit.label));
    }
    if (this.points.length) {
      const line = this.points.map(([at, v]) => `${x(at).toFixed(1)},${y(v).toFixed(1)}`).join(" L");
      const first = x(this.points[0][0]).toFixed(1), last = this.points.at(-1);
      parts.push(node("path", { class: "area", d: `M${first},${PAD.top + h} L${line} L${x(last[0]).toFixed(1)},${PAD.top + h} Z` }));
      parts.push(node("path", { class: "line", d: `M${line}` }));
      parts.push(node("circle", { class: "dot", cx: x(last[0]), cy: y(last[1]), r: 3.5 }));
    }
    this.svg.replaceChildren(...parts);
  }
}
