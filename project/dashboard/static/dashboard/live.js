// A dashboard page's live socket: reconnects with backoff, shows its state in the
// page's status pill, and stops (with a way out) when the server says the session
// is not allowed in: 4401 login required, 4403 staff only (project/dashboard/sockets.py),
// 4404 no such device (project/dashboard/device_socket.py). Returns what the page
// sends with: `send(message)` on the socket open now, if any.

const LOGIN_REQUIRED = 4401;
const STAFF_REQUIRED = 4403;
const NOT_FOUND = 4404;

export function live(path, onMessage, status = document.getElementById("live-status")) {
  let delay = 1000;
  let socket = null;
  const show = (state, text) => {
    status.dataset.state = state;
    status.textContent = text;
  };
  const open = () => {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(`${scheme}//${location.host}${path}`);
    socket.onopen = () => show("live", "live");
    socket.onmessage = (event) => {
      delay = 1000;
      onMessage(JSON.parse(event.data));
    };
    socket.onclose = (event) => {
      if (event.code === LOGIN_REQUIRED) {
        show("closed", "logged out: to the login page…");
        location.assign(`${status.dataset.login}?next=${encodeURIComponent(location.pathname)}`);
        return;
      }
      if (event.code === STAFF_REQUIRED || event.code === NOT_FOUND) {
        show("closed", event.reason || "refused");
        return;
      }
      show("connecting", `offline, retrying in ${Math.round(delay / 1000)} s`);
      setTimeout(open, delay);
      delay = Math.min(delay * 2, 15000);
    };
  };
  open();
  return {
    send(message) {
      if (socket.readyState !== WebSocket.OPEN) return false;
      socket.send(JSON.stringify(message));
      return true;
    },
  };
}

// A table cell (or any element) holding text only: data never becomes markup.
export function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

export function badge(text, className) {
  const span = document.createElement("span");
  span.className = `badge ${className ?? text}`;
  span.textContent = text;
  return span;
}
