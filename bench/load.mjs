#!/usr/bin/env node
/**
 * `npm run load`: a load-and-soak run (issue #8, part 1). Starts the CPS under `wrangler dev` with
 * storage tokens REQUIRED and a short PASSporT TTL, drives an open-loop mix of issuance, stores and
 * retrievals at a fixed rate, and checks that every stored blob is served before its expiry and gone
 * after it.
 *
 *   npm run load -- [--duration 60] [--rate 50] [--ttl 60] [--max-in-flight 200] [--out FILE]
 *
 *   --duration S       seconds of traffic (default 60); the run then waits for the last blob's TTL
 *   --rate R           requests/s of the whole mix (default 50), launched on schedule whether or not
 *                      earlier ones have answered (open loop)
 *   --ttl S            the server's PASSPORT_TTL_SECONDS (default 60, 3 to 3600)
 *   --max-in-flight N  launches refused while N requests are outstanding (default 200); each refusal
 *                      is counted and reported, never silently queued
 *   --out FILE         JSON result (default bench/results/load-<ISO date>.json)
 *
 * The mix (shares of --rate, interleaved evenly in a fixed order):
 *   issue       2%  POST /tokens: TokenWallet.refill(3) of the client library (src/client/token-wallet.ts)
 *                   with a STIR credential token from a test PKI made at run time (each refill also
 *                   sends GET /tokens/keys, reported as `token-keys`)
 *   store      18%  POST /cps/{tn}/ppts to one of 100 numbers: a fresh envelope (src/stir/envelope.ts)
 *                   and the headers of TokenWallet.storeHeaders (each token pays for 5 stores, so one
 *                   issue pays for 15 stores where the mix needs 9)
 *   get-id     34%  GET /cps/{tn}/ppts/{id} of a stored blob
 *   list-live  28%  GET /cps/{tn}/ppts of a number holding blobs
 *   list-empty 18%  GET /cps/{tn}/ppts of one of 10,000 numbers never stored to (dummies only)
 *
 * The check. Every blob whose store answered 201 gets four checks: by id and in its number's list, each
 * once at a random moment of its life (before expiry minus a margin) and once after expiry plus 2 s
 * (the alarm's grace; reads filter expired rows anyway). The mix's get-id and list-live requests take
 * the checks that are due; one the mix has not taken 250 ms after it fell due is sent on its own
 * (`verify-get-id`, `verify-list`, outside the offered rate), as is every check after the traffic.
 * Every answer is judged against every tracked blob it covers: an answer received before the blob's
 * expiry must hold it (same bytes), a request sent 2 s or more after it must not; answers in between
 * decide nothing. `blobsLost` = blobs missing from an answer while live, `blobsLingering` = blobs
 * served after expiry, `blobsCorrupt` = served with other bytes, `blobsUnverified` = a check that could
 * not be decided (e.g. every answer came after the expiry).
 *
 * Client CPU: the wallet (RSA blinding is ~50 ms a token on Node's big-number path) and the sealing
 * run in a worker thread, which keeps ready-to-send stores a second or two ahead, so the thread that
 * schedules and times requests is never blocked. A store with no ready store request is counted as
 * skipped (`no-ticket`).
 *
 * Exit code: 0 all checks passed; 1 a blob lost, lingering or corrupt, a 5xx, or the run failed;
 * 2 bad flags; 3 no failure seen but some blob could not be checked (`blobsUnverified` > 0).
 * Progress goes to stderr every 5 s, the table to stdout, everything to the JSON file.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { generateIssuerKeyEntry } from "../src/dev/issuer-key.mjs";
import { REPO_ROOT, startLocalServer } from "../src/dev/local-server.mjs";

const SHARES = { issue: 0.02, store: 0.18, "get-id": 0.34, "list-live": 0.28, "list-empty": 0.18 };
const MIX = Object.keys(SHARES);
/** Requests that are not part of the offered mix: the wallet's key fetch and the verification extras. */
const EXTRA = ["token-keys", "verify-get-id", "verify-list"];
const WHAT = {
  issue: "POST /tokens (TokenWallet.refill, 3 blinded messages)",
  store: "POST /cps/{tn}/ppts with a storage token, one of 100 numbers",
  "get-id": "GET /cps/{tn}/ppts/{id} of a stored blob",
  "list-live": "GET /cps/{tn}/ppts of a number holding blobs",
  "list-empty": "GET /cps/{tn}/ppts of a number never stored to",
  "token-keys": "GET /tokens/keys, sent by each refill (not in the mix)",
  "verify-get-id": "by-id checks the mix did not take in time, and all after the traffic",
  "verify-list": "list checks the mix did not take in time, and all after the traffic",
};
const TOKEN_BATCH = 3;
const USES_PER_TOKEN = 5;
const PREFILL_SECONDS = 5;
const STORE_NUMBERS = 100;
const EMPTY_NUMBERS = 10_000;
const GRACE_MS = 2_000;
const REQUEST_TIMEOUT_MS = 15_000;
const FALLBACK_LAG_MS = 250;
const CHECK_TICK_MS = 100;
const PROGRESS_EVERY_MS = 5_000;
const DRAIN_SLACK_MS = 15_000;
const MIN_REQUESTS = 100;

const USAGE =
  "npm run load -- [--duration S (60)] [--rate REQ/S (50)] [--ttl S (60)] [--max-in-flight N (200)] [--out FILE]";

// ---------------------------------------------------------------------------------------------
// Worker thread: the token wallet and the sealing (the CPU-heavy client work).

async function workerMain() {
  const m = await import(pathToFileURL(workerData.bundle).href);
  const post = (msg) => parentPort.postMessage(msg);
  const pki = await m.createTestPki();
  const callee = await m.generateRecipientKeyPair();
  post({ type: "pki", rootPem: pki.root.certificate.toString("pem") });

  let wallet;
  let numbers = [];
  let demand = 0;
  let pumping = false;

  /** The wallet's fetch: every request it sends is timed and reported to the main thread. */
  const timedFetch = async (request) => {
    const op = new URL(request.url).pathname === "/tokens/keys" ? "token-keys" : "issue";
    const t0 = performance.now();
    try {
      const res = await fetch(request, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
      const ms = performance.now() - t0;
      const code = res.ok ? undefined : problemCode(await res.clone().text());
      post({ type: "http", op, ms, status: res.status, code });
      return res;
    } catch (err) {
      post({ type: "http", op, ms: performance.now() - t0, status: transportStatus(err) });
      throw err;
    }
  };

  /** Makes ready-to-send stores (number, sealed envelope, token headers) while some are wanted. */
  async function pump() {
    if (pumping) return;
    pumping = true;
    try {
      const batch = [];
      while (demand > 0 && wallet.size > 0) {
        const tn = numbers[Math.floor(Math.random() * numbers.length)];
        const blob = await m.sealPassport(callee.publicKey, m.canonicalTn(tn), m.RFC8816_EXAMPLE_PASSPORT);
        const headers = await wallet.storeHeaders(tn, blob);
        batch.push({ tn, text: m.encodeEnvelope(blob), headers });
        demand--;
        if (batch.length >= 4) post({ type: "tickets", tickets: batch.splice(0) });
      }
      if (batch.length > 0) post({ type: "tickets", tickets: batch });
    } finally {
      pumping = false;
    }
  }

  parentPort.on("message", (msg) => {
    if (msg.type === "start") {
      numbers = msg.numbers;
      const authorization = async () =>
        `Bearer ${await m.issueCredentialToken({
          privateKey: pki.valid.privateKey,
          x5c: pki.valid.der,
          audience: msg.url,
          action: "tokens:issue",
        })}`;
      wallet = new m.TokenWallet({
        cpsUrl: msg.url,
        authorization,
        fetch: timedFetch,
        usesPerToken: USES_PER_TOKEN,
      });
      wallet.refill(msg.prefill).then(
        () => post({ type: "ready", tokens: wallet.size }),
        (err) => post({ type: "fatal", message: `prefilling the token wallet failed: ${err}` }),
      );
    } else if (msg.type === "want") {
      demand += msg.n;
      pump().catch((err) => post({ type: "fatal", message: `making a store request failed: ${err}` }));
    } else if (msg.type === "issue") {
      const t0 = performance.now();
      wallet.refill(TOKEN_BATCH).then(
        (added) => {
          post({ type: "issued", seq: msg.seq, added, ms: performance.now() - t0 });
          pump().catch((err) => post({ type: "fatal", message: `making a store request failed: ${err}` }));
        },
        (err) =>
          post({ type: "issued", seq: msg.seq, added: 0, ms: performance.now() - t0, error: String(err) }),
      );
    }
  });
}

/** The `code` of an RFC 9457 problem body, or undefined. */
function problemCode(text) {
  try {
    const code = JSON.parse(text)?.code;
    return typeof code === "string" ? code : undefined;
  } catch {
    return undefined;
  }
}

/** What a request that got no HTTP answer is counted as. */
function transportStatus(err) {
  if (err?.name === "TimeoutError") return "timeout";
  return `network ${err?.cause?.code ?? err?.name ?? "error"}`;
}

// ---------------------------------------------------------------------------------------------
// Main thread: flags.

function parseFlags() {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        duration: { type: "string", default: "60" },
        rate: { type: "string", default: "50" },
        ttl: { type: "string", default: "60" },
        "max-in-flight": { type: "string", default: "200" },
        out: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      allowPositionals: false,
    }).values;
  } catch (err) {
    usageError(err.message);
  }
  if (parsed.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const number = (name, { min, max, integer }) => {
    const raw = parsed[name];
    const n = Number(raw);
    const kind = integer ? "a whole number" : "a number";
    if (raw.trim() === "" || !Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min || n > max) {
      usageError(`--${name} must be ${kind} from ${min} to ${max} (got "${raw}")`);
    }
    return n;
  };
  const flags = {
    duration: number("duration", { min: 1, max: 86_400, integer: false }),
    rate: number("rate", { min: 0.1, max: 10_000, integer: false }),
    ttl: number("ttl", { min: 3, max: 3_600, integer: true }),
    maxInFlight: number("max-in-flight", { min: 1, max: 100_000, integer: true }),
    out: parsed.out,
  };
  if (flags.out !== undefined && flags.out.trim() === "") usageError("--out needs a file name");
  if (flags.rate * flags.duration < MIN_REQUESTS) {
    usageError(
      `--rate x --duration must be at least ${MIN_REQUESTS} requests, so every kind of request is ` +
        `scheduled (got ${flags.rate} x ${flags.duration})`,
    );
  }
  return flags;
}

function usageError(message) {
  console.error(`load: ${message}\n${USAGE}`);
  process.exit(2);
}

// ---------------------------------------------------------------------------------------------
// Small helpers. `percentile` and `machine` are local copies of bench/run.mjs's (not exported there);
// `machine` adds the load average.

const progress = (msg) => process.stderr.write(`[load] ${msg}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const randInt = (n) => Math.floor(Math.random() * n);
const fmt = (n, d = 0) =>
  n === null || n === undefined
    ? "-"
    : n.toLocaleString("en", { minimumFractionDigits: d, maximumFractionDigits: d });

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

function latencySummary(values) {
  const s = Float64Array.from(values).sort();
  const round = (x) => (x === null ? null : Math.round(x * 10) / 10);
  return {
    p50: round(percentile(s, 50)),
    p95: round(percentile(s, 95)),
    p99: round(percentile(s, 99)),
    max: round(s.length ? s[s.length - 1] : null),
  };
}

function machine() {
  const cpuinfo = readFileSync("/proc/cpuinfo", "utf8");
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? cpus()[0]?.model ?? "unknown";
  const fromWrangler = createRequire(join(REPO_ROOT, "node_modules/wrangler/package.json"));
  let commit = "unknown";
  try {
    commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: REPO_ROOT }).toString().trim();
    const dirty = execFileSync("git", ["status", "--porcelain", "--untracked-files=no"], { cwd: REPO_ROOT });
    if (dirty.length > 0) commit += "+dirty";
  } catch {
    // not a git checkout
  }
  return {
    nproc: cpus().length,
    cpu: model,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    wrangler: JSON.parse(readFileSync(join(REPO_ROOT, "node_modules/wrangler/package.json"), "utf8")).version,
    workerd: fromWrangler("workerd/package.json").version,
    commit,
    loadAverageAtStart: loadavg().map((x) => Math.round(x * 100) / 100),
  };
}

/** A binary min-heap of checks by `dueAt`. */
class DueHeap {
  items = [];
  get size() {
    return this.items.length;
  }
  peek() {
    return this.items[0];
  }
  push(item) {
    const a = this.items;
    a.push(item);
    for (let i = a.length - 1; i > 0; ) {
      const p = (i - 1) >> 1;
      if (a[p].dueAt <= a[i].dueAt) break;
      [a[p], a[i]] = [a[i], a[p]];
      i = p;
    }
  }
  pop() {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0) {
      a[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && a[l].dueAt < a[m].dueAt) m = l;
        if (r < a.length && a[r].dueAt < a[m].dueAt) m = r;
        if (m === i) break;
        [a[m], a[i]] = [a[i], a[m]];
        i = m;
      }
    }
    return top;
  }
}

/** The mix as a fixed sequence: smooth weighted round robin, so each kind is spread evenly. */
function mixSequence() {
  const credit = Object.fromEntries(MIX.map((k) => [k, 0]));
  return () => {
    let best = MIX[0];
    for (const k of MIX) {
      credit[k] += SHARES[k];
      if (credit[k] > credit[best]) best = k;
    }
    credit[best] -= 1;
    return best;
  };
}

async function bundleClient() {
  const { build } = await import("esbuild");
  const dir = await mkdtemp(join(tmpdir(), "cps-load-"));
  const outfile = join(dir, "client.mjs");
  await build({
    stdin: {
      contents: `
        export { TokenWallet } from "./src/client/token-wallet.ts";
        export { issueCredentialToken } from "./src/stir/credential-token.ts";
        export { encodeEnvelope, generateRecipientKeyPair, sealPassport } from "./src/stir/envelope.ts";
        export { createTestPki } from "./src/stir/test-pki.ts";
        export { canonicalTn } from "./src/stir/tn.ts";
        export { RFC8816_EXAMPLE_PASSPORT } from "./test/helpers/cps.ts";`,
      resolveDir: REPO_ROOT,
      loader: "ts",
      sourcefile: "load-client.ts",
    },
    bundle: true,
    platform: "node",
    format: "esm",
    outfile,
    logLevel: "warning",
  });
  return { dir, outfile };
}

// ---------------------------------------------------------------------------------------------
// Main thread: per-operation statistics.

/** Answers that are what the request may get; anything else is an error of that operation. */
const EXPECTED = {
  issue: [200],
  "token-keys": [200],
  store: [201],
  "get-id": [200, 404],
  "list-live": [200],
  "list-empty": [200],
  "verify-get-id": [200, 404],
  "verify-list": [200],
};
const isExpected = (op, status, code) =>
  EXPECTED[op].includes(status) && (status !== 404 || code === "NOT_FOUND");

class Stats {
  fiveXX = 0;
  capHits = 0;
  ops = Object.fromEntries(
    [...MIX, ...EXTRA].map((op) => [
      op,
      { scheduled: 0, sent: 0, answered: 0, ok: 0, skipped: {}, statuses: {}, latencies: [] },
    ]),
  );

  /** One answer of `op`: an HTTP status (and problem `code`), or a transport failure ("timeout"). */
  record(op, status, code, ms) {
    const s = this.ops[op];
    s.answered++;
    const key = code ? `${status} ${code}` : String(status);
    s.statuses[key] = (s.statuses[key] ?? 0) + 1;
    if (typeof status === "number") s.latencies.push(ms);
    if (isExpected(op, status, code)) s.ok++;
    if (typeof status === "number" && status >= 500) this.fiveXX++;
  }

  /** An answer counted as ok whose body turned out to be unusable. */
  unusable(op, status) {
    const s = this.ops[op];
    s.ok--;
    s.statuses[`${status} unparsable`] = (s.statuses[`${status} unparsable`] ?? 0) + 1;
  }

  /** A launch refused: `cap` (max in flight) or `no-ticket` (no store request ready). */
  skip(op, why) {
    const s = this.ops[op];
    s.skipped[why] = (s.skipped[why] ?? 0) + 1;
    if (why === "cap") this.capHits++;
  }

  totals() {
    const all = Object.values(this.ops);
    return {
      sent: all.reduce((n, s) => n + s.sent, 0),
      answered: all.reduce((n, s) => n + s.answered, 0),
      p99: latencySummary(all.flatMap((s) => s.latencies)).p99,
    };
  }

  summary(trafficSeconds) {
    const perSecond = (n) => Math.round((n / trafficSeconds) * 100) / 100;
    return Object.fromEntries(
      Object.entries(this.ops).map(([op, s]) => {
        const errors = {};
        for (const [key, n] of Object.entries(s.statuses)) {
          const [status, code] = key.split(" ");
          if (key.includes("unparsable") || !isExpected(op, Number(status), code)) errors[key] = n;
        }
        for (const [why, n] of Object.entries(s.skipped)) errors[`skipped: ${why}`] = n;
        const inMix = MIX.includes(op);
        return [
          op,
          {
            what: WHAT[op],
            share: inMix ? SHARES[op] : null,
            offeredPerSecond: inMix ? perSecond(s.scheduled) : null,
            achievedPerSecond: inMix ? perSecond(s.ok) : null,
            scheduled: s.scheduled,
            sent: s.sent,
            answered: s.answered,
            ok: s.ok,
            errorCount: Object.values(errors).reduce((n, x) => n + x, 0),
            errors,
            statuses: s.statuses,
            latencyMs: latencySummary(s.latencies),
          },
        ];
      }),
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Main thread: the blobs stored and their checks.

/**
 * Every blob stored (201) and its four checks: `liveId`, `liveList` (served while live) and `goneId`,
 * `goneList` (not served after expiry + grace); each is undefined until decided, then "ok" or "fail".
 * Checks wait in two heaps by the time they fall due; a blob leaves `tracked` once both gone checks
 * are decided.
 */
class Verifier {
  blobs = new Map();
  /** tn -> Set of tracked blobs: every list answer for tn is judged against all of them. */
  byTn = new Map();
  tracked = [];
  heaps = { Id: new DueHeap(), List: new DueHeap() };
  open = 0;
  seen = { lost: 0, lingering: 0, corrupt: 0 };

  /** @param {number} marginMs live checks fall due in [stored, expiry - 2 x margin] */
  constructor(marginMs) {
    this.marginMs = marginMs;
  }

  track(tn, id, text, expiresAt, storedAt) {
    const b = {
      id,
      tn,
      text,
      expiresAt,
      checks: { liveId: undefined, liveList: undefined, goneId: undefined, goneList: undefined },
      inflight: {},
      slot: this.tracked.length,
    };
    this.blobs.set(id, b);
    this.tracked.push(b);
    if (!this.byTn.has(tn)) this.byTn.set(tn, new Set());
    this.byTn.get(tn).add(b);
    this.open += 4;
    const liveUntil = Math.max(storedAt, expiresAt - 2 * this.marginMs);
    for (const via of ["Id", "List"]) {
      this.heaps[via].push({
        b,
        kind: `live${via}`,
        dueAt: storedAt + Math.random() * (liveUntil - storedAt),
      });
      this.heaps[via].push({ b, kind: `gone${via}`, dueAt: expiresAt + GRACE_MS });
    }
  }

  randomTracked() {
    return this.tracked[randInt(this.tracked.length)];
  }

  /**
   * Judges one observation of blob b through `via` ("Id" or "List"): served (with `text`) or not, by
   * a request sent at t0 and answered at t1 (wall clock, as the server's expiry). An answer before the
   * expiry must serve it; a request sent GRACE_MS after it must not; anything in between decides nothing.
   */
  observe(b, via, served, text, t0, t1) {
    if (served && text !== b.text) this.#flag(b, "corrupt");
    if (t1 < b.expiresAt) {
      if (!served) this.#flag(b, "lost");
      this.#settle(b, `live${via}`, served ? "ok" : "fail");
    } else if (t0 >= b.expiresAt + GRACE_MS) {
      if (served) this.#flag(b, "lingering");
      this.#settle(b, `gone${via}`, served ? "fail" : "ok");
    }
  }

  /** Judges a list answer for tn against every tracked blob of tn. */
  observeList(tn, passports, t0, t1) {
    const served = new Map(passports.map((p) => [p?.id, p?.blob]));
    for (const b of [...(this.byTn.get(tn) ?? [])]) {
      this.observe(b, "List", served.has(b.id), served.get(b.id), t0, t1);
    }
  }

  /** The earliest open check through `via` that fell due by `at`, or null. */
  due(via, at) {
    const heap = this.heaps[via];
    while (heap.size > 0 && heap.peek().dueAt <= at) {
      const e = heap.pop();
      if (e.b.checks[e.kind] === undefined && !e.b.inflight[e.kind]) return e;
    }
    return null;
  }

  /** Puts check e back to fall due at `at` (e.g. refused at the in-flight cap). */
  defer(e, at) {
    this.heaps[e.kind.endsWith("Id") ? "Id" : "List"].push({ ...e, dueAt: at });
  }

  /** After an attempt at check e: if still open, try again soon (a live check only while live). */
  retryIfOpen(e) {
    if (e.b.checks[e.kind] !== undefined) return;
    const at = Date.now();
    if (e.kind.startsWith("live") && at >= e.b.expiresAt - 50) return;
    this.defer(e, at + 100);
  }

  /** Whether some check may still be decided: the heaps hold gone checks up to the last expiry + grace. */
  get waiting() {
    return this.heaps.Id.size + this.heaps.List.size > 0;
  }

  lastExpiry() {
    let last = 0;
    for (const b of this.blobs.values()) last = Math.max(last, b.expiresAt);
    return last;
  }

  summary() {
    const all = [...this.blobs.values()];
    const count = (pred) => all.filter(pred).length;
    return {
      blobsStored: all.length,
      blobsLost: this.seen.lost,
      blobsLingering: this.seen.lingering,
      blobsCorrupt: this.seen.corrupt,
      blobsUnverified: count((b) => Object.values(b.checks).includes(undefined)),
      liveById: count((b) => b.checks.liveId === "ok"),
      liveInList: count((b) => b.checks.liveList === "ok"),
      goneById: count((b) => b.checks.goneId === "ok"),
      goneFromList: count((b) => b.checks.goneList === "ok"),
      undecided: Object.fromEntries(
        ["liveId", "liveList", "goneId", "goneList"].map((k) => [k, count((b) => b.checks[k] === undefined)]),
      ),
      graceMs: GRACE_MS,
      liveCheckMarginMs: this.marginMs,
    };
  }

  #flag(b, what) {
    if (!b[what]) this.seen[what]++;
    b[what] = true;
  }

  #settle(b, kind, verdict) {
    if (b.checks[kind] === undefined) this.open--;
    if (b.checks[kind] !== "fail") b.checks[kind] = verdict;
    if (b.slot >= 0 && b.checks.goneId !== undefined && b.checks.goneList !== undefined) this.#untrack(b);
  }

  #untrack(b) {
    this.byTn.get(b.tn)?.delete(b);
    const last = this.tracked.pop();
    if (last !== b) {
      this.tracked[b.slot] = last;
      last.slot = b.slot;
    }
    b.slot = -1;
  }
}

// ---------------------------------------------------------------------------------------------
// Main thread: the worker thread that holds the wallet (see workerMain).

class ClientWorker {
  failure = null;
  tickets = [];
  issueClientMs = [];
  #outstanding = 0;
  #issues = new Map();
  #seq = 0;
  #waiters = new Map();
  #failed;

  /** @param {{ bundle: string, ticketTarget: number, onHttp: (msg: object) => void }} options */
  constructor({ bundle, ticketTarget, onHttp }) {
    this.ticketTarget = ticketTarget;
    this.worker = new Worker(fileURLToPath(import.meta.url), { workerData: { bundle } });
    this.#failed = new Promise((_, reject) => {
      const fail = (err) => {
        this.failure ??= err;
        reject(err);
      };
      this.worker.on("error", fail);
      this.worker.on("message", (msg) => {
        if (msg.type === "fatal") fail(new Error(msg.message));
        else if (msg.type === "http") onHttp(msg);
        else if (msg.type === "tickets") {
          this.#outstanding -= msg.tickets.length;
          this.tickets.push(...msg.tickets);
        } else if (msg.type === "issued") {
          this.issueClientMs.push(msg.ms);
          this.#issues.get(msg.seq)?.(msg);
          this.#issues.delete(msg.seq);
        } else this.#waiters.get(msg.type)?.(msg);
      });
    });
    this.#failed.catch(() => {});
  }

  /** The next message of `type` ("pki", "ready"), or the worker's failure. */
  next(type) {
    return Promise.race([new Promise((resolve) => this.#waiters.set(type, resolve)), this.#failed]);
  }

  /** Creates the wallet for the CPS at url and prefills it; resolves with the tokens held. */
  async start(url, numbers, prefill) {
    this.worker.postMessage({ type: "start", url, numbers, prefill });
    return (await this.next("ready")).tokens;
  }

  /** A ready-to-send store request, or undefined; asks for more to stay `ticketTarget` ahead. */
  takeTicket() {
    const ticket = this.tickets.shift();
    this.topUp();
    return ticket;
  }

  topUp() {
    const want = this.ticketTarget - this.tickets.length - this.#outstanding;
    if (want > 0) {
      this.#outstanding += want;
      this.worker.postMessage({ type: "want", n: want });
    }
  }

  /** One TokenWallet.refill in the worker; resolves when it is done (or failed). */
  issue() {
    const seq = ++this.#seq;
    const done = new Promise((resolve) => this.#issues.set(seq, resolve));
    this.worker.postMessage({ type: "issue", seq });
    return done;
  }

  terminate() {
    return this.worker.terminate();
  }
}

// ---------------------------------------------------------------------------------------------
// Main thread: the requests.

/** Sends the mix's requests and the checks' own requests to the CPS at url, and judges the answers. */
class Traffic {
  inFlight = 0;
  pending = new Set();
  /** Failures of this script itself (a bug here, not an answer of the CPS). */
  clientErrors = [];
  emptyListEntries = {};

  constructor({ url, stats, verifier, client, maxInFlight }) {
    Object.assign(this, { url, stats, verifier, client, maxInFlight });
  }

  /** Launches one request of the mix now, unless the in-flight cap is reached. */
  launch(op) {
    this.stats.ops[op].scheduled++;
    if (this.inFlight >= this.maxInFlight) this.stats.skip(op, "cap");
    else this.#keep(this[op]());
  }

  /** Sends, on their own, open checks that fell due more than `lagMs` ago and no request took. */
  sendOverdueChecks(lagMs) {
    const at = Date.now();
    for (const [via, op] of [
      ["Id", "verify-get-id"],
      ["List", "verify-list"],
    ]) {
      for (let e = this.verifier.due(via, at - lagMs); e; e = this.verifier.due(via, at - lagMs)) {
        if (this.inFlight >= this.maxInFlight) {
          this.stats.skip(op, "cap");
          this.verifier.defer(e, at + 100);
          break;
        }
        this.stats.ops[op].scheduled++;
        this.#keep(this.#check(op, e));
      }
    }
  }

  /** Resolves once every request sent so far has been answered. */
  async settled() {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }

  // The five kinds of the mix.

  async issue() {
    const s = this.stats.ops.issue;
    s.sent++;
    this.inFlight++;
    try {
      await this.client.issue();
    } finally {
      this.inFlight--;
    }
  }

  async store() {
    const ticket = this.client.takeTicket();
    if (!ticket) return this.stats.skip("store", "no-ticket");
    const r = await this.#http("store", `/cps/${ticket.tn}/ppts`, {
      method: "POST",
      headers: { "Content-Type": "application/passport", ...ticket.headers },
      body: ticket.text,
    });
    if (r.status !== 201) return;
    let body;
    try {
      body = JSON.parse(r.text);
    } catch {
      body = {};
    }
    const expiresAt = Date.parse(body.expires);
    if (typeof body.id !== "string" || !Number.isFinite(expiresAt)) return this.stats.unusable("store", 201);
    this.verifier.track(ticket.tn, body.id, ticket.text, expiresAt, r.t1);
  }

  async "get-id"() {
    const e = this.verifier.due("Id", Date.now());
    if (e) return this.#check("get-id", e);
    const b = this.verifier.randomTracked();
    if (b) return this.#getById("get-id", b);
    // Nothing stored yet: an id nobody holds (404).
    const id = Array.from({ length: 32 }, () => randInt(16).toString(16)).join("");
    await this.#http("get-id", `/cps/${emptyNumber()}/ppts/${id}`);
  }

  async "list-live"() {
    const e = this.verifier.due("List", Date.now());
    if (e) return this.#check("list-live", e);
    const b = this.verifier.randomTracked();
    await this.#list("list-live", b ? b.tn : storeNumber(randInt(STORE_NUMBERS)));
  }

  async "list-empty"() {
    const passports = await this.#list("list-empty", emptyNumber());
    if (passports)
      this.emptyListEntries[passports.length] = (this.emptyListEntries[passports.length] ?? 0) + 1;
  }

  // Plumbing.

  async #check(op, e) {
    e.b.inflight[e.kind] = true;
    try {
      if (e.kind.endsWith("Id")) await this.#getById(op, e.b);
      else await this.#list(op, e.b.tn);
    } finally {
      e.b.inflight[e.kind] = false;
      this.verifier.retryIfOpen(e);
    }
  }

  async #getById(op, b) {
    const r = await this.#http(op, `/cps/${b.tn}/ppts/${b.id}`, {
      headers: { accept: "application/passport" },
    });
    if (r.status === 200 || r.status === 404) {
      this.verifier.observe(b, "Id", r.status === 200, r.text.replace(/\s+/g, ""), r.t0, r.t1);
    }
  }

  async #list(op, tn) {
    const r = await this.#http(op, `/cps/${tn}/ppts`, { headers: { accept: "application/json" } });
    if (r.status !== 200) return null;
    let passports;
    try {
      passports = JSON.parse(r.text).passports;
    } catch {
      // judged below
    }
    if (!Array.isArray(passports)) {
      this.stats.unusable(op, 200);
      return null;
    }
    this.verifier.observeList(tn, passports, r.t0, r.t1);
    return passports;
  }

  /** One request; its status (and problem code) and latency go to the stats. t0/t1: wall clock. */
  async #http(op, path, init = {}) {
    this.stats.ops[op].sent++;
    this.inFlight++;
    const t0 = Date.now();
    const p0 = performance.now();
    let status;
    let text = "";
    try {
      const res = await fetch(`${this.url}${path}`, {
        ...init,
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
      text = await res.text();
      status = res.status;
    } catch (err) {
      status = transportStatus(err);
    } finally {
      this.inFlight--;
    }
    const ms = performance.now() - p0;
    const code = typeof status === "number" && status >= 400 ? problemCode(text) : undefined;
    this.stats.record(op, status, code, ms);
    return { status, text, t0, t1: Date.now() };
  }

  #keep(promise) {
    const p = promise
      .catch((err) => {
        this.clientErrors.push(String(err?.stack ?? err));
      })
      .finally(() => this.pending.delete(p));
    this.pending.add(p);
  }
}

const storeNumber = (i) => `1555060${String(i).padStart(4, "0")}`;
const emptyNumber = () => `1555070${String(randInt(EMPTY_NUMBERS)).padStart(4, "0")}`;

// ---------------------------------------------------------------------------------------------
// Main thread: the run.

async function main() {
  const flags = parseFlags();
  const started = Date.now();
  const env = machine();
  const storeRate = flags.rate * SHARES.store;
  // Live checks fall due in [stored, expiry - 2 x margin], leaving a margin for the answer to come back.
  const marginMs = Math.min(5_000, Math.max(1_000, flags.ttl * 100));
  const ticketTarget = Math.max(4, Math.ceil(storeRate * 2));
  const prefill = Math.max(2, Math.ceil((storeRate * (PREFILL_SECONDS + 2)) / USES_PER_TOKEN));

  progress(`${env.nproc} x ${env.cpu}, Node ${env.node}, workerd ${env.workerd}; commit ${env.commit}`);
  progress(`load average ${env.loadAverageAtStart.join(" ")}`);
  progress(
    `rate ${flags.rate}/s for ${flags.duration} s, TTL ${flags.ttl} s, max in flight ${flags.maxInFlight}; ` +
      `mix ${MIX.map((k) => `${k} ${Math.round(SHARES[k] * 100)}%`).join(", ")}`,
  );

  progress("bundling the client library (esbuild) and starting its worker thread...");
  const bundle = await bundleClient();
  const stats = new Stats();
  let recording = false;
  const client = new ClientWorker({
    bundle: bundle.outfile,
    ticketTarget,
    onHttp: (msg) => {
      if (!recording) return; // the prefill is not part of the run
      if (msg.op === "token-keys") stats.ops[msg.op].sent++;
      stats.record(msg.op, msg.status, msg.code, msg.ms);
    },
  });
  let server;
  let traffic;
  let verifier;
  const phases = { trafficSeconds: 0, drainSeconds: 0 };
  const lags = [];
  let vars;
  try {
    const { rootPem } = await client.next("pki");
    await rm(bundle.dir, { recursive: true, force: true });
    const now = Date.now();
    vars = {
      ALLOW_UNTOKENED_STORES: "false",
      PASSPORT_TTL_SECONDS: String(flags.ttl),
      TRUST_ANCHORS_PEM: rootPem,
      TOKEN_ISSUER_KEYS: JSON.stringify([
        await generateIssuerKeyEntry("load-current", now - 3_600_000, now + 86_400_000),
      ]),
      // Not what this run measures: a day's quota far above the run's, and a token may spend all its
      // uses under one number (the per-number window is the TTL).
      TOKEN_DAILY_QUOTA: "100000000",
      TOKEN_MAX_USES: String(USES_PER_TOKEN),
      TOKEN_MAX_USES_PER_NUMBER: String(USES_PER_TOKEN),
    };
    progress("starting wrangler dev (fresh state dir, storage tokens required)...");
    server = await startLocalServer({ vars });

    const numbers = Array.from({ length: STORE_NUMBERS }, (_, i) => storeNumber(i));
    const tokens = await client.start(server.url, numbers, prefill);
    progress(`token wallet prefilled: ${tokens} tokens x ${USES_PER_TOKEN} stores`);
    client.topUp();
    for (const deadline = Date.now() + 30_000; client.tickets.length < ticketTarget; await sleep(20)) {
      if (client.failure) throw client.failure;
      if (Date.now() > deadline) throw new Error("the worker made no store requests in 30 s");
    }

    verifier = new Verifier(marginMs);
    traffic = new Traffic({ url: server.url, stats, verifier, client, maxInFlight: flags.maxInFlight });
    let phase = "traffic";
    const trafficStart = performance.now();
    const progressLine = () => {
      const t = stats.totals();
      progress(
        `${phase} ${fmt((performance.now() - trafficStart) / 1000)} s: sent ${fmt(t.sent)}, answered ` +
          `${fmt(t.answered)}, in flight ${traffic.inFlight}, p99 ${fmt(t.p99, 1)} ms; blobs ` +
          `${fmt(verifier.blobs.size)}, open checks ${fmt(verifier.open)}; lost ${verifier.seen.lost}, lingering ` +
          `${verifier.seen.lingering}, corrupt ${verifier.seen.corrupt}, 5xx ${stats.fiveXX}, cap hits ${stats.capHits}`,
      );
    };
    const checker = setInterval(
      () => traffic.sendOverdueChecks(phase === "traffic" ? FALLBACK_LAG_MS : 0),
      CHECK_TICK_MS,
    );
    const ticker = setInterval(progressLine, PROGRESS_EVERY_MS);
    try {
      // Traffic: request i is launched at start + i / rate, whatever the earlier ones are doing.
      progress(`traffic for ${flags.duration} s...`);
      recording = true;
      const next = mixSequence();
      const interval = 1000 / flags.rate;
      const total = Math.floor(flags.rate * flags.duration);
      for (let i = 0; i < total; i++) {
        if (client.failure) throw client.failure;
        const due = trafficStart + i * interval;
        const wait = due - performance.now();
        if (wait > 1) await sleep(wait);
        lags.push(Math.max(0, performance.now() - due));
        traffic.launch(next());
      }
      await sleep(Math.max(0, trafficStart + flags.duration * 1000 - performance.now()));
      phases.trafficSeconds = (performance.now() - trafficStart) / 1000;

      // Drain: the answers still on their way, then every remaining check at its time.
      phase = "drain";
      const drainStart = performance.now();
      progress("traffic done; checking the remaining blobs until their TTL has passed...");
      await traffic.settled();
      const deadline = verifier.lastExpiry() + GRACE_MS + DRAIN_SLACK_MS;
      while ((verifier.waiting || traffic.pending.size > 0) && Date.now() < deadline) {
        if (client.failure) throw client.failure;
        await sleep(CHECK_TICK_MS);
      }
      await traffic.settled();
      phases.drainSeconds = (performance.now() - drainStart) / 1000;
    } finally {
      clearInterval(checker);
      clearInterval(ticker);
    }
    progressLine();
  } finally {
    await client.terminate();
    await server?.stop();
    await rm(bundle.dir, { recursive: true, force: true });
  }

  const result = report({ flags, env, started, vars, phases, lags, stats, verifier, traffic, client });
  const out =
    flags.out ?? join(REPO_ROOT, "bench", "results", `load-${result.date.replace(/[:.]/g, "-")}.json`);
  await mkdir(dirname(out), { recursive: true });
  await writeFile(out, `${JSON.stringify(result, null, 2)}\n`);
  printSummary(result, out);
  process.exitCode = result.exitCode;
}

/** The JSON of the run: configuration, machine, per-operation figures, the check and the verdict. */
function report({ flags, env, started, vars, phases, lags, stats, verifier, traffic, client }) {
  const verification = { ...verifier.summary(), emptyListEntries: traffic.emptyListEntries };
  const failures = [];
  if (verification.blobsLost > 0)
    failures.push(`${verification.blobsLost} blobs lost (not served while live)`);
  if (verification.blobsLingering > 0)
    failures.push(`${verification.blobsLingering} blobs lingering (served after expiry)`);
  if (verification.blobsCorrupt > 0)
    failures.push(`${verification.blobsCorrupt} blobs served with other bytes`);
  if (stats.fiveXX > 0) failures.push(`${stats.fiveXX} answers with a 5xx status`);
  if (traffic.clientErrors.length > 0) {
    failures.push(`${traffic.clientErrors.length} errors in the load generator: ${traffic.clientErrors[0]}`);
  }
  const exitCode = failures.length > 0 ? 1 : verification.blobsUnverified > 0 ? 3 : 0;
  if (exitCode === 3) failures.push(`${verification.blobsUnverified} blobs could not be checked`);
  const round = (x) => Math.round(x * 100) / 100;
  return {
    date: new Date(started).toISOString(),
    command:
      `npm run load -- --duration ${flags.duration} --rate ${flags.rate} --ttl ${flags.ttl}` +
      (flags.maxInFlight === 200 ? "" : ` --max-in-flight ${flags.maxInFlight}`),
    machine: { ...env, loadAverageAtEnd: loadavg().map(round) },
    config: {
      durationSeconds: flags.duration,
      rate: flags.rate,
      ttlSeconds: flags.ttl,
      maxInFlight: flags.maxInFlight,
      shares: SHARES,
      tokenBatch: TOKEN_BATCH,
      usesPerToken: USES_PER_TOKEN,
      storeNumbers: STORE_NUMBERS,
      emptyNumbers: EMPTY_NUMBERS,
      requestTimeoutMs: REQUEST_TIMEOUT_MS,
      fallbackLagMs: FALLBACK_LAG_MS,
      vars: {
        ...vars,
        TRUST_ANCHORS_PEM: "(root of a test PKI made at run time)",
        TOKEN_ISSUER_KEYS: "(one RSA-2048 key made at run time)",
      },
    },
    phases: { trafficSeconds: round(phases.trafficSeconds), drainSeconds: round(phases.drainSeconds) },
    generator: {
      launchLagMs: latencySummary(lags),
      inFlightCapHits: stats.capHits,
      issueClientMs: latencySummary(client.issueClientMs),
    },
    operations: stats.summary(phases.trafficSeconds),
    fiveXX: stats.fiveXX,
    verification,
    failures,
    clientErrors: traffic.clientErrors.slice(0, 10),
    exitCode,
    elapsedSeconds: Math.round((Date.now() - started) / 100) / 10,
  };
}

function printSummary(result, out) {
  const { machine: m, verification: v } = result;
  console.log(
    `\nLoad and soak, wrangler dev (workerd ${m.workerd}) on ${m.nproc} x ${m.cpu}, Node ${m.node}`,
  );
  console.log(
    `${result.command}: open loop at ${result.config.rate} req/s for ${fmt(result.phases.trafficSeconds, 1)} s, ` +
      `TTL ${result.config.ttlSeconds} s, storage tokens required; load average ` +
      `${m.loadAverageAtStart.join(" ")} at start, ${m.loadAverageAtEnd.join(" ")} at end\n`,
  );
  console.log(table(result.operations));
  console.log(
    `\nblobs stored ${fmt(v.blobsStored)}: live by id ${fmt(v.liveById)}, live in list ${fmt(v.liveInList)}, ` +
      `gone by id ${fmt(v.goneById)}, gone from list ${fmt(v.goneFromList)}`,
  );
  console.log(
    `blobsLost ${v.blobsLost}, blobsLingering ${v.blobsLingering}, blobsCorrupt ${v.blobsCorrupt}, ` +
      `blobsUnverified ${v.blobsUnverified}; 5xx ${result.fiveXX}; in-flight cap (${result.config.maxInFlight}) ` +
      `hit ${result.generator.inFlightCapHits} times; launch lag p99 ${fmt(result.generator.launchLagMs.p99, 1)} ms`,
  );
  console.log(
    result.failures.length > 0 ? `FAIL (exit ${result.exitCode}): ${result.failures.join("; ")}` : "PASS",
  );
  console.log(`\n${fmt(result.elapsedSeconds)} s in all; figures in ${out}`);
}

function table(operations) {
  const head = ["op", "offered/s", "achieved/s", "sent", "p50 ms", "p95 ms", "p99 ms", "errors"];
  const rows = Object.entries(operations).map(([op, o]) => [
    op,
    fmt(o.offeredPerSecond, 1),
    fmt(o.achievedPerSecond, 1),
    fmt(o.sent),
    fmt(o.latencyMs.p50, 1),
    fmt(o.latencyMs.p95, 1),
    fmt(o.latencyMs.p99, 1),
    o.errorCount === 0
      ? "0"
      : `${o.errorCount} (${Object.entries(o.errors)
          .map(([k, n]) => `${k}: ${n}`)
          .join(", ")})`,
  ]);
  const numeric = (c) => c >= 1 && c <= 6;
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  const line = (r) =>
    `| ${r.map((v, c) => (numeric(c) ? v.padStart(widths[c]) : v.padEnd(widths[c]))).join(" | ")} |`;
  return [
    line(head),
    `|${widths.map((w, c) => (numeric(c) ? `${"-".repeat(w + 1)}:` : "-".repeat(w + 2))).join("|")}|`,
    ...rows.map(line),
  ].join("\n");
}

if (isMainThread) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
} else {
  workerMain().catch((err) => parentPort.postMessage({ type: "fatal", message: String(err?.stack ?? err) }));
}
