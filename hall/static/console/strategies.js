// Calling strategies (Q7): build a chain from the engine's rules and set it for one
// window, a window group, an area or every window, live.
import { api } from "/ui/common/api.js";
import { t } from "/ui/common/i18n.js";
import { el, failed, redraw, ruleLabel, table, toast } from "./dom.js";

const DEFAULT = [{ rule: "transfers_first" }, { rule: "priority_groups_first" },
  { rule: "appointments_due", early_minutes: 10 }, { rule: "fifo" }];

export function mount(root, ctx) {
  let scope = "group";
  let target = "";
  let chain = DEFAULT.map((r) => ({ ...r }));
  let result = { text: "", good: false };

  function targets() {
    const data = ctx.data;
    if (scope === "window") return data.windows.map((w) => [w.id, `${w.name}（${w.id}）`]);
    if (scope === "group") return data.groups.map((g) => [g, g]);
    if (scope === "area") return data.areas.map((a) => [a.id, a.name]);
    return [];
  }

  function chosenWindows() {
    const data = ctx.data;
    if (scope === "all") return data.windows;
    if (scope === "window") return data.windows.filter((w) => w.id === target);
    if (scope === "group") return data.windows.filter((w) => w.groups.includes(target));
    return data.windows.filter((w) => w.area === target);
  }

  function ruleInfo(name) {
    return ctx.data.rules.find((r) => r.name === name) || { name, params: {}, exhaustive: false };
  }

  function chainItem(rule, index) {
    const info = ruleInfo(rule.rule);
    const params = Object.entries(info.params).map(([param, fallback]) => el("label", {},
      `${t(`param_${param}`)} `,
      el("input", { type: "number", min: 0, step: 1, value: rule[param] ?? fallback,
        dataset: { param }, "aria-label": t(`param_${param}`),
        onchange: (e) => { rule[param] = Number(e.target.value); } }),
      ` ${t("minutes")}`));
    const move = (delta) => {
      const other = index + delta;
      if (other < 0 || other >= chain.length) return;
      [chain[index], chain[other]] = [chain[other], chain[index]];
      render();
    };
    return el("li", { dataset: { rule: rule.rule } },
      el("span", { class: "pos" }, index + 1),
      el("span", { class: "label" }, t(`rule_${rule.rule}`)),
      params,
      el("button", { type: "button", title: t("up"), "aria-label": t("up"),
        disabled: index === 0, onclick: () => move(-1) }, "↑"),
      el("button", { type: "button", title: t("down"), "aria-label": t("down"),
        disabled: index === chain.length - 1, onclick: () => move(1) }, "↓"),
      el("button", { type: "button", title: t("remove"), "aria-label": t("remove"),
        dataset: { remove: rule.rule }, onclick: () => { chain.splice(index, 1); render(); } }, "✕"));
  }

  function loadCurrent() {
    const first = chosenWindows()[0];
    if (first) chain = first.strategy.map((r) => ({ ...r }));
    render();
  }

  async function applyChain() {
    if (!chain.length) { result = { text: t("empty_chain"), good: false }; render(); return; }
    const rules = chain.map((rule) => {
      const out = { rule: rule.rule };
      for (const param of Object.keys(ruleInfo(rule.rule).params)) {
        if (rule[param] !== undefined) out[param] = Number(rule[param]);
      }
      return out;
    });
    try {
      const answer = await api("/strategies", { method: "PUT",
        body: { scope, target: scope === "all" ? "" : target, rules } });
      await ctx.reload();
      const names = answer.windows.map((id) => ctx.windowName(id)).join("、");
      result = { text: t("applied", { names }), good: true };
      toast(result.text);
    } catch (error) {
      result = { text: t("failed", { reason: error.message }), good: false };
      failed(error);
    }
    render();
  }

  function render() {
    const options = targets();
    if (scope !== "all" && !options.some(([id]) => id === target)) target = options[0]?.[0] ?? "";
    const unused = ctx.data.rules.filter((r) => !chain.some((c) => c.rule === r.name));
    const adder = el("select", { name: "add", "aria-label": t("add_rule") },
      unused.map((r) => el("option", { value: r.name }, t(`rule_${r.name}`))));
    const names = chosenWindows().map((w) => w.name).join("、") || "—";
    const form = el("form", { class: "panel form", id: "strategy-form",
      onsubmit: (e) => { e.preventDefault(); applyChain(); } },
      el("div", { class: "row" },
        el("label", { for: "scope" }, t("scope")),
        el("select", { id: "scope", name: "scope",
          onchange: (e) => { scope = e.target.value; target = ""; result.text = ""; render(); } },
          ["window", "group", "area", "all"].map((s) => el("option",
            { value: s, selected: s === scope }, t(`scope_${s}`))))),
      scope === "all" ? null : el("div", { class: "row" },
        el("label", { for: "target" }, t("target")),
        el("select", { id: "target", name: "target",
          onchange: (e) => { target = e.target.value; result.text = ""; render(); } },
          options.map(([id, label]) => el("option", { value: id, selected: id === target }, label)))),
      el("p", { class: "hint", id: "applies-to" }, t("applies_to", { names })),
      el("div", {}, el("label", {}, t("rules"))),
      el("ol", { class: "chain", id: "chain" }, chain.map(chainItem)),
      unused.length ? el("div", { class: "row" }, adder,
        el("button", { type: "button", id: "add-rule", onclick: () => {
          const info = ruleInfo(adder.value);
          chain.push({ rule: info.name, ...info.params });
          render();
        } }, t("add_rule"))) : null,
      el("p", { class: "hint" }, t("chain_hint")),
      el("div", { class: "row" },
        el("button", { class: "primary", type: "submit", id: "apply-strategy" }, t("apply")),
        el("button", { type: "button", onclick: loadCurrent }, t("load_current")),
        el("button", { type: "button", onclick: () => {
          chain = DEFAULT.map((r) => ({ ...r })); render(); } }, t("reset_default"))),
      el("p", { class: `result ${result.good ? "good" : "error"}`, id: "strategy-result",
        role: "status" }, result.text));
    root.replaceChildren(
      el("header", {}, el("h2", {}, t("strategies_title"))),
      el("div", { class: "split" }, form,
        el("div", { class: "stack" }, el("h3", {}, t("current_strategies")), tableBox)));
    renderTable();
  }

  const tableBox = el("div", {});

  function renderTable() {
    redraw(tableBox, table([
      { key: "window", label: t("col_window"), cell: (w) => w.name },
      { key: "groups", label: t("col_groups"), cell: (w) => w.groups.join("、") || "—" },
      { key: "area", label: t("col_area"), cell: (w) => ctx.areaName(w.area) },
      { key: "strategy", label: t("col_strategy"), cell: (w) => w.strategy.map(
        (r, i) => el("span", { class: "tag", title: JSON.stringify(r) }, `${i + 1}. ${ruleLabel(r)}`)) },
    ], ctx.data.windows, { rowAttrs: (w) => ({ dataset: { window: w.id,
      strategy: w.strategy.map((r) => r.rule).join(",") } }) }));
  }

  return {
    stale: true,
    async show() { this.stale = false; render(); },
    live() { renderTable(); },
    relabel() { render(); },
  };
}
