/**
 * Model-based test of the CPS HTTP API (RFC 8816 §6.2 retrieval with dummies, §7.5 lifetime, §9
 * store/list/fetch; docs/design.md invariants 2 and 4) with fast-check `fc.commands` against the real app
 * in workerd. A model (number -> id -> blob, plus the ids that have expired) predicts every answer:
 *
 * - store   POST a real sealed blob: 201, a fresh id, `Location` under the canonical number.
 * - list    GET the list: exactly the model's live (id, blob) pairs, plus at least one decoy whose id
 *           is in no model and whose blob was never served under another id (anywhere, in any run).
 * - fetch   GET one id: a live id gives its exact blob, a listed decoy's id its exact blob while it
 *           lives (issue 13 finding 6); an expired id, another number's id or an unknown id gives 404.
 * - expire  backdate one live row (runInDurableObject), as if its TTL had passed: the model drops it.
 * - alarm   run the alarm of the number's index block (runDurableObjectAlarm; the block holds the
 *           blobs of every number of the block): for each of the run's numbers in that block, no
 *           expired row is left in SQLite and every live row is still there.
 *
 * Each run uses its own numbers, so runs do not share state; spellings vary (dotted, +, spaces).
 */
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { ENVELOPE_TEXT_LENGTH } from "../../src/stir/envelope.js";
import { indexBlockOfTn } from "../../src/stir/push-blocks.js";
import { type ListBody, sealedFor, storeRequest } from "../helpers/cps.js";
import { BASE, blockFor, fetchApp } from "../helpers/worker.js";

const NUMBERS = 3;
const BLOBS_PER_NUMBER = 4;

interface Model {
  live: Map<string, string>[]; // per number index: id -> blob text
  expired: Set<string>;
  dummyIds: { n: number; id: string; blob: string }[];
}

interface Real {
  tns: string[]; // canonical
  spellings: string[][];
  blobs: string[][]; // pre-sealed real blob texts per number
}

/** Every blob text any list answer has served as a decoy, with its id, across all runs: one id each. */
const servedDummies = new Map<string, string>();
let realBlobs: string[][] = [];
let run = 0;

function spellingsOf(tn: string): string[] {
  const [a, b, c] = [tn.slice(0, 1), tn.slice(1, 4), tn.slice(4)];
  return [tn, `+${tn}`, `${a}.${b}.${c}`, encodeURIComponent(`+${a} ${b} ${c}`), `${a}-${b}-${c}`];
}

class StoreCmd implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly n: number,
    readonly blob: number,
    readonly spelling: number,
  ) {}
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    const text = r.blobs[this.n]![this.blob]!;
    const spelled = r.spellings[this.n]![this.spelling % r.spellings[this.n]!.length]!;
    const res = await fetchApp(storeRequest(BASE, spelled, text));
    expect(res.status).toBe(201);
    const { id } = await res.json<{ id: string }>();
    expect(id).toMatch(/^[0-9a-f]{32}$/);
    expect(res.headers.get("Location")).toBe(`/cps/${r.tns[this.n]}/ppts/${id}`);
    // The same bytes again without a retry key are a new store with a new id (issue 13 finding 5:
    // only a true retry, recognised by its storage token, gets the id it already has).
    for (const live of m.live) expect(live.has(id)).toBe(false);
    expect(m.expired.has(id)).toBe(false);
    m.live[this.n]!.set(id, text);
  }
  toString = () => `store(n${this.n}, blob${this.blob}, spelling${this.spelling})`;
}

class ListCmd implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly n: number,
    readonly spelling: number,
  ) {}
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    const spelled = r.spellings[this.n]![this.spelling % r.spellings[this.n]!.length]!;
    const res = await fetchApp(new Request(`${BASE}/cps/${spelled}/ppts`));
    expect(res.status).toBe(200);
    expect(res.headers.get("Cache-Control")).toBe("no-store");
    const { passports } = await res.json<ListBody>();
    const expected = m.live[this.n]!;
    const got = new Map(passports.map((p) => [p.id, p.blob]));
    expect(got.size).toBe(passports.length); // ids unique within an answer
    for (const [id, blob] of expected) expect(got.get(id)).toBe(blob);
    const extras = passports.filter((p) => !expected.has(p.id));
    expect(extras.length).toBeGreaterThanOrEqual(1);
    for (const d of extras) {
      for (const live of m.live) expect(live.has(d.id)).toBe(false); // not another number's blob
      expect(m.expired.has(d.id)).toBe(false); // not an expired blob
      expect(servedDummies.get(d.blob) ?? d.id).toBe(d.id); // a decoy's bytes never come back as another
      servedDummies.set(d.blob, d.id);
      m.dummyIds.push({ n: this.n, id: d.id, blob: d.blob });
    }
    for (const p of passports) expect(p.blob).toHaveLength(ENVELOPE_TEXT_LENGTH);
  }
  toString = () => `list(n${this.n}, spelling${this.spelling})`;
}

type FetchKind = "live" | "expired" | "dummy" | "otherNumber" | "unknown";

class FetchCmd implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly n: number,
    readonly kind: FetchKind,
    readonly pick: number,
    readonly slash: boolean,
  ) {}
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    const pickFrom = <T>(xs: T[]): T | undefined => (xs.length ? xs[this.pick % xs.length] : undefined);
    let id: string | undefined;
    let want: string | null = null;
    switch (this.kind) {
      case "live": {
        const entry = pickFrom([...m.live[this.n]!.entries()]);
        if (entry) [id, want] = entry;
        break;
      }
      case "expired":
        id = pickFrom([...m.expired]);
        break;
      case "dummy": {
        const d = pickFrom(m.dummyIds.filter((x) => x.n === this.n));
        if (d) [id, want] = [d.id, d.blob];
        break;
      }
      case "otherNumber":
        id = pickFrom(m.live.flatMap((l, i) => (i === this.n ? [] : [...l.keys()])));
        break;
      case "unknown":
        id = this.pick.toString(16).padStart(32, "0");
        break;
    }
    if (id === undefined) return; // nothing of that kind yet: a no-op step
    const res = await fetchApp(
      new Request(`${BASE}/cps/${r.tns[this.n]}/ppts/${id}${this.slash ? "/" : ""}`),
    );
    if (want === null) {
      expect(res.status).toBe(404);
      await res.body?.cancel();
      return;
    }
    if (this.kind === "dummy" && res.status === 404) return; // that decoy's life (60 s) just ended
    expect(res.status).toBe(200);
    expect(res.headers.get("Content-Type")).toMatch(/^application\/passport/);
    expect(new TextDecoder().decode(await res.arrayBuffer())).toBe(want);
  }
  toString = () => `fetch(n${this.n}, ${this.kind}, ${this.pick}${this.slash ? ", /" : ""})`;
}

class ExpireCmd implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly n: number,
    readonly pick: number,
    readonly agoMs: number,
  ) {}
  check = (m: Readonly<Model>) => m.live[this.n]!.size > 0;
  async run(m: Model, r: Real): Promise<void> {
    const ids = [...m.live[this.n]!.keys()];
    const id = ids[this.pick % ids.length]!;
    const at = Date.now() - this.agoMs;
    const tn = r.tns[this.n]!;
    const changed = await runInDurableObject(blockFor(tn), (_obj, state) => {
      state.storage.sql.exec("UPDATE blobs SET expires_at = ? WHERE id = ? AND tn = ?", at, id, tn);
      return state.storage.sql.exec<{ n: number }>("SELECT changes() AS n").one().n;
    });
    expect(changed).toBe(1); // the row the model calls live was in storage
    m.live[this.n]!.delete(id);
    m.expired.add(id);
  }
  toString = () => `expire(n${this.n}, ${this.pick}, ${this.agoMs} ms ago)`;
}

class AlarmCmd implements fc.AsyncCommand<Model, Real> {
  constructor(readonly n: number) {}
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    const stub = blockFor(r.tns[this.n]!);
    await runDurableObjectAlarm(stub);
    const now = Date.now();
    // The block's alarm expires every number of the block: check each of the run's numbers in it.
    const block = indexBlockOfTn(r.tns[this.n]!);
    const inBlock = r.tns.map((tn, k) => [tn, k] as const).filter(([tn]) => indexBlockOfTn(tn) === block);
    expect(inBlock.length).toBeGreaterThanOrEqual(1);
    for (const [tn, k] of inBlock) {
      const rows = await runInDurableObject(stub, (_obj, state) =>
        state.storage.sql
          .exec<{ id: string; expires_at: number }>("SELECT id, expires_at FROM blobs WHERE tn = ?", tn)
          .toArray(),
      );
      for (const row of rows) expect(row.expires_at).toBeGreaterThan(now - 50); // backdated rows are gone
      expect(new Set(rows.map((row) => row.id))).toEqual(new Set(m.live[k]!.keys()));
    }
  }
  toString = () => `alarm(n${this.n})`;
}

const n = fc.nat({ max: NUMBERS - 1 });
const commands = [
  fc
    .tuple(n, fc.nat({ max: BLOBS_PER_NUMBER - 1 }), fc.nat({ max: 4 }))
    .map(([a, b, c]) => new StoreCmd(a, b, c)),
  fc.tuple(n, fc.nat({ max: 4 })).map(([a, b]) => new ListCmd(a, b)),
  fc
    .tuple(
      n,
      fc.constantFrom<FetchKind>("live", "live", "expired", "dummy", "otherNumber", "unknown"),
      fc.nat(),
      fc.boolean(),
    )
    .map(([a, k, p, s]) => new FetchCmd(a, k, p, s)),
  fc
    .tuple(n, fc.nat(), fc.constantFrom(0, 1, 60_000, 3_600_000))
    .map(([a, p, ago]) => new ExpireCmd(a, p, ago)),
  n.map((a) => new AlarmCmd(a)),
];

describe("model-based: store, list, fetch, expire and alarm against a model (fc.commands)", () => {
  beforeAll(async () => {
    // Sealed per number (the HPKE info binds it), a few per number, reused across runs.
    realBlobs = await Promise.all(
      Array.from({ length: NUMBERS }, async (_, i) =>
        Promise.all(
          Array.from({ length: BLOBS_PER_NUMBER }, async () => (await sealedFor(`1555090000${i}`)).text),
        ),
      ),
    );
  });

  it("every answer matches the model (60 runs of up to 40 commands)", async () => {
    let steps = 0;
    await fc.assert(
      fc.asyncProperty(fc.commands(commands, { maxCommands: 40 }), async (cmds) => {
        run++;
        const tns = Array.from({ length: NUMBERS }, (_, i) => `1555${String(run).padStart(5, "0")}0${i}`);
        const real: Real = { tns, spellings: tns.map(spellingsOf), blobs: realBlobs };
        const model: Model = { live: tns.map(() => new Map()), expired: new Set(), dummyIds: [] };
        await fc.asyncModelRun(() => ({ model, real }), cmds);
        steps += [...cmds].length;
      }),
      { numRuns: 60 },
    );
    expect(steps).toBeGreaterThan(100); // control: the runs did execute commands
    expect(servedDummies.size).toBeGreaterThan(20);
  }, 60_000);
});
