// Formatting shared by the fleet and device pages: times ago, numbers, elements.

const number = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });
const stamp = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

export const formatNumber = (value) => (value === null || value === undefined ? "–" : number.format(value));
export const formatTime = (iso) => (iso ? stamp.format(new Date(iso)) : "");

export function ago(iso) {
  if (!iso) return "never";
  const seconds = Math.max(0, Math.round((Date.now() - new Date(iso)) / 1000));
  if (seconds < 5) return "just now";
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86400)} d ago`;
}

// An element with a class and text (data never becomes markup), and children.
export function element(tag, className, text, ...children) {
  const made = document.createElement(tag);
  if (className) made.className = className;
  if (text !== undefined && text !== null) made.textContent = text;
  made.append(...children);
  return made;
}

// Elements showing a time ago, refreshed every few seconds: <… data-ago="iso">.
export function keepAgoFresh() {
  setInterval(() => {
    for (const el of document.querySelectorAll("[data-ago]")) el.textContent = ago(el.dataset.ago);
  }, 5000);
}
