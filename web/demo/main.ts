/**
 * /demo (docs/web.md): Alice calls Bob through this CPS, live in the browser. The page loads the
 * local server's TEST-ONLY demo credentials (GET /demo/credentials, 404 in production: then it
 * explains how to run it locally and does nothing else), runs a scenario (flows.ts), animates each
 * step of RFC 8816 §8.1/§8.2 with its measured time, and shows what Alice sent, what the CPS holds
 * and what Bob recovered.
 */
import "../common/base.css";
import "./style.css";
import { append, byId, formatMs, h, pause, reducedMotion, replace, showTn } from "../common/dom.js";
import {
  type Demo,
  type Exchange,
  jwsParts,
  loadDemo,
  runScenario,
  type ScenarioName,
  type ScenarioResult,
  type Step,
} from "./flows.js";

const HELP: Record<ScenarioName, string> = {
  genuine: "Alice's AS signs with her credential, seals to Bob's key and stores; Bob verifies.",
  spoofed:
    "Mallory holds a real credential, for her own number. Her AS signs a PASSporT claiming Alice's number. Expected: FAILED at step 4 (the certificate does not cover orig).",
  stale:
    "Alice's PASSporT is 5 minutes old when Bob checks it (a replay, or a clock far off). Expected: FAILED at step 5 (iat not fresh).",
  "other-number":
    "A genuine PASSporT Alice signed for a call to Carol, sealed to Bob's key and stored under his number. Expected: FAILED at step 3 (dest is not Bob's number).",
  none: "The caller stores nothing. Bob's VS finds only dummies. Expected: NO PASSPORT (step 1 opened nothing).",
};

const LANES = ["alice", "cps", "bob"] as const;

let demo: Demo | null = null;
let running = false;

function buttons(): HTMLButtonElement[] {
  return [...document.querySelectorAll<HTMLButtonElement>("button[data-scenario]")];
}

function setBusy(busy: boolean) {
  running = busy;
  for (const b of buttons()) b.disabled = busy || demo === null;
  document.body.toggleAttribute("aria-busy", busy);
}

/** One row of the sequence diagram: an arrow between two lanes (or a box in one), then its text. */
function stepRow(step: Step, index: number): HTMLLIElement {
  const from = LANES.indexOf(step.from);
  const to = LANES.indexOf(step.to);
  const self = from === to;
  const left = Math.min(from, to) + 1;
  const right = Math.max(from, to) + 2;
  const direction = self ? "self" : from < to ? "right" : "left";
  const figure = h("div", { class: `arrow ${direction} from-${step.from}` });
  figure.style.gridColumn = self ? `${left} / ${left + 1}` : `${left} / ${right}`;
  // From the middle of one lane to the middle of the other: a quarter in from each end of a two-lane
  // span, a sixth of a three-lane one (CSSOM, which the page's CSP allows, unlike style attributes).
  if (!self) figure.style.margin = right - left === 2 ? "0 25%" : "0 16.67%";
  const time = step.ms === undefined ? "" : formatMs(step.ms);
  return h(
    "li",
    { class: `step ${step.phase} ${step.status}`, "data-step": step.id, "data-status": step.status },
    h("div", { class: "track" }, figure),
    h(
      "div",
      { class: "label" },
      h("span", { class: "num" }, `${index}.`),
      " ",
      h("strong", {}, step.title),
      time ? h("span", { class: "time" }, time) : null,
      step.status === "fail" ? h("span", { class: "badge fail" }, "refused here") : null,
      h("br"),
      h("span", { class: "detail" }, step.detail),
    ),
  );
}

function pre(value: unknown): HTMLPreElement {
  return h("pre", { class: "json" }, typeof value === "string" ? value : JSON.stringify(value, null, 2));
}

/** `abcdefghij…uvwxyz (1,430 characters)`: enough of a blob to see that it is noise. */
function blobPreview(text: string, ends = 18): string {
  return text.length <= ends * 2 ? text : `${text.slice(0, ends)}…${text.slice(-ends)}`;
}

function stores(result: ScenarioResult): Exchange[] {
  return result.exchanges.filter((e) => e.method === "POST" && /\/ppts$/.test(e.path));
}

/** Whose side the left view shows: the caller of this scenario. */
const SENDER: Record<ScenarioName, string> = {
  genuine: "What Alice sends",
  spoofed: "What Mallory sends (as Alice)",
  stale: "What Alice sent, 5 minutes ago",
  "other-number": "What the replayer sends",
  none: "What the caller sends",
};

function renderAlice(result: ScenarioResult) {
  replace(byId("view-alice-title"), SENDER[result.scenario]);
  const view = byId("view-alice");
  replace(view);
  if (!result.passport) {
    append(
      view,
      h("p", {}, "Nothing: no PASSporT was signed or stored. The call arrives with only a calling number."),
    );
    return;
  }
  const { header, payload } = jwsParts(result.passport);
  append(
    view,
    h("h3", {}, "The PASSporT it signed"),
    h("p", { class: "muted" }, "Only Bob's key can open the copy that carries it."),
    pre(header),
    pre(payload),
  );
  const lookup = result.exchanges.find((e) => e.method === "GET" && e.path.startsWith("/keys"));
  if (lookup) {
    append(
      view,
      h("h3", {}, "Key lookup"),
      h("p", {}, h("code", {}, `GET ${lookup.path}`), ` → ${lookup.status}`),
      h("p", { class: "muted" }, "By prefix: the directory learns the block, not the number called (§11)."),
    );
  }
  for (const s of stores(result)) {
    const body = s.requestBody ?? "";
    append(
      view,
      h("h3", {}, "What goes to the CPS"),
      h("p", {}, h("code", {}, `${s.method} ${s.path}`), ` → ${s.status}`),
      h("p", {}, "Content-Type: ", h("code", {}, s.requestType ?? "application/passport")),
      h("pre", { class: "blob" }, blobPreview(body.replace(/\s+/g, ""))),
      h(
        "p",
        { class: "muted" },
        `${body.replace(/\s+/g, "").length.toLocaleString("en")} base64url characters (1,072 bytes): no caller, no claims, no key id.`,
      ),
    );
  }
}

function listAnswer(result: ScenarioResult): { id: string; blob: string }[] {
  const list = result.exchanges.find(
    (e) => e.party === "bob" && e.method === "GET" && /\/ppts$/.test(e.path),
  );
  try {
    return (
      (JSON.parse(list?.responseBody ?? "{}") as { passports?: { id: string; blob: string }[] }).passports ??
      []
    );
  } catch {
    return [];
  }
}

function renderCps(result: ScenarioResult) {
  const view = byId("view-cps");
  replace(view);
  const entries = listAnswer(result);
  const openedIds = new Set(result.verification.candidates.flatMap((c) => c.blobIds));
  const lengths = new Set(entries.map((e) => e.blob.replace(/\s+/g, "").length));
  append(
    view,
    h(
      "p",
      {},
      `${entries.length} entries under ${showTn(result.bobTn)}, `,
      lengths.size === 1
        ? `all ${[...lengths][0]?.toLocaleString("en")} characters long`
        : "of several lengths",
      ". Stored copies and the CPS's own dummies look alike: the CPS cannot tell which is which, and holds no key to open any.",
    ),
  );
  const table = h(
    "table",
    { class: "entries" },
    h("caption", { class: "visually-hidden" }, "Entries the CPS served for Bob's number"),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", { scope: "col" }, "id"),
        h("th", { scope: "col" }, "sealed blob"),
        h("th", { scope: "col" }, "Bob's key opens it"),
      ),
    ),
  );
  const body = h("tbody");
  for (const e of entries) {
    const mine = openedIds.has(e.id);
    body.appendChild(
      h(
        "tr",
        mine ? { class: "mine" } : {},
        h("td", {}, h("code", {}, `${e.id.slice(0, 8)}…`)),
        h("td", {}, h("code", {}, blobPreview(e.blob.replace(/\s+/g, ""), 8))),
        h("td", {}, mine ? "yes" : "no"),
      ),
    );
  }
  table.appendChild(body);
  append(
    view,
    h("div", { class: "table-scroll" }, table),
    h(
      "p",
      { class: "muted" },
      "The last column is known to Bob only, after step 1; the CPS never learns it.",
    ),
  );
}

function renderBob(result: ScenarioResult) {
  const view = byId("view-bob");
  replace(view);
  const v = result.verification;
  append(
    view,
    h(
      "p",
      {},
      `Examined ${v.examined}, opened ${v.opened} with his key (${result.bobKid.slice(0, 10)}…), calling number ${showTn(v.calling)}.`,
    ),
  );
  if (v.candidates.length === 0) {
    append(view, h("p", {}, "Nothing opened: no PASSporT was stored for this call."));
  }
  for (const c of v.candidates) {
    const rows: [string, string][] = [
      ["orig", c.orig ?? "?"],
      ["dest", (c.dest ?? []).join(", ")],
      ["iat", c.iat === undefined ? "?" : `${new Date(c.iat * 1000).toISOString()} (${ageText(c.iat)})`],
      ["attest", c.attest ?? "?"],
      ["x5u", c.x5u ?? "?"],
      ["signer", c.signer ?? "(not reached)"],
    ];
    append(
      view,
      h("h3", {}, c.ok ? "PASSporT: passed steps 2-6" : `PASSporT: refused at step ${c.failure?.step}`),
      h(
        "dl",
        { class: "claims" },
        ...rows.flatMap(([k, val]) => [h("dt", {}, k), h("dd", {}, h("code", {}, val))]),
      ),
      c.failure
        ? h("p", { class: "failure" }, h("code", {}, c.failure.code), `: ${c.failure.message}`)
        : h(
            "p",
            { class: "success" },
            "Signature valid, certificate trusted and covering the caller, fresh.",
          ),
    );
  }
}

function ageText(iat: number): string {
  const s = Math.round(Date.now() / 1000 - iat);
  return s < 2 ? "just now" : `${s} s ago`;
}

function renderVerdict(result: ScenarioResult) {
  const el = byId("verdict");
  const v = result.verification;
  const failed = v.candidates.find((c) => !c.ok)?.failure;
  const word = v.verdict === "verified" ? "VERIFIED" : v.verdict === "failed" ? "FAILED" : "NO PASSPORT";
  el.dataset.state = "done";
  el.dataset.verdict = v.verdict;
  el.dataset.scenario = result.scenario;
  el.dataset.failedStep =
    v.verdict === "verified" ? "" : v.verdict === "no-passport" ? "1" : String(failed?.step);
  el.dataset.code = v.verdict === "failed" ? (failed?.code ?? "") : "";
  const total = result.verification.timings.total + (result.placed?.timings.total ?? 0);
  replace(
    el,
    h("span", { class: `verdict-word ${v.verdict}` }, word),
    " ",
    v.verdict === "verified"
      ? `${showTn(v.calling)} is who it says: signed by ${v.verified?.signer ?? "a trusted credential"}.`
      : v.verdict === "failed"
        ? `§8.2 step ${failed?.step} refused it: ${failed?.code} (${failed?.message}).`
        : "§8.2 step 1 opened nothing for this call: treat the calling number as unverified.",
    h("span", { class: "total" }, ` Sign to verdict: ${formatMs(total)}.`),
  );
}

async function run(scenario: ScenarioName) {
  if (!demo || running) return;
  setBusy(true);
  const steps = byId("steps");
  replace(steps);
  const verdict = byId("verdict");
  verdict.dataset.state = "running";
  delete verdict.dataset.verdict;
  replace(verdict, `Running: ${labelOf(scenario)}…`);
  for (const id of ["view-alice", "view-cps", "view-bob"]) replace(byId(id), h("p", { class: "muted" }, "…"));
  const pace = reducedMotion() ? 0 : 280;
  let n = 0;
  try {
    const result = await runScenario(demo, scenario, async (step) => {
      steps.appendChild(stepRow(step, ++n));
      await pause(pace);
    });
    renderAlice(result);
    renderCps(result);
    renderBob(result);
    renderVerdict(result);
  } catch (err) {
    verdict.dataset.state = "error";
    replace(
      verdict,
      h("span", { class: "verdict-word error" }, "ERROR"),
      ` The demo could not finish: ${err instanceof Error ? err.message : String(err)}`,
    );
  } finally {
    setBusy(false);
  }
}

function labelOf(scenario: ScenarioName): string {
  return document.querySelector(`button[data-scenario="${scenario}"]`)?.textContent?.trim() ?? scenario;
}

async function start() {
  for (const b of buttons()) {
    const scenario = b.dataset.scenario as ScenarioName;
    b.addEventListener("click", () => void run(scenario));
    b.addEventListener("focus", () => replace(byId("scenario-help"), HELP[scenario]));
    b.addEventListener("mouseenter", () => replace(byId("scenario-help"), HELP[scenario]));
  }
  try {
    demo = await loadDemo();
  } catch (err) {
    replace(
      byId("parties"),
      `The demo could not load its credentials: ${err instanceof Error ? err.message : err}`,
    );
    return;
  }
  if (demo === null) {
    byId("unavailable").hidden = false;
    byId("controls").hidden = true;
    replace(byId("verdict"), "Not available on this server: see above.");
    byId("verdict").dataset.state = "unavailable";
    return;
  }
  const d = demo;
  replace(
    byId("parties"),
    h("span", { class: "who alice" }, "Alice"),
    ` ${showTn(d.aliceTn)} calls `,
    h("span", { class: "who bob" }, "Bob"),
    ` (a fresh number of his block ${showTn(String(d.bobBlock.start)).slice(0, -3)}xxx each call). `,
    "TEST-ONLY credentials from this local server's demo CA.",
  );
  replace(byId("scenario-help"), HELP.genuine);
  setBusy(false);
  document.body.dataset.ready = "true";
}

void start();
