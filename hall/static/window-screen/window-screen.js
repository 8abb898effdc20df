// The window screen (Q10, Q12): the window's name, the clerk, the number now being
// called or served, or the paused message. `?screen=<id>` picks the screen; two
// positions sharing it are shown side by side.

import { api, takeTokenFromUrl } from "/ui/common/api.js";
import { coalesce, openStream } from "/ui/common/stream.js";
import { apply, register, t } from "/ui/common/i18n.js";

register({
  zh: { staff: "工作人员：{name}", calling: "请", serving: "正在办理", idle: "欢迎办理",
        not_logged_in: "暂停服务", closed: "本窗口暂停服务", paused: "暂停服务",
        no_screen: "请在地址中指定 screen 参数" },
  en: { staff: "Staff: {name}", calling: "Now calling", serving: "Now serving",
        idle: "Welcome", not_logged_in: "Not in service", closed: "Window closed",
        paused: "Service paused", no_screen: "Add ?screen=<id> to the address" },
});

const screen = new URLSearchParams(location.search).get("screen");
const root = document.getElementById("positions");
const offline = document.getElementById("offline");

function position(window) {
  const box = document.createElement("section");
  box.className = `position ${window.state}`;
  box.dataset.window = window.id;
  const name = document.createElement("div");
  name.className = "name";
  name.textContent = window.name;
  const staff = document.createElement("div");
  staff.className = "staff";
  staff.textContent = window.staff_name ? t("staff", { name: window.staff_name }) : "";
  const now = document.createElement("div");
  now.className = "now";
  if ((window.state === "calling" || window.state === "serving") && window.ticket) {
    const label = document.createElement("div");
    label.className = "label";
    label.textContent = t(window.state);
    const number = document.createElement("div");
    number.className = "number";
    number.textContent = window.ticket;
    now.append(label, number);
  } else if (window.state === "paused" || window.state === "closed"
             || window.state === "not_logged_in") {
    const message = document.createElement("div");
    message.className = "message";
    message.textContent = window.pause_message || t(window.state);
    now.append(message);
  } else {
    const idle = document.createElement("div");
    idle.className = "idle";
    idle.textContent = t("idle");
    now.append(idle);
  }
  box.append(name, staff, now);
  return box;
}

async function refresh() {
  const hall = await api("/hall");
  const shown = hall.windows.filter((w) => w.screen === screen || w.id === screen);
  root.replaceChildren(...shown.slice(0, 2).map(position));
}

takeTokenFromUrl();
apply();
if (!screen) {
  root.textContent = t("no_screen");
} else {
  await refresh();
  const later = coalesce(() => refresh().catch(() => {}), 100);
  openStream({
    types: ["ticket.*", "window.*", "day.*"],
    onEvent: later,
    onStatus: (status) => { offline.hidden = status === "online"; if (status === "online") later(); },
  });
}
