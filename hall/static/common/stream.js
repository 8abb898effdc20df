// The hall's event stream (GET /api/v1/events): every committed event in order. A page
// that loses its connection asks again with `since=<last seq>` and gets exactly what it
// missed, so a board that was offline for a minute is right again the moment it is back.

import { token } from "./api.js";

export function openStream({ types = [], area = null, onEvent, onStatus = () => {}, since = null }) {
  let last = since;
  let socket = null;
  let delay = 500;
  let closed = false;

  function url() {
    const query = new URLSearchParams();
    if (last !== null) query.set("since", String(last));
    for (const type of types) query.append("type", type);
    if (area) query.set("area", area);
    const bearer = token();
    if (bearer) query.set("access_token", bearer);
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    return `${scheme}://${location.host}/api/v1/events?${query}`;
  }

  function connect() {
    socket = new WebSocket(url());
    socket.onopen = () => { delay = 500; onStatus("online"); };
    socket.onmessage = (message) => {
      const event = JSON.parse(message.data);
      if (typeof event.seq === "number") {
        if (last !== null && event.seq <= last) return;
        last = event.seq;
      }
      onEvent(event);
    };
    socket.onclose = () => {
      onStatus("offline");
      if (closed) return;
      setTimeout(connect, delay * (0.8 + Math.random() * 0.4));
      delay = Math.min(delay * 2, 15000);
    };
  }

  connect();
  return {
    get last() { return last; },
    close() { closed = true; if (socket) socket.close(); },
  };
}

// Calls `refresh` at most every `ms` milliseconds however many events ask for it: a burst
// of tickets redraws a board once, not once per ticket.
export function coalesce(refresh, ms = 200) {
  let timer = null;
  return () => {
    if (timer) return;
    timer = setTimeout(() => { timer = null; refresh(); }, ms);
  };
}
