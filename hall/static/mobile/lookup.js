// What a citizen looks up: a case's progress by its code, and the service guides.

import { api } from "/ui/common/api.js";
import { t } from "/ui/common/i18n.js";
import { el, fill, reason, stamp } from "./util.js";

// ------------------------------------------------------------------ case query

const query = { code: "", steps: null, shown: "", error: "", busy: false };

function statusLabel(status) {
  const key = `case.status.${status}`;
  const text = t(key);
  return text === key ? status : text;
}

export function renderCase(ctx, root) {
  const form = el("form", { class: "lookup", onsubmit: (e) => { e.preventDefault(); lookUp(ctx); } },
    el("input", { id: "case-code", value: query.code, placeholder: t("case.code"), autocomplete: "off",
      maxlength: "64", oninput: (e) => { query.code = e.target.value; } }),
    el("button", { class: "primary", type: "submit", disabled: query.busy, text: t("case.go") }));
  let result = null;
  if (query.steps) {
    const last = query.steps.length - 1;
    result = el("section", { class: "panel case" },
      el("div", { class: "case-head" }, el("span", { class: "muted small", text: t("case.code") }),
        el("strong", { class: "number", text: query.shown })),
      el("h2", { text: t("case.progress") }),
      el("ol", { class: "timeline", id: "case-steps" }, query.steps.map((step, i) => el("li", {
        class: i === last ? "step latest" : "step", dataset: { status: step.status },
      }, el("div", { class: "step-title" },
        el("strong", { text: statusLabel(step.status) }),
        el("span", { class: "muted small", text: stamp(step.at) })),
      step.message ? el("div", { class: "step-message", text: step.message }) : null))));
  }
  fill(root,
    el("p", { class: "muted small", text: t("case.code.hint") }),
    form,
    query.error ? el("p", { class: "error", role: "alert", id: "case-error", text: query.error }) : null,
    result,
  );
}

async function lookUp(ctx) {
  const code = query.code.trim();
  if (!code) { query.error = t("case.need_code"); ctx.render(); return; }
  query.busy = true;
  query.error = "";
  try {
    query.steps = await api(`/cases/${encodeURIComponent(code)}`);
    query.shown = code;
  } catch (error) {
    query.steps = null;
    query.error = reason(error);
  } finally {
    query.busy = false;
    ctx.render();
  }
}

// ------------------------------------------------------------------ guides

const guides = { categories: null, open: null, guide: null, loading: false };

export function enterGuides(ctx, serviceId) {
  guides.guide = null;
  if (serviceId) loadGuide(ctx, serviceId);
}

async function loadCategories(ctx) {
  if (guides.loading) return;
  guides.loading = true;
  try {
    guides.categories = await api("/guides");
    if (guides.open === null && guides.categories.length) guides.open = guides.categories[0].name;
  } catch {
    guides.categories = [];
  } finally {
    guides.loading = false;
    ctx.render();
  }
}

async function loadGuide(ctx, serviceId) {
  try {
    guides.guide = await api(`/guides/${encodeURIComponent(serviceId)}`);
  } catch (error) {
    guides.guide = { error: reason(error) };
  }
  ctx.render();
}

export function guideTitle() {
  return guides.guide?.name || t("guides.title");
}

export function renderGuides(ctx, root) {
  if (guides.categories === null) {
    loadCategories(ctx);
    fill(root, el("p", { class: "muted", text: t("loading") }));
    return;
  }
  if (!guides.categories.length) {
    fill(root, el("p", { class: "empty", text: t("guides.empty") }));
    return;
  }
  const tabs = el("div", { class: "tabs", role: "tablist" }, guides.categories.map((c) => el("button", {
    class: `tab${c.name === guides.open ? " chosen" : ""}`, type: "button", role: "tab",
    "aria-selected": c.name === guides.open ? "true" : "false",
    onclick: () => { guides.open = c.name; ctx.render(); },
  }, c.name)));
  const shown = guides.categories.find((c) => c.name === guides.open) || guides.categories[0];
  const list = el("ul", { class: "guide-list", id: "guide-list" }, shown.guides.map((g) => el("li", {},
    el("a", { href: `#/guide/${encodeURIComponent(g.service)}`, dataset: { service: g.service } },
      el("span", { text: g.name }),
      g.forms ? el("span", { class: "muted small", text: t("guides.forms", { n: g.forms }) }) : null,
      el("span", { class: "chevron", "aria-hidden": "true", text: "›" })))));
  fill(root, tabs, list);
}

export function renderGuide(ctx, root) {
  const g = guides.guide;
  if (!g) { fill(root, el("p", { class: "muted", text: t("loading") })); return; }
  if (g.error) { fill(root, el("p", { class: "error", text: g.error })); return; }
  const block = (title, ...content) => el("section", { class: "panel guide-block" }, el("h2", { text: title }), ...content);
  fill(root,
    el("div", { class: "guide-head" },
      el("div", { class: "muted small", text: g.category }),
      g.department ? el("div", { class: "muted small", text: t("guide.department", { name: g.department }) }) : null,
      g.summary ? el("p", { text: g.summary }) : null),
    block(t("guide.materials"), g.materials.length
      ? el("ol", { class: "materials", id: "guide-materials" }, g.materials.map((m) => el("li", {},
        el("span", { text: m.name }), m.note ? el("span", { class: "muted small", text: `（${m.note}）` }) : null)))
      : el("p", { class: "muted", text: t("guide.no_materials") })),
    g.steps.length ? block(t("guide.steps"), el("ol", { class: "steps" }, g.steps.map((s) => el("li", { text: s })))) : null,
    g.windows.length || g.direction ? block(t("guide.where"),
      g.direction ? el("p", { text: g.direction }) : null,
      el("ul", { class: "plain" }, g.windows.map((w) => el("li", {
        text: t("guide.floor", { floor: w.floor, area: w.area_name, window: w.name }) })))) : null,
    g.fee ? block(t("guide.fee"), el("p", { text: g.fee })) : null,
    g.time_limit ? block(t("guide.time_limit"), el("p", { text: g.time_limit })) : null,
    g.forms.length ? block(t("guide.forms"), el("ul", { class: "plain" }, g.forms.map((f) => el("li", {},
      el("a", { href: f.url, target: "_blank", rel: "noopener", text: f.title }))))) : null,
    g.basis ? block(t("guide.basis"), el("p", { class: "small", text: g.basis })) : null,
    g.guide_url ? el("a", { class: "button", href: g.guide_url, target: "_blank", rel: "noopener", text: t("guide.more") }) : null,
  );
}
