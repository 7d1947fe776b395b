/**
 * Cover traffic by the AS (RFC 8816 §7.4, §13) and decoy polling by the callee (§6.2, §13): the
 * simulations of `npm run privacy` parts e and f, on the client code itself (src/client/cover.ts,
 * src/client/decoys.ts, src/client/placement.ts) with exact, simulated times, and the CPS's view as a
 * log of requests it could keep. Bundled with esbuild by bench/privacy.mjs; docs/cover-and-decoys.md.
 *
 * Part e: one AS's stores, real calls vs cover. The real caller is a model: calls as a Poisson process
 * whose rate follows the day (1 + 0.6 sin), destinations repeating a recent number 30 % of the time
 * (recency rank Zipf) or a new number in one of 50 prefixes (Zipf), 1-3 keys per number. Every store,
 * real or cover, is made by sealAndStore and captured as the CPS receives it (method, path shape,
 * header names and value lengths, body length). Lookup tables over the CPS's features (time of day,
 * gaps to the neighbouring stores, prefix, whether the number was stored to before / after, stores to
 * it, copies, request format) must stay within 50 % +- bound. Controls: cover badly made (fixed
 * intervals to uniformly random numbers; a constant rate that ignores the day).
 *
 * Part f: callees' retrievals, owned numbers vs decoys, with DecoyPlan's pools and offsets, calls
 * and background groups; the same lookup tables without store timing (pass rule) and, reported, with
 * it (a real retrieval follows a store to its number), and what that does to cover.
 */
import { CoverTraffic } from "../src/client/cover.js";
import type { FetchLike } from "../src/client/cps-client.js";
import { DecoyPlan } from "../src/client/decoys.js";
import { sealAndStore } from "../src/client/placement.js";
import { untokenedStores } from "../src/client/store-tokens.js";
import { generateRecipientKeyPair } from "../src/stir/envelope.js";
import { type CanonicalTn, canonicalTn } from "../src/stir/tn.js";
import { prng, shuffle } from "./lib/stats.mjs";
import { drawEach, lookupAccuracy, mostTelling, type Sample } from "./privacy-observer.js";

const DAY = 86_400_000;
const HOUR = 3_600_000;

// ---------------------------------------------------------------------------------------------
// What the CPS sees of a request

/** The CPS's view of a request's form: everything but the values of its bytes. */
export function requestForm(input: string | URL | Request, init?: RequestInit): string {
  const url = new URL(String(input instanceof Request ? input.url : input));
  const h = new Headers(init?.headers);
  const headers = [...h.keys()]
    .sort()
    .map((k) => `${k}:${h.get(k)?.length}`)
    .join(",");
  const body = typeof init?.body === "string" ? init.body.length : 0;
  return `${init?.method ?? "GET"} ${url.pathname.replace(/\d+/g, (d) => `<${d.length}>`)} [${headers}] ${body}`;
}

/** A stand-in CPS that records the form of every store, per called number, and answers 201. */
function capture(forms: Map<string, string[]>): FetchLike {
  return async (input, init) => {
    const tn = /\/cps\/(\d+)\/ppts/.exec(String(input))?.[1] ?? "";
    const list = forms.get(tn) ?? [];
    list.push(requestForm(input, init));
    forms.set(tn, list);
    return new Response(JSON.stringify({ id: crypto.randomUUID(), expires: new Date(0).toISOString() }), {
      status: 201,
      headers: { "content-type": "application/json", location: `/cps/${tn}/ppts/x` },
    });
  };
}

// ---------------------------------------------------------------------------------------------
// Classification (lookup tables, as in privacy-observer.ts, over any feature names)

/** A sample with the called number it belongs to (for a split that keeps numbers apart). */
type Grouped = Sample & { group?: string };

export interface TableReport {
  real: number;
  other: number;
  testSize: number;
  accuracy: Record<string, number>;
  best: { features: string; accuracy: number };
}

/** Balances n vs n, halves at random, scores each feature alone, in pairs and all together. */
export function tables(samples: Sample[], n: number, seed: number, names?: string[]): TableReport {
  const rand = prng(seed);
  const [real, other] = drawEach(samples, n, rand);
  const m = Math.min(real.length, other.length);
  const all = shuffle([...real.slice(0, m), ...other.slice(0, m)], rand);
  let train: Sample[];
  let test: Sample[];
  if (all.some((s) => (s as Grouped).group !== undefined)) {
    // Each called number wholly on one side: a table must not learn a number's label from its other
    // stores (that linkage is the store-then-retrieve one, measured on its own).
    const side = new Map<string, boolean>();
    for (const s of all) {
      const g = (s as Grouped).group ?? "";
      if (!side.has(g)) side.set(g, rand() < 0.5);
    }
    train = all.filter((s) => side.get((s as Grouped).group ?? ""));
    test = all.filter((s) => !side.get((s as Grouped).group ?? ""));
  } else {
    const half = Math.floor(all.length / 2);
    [train, test] = [all.slice(0, half), all.slice(half)];
  }
  const keys = names ?? Object.keys(all[0]!.features);
  const sets: string[][] = keys.map((k) => [k]);
  for (let i = 0; i < keys.length; i++)
    for (let j = i + 1; j < keys.length; j++) sets.push([keys[i]!, keys[j]!]);
  if (keys.length > 2) sets.push(keys);
  const accuracy: Record<string, number> = {};
  for (const s of sets) accuracy[s.join("+")] = lookupAccuracy(train, test, s);
  return { real: m, other: m, testSize: test.length, accuracy, best: mostTelling(accuracy) };
}

const bin = (x: number, edges: number[]) => {
  let i = 0;
  while (i < edges.length && x >= edges[i]!) i++;
  return i;
};

// ---------------------------------------------------------------------------------------------
// Part e: cover

/** One store event (one call: `copies` blobs to one number at one instant) as the CPS logs it. */
interface StoreEvent {
  at: number;
  tn: string;
  copies: number;
  real: boolean;
  form: string;
}

/** The CPS's features of every store event, from the whole log (it sees past and future). */
export function storeFeatures(events: StoreEvent[], meanGap: number): Grouped[] {
  const sorted = [...events].sort((a, b) => a.at - b.at);
  const byTn = new Map<string, number[]>();
  sorted.forEach((e, i) => {
    const l = byTn.get(e.tn) ?? [];
    l.push(i);
    byTn.set(e.tn, l);
  });
  const forms = new Map<string, number>();
  const gapEdges = [0.1, 0.25, 0.5, 1, 2, 4].map((x) => x * meanGap);
  return sorted.map((e, i) => {
    const idx = byTn.get(e.tn)!;
    const k = idx.indexOf(i);
    if (!forms.has(e.form)) forms.set(e.form, forms.size);
    return {
      real: e.real,
      group: e.tn,
      features: {
        hour: Math.floor((e.at % DAY) / HOUR),
        gapPrev: bin(i > 0 ? e.at - sorted[i - 1]!.at : Number.POSITIVE_INFINITY, gapEdges),
        gapNext: bin(i < sorted.length - 1 ? sorted[i + 1]!.at - e.at : Number.POSITIVE_INFINITY, gapEdges),
        prefix: Number(e.tn.slice(0, 7)),
        before: k > 0 ? 1 : 0,
        after: k < idx.length - 1 ? 1 : 0,
        stores: Math.min(4, idx.length),
        copies: e.copies,
        form: forms.get(e.form)!,
      },
    };
  });
}

/** The model caller: 50 prefixes (Zipf), repeats of recent numbers (30 %, recency rank Zipf). */
function modelCaller(rand: () => number) {
  const prefixes = Array.from({ length: 50 }, (_, i) => `1${String(202 + i * 13).padStart(3, "0")}555`);
  const zipf = (n: number) => {
    const w = Array.from({ length: n }, (_, i) => 1 / (i + 1));
    const total = w.reduce((a, b) => a + b, 0);
    let x = rand() * total;
    for (let i = 0; i < n; i++) {
      x -= w[i]!;
      if (x < 0) return i;
    }
    return n - 1;
  };
  const history: string[] = []; // most recent last
  const copies = new Map<string, number>();
  return (): { tn: string; copies: number } => {
    let tn: string;
    if (history.length && rand() < 0.3) {
      tn = history[history.length - 1 - zipf(Math.min(history.length, 200))]!;
      history.splice(history.lastIndexOf(tn), 1);
    } else {
      tn = prefixes[zipf(prefixes.length)]! + String(Math.floor(rand() * 10_000)).padStart(4, "0");
      const r = rand();
      copies.set(tn, r < 0.7 ? 1 : r < 0.95 ? 2 : 3);
    }
    history.push(tn);
    if (history.length > 1000) history.shift();
    return { tn, copies: copies.get(tn) ?? 1 };
  };
}

export interface CoverReport {
  n: number;
  days: number;
  realCalls: number;
  coverCalls: number;
  forms: { real: string[]; cover: string[] };
  /** Blobs (= tokens = store requests) per real call, real and cover. */
  perRealCall: { realBlobs: number; coverBlobs: number };
  tables: TableReport;
  controls: Record<string, { features: string; accuracy: number }>;
}

/**
 * Part e: `n` real calls after two days of warm-up (the daily profile needs a day), with cover
 * (`perCall` 1) from CoverTraffic, every store through sealAndStore into a capturing CPS.
 */
export async function coverSimulation(
  n: number,
  seed = 21,
  options: { perCall?: number; perHour?: number; seal?: boolean } = {},
): Promise<CoverReport> {
  const seal = options.seal ?? true;
  const rand = prng(seed);
  const start = 1_800_000_000_000 - (1_800_000_000_000 % DAY);
  const warm = start + 2 * DAY;
  const base = 2 / 60_000; // 2 calls a minute on average
  const rate = (t: number) => base * (1 + 0.6 * Math.sin((2 * Math.PI * (t % DAY)) / DAY));
  const next = modelCaller(rand);
  let now = start;
  const coverForms = new Map<string, string[]>();
  const cover = new CoverTraffic({
    perCall: options.perCall ?? 1,
    ...(options.perHour === undefined ? {} : { perHour: options.perHour }),
    random: rand,
    now: () => now,
    fetch: capture(coverForms),
  });
  const keys = await Promise.all(
    Array.from({ length: 3 }, async (_, i) => ({
      kid: `k${i}`,
      publicKey: (await generateRecipientKeyPair()).publicKey,
    })),
  );
  const events: StoreEvent[] = [];
  const pending: Promise<unknown>[] = [];
  const realForms = new Map<string, string[]>();
  const cps = "https://cps.example.net";
  let nextReal = start;
  const drawReal = (from: number) => {
    // Thinning at the peak rate: a Poisson process at rate(t).
    let t = from;
    for (;;) {
      t += -Math.log(1 - rand()) / (base * 1.6);
      if (rand() < rate(t) / (base * 1.6)) return t;
    }
  };
  nextReal = drawReal(start);
  let real = 0;
  let coverCalls = 0;
  while (real < n) {
    const c = cover.planner.nextAt(now, nextReal);
    if (c !== undefined) {
      now = c;
      if (c < warm || !seal) {
        // Warm-up (or no sealing): only the planner's choice matters, as coverCall makes it.
        const t = cover.planner.target();
        if (t && c >= warm) {
          events.push({ at: c, tn: t.tn, copies: t.copies, real: false, form: "-" });
          coverCalls++;
        }
        continue;
      }
      // coverCall() picks its target synchronously (the planner), then seals and stores.
      const job = cover.coverCall();
      pending.push(
        job.then((t) => {
          if (t && c >= warm)
            events.push({
              at: c,
              tn: t.tn,
              copies: t.copies,
              real: false,
              form: coverForms.get(t.tn)!.shift()!,
            });
          else if (t) coverForms.get(t.tn)!.shift();
        }),
      );
      if (c >= warm) coverCalls++;
    } else {
      now = nextReal;
      const call = next();
      const tn = canonicalTn(call.tn);
      const at = now;
      const measured = at >= warm;
      if (measured) real++;
      if (!measured || !seal) {
        if (measured) events.push({ at, tn, copies: call.copies, real: true, form: "-" });
      } else
        pending.push(
          sealAndStore({
            cps,
            tn,
            // A PASSporT-sized plaintext; its length never shows (fixed-size padding).
            passports: ["x".repeat(380 + Math.floor(rand() * 240))],
            keys: keys.slice(0, call.copies),
            tokens: untokenedStores,
            fetch: capture(realForms),
          }).then(() => {
            const form = realForms.get(tn)!.shift()!;
            if (measured) events.push({ at, tn, copies: call.copies, real: true, form });
          }),
        );
      cover.observe({ to: tn, cpses: [cps], copies: call.copies });
      nextReal = drawReal(now);
    }
    if (pending.length >= 256) await Promise.all(pending.splice(0));
  }
  await Promise.all(pending);
  const days = (now - warm) / DAY;
  const meanGap = (now - warm) / events.length;
  const report = tables(storeFeatures(events, meanGap), n, seed + 1);
  const realEvents = events.filter((e) => e.real);
  const coverEvents = events.filter((e) => !e.real);
  const blobs = (es: StoreEvent[]) => es.reduce((a, e) => a + e.copies, 0);

  // Controls: the same real calls, with cover badly made.
  const controls: CoverReport["controls"] = {};
  const crand = prng(seed + 5);
  const span = [warm, now] as const;
  const fixed: StoreEvent[] = [];
  const step = (span[1] - span[0]) / coverEvents.length;
  for (let t = span[0] + step / 2; t < span[1]; t += step) {
    const tn = `1${String(Math.floor(crand() * 1e10)).padStart(10, "0")}`;
    fixed.push({ at: t, tn, copies: 1, real: false, form: coverEvents[0]!.form });
  }
  const c1 = tables(storeFeatures([...realEvents, ...fixed], meanGap), n, seed + 2);
  controls["fixed intervals, uniformly random numbers"] = c1.best;
  if (seal) {
    // CoverTraffic itself at a fixed rate (the real calls' mean) instead of the daily profile.
    // 4,000 calls: well over a day, whatever n, so the day's rhythm is there to see.
    const m = 4000;
    const flat = await coverSimulation(m, seed + 3, { perHour: 120, seal: false });
    controls["CoverTraffic at a constant rate (perHour), learned numbers"] = flat.tables.best;
  }

  return {
    n,
    days,
    realCalls: realEvents.length,
    coverCalls,
    forms: {
      real: [...new Set(realEvents.map((e) => e.form))],
      cover: [...new Set(coverEvents.map((e) => e.form))],
    },
    perRealCall: {
      realBlobs: blobs(realEvents) / realEvents.length,
      coverBlobs: blobs(coverEvents) / realEvents.length,
    },
    tables: report,
    controls,
  };
}

// ---------------------------------------------------------------------------------------------
// Part f: decoys

interface Retrieval {
  at: number;
  tn: string;
  own: boolean;
  /** Part of a group a ringing call started (else a background group). */
  call: boolean;
  /** Whose retrieval (its owned number): the split keeps a callee's numbers on one side. */
  callee: string;
}

export interface DecoyReport {
  n: number;
  callees: number;
  perRetrieval: number;
  backgroundPerHour: number;
  spreadMs: number;
  /** Retrievals per real (call-time) retrieval: decoys around it, and background ones. */
  perRealRetrieval: { decoy: number; background: number; total: number };
  /** Without store timing: the pass rule. */
  tables: TableReport;
  /** With store timing (a store to the number in the 10 s before): reported. */
  withStores: TableReport;
  /** Share of call-time groups whose owned number is the only one of its group stored to in the 10 s before. */
  ownedSingledOut: number;
  /** Real vs cover stores (cover as often as real calls, to learned-style numbers), with "retrieved within 10 s after". */
  coverWithRetrievals: { features: string; accuracy: number };
  /** Control: decoys fired after the real retrieval (no offsets), the pass-rule features. */
  control: { features: string; accuracy: number };
}

/**
 * Part f: `callees` callees, each owning one number (50 prefixes), called as a Poisson process
 * (`callsPerDay` each); each call is a store then, 0.5-2.5 s later, a retrieval group planned by
 * DecoyPlan; plus background groups. Samples: every retrieval, owned number vs decoy.
 */
export function decoySimulation(
  n: number,
  seed = 31,
  options: {
    callees?: number;
    callsPerDay?: number;
    perRetrieval?: number;
    backgroundPerHour?: number;
    spreadMs?: number;
  } = {},
): DecoyReport {
  const rand = prng(seed);
  const callees = options.callees ?? 1000;
  const callsPerDay = options.callsPerDay ?? 6;
  const k = options.perRetrieval ?? 3;
  const bg = options.backgroundPerHour ?? 1;
  const spread = options.spreadMs ?? 100;
  const start = 1_800_000_000_000 - (1_800_000_000_000 % DAY);
  const prefixes = Array.from({ length: 50 }, (_, i) => `1${String(202 + i * 13).padStart(3, "0")}555`);
  const owned = Array.from({ length: callees }, (_, i) =>
    canonicalTn(prefixes[i % 50]! + String(Math.floor(rand() * 10_000)).padStart(4, "0")),
  );
  const plans = owned.map(
    (tn) =>
      new DecoyPlan({ own: [tn], perRetrieval: k, backgroundPerHour: bg, spreadMs: spread, random: rand }),
  );
  // Calls over the whole population: Poisson; the callee uniform.
  const totalRate = (callees * callsPerDay) / DAY;
  const stores: { at: number; tn: string; real: boolean }[] = [];
  const retrievals: Retrieval[] = [];
  const lateControl: Retrieval[] = [];
  let t = start;
  let calls = 0;
  while (calls < n) {
    t += -Math.log(1 - rand()) / totalRate;
    const c = Math.floor(rand() * callees);
    stores.push({ at: t, tn: owned[c]!, real: true });
    const ring = t + 500 + rand() * 2000;
    for (const r of plans[c]!.group(owned[c]!))
      retrievals.push({ at: ring + r.delayMs, tn: r.tn, own: r.real, call: r.real, callee: owned[c]! });
    // Control: the real retrieval at once, decoys after it.
    lateControl.push({ at: ring, tn: owned[c]!, own: true, call: true, callee: owned[c]! });
    for (const d of plans[c]!.decoysFor(owned[c]!))
      lateControl.push({ at: ring + 1 + rand() * spread, tn: d, own: false, call: false, callee: owned[c]! });
    calls++;
    // Cover from the callers' ASes: as many cover calls, to fresh numbers in the same prefixes.
    const ct = t + -Math.log(1 - rand()) * (1 / totalRate);
    stores.push({
      at: ct,
      tn: prefixes[Math.floor(rand() * 50)]! + String(Math.floor(rand() * 10_000)).padStart(4, "0"),
      real: false,
    });
  }
  const end = t;
  let background = 0;
  for (const plan of plans) {
    for (let b = plan.nextBackgroundAt(start); b !== undefined && b < end; b = plan.nextBackgroundAt(b)) {
      for (const r of plan.group(plan.backgroundNumber())) {
        retrievals.push({ at: b + r.delayMs, tn: r.tn, own: r.real, call: false, callee: plan.own[0]! });
        background++;
      }
    }
  }
  const storesByTn = new Map<string, number[]>();
  for (const s of stores) storesByTn.set(s.tn, [...(storesByTn.get(s.tn) ?? []), s.at]);
  const storeBefore = (r: { at: number; tn: string }) =>
    (storesByTn.get(r.tn) ?? []).some((s) => s <= r.at && r.at - s <= 10_000) ? 1 : 0;

  const features = (rs: Retrieval[], withStores: boolean): Grouped[] => {
    const sorted = [...rs].sort((a, b) => a.at - b.at);
    const byTn = new Map<string, number>();
    for (const r of sorted) byTn.set(r.tn, (byTn.get(r.tn) ?? 0) + 1);
    return sorted.map((r, i) => {
      // Its burst: retrievals under the same prefix within 1 s (the CPS's guess at a group).
      let rank = 0;
      let size = 1;
      for (let j = i - 1; j >= 0 && r.at - sorted[j]!.at < 1000; j--)
        if (sorted[j]!.tn.slice(0, 7) === r.tn.slice(0, 7)) {
          rank++;
          size++;
        }
      for (let j = i + 1; j < sorted.length && sorted[j]!.at - r.at < 1000; j++)
        if (sorted[j]!.tn.slice(0, 7) === r.tn.slice(0, 7)) size++;
      const f: Record<string, number> = {
        hour: Math.floor((r.at % DAY) / HOUR),
        rank: Math.min(rank, 6),
        burst: Math.min(size, 8),
        prefix: Number(r.tn.slice(0, 7)),
        path: r.tn.length,
        retrievals: bin(byTn.get(r.tn)!, [2, 4, 8, 16, 32, 64]),
      };
      if (withStores) f.storeBefore = storeBefore(r);
      // Split by callee, not by number: a callee's owned number and its decoys fall on one side, so each
      // side holds whole groups (1 owned : k decoys) and no table learns from the split itself.
      return { real: r.own, group: r.callee, features: f };
    });
  };
  const report = tables(features(retrievals, false), n, seed + 1);
  const withStores = tables(features(retrievals, true), n, seed + 2, [
    "storeBefore",
    "rank",
    "burst",
    "retrievals",
  ]);
  const control = tables(features(lateControl, false), n, seed + 3, ["rank", "burst"]).best;

  // Groups of calls: is the owned number the only one of the group with a store in the 10 s before?
  let singled = 0;
  for (let c = 0, i = 0; i < retrievals.length && c < calls; i += k + 1, c++) {
    const group = retrievals.slice(i, i + k + 1);
    const hit = group.filter((r) => storeBefore(r));
    if (hit.length === 1 && hit[0]!.own) singled++;
  }
  // Cover vs real stores, when the CPS also looks at retrievals that follow each store.
  const retrByTn = new Map<string, number[]>();
  for (const r of retrievals) retrByTn.set(r.tn, [...(retrByTn.get(r.tn) ?? []), r.at]);
  const storeSamples: Sample[] = stores.map((s) => ({
    real: s.real,
    features: {
      retrievedAfter: (retrByTn.get(s.tn) ?? []).some((a) => a >= s.at && a - s.at <= 10_000) ? 1 : 0,
    },
  }));
  const coverWithRetrievals = tables(storeSamples, n, seed + 4).best;
  return {
    n,
    callees,
    perRetrieval: k,
    backgroundPerHour: bg,
    spreadMs: spread,
    perRealRetrieval: { decoy: k, background: background / calls, total: k + background / calls },
    tables: report,
    withStores,
    ownedSingledOut: singled / calls,
    coverWithRetrievals,
    control,
  };
}

export type { CanonicalTn };

// ---------------------------------------------------------------------------------------------
// Short runs against the Worker (wrangler dev, tokens required): forms, statuses and cost

/** A request as sent and answered, for the cost figures. */
interface Sent {
  form: string;
  kind: "store" | "list" | "tokens" | "other";
  status: number;
  bytesOut: number;
  bytesIn: number;
}

/** fetch, recording every request's form, status and bytes (body and header text both ways). */
function counting(log: Sent[]): FetchLike & ((r: Request) => Promise<Response>) {
  return (async (input: string | URL | Request, init?: RequestInit) => {
    const req = input instanceof Request ? input : new Request(input, init);
    const body = req.body ? await req.clone().text() : "";
    const form = requestForm(req.url, { method: req.method, headers: req.headers, body });
    const path = new URL(req.url).pathname;
    const kind = /\/ppts$/.test(path)
      ? req.method === "POST"
        ? "store"
        : "list"
      : path.startsWith("/tokens")
        ? "tokens"
        : "other";
    let headerBytes = 0;
    req.headers.forEach((v, k) => {
      headerBytes += k.length + v.length + 4;
    });
    const res = await fetch(req);
    const text = await res.clone().text();
    let inHeaders = 0;
    res.headers.forEach((v, k) => {
      inHeaders += k.length + v.length + 4;
    });
    log.push({
      form,
      kind,
      status: res.status,
      bytesOut: body.length + headerBytes + req.method.length + req.url.length,
      bytesIn: text.length + inHeaders,
    });
    return res;
  }) as FetchLike & ((r: Request) => Promise<Response>);
}

export interface TokenSetup {
  rootPem: string;
  bearer: (audience: string) => Promise<string>;
  root: import("@peculiar/x509").X509Certificate;
}

/** A test PKI whose credential may obtain storage tokens (its root goes in TRUST_ANCHORS_PEM). */
export async function tokenSetup(): Promise<TokenSetup> {
  const { createTestPki } = await import("../src/stir/test-pki.js");
  const { issueCredentialToken } = await import("../src/stir/credential-token.js");
  const pki = await createTestPki({ tnAuthList: [{ type: "range", start: "11115551100", count: 100 }] });
  return {
    rootPem: pki.root.certificate.toString("pem"),
    root: pki.root.certificate,
    bearer: async (audience) =>
      `Bearer ${await issueCredentialToken({ privateKey: pki.valid.privateKey, x5c: pki.valid.der, audience, action: "tokens:issue" })}`,
  };
}

function summarise(log: Sent[]) {
  const by = (k: Sent["kind"]) => log.filter((s) => s.kind === k);
  const sum = (xs: Sent[], f: (s: Sent) => number) => xs.reduce((a, s) => a + f(s), 0);
  return {
    requests: log.length,
    stores: by("store").length,
    lists: by("list").length,
    tokenRequests: by("tokens").length,
    bytesOut: sum(log, (s) => s.bytesOut),
    bytesIn: sum(log, (s) => s.bytesIn),
    statuses: [...new Set(log.map((s) => s.status))].sort(),
  };
}

export interface CoverWorkerReport {
  seconds: number;
  realCalls: number;
  coverCalls: number;
  forms: { real: string[]; cover: string[] };
  real: ReturnType<typeof summarise>;
  cover: ReturnType<typeof summarise>;
  /** Cover per real call: store requests (= tokens), token-issuance requests, bytes both ways. */
  perRealCall: { tokens: number; storeRequests: number; tokenRequests: number; bytes: number };
  failures: string[];
}

/**
 * Real calls (Poisson, `perSecond`) by sealAndStore with wallet tokens, beside CoverTraffic learning
 * from them, against the Worker at `url` for `seconds`; one wallet per side so token issuance is
 * counted per side (a real AS shares one).
 */
export async function coverWorkerRun(
  url: string,
  setup: TokenSetup,
  seconds = 30,
  perSecond = 2,
): Promise<CoverWorkerReport> {
  const { TokenWallet } = await import("../src/client/token-wallet.js");
  const { walletTokens } = await import("../src/client/store-tokens.js");
  const realLog: Sent[] = [];
  const coverLog: Sent[] = [];
  const wallet = (log: Sent[]) =>
    walletTokens(
      new TokenWallet({ cpsUrl: url, authorization: () => setup.bearer(url), fetch: counting(log) }),
      {
        batch: 32,
        lowWater: 8,
      },
    );
  const realTokens = wallet(realLog);
  const coverTokens = wallet(coverLog);
  const keys = await Promise.all(
    Array.from({ length: 3 }, async (_, i) => ({
      kid: `k${i}`,
      publicKey: (await generateRecipientKeyPair()).publicKey,
    })),
  );
  // learnMs 1 s: a run of seconds has no daily profile, and 10 minutes of learning would be the whole run.
  const cover = new CoverTraffic({
    tokens: coverTokens,
    fetch: counting(coverLog),
    perCall: 1,
    learnMs: 1000,
  });
  const next = modelCaller(Math.random);
  const failures: string[] = [];
  cover.start();
  const t0 = Date.now();
  const jobs: Promise<void>[] = [];
  let realCalls = 0;
  for (
    let t = t0 - Math.log(1 - Math.random()) * (1000 / perSecond);
    t < t0 + seconds * 1000;
    t += -Math.log(1 - Math.random()) * (1000 / perSecond)
  ) {
    await new Promise((r) => setTimeout(r, Math.max(0, t - Date.now())));
    const call = next();
    const tn = canonicalTn(call.tn);
    realCalls++;
    jobs.push(
      sealAndStore({
        cps: url,
        tn,
        passports: ["x".repeat(500)],
        keys: keys.slice(0, call.copies),
        tokens: realTokens,
        fetch: counting(realLog),
      }).then(
        () => cover.observe({ to: tn, cpses: [url], copies: call.copies }),
        (err) => {
          failures.push(`real store: ${err.message}`);
        },
      ),
    );
  }
  await Promise.all(jobs);
  await cover.stop();
  const real = summarise(realLog);
  const cov = summarise(coverLog);
  const forms = {
    real: [...new Set(realLog.filter((s) => s.kind === "store").map((s) => s.form))],
    cover: [...new Set(coverLog.filter((s) => s.kind === "store").map((s) => s.form))],
  };
  if (cover.stats.failures) failures.push(`${cover.stats.failures} cover calls failed`);
  if ([...real.statuses, ...cov.statuses].some((s) => s >= 300)) failures.push("a request was refused");
  const realForms = new Set(forms.real.map((f) => f.replace(/ \/cps\/<\d+>/, " /cps/<n>")));
  for (const f of forms.cover)
    if (!realForms.has(f.replace(/ \/cps\/<\d+>/, " /cps/<n>")))
      failures.push(`cover request form not seen in real stores: ${f}`);
  return {
    seconds,
    realCalls,
    coverCalls: cover.stats.coverCalls,
    forms,
    real,
    cover: cov,
    perRealCall: {
      tokens: cov.stores / realCalls,
      storeRequests: cov.stores / realCalls,
      tokenRequests: cov.tokenRequests / realCalls,
      bytes: (cov.bytesOut + cov.bytesIn) / realCalls,
    },
    failures,
  };
}

export interface DecoyWorkerReport {
  retrievals: number;
  perRetrieval: number;
  spreadMs: number;
  forms: { real: string[]; decoy: string[] };
  /** Per real retrieval: decoy requests and bytes, and the median added delay. */
  perRealRetrieval: { requests: number; bytes: number; bytesRealRetrieval: number };
  medianMs: { withDecoys: number; without: number };
  failures: string[];
}

/**
 * A callee's VerificationService with a DecoyPoller against the Worker: `rounds` retrievals of an
 * owned number holding a real blob, alternately with and without decoys, counting every request.
 */
export async function decoyWorkerRun(
  url: string,
  setup: TokenSetup,
  rounds = 40,
  perRetrieval = 3,
): Promise<DecoyWorkerReport> {
  const { VerificationService } = await import("../src/client/vs.js");
  const { DecoyPoller } = await import("../src/client/decoys.js");
  const { TokenWallet } = await import("../src/client/token-wallet.js");
  const { walletTokens } = await import("../src/client/store-tokens.js");
  const { median } = await import("./lib/stats.mjs");
  const tn = canonicalTn("12025550142");
  const callee = await generateRecipientKeyPair();
  const tokens = walletTokens(new TokenWallet({ cpsUrl: url, authorization: () => setup.bearer(url) }));
  await sealAndStore({
    cps: url,
    tn,
    passports: ["x".repeat(500)],
    keys: [{ kid: "bob", publicKey: callee.publicKey }],
    tokens,
  });
  const realLog: Sent[] = [];
  const decoyLog: Sent[] = [];
  const spreadMs = 100;
  const decoys = new DecoyPoller({ own: [tn], cps: url, perRetrieval, spreadMs, fetch: counting(decoyLog) });
  const make = (withDecoys: boolean) =>
    new VerificationService({
      keys: [{ kid: "bob", privateKey: callee.keyPair }],
      trustAnchors: [setup.root],
      cps: url,
      fetch: counting(realLog),
      ...(withDecoys ? { decoys } : {}),
    });
  const [vsDecoys, vsPlain] = [make(true), make(false)];
  const failures: string[] = [];
  const times = { withDecoys: [] as number[], without: [] as number[] };
  for (let i = 0; i < rounds; i++) {
    for (const [vs, key] of (i % 2
      ? [
          [vsDecoys, "withDecoys"],
          [vsPlain, "without"],
        ]
      : [
          [vsPlain, "without"],
          [vsDecoys, "withDecoys"],
        ]) as [typeof vsPlain, keyof typeof times][]) {
      const t = performance.now();
      const opened = await vs.open(tn);
      times[key].push(performance.now() - t);
      if (opened.opened < 1) failures.push("the real blob did not open");
    }
  }
  await decoys.stop();
  const real = summarise(realLog);
  const dec = summarise(decoyLog);
  if ([...real.statuses, ...dec.statuses].some((s) => s !== 200))
    failures.push("a retrieval was not answered 200");
  const forms = {
    real: [...new Set(realLog.map((s) => s.form))],
    decoy: [...new Set(decoyLog.map((s) => s.form))],
  };
  if (forms.decoy.some((f) => !forms.real.includes(f)))
    failures.push("a decoy request differs in form from the real one");
  if (dec.lists !== rounds * perRetrieval)
    failures.push(`expected ${rounds * perRetrieval} decoy retrievals, saw ${dec.lists}`);
  return {
    retrievals: rounds,
    perRetrieval,
    spreadMs,
    forms,
    perRealRetrieval: {
      requests: dec.lists / rounds,
      bytes: (dec.bytesOut + dec.bytesIn) / rounds,
      bytesRealRetrieval: (real.bytesOut + real.bytesIn) / real.lists,
    },
    medianMs: { withDecoys: median(times.withDecoys), without: median(times.without) },
    failures,
  };
}
