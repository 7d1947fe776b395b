/**
 * The operator console (/console; docs/metrics.md): asks for the operator token, keeps it in this
 * tab's sessionStorage, and draws GET /console/data as SVG time series, updated every 5 seconds.
 * Every chart has a text equivalent (a summary line and a table of the last minute), and every
 * figure shown is an aggregate the CPS already limits to route patterns, statuses and error codes.
 */
import "../common/base.css";
import "./style.css";
import type { ConsoleData, SeriesPoint } from "../../src/metrics/render.js";

interface Line {
  name: string;
  values: (number | null)[];
}

interface ChartDef {
  id: string;
  title: string;
  unit: string;
  lines(data: ConsoleData): Line[];
}

const TOKEN_KEY = "cps-operator-token";
const POLL_MS = 5_000;
/** Most lines one chart draws; the rest are summed into "other". */
const MAX_LINES = 6;
const SVG_NS = "http://www.w3.org/2000/svg";

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

/** The top `MAX_LINES - 1` keys by total, the rest summed as "other". */
function byKey(data: ConsoleData, pick: (p: SeriesPoint) => Record<string, number>): Line[] {
  const totals = new Map<string, number>();
  for (const p of data.series)
    for (const [k, v] of Object.entries(pick(p))) totals.set(k, (totals.get(k) ?? 0) + v);
  const keys = [...totals].sort((a, b) => b[1] - a[1]).map(([k]) => k);
  const shown = keys.length <= MAX_LINES ? keys : keys.slice(0, MAX_LINES - 1);
  const rest = keys.slice(shown.length);
  const lines = shown.map((k) => ({ name: k, values: data.series.map((p) => pick(p)[k] ?? 0) }));
  if (rest.length > 0) {
    lines.push({
      name: `other (${rest.length})`,
      values: data.series.map((p) => rest.reduce((n, k) => n + (pick(p)[k] ?? 0), 0)),
    });
  }
  return lines;
}

const ms = (s: number | null) => (s === null ? null : s * 1000);

const CHARTS: ChartDef[] = [
  {
    id: "requests",
    title: "Requests per second, by route",
    unit: "req/s",
    lines: (d) => byKey(d, (p) => p.requestsPerSecond),
  },
  {
    id: "stores",
    title: "Stores and retrievals, per 5 s",
    unit: "per 5 s",
    lines: (d) => [
      { name: "stores", values: d.series.map((p) => p.stores) },
      { name: "retrievals", values: d.series.map((p) => p.retrievals) },
    ],
  },
  {
    id: "live",
    title: "Live blobs, in total",
    unit: "blobs",
    lines: (d) => [{ name: "live blobs", values: d.series.map((p) => p.liveBlobs) }],
  },
  {
    id: "tokens",
    title: "Storage tokens issued and spent, per 5 s",
    unit: "per 5 s",
    lines: (d) => [
      { name: "issued", values: d.series.map((p) => p.tokensIssued) },
      { name: "spent", values: d.series.map((p) => p.tokensSpent) },
    ],
  },
  {
    id: "errors",
    title: "Problem answers by code, per 5 s",
    unit: "per 5 s",
    lines: (d) => byKey(d, (p) => p.errors),
  },
  {
    id: "subscribers",
    title: "Push subscribers",
    unit: "sockets",
    lines: (d) => [{ name: "subscribers", values: d.series.map((p) => p.subscribers) }],
  },
  {
    id: "latency",
    title: "Latency p50 and p99, all routes",
    unit: "ms",
    lines: (d) => [
      { name: "p50", values: d.series.map((p) => ms(p.p50)) },
      { name: "p99", values: d.series.map((p) => ms(p.p99)) },
    ],
  },
];

function fmt(n: number | null, unit = ""): string {
  if (n === null || !Number.isFinite(n)) return "–";
  const text =
    n >= 100 || Number.isInteger(n) ? Math.round(n).toLocaleString("en") : n.toFixed(n >= 10 ? 1 : 2);
  return unit ? `${text} ${unit}` : text;
}

/** 1, 2 or 5 times a power of ten, at least `max` (and at least 1). */
function niceMax(max: number): number {
  if (!(max > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(max));
  for (const m of [1, 2, 5, 10]) if (m * p >= max) return m * p;
  return 10 * p;
}

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

const W = 600;
const H = 200;
const PAD = { left: 56, right: 8, top: 12, bottom: 26 };

/** Draws the lines into a fresh SVG (classes s0..s5 give each line its colour and dash pattern). */
function drawChart(lines: Line[], points: number, unit: string, labelledBy: string): SVGSVGElement {
  const root = svg("svg", {
    viewBox: `0 0 ${W} ${H}`,
    role: "img",
    "aria-labelledby": labelledBy,
    class: "plot",
  });
  const max = niceMax(Math.max(0, ...lines.flatMap((l) => l.values.filter((v): v is number => v !== null))));
  const x = (i: number) => PAD.left + ((W - PAD.left - PAD.right) * i) / Math.max(1, points - 1);
  const y = (v: number) => H - PAD.bottom - ((H - PAD.top - PAD.bottom) * v) / max;
  for (const frac of [0, 0.5, 1]) {
    root.append(
      svg("line", { x1: PAD.left, x2: W - PAD.right, y1: y(max * frac), y2: y(max * frac), class: "grid" }),
    );
    const label = svg("text", { x: PAD.left - 6, y: y(max * frac) + 4, class: "tick", "text-anchor": "end" });
    label.textContent = fmt(max * frac);
    root.append(label);
  }
  const left = svg("text", { x: PAD.left, y: H - 6, class: "tick" });
  left.textContent = "−15 min";
  const right = svg("text", { x: W - PAD.right, y: H - 6, class: "tick", "text-anchor": "end" });
  right.textContent = "now";
  const unitLabel = svg("text", { x: PAD.left + 4, y: PAD.top + 10, class: "tick unit" });
  unitLabel.textContent = unit;
  root.append(left, right, unitLabel);
  lines.forEach((line, k) => {
    // Gaps (no requests in an interval, for latency) split the line.
    let run: string[] = [];
    const flush = () => {
      if (run.length > 0) {
        root.append(
          svg(run.length === 1 ? "circle" : "polyline", {
            ...(run.length === 1
              ? { cx: run[0]!.split(",")[0]!, cy: run[0]!.split(",")[1]!, r: 2.5 }
              : { points: run.join(" ") }),
            class: `series s${k % MAX_LINES}`,
          }),
        );
      }
      run = [];
    };
    line.values.forEach((v, i) => {
      if (v === null) flush();
      else run.push(`${x(i).toFixed(1)},${y(v).toFixed(1)}`);
    });
    flush();
  });
  return root;
}

/** The text equivalent: now and peak of each line, then the last minute as a table. */
function describe(def: ChartDef, lines: Line[], data: ConsoleData, figure: HTMLElement): void {
  const summary = figure.querySelector<HTMLParagraphElement>(".summary")!;
  summary.textContent =
    lines.length === 0
      ? "No traffic in the last 15 minutes."
      : lines
          .map((l) => {
            const vals = l.values.filter((v): v is number => v !== null);
            return `${l.name}: now ${fmt(l.values.at(-1) ?? null, def.unit)}, peak ${fmt(vals.length ? Math.max(...vals) : null, def.unit)}`;
          })
          .join("; ");
  const legend = figure.querySelector<HTMLUListElement>(".legend")!;
  legend.replaceChildren(
    ...lines.map((l, k) => {
      const li = document.createElement("li");
      const swatch = svg("svg", { width: 28, height: 10, "aria-hidden": "true", class: "swatch" });
      swatch.append(svg("line", { x1: 0, x2: 28, y1: 5, y2: 5, class: `series s${k % MAX_LINES}` }));
      li.append(swatch, document.createTextNode(l.name));
      return li;
    }),
  );
  const table = figure.querySelector<HTMLTableElement>("table")!;
  const last = data.series.length;
  const from = Math.max(0, last - 12);
  const head = document.createElement("tr");
  head.append(th("Interval start", "col"), ...lines.map((l) => th(l.name, "col")));
  const rows = [];
  for (let i = last - 1; i >= from; i--) {
    const tr = document.createElement("tr");
    tr.append(th(new Date(data.series[i]!.t).toLocaleTimeString("en-GB"), "row"));
    for (const l of lines) {
      const td = document.createElement("td");
      td.textContent = fmt(l.values[i] ?? null);
      tr.append(td);
    }
    rows.push(tr);
  }
  table.tHead!.replaceChildren(head);
  table.tBodies[0]!.replaceChildren(...rows);
}

function th(text: string, scope: "col" | "row"): HTMLTableCellElement {
  const cell = document.createElement("th");
  cell.scope = scope;
  cell.textContent = text;
  return cell;
}

function chartFigure(def: ChartDef): HTMLElement {
  const figure = document.createElement("figure");
  figure.className = "chart";
  figure.id = `chart-${def.id}`;
  figure.innerHTML = `
    <figcaption id="cap-${def.id}">${def.title}</figcaption>
    <div class="plot-box"></div>
    <ul class="legend" aria-label="Lines"></ul>
    <p class="summary" id="sum-${def.id}"></p>
    <details><summary>Last minute as a table</summary>
      <div class="scroll" tabindex="0" role="region" aria-label="${def.title}: last minute">
        <table><thead></thead><tbody></tbody></table>
      </div>
    </details>`;
  return figure;
}

function render(data: ConsoleData): void {
  for (const def of CHARTS) {
    const figure = $(`chart-${def.id}`);
    const lines = def.lines(data);
    figure
      .querySelector(".plot-box")!
      .replaceChildren(drawChart(lines, data.series.length, def.unit, `cap-${def.id} sum-${def.id}`));
    describe(def, lines, data, figure);
    // What a test (and a curious operator) can read: the sum of everything drawn.
    const sum = lines.reduce((n, l) => n + l.values.reduce<number>((a, v) => a + (v ?? 0), 0), 0);
    figure.dataset.sum = String(Math.round(sum * 1000) / 1000);
  }
  const now = data.series.at(-2) ?? data.series.at(-1);
  $("gauge-live").textContent = fmt(data.gauges.liveBlobs);
  $("gauge-subscribers").textContent = fmt(data.gauges.subscribers);
  $("gauge-rps").textContent = fmt(
    now ? Object.values(now.requestsPerSecond).reduce((a, b) => a + b, 0) : null,
  );
  $("gauge-p99").textContent = fmt(ms(now?.p99 ?? null), "ms");
  const body = $<HTMLTableElement>("routes").tBodies[0]!;
  body.replaceChildren(
    ...data.routes.map((r) => {
      const tr = document.createElement("tr");
      for (const text of [r.route, r.method, fmt(r.requests), fmt(ms(r.p50), "ms"), fmt(ms(r.p99), "ms")]) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.append(td);
      }
      return tr;
    }),
  );
  if (data.routes.length === 0) {
    const tr = document.createElement("tr");
    const td = document.createElement("td");
    td.colSpan = 5;
    td.textContent = "No requests in the last 15 minutes.";
    tr.append(td);
    body.append(tr);
  }
}

let timer: number | undefined;
let paused = false;

async function load(token: string): Promise<"ok" | "unauthorized" | "off" | "error"> {
  let res: Response;
  try {
    res = await fetch("/console/data", { headers: { Authorization: `Bearer ${token}` }, cache: "no-store" });
  } catch {
    return "error";
  }
  if (res.status === 401) return "unauthorized";
  if (res.status === 404) return "off";
  if (!res.ok) return "error";
  render((await res.json()) as ConsoleData);
  return "ok";
}

function showLogin(message: string): void {
  if (timer !== undefined) clearInterval(timer);
  timer = undefined;
  $("figures").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message;
  $<HTMLInputElement>("token").focus();
}

async function tick(token: string, first: boolean): Promise<void> {
  const result = await load(token);
  if (result === "ok") {
    $("status").textContent = `Updated ${new Date().toLocaleTimeString("en-GB")}${paused ? " (paused)" : ""}`;
    if (first) {
      $("login").hidden = true;
      $("figures").hidden = false;
      $("figures-title").focus();
    }
  } else if (result === "unauthorized") {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin("That token was refused (401). Check it and try again.");
  } else if (result === "off") {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin(
      "The operator figures are off on this CPS: set the METRICS_TOKEN_SHA256 secret (docs/metrics.md).",
    );
  } else if (first) {
    showLogin("The CPS did not answer. Try again.");
  } else {
    $("status").textContent = "Could not update; retrying.";
  }
}

function start(token: string): void {
  void tick(token, true);
  if (timer !== undefined) clearInterval(timer);
  timer = window.setInterval(() => {
    if (!paused) void tick(token, false);
  }, POLL_MS);
}

function init(): void {
  $("charts").replaceChildren(...CHARTS.map(chartFigure));
  $("figures-title").tabIndex = -1;
  $<HTMLFormElement>("login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const input = $<HTMLInputElement>("token");
    const token = input.value.trim();
    if (token === "") {
      $("login-error").textContent = "Enter the operator token.";
      input.focus();
      return;
    }
    $("login-error").textContent = "";
    sessionStorage.setItem(TOKEN_KEY, token);
    input.value = "";
    start(token);
  });
  $("pause").addEventListener("click", () => {
    paused = !paused;
    $("pause").setAttribute("aria-pressed", String(paused));
    $("pause").textContent = paused ? "Resume updates" : "Pause updates";
    $("status").textContent = paused ? "Updates paused." : "Updates resumed.";
  });
  $("signout").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin("");
  });
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) start(saved);
}

init();
