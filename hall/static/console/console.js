// The manager's console (Q7, Q13, Q14, D8, G3): windows, calling strategies, service
// hours and quotas, devices, signage, the audit log and reports. Managers and admins
// only: a clerk's login is refused here (and every manager route refuses it anyway).

import { api, ApiError, login, setToken, takeTokenFromUrl, token } from "/ui/common/api.js";
import { apply, languageSwitch, onLanguage, t } from "/ui/common/i18n.js";
import { coalesce, openStream } from "/ui/common/stream.js";
import "./strings.js";
import { setTimeZone } from "./dom.js";
import * as windows from "./windows.js";
import * as strategies from "./strategies.js";
import * as services from "./services.js";
import * as devices from "./devices.js";
import * as signage from "./signage.js";
import * as audit from "./audit.js";
import * as reports from "./reports.js";

const MANAGERS = ["manager", "admin"];
const VIEWS = { windows, strategies, services, devices, signage, audit, reports };

const loginBox = document.getElementById("login");
const loginForm = document.getElementById("login-form");
const loginError = document.getElementById("login-error");
const app = document.getElementById("app");
const who = document.getElementById("who");
const logoutButton = document.getElementById("logout");
const offline = document.getElementById("offline");

// What every view reads: GET /api/v1/console, reloaded when windows or tickets change.
const ctx = {
  data: null,
  async reload() {
    ctx.data = await api("/console");
    return ctx.data;
  },
  serviceName(id) {
    return ctx.data?.services.find((s) => s.id === id)?.name ?? id;
  },
  windowName(id) {
    return ctx.data?.windows.find((w) => w.id === id)?.name ?? id;
  },
  areaName(id) {
    return ctx.data?.areas.find((a) => a.id === id)?.name ?? id;
  },
};

const mounted = {};
let current = null;
let stream = null;

function showLogin(message = "") {
  app.hidden = true;
  logoutButton.hidden = true;
  who.textContent = "";
  loginBox.hidden = false;
  loginError.textContent = message;
  loginForm.elements.staff.focus();
}

function viewFromHash() {
  const name = location.hash.replace(/^#/, "");
  return name in VIEWS ? name : "windows";
}

async function show(name) {
  current = name;
  for (const link of document.querySelectorAll("#nav a")) {
    link.classList.toggle("active", link.dataset.view === name);
  }
  for (const key of Object.keys(VIEWS)) {
    document.getElementById(`view-${key}`).hidden = key !== name;
  }
  if (!mounted[name]) {
    mounted[name] = VIEWS[name].mount(document.getElementById(`view-${name}`), ctx);
  }
  await mounted[name].show();
}

const refreshLive = coalesce(async () => {
  try {
    await ctx.reload();
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) { showLogin(t("session_over")); return; }
    throw error;
  }
  for (const [name, view] of Object.entries(mounted)) {
    if (name === current) view.live?.();
    else view.stale = true;
  }
}, 250);

const refreshDevices = coalesce(() => {
  if (current === "devices") mounted.devices?.live?.();
}, 250);

function startStream() {
  if (stream) return;
  stream = openStream({
    types: ["window.*", "ticket.*", "day.*", "device.*"],
    onEvent: (event) => {
      if (event.type?.startsWith("device.")) refreshDevices();
      else refreshLive();
    },
    onStatus: (status) => {
      offline.hidden = status === "online";
      if (status === "online" && ctx.data) refreshLive();
    },
  });
}

async function enter() {
  const data = await ctx.reload();
  loginBox.hidden = true;
  app.hidden = false;
  logoutButton.hidden = false;
  who.textContent = data.viewer.name;
  setTimeZone(data.time_zone);
  document.getElementById("hall-name").textContent = data.hall;
  startStream();
  await show(viewFromHash());
}

async function start() {
  if (!token()) { showLogin(); return; }
  try {
    await enter();
  } catch (error) {
    if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
      setToken("");
      showLogin(error.status === 403 ? t("not_manager") : "");
    } else {
      throw error;
    }
  }
}

loginForm.addEventListener("submit", async (submitted) => {
  submitted.preventDefault();
  loginError.textContent = "";
  setToken("");
  const staff = loginForm.elements.staff.value.trim();
  const password = loginForm.elements.password.value;
  let session;
  try {
    session = await login(staff, password);
  } catch (error) {
    loginError.textContent = error instanceof ApiError && error.code === "bad_credentials"
      ? t("bad_credentials") : t("failed", { reason: error.message });
    return;
  }
  if (!MANAGERS.includes(session.role)) {
    // A clerk's session is of no use here: end it rather than leave it lying around.
    await api("/auth/logout", { method: "POST" }).catch(() => {});
    setToken("");
    loginForm.elements.password.value = "";
    loginError.textContent = t("not_manager");
    return;
  }
  loginForm.elements.password.value = "";
  await enter();
});

logoutButton.addEventListener("click", async () => {
  await api("/auth/logout", { method: "POST" }).catch(() => {});
  setToken("");
  stream?.close();
  stream = null;
  showLogin();
});

window.addEventListener("hashchange", () => { if (!app.hidden) show(viewFromHash()); });
onLanguage(() => { for (const view of Object.values(mounted)) view.relabel?.(); });

takeTokenFromUrl();
apply();
languageSwitch(document.getElementById("lang"));
await start();
