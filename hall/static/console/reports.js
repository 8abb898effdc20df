// Reports (Q13): GET /api/v1/stats over a date range, by day, hour or month, for the
// whole hall or by service, window, staff, area or source. Charts with Plotly.js
// (loaded on first use: it is large and only this view needs it), a table of the
// rows, and the API's own CSV as the download.
import { api } from "/ui/common/api.js";
import { t } from "/ui/common/i18n.js";
import { el, failed, seconds, table } from "./dom.js";

const FONT = '"Noto Sans CJK SC", "Source Han Sans SC", "Microsoft YaHei", system-ui, sans-serif';
const COLOURS = ["#0b5cad", "#c4161c", "#1f8a4c", "#c27803", "#6a3fb5", "#00838f", "#ad1457",
  "#5d4037", "#9aa5b1"];
const TOP = 8;

let plotly = null;
function loadPlotly() {
  if (!plotly) {
    plotly = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = "/ui/vendor/plotly.min.js";
      script.onload = () => resolve(window.Plotly);
      script.onerror = () => reject(new Error("plotly.min.js did not load"));
      document.head.append(script);
    });
  }
  return plotly;
}

function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

function shift(day, days) {
  const moment = new Date(`${day}T00:00:00Z`);
  moment.setUTCDate(moment.getUTCDate() + days);
  return isoDay(moment);
}

function sum(rows, field) {
  return rows.reduce((total, row) => total + (row[field] || 0), 0);
}

// The mean of means, each weighted by how many values it is the mean of.
function weighted(rows, mean, count) {
  const n = sum(rows.filter((r) => r[mean] !== null), count);
  if (!n) return null;
  return rows.reduce((total, r) => total + (r[mean] === null ? 0 : r[mean] * r[count]), 0) / n;
}

function minutes(value) {
  return value === null ? "—" : t("min_n", { n: (value / 60).toFixed(1) });
}

export function mount(root, ctx) {
  const today = ctx.data.day || isoDay(new Date());
  let query = { from: shift(today, -6), to: today, by: "day", group: "hall" };
  let reports = null;   // {main, hall, source}

  function params(group, extra = {}) {
    return new URLSearchParams({ from: query.from, to: query.to, by: query.by, group, ...extra });
  }

  async function load() {
    loadPlotly().catch(() => {});  // fetched while the figures are asked for; render tells a failure
    const wanted = [...new Set([query.group, "hall", "source"])];
    const answers = await Promise.all(wanted.map((g) => api(`/stats?${params(g)}`)));
    const of = Object.fromEntries(wanted.map((g, i) => [g, answers[i]]));
    reports = { main: of[query.group], hall: of.hall, source: of.source };
    await render();
  }

  async function download() {
    try {
      const response = await api(`/stats?${params(query.group, { format: "csv" })}`, { raw: true });
      const disposition = response.headers.get("Content-Disposition") || "";
      const name = /filename="([^"]+)"/.exec(disposition)?.[1]
        || `stats_${query.by}_${query.group}_${query.from}_${query.to}.csv`;
      const url = URL.createObjectURL(await response.blob());
      const link = el("a", { href: url, download: name, hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (error) {
      failed(error);
    }
  }

  function label(row, group) {
    if (group === "source") return t(`src_${row.key}`);
    if (row.key === "" && group !== "hall") return t("unassigned");
    return row.name;
  }

  function layout(title, extra = {}) {
    return {
      title: { text: title, font: { size: 14 }, x: 0.02 },
      font: { family: FONT, size: 12, color: "#1d2733" },
      margin: { l: 48, r: 16, t: 36, b: 40 },
      paper_bgcolor: "#ffffff", plot_bgcolor: "#ffffff",
      legend: { orientation: "h", y: -0.18 },
      xaxis: { type: "category", automargin: true },
      colorway: COLOURS,
      ...extra,
    };
  }

  function noData(rows) {
    return rows.length ? [] : [{ text: t("no_data"), showarrow: false, xref: "paper", yref: "paper",
      x: 0.5, y: 0.5, font: { size: 15, color: "#5f6b7a" } }];
  }

  function ticketsChart(main) {
    const rows = main.rows;
    const periods = [...new Set(rows.map((r) => r.period))];
    if (query.group === "hall") {
      const byPeriod = (field) => periods.map((p) => sum(rows.filter((r) => r.period === p), field));
      return [
        { type: "bar", name: t("k_tickets"), x: periods, y: byPeriod("tickets") },
        { type: "bar", name: t("k_served"), x: periods, y: byPeriod("served"),
          marker: { color: "#1f8a4c" } },
      ];
    }
    const totals = new Map();
    for (const r of rows) totals.set(r.key, (totals.get(r.key) || 0) + r.tickets);
    const keys = [...totals.keys()].sort((a, b) => totals.get(b) - totals.get(a));
    const shown = keys.slice(0, TOP);
    const traces = shown.map((key) => {
      const mine = rows.filter((r) => r.key === key);
      return { type: "bar", name: label(mine[0], query.group), x: periods,
        y: periods.map((p) => sum(mine.filter((r) => r.period === p), "tickets")) };
    });
    if (keys.length > TOP) {
      const rest = rows.filter((r) => !shown.includes(r.key));
      traces.push({ type: "bar", name: t("others"), x: periods,
        y: periods.map((p) => sum(rest.filter((r) => r.period === p), "tickets")) });
    }
    return traces.length ? traces : [{ type: "bar", name: t("k_tickets"), x: [], y: [] }];
  }

  function timesChart(hall) {
    const rows = hall.rows;
    const x = rows.map((r) => r.period);
    const minutes = (field) => rows.map((r) => (r[field] === null ? null : +(r[field] / 60).toFixed(1)));
    return [
      { type: "scatter", mode: "lines+markers", name: t("wait_mean"), x, y: minutes("wait_mean_s"),
        line: { color: "#0b5cad" } },
      { type: "scatter", mode: "lines+markers", name: t("wait_p90"), x, y: minutes("wait_p90_s"),
        line: { color: "#0b5cad", dash: "dot" } },
      { type: "scatter", mode: "lines+markers", name: t("service_mean"), x, y: minutes("service_mean_s"),
        line: { color: "#6a3fb5" } },
      { type: "scatter", mode: "lines+markers", name: t("service_p90"), x, y: minutes("service_p90_s"),
        line: { color: "#6a3fb5", dash: "dot" } },
    ];
  }

  function sourceChart(source) {
    const totals = new Map();
    for (const r of source.rows) totals.set(r.key, (totals.get(r.key) || 0) + r.tickets);
    const keys = [...totals.keys()];
    return [{ type: "pie", hole: 0.45, sort: false, labels: keys.map((k) => t(`src_${k}`)),
      values: keys.map((k) => totals.get(k)), textinfo: "label+percent",
      marker: { colors: COLOURS } }];
  }

  function ratingsChart(main) {
    const rated = main.rows.filter((r) => r.ratings > 0);
    const groups = new Map();
    const keyOf = query.group === "hall" ? (r) => r.period : (r) => r.key;
    for (const r of rated) {
      const k = keyOf(r);
      if (!groups.has(k)) groups.set(k, []);
      groups.get(k).push(r);
    }
    const keys = [...groups.keys()];
    const names = keys.map((k) => (query.group === "hall" ? k : label(groups.get(k)[0], query.group)));
    const means = keys.map((k) => +weighted(groups.get(k), "rating_mean", "ratings").toFixed(2));
    const counts = keys.map((k) => sum(groups.get(k), "ratings"));
    return [{ type: "bar", name: t("k_rating"), x: names, y: means, marker: { color: "#c27803" },
      text: means.map((m, i) => `${m}（${t("ratings_n", { n: counts[i] })}）`), textposition: "auto",
      hovertemplate: "%{x}: %{y}<extra></extra>" }];
  }

  function kpis(hall) {
    const rows = hall.rows;
    const rating = weighted(rows, "rating_mean", "ratings");
    const items = [
      ["tickets", t("k_tickets"), sum(rows, "tickets")],
      ["served", t("k_served"), sum(rows, "served")],
      ["no_shows", t("k_no_shows"), sum(rows, "no_shows")],
      ["wait", t("k_wait"), minutes(weighted(rows, "wait_mean_s", "called"))],
      ["service", t("k_service"), minutes(weighted(rows, "service_mean_s", "served"))],
      ["rating", t("k_rating"), rating === null ? "—" : rating.toFixed(2)],
    ];
    return el("div", { class: "kpis", id: "kpis" }, items.map(([key, name, value]) =>
      el("div", { class: "kpi", dataset: { kpi: key } },
        el("div", { class: "value" }, value), el("div", { class: "label" }, name))));
  }

  function rowsTable(main) {
    const pct = (v) => (v === null ? "—" : `${(v * 100).toFixed(1)}%`);
    const columns = [
      { key: "period", label: t("c_period"), cell: (r) => r.period },
      ...(query.group === "hall" ? [] : [{ key: "name", label: t("c_name"),
        cell: (r) => label(r, query.group) }]),
      ...["tickets", "served", "no_shows", "skipped", "transfers", "cancelled", "expired"].map((f) => (
        { key: f, label: t(`c_${f}`), num: true, cell: (r) => r[f] })),
      ...["wait_mean", "wait_p90", "service_mean", "service_p90"].map((f) => (
        { key: f, label: t(`c_${f}`), num: true, cell: (r) => seconds(r[`${f}_s`]) })),
      { key: "ratings", label: t("c_ratings"), num: true, cell: (r) => r.ratings },
      { key: "rating_mean", label: t("c_rating_mean"), num: true,
        cell: (r) => (r.rating_mean === null ? "—" : r.rating_mean.toFixed(2)) },
      { key: "low", label: t("c_low"), num: true, cell: (r) => pct(r.low_rating_share) },
    ];
    return table(columns, main.rows, { empty: t("no_data") });
  }

  function filters() {
    const select = (name, values, prefix) => el("select", { id: `report-${name}`, name,
      "aria-label": t(name) }, values.map((v) => el("option", { value: v, selected: v === query[name] },
      t(`${prefix}${v}`))));
    return el("form", { class: "filters", id: "report-filter", onsubmit: (e) => {
      e.preventDefault();
      const f = e.target.elements;
      query = { from: f.from.value, to: f.to.value || f.from.value, by: f.by.value, group: f.group.value };
      load().catch(failed);
    } },
      el("label", { for: "report-from" }, t("from")),
      el("input", { type: "date", id: "report-from", name: "from", value: query.from, required: true }),
      el("label", { for: "report-to" }, t("to")),
      el("input", { type: "date", id: "report-to", name: "to", value: query.to }),
      el("label", { for: "report-by" }, t("by")), select("by", ["day", "hour", "month"], "by_"),
      el("label", { for: "report-group" }, t("group")),
      select("group", ["hall", "service", "window", "staff", "area", "source"], "group_"),
      el("button", { class: "primary", type: "submit", id: "report-query" }, t("query")),
      el("button", { type: "button", id: "report-csv", onclick: download }, t("export_csv")));
  }

  // The figures and the table first, the charts once Plotly is there: parsing its 4.6 MB
  // and drawing four charts takes seconds on a slow PC, and nothing else waits for it.
  async function render() {
    const charts = ["tickets", "times", "source", "ratings"].map((name) =>
      el("div", { class: "chart", id: `chart-${name}` }));
    const notes = [];
    if (reports.main.missing_days.length) {
      notes.push(el("p", { class: "missing" },
        t("missing_days", { days: reports.main.missing_days.join("、") })));
    }
    root.replaceChildren(
      el("header", {}, el("h2", {}, t("reports_title")), filters()),
      ...notes,
      kpis(reports.hall),
      el("div", { class: "charts" }, charts),
      el("div", { class: "report-table" }, rowsTable(reports.main)));
    const Plotly = await loadPlotly();
    const config = { displayModeBar: false, responsive: true };
    const stacked = query.group === "hall" ? "group" : "stack";
    await Promise.all([
      Plotly.react(charts[0], ticketsChart(reports.main),
        layout(t("chart_tickets"), { barmode: stacked, annotations: noData(reports.main.rows) }), config),
      Plotly.react(charts[1], timesChart(reports.hall),
        layout(t("chart_times"), { annotations: noData(reports.hall.rows),
          yaxis: { rangemode: "tozero" } }), config),
      Plotly.react(charts[2], sourceChart(reports.source),
        layout(t("chart_source"), { annotations: noData(reports.source.rows),
          legend: { orientation: "v", x: 1, y: 0.5 } }), config),
      Plotly.react(charts[3], ratingsChart(reports.main),
        layout(t("chart_ratings"), { yaxis: { range: [0, 5.3] },
          annotations: noData(reports.main.rows.filter((r) => r.ratings > 0)) }), config),
    ]);
  }

  return {
    async show() { if (!reports) await load(); else await render(); },
    relabel() { if (reports) render().catch(failed); },
    // Today's figures are live: a report that covers today follows the hall.
    live() { if (reports?.main.live_day) load().catch(failed); },
  };
}
