/**
 * The dummy pool (src/dummies/pool.ts, src/routes/dummies.ts) against RFC 8816 §6.2 ("unique"
 * dummies, never repeated; DESIGN.md invariant 2) and against being a CPU lever: used at most once
 * under concurrency, bounded, refilled off the request path only for numbers retrieved twice, and
 * what it serves is the same `makeDummy` output as before.
 */
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { DummyPool } from "../../src/dummies/pool.js";
import { dummiesFor, dummyPool, MAX_DUMMIES } from "../../src/routes/dummies.js";
import { decodeEnvelope, ENVELOPE_LENGTH } from "../../src/stir/envelope.js";
import { canonicalTn } from "../../src/stir/tn.js";
import type { ListBody } from "../helpers/cps.js";

const BASE = "https://cps.example.com";

/** A pool whose sealer stamps a serial number into each blob and counts the seals. */
function countingPool(
  options: { target?: number; maxNumbers?: number; idleMs?: number; now?: () => number } = {},
) {
  let serial = 0;
  const pool = new DummyPool({
    ...options,
    seal: async () => {
      await new Promise((r) => setTimeout(r, Math.random() * 3));
      const b = new Uint8Array(8);
      new DataView(b.buffer).setUint32(0, ++serial);
      return b;
    },
  });
  return { pool, seals: () => serial, id: (b: Uint8Array) => new DataView(b.buffer).getUint32(0) };
}

describe("DummyPool", () => {
  it("never hands out one blob twice: 200 concurrent pollers x 10 takes and refills over 5 numbers", async () => {
    const { pool, id } = countingPool();
    const tns = ["15550400001", "15550400002", "15550400003", "15550400004", "15550400005"].map((t) =>
      canonicalTn(t),
    );
    const seen = new Set<number>();
    let served = 0;
    await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        const tn = tns[i % tns.length]!;
        for (let round = 0; round < 10; round++) {
          await new Promise((r) => setTimeout(r, Math.random() * 3));
          for (const b of pool.take(tn, 1 + ((i + round) % 3))) {
            served++;
            expect(seen.has(id(b))).toBe(false);
            seen.add(id(b));
          }
          await pool.refill(tn);
          expect(pool.size(tn)).toBeLessThanOrEqual(pool.target);
        }
      }),
    );
    expect(served).toBeGreaterThan(100); // control: the pool did serve, so the check above bit
    expect(seen.size).toBe(served);
  });

  it("no speculative sealing: a scan of 500 distinct numbers, each retrieved once, seals nothing", async () => {
    const { pool, seals } = countingPool();
    for (let i = 0; i < 500; i++) {
      const tn = canonicalTn(`1555041${String(i).padStart(4, "0")}`);
      expect(pool.take(tn, 3)).toEqual([]);
      await pool.refill(tn);
    }
    expect(seals()).toBe(0);
  });

  it("a polled number is refilled to the target and no further; seals match what was served", async () => {
    const { pool, seals } = countingPool({ target: 3 });
    const tn = canonicalTn("15550420000");
    pool.take(tn, 2);
    await pool.refill(tn);
    expect(pool.size(tn)).toBe(0); // first retrieval: nothing sealed ahead
    let served = 0;
    for (let i = 0; i < 100; i++) {
      served += pool.take(tn, 1 + (i % 3)).length;
      await Promise.all([pool.refill(tn), pool.refill(tn), pool.refill(tn)]); // racing refills
      expect(pool.size(tn)).toBe(3);
    }
    // The very first take of this loop found the pool still empty; every later one was served in full.
    expect(served).toBe(Array.from({ length: 100 }, (_, i) => 1 + (i % 3)).reduce((a, b) => a + b) - 1);
    expect(seals()).toBe(served + 3); // everything served was replaced once, plus the standing 3
  });

  it("is bounded: at most maxNumbers numbers (LRU) and target blobs each; an idle number is dropped", async () => {
    let now = 1_000_000;
    const { pool } = countingPool({ target: 3, maxNumbers: 10, idleMs: 30_000, now: () => now });
    for (let i = 0; i < 50; i++) {
      const tn = canonicalTn(`1555043${String(i).padStart(4, "0")}`);
      pool.take(tn, 1);
      pool.take(tn, 1);
      await pool.refill(tn);
    }
    expect(pool.numbers).toBe(10);
    expect(pool.totalBlobs).toBe(30);
    const last = canonicalTn("15550430049");
    expect(pool.size(last)).toBe(3);
    now += 30_001;
    expect(pool.take(last, 3)).toEqual([]); // idle too long: its blobs were dropped, not served
  });
});

describe("the retrieval route with the pool", () => {
  it("200 retrievals of one number: every dummy and id distinct, the pool warm and within bounds", async () => {
    const tn = canonicalTn("15550440000");
    const blobs = new Set<string>();
    const ids = new Set<string>();
    let total = 0;
    for (let i = 0; i < 200; i++) {
      const res = await exports.default.fetch(new Request(`${BASE}/cps/${tn}/ppts`));
      const { passports } = await res.json<ListBody>();
      expect(passports.length).toBeGreaterThanOrEqual(1);
      expect(passports.length).toBeLessThanOrEqual(MAX_DUMMIES);
      for (const p of passports) {
        total++;
        blobs.add(p.blob);
        ids.add(p.id);
        const blob = decodeEnvelope(p.blob);
        expect(blob).toHaveLength(ENVELOPE_LENGTH);
        expect(blob[31]! & 0x80).toBe(0); // an X25519 enc, as makeDummy makes
      }
    }
    expect(blobs.size).toBe(total);
    expect(ids.size).toBe(total);
    await expect.poll(() => dummyPool.size(tn), { timeout: 5_000 }).toBe(MAX_DUMMIES);
  });

  it("dummiesFor draws from the pool first and seals the rest inline", async () => {
    const { pool, id } = countingPool({ target: 3 });
    const tn = canonicalTn("15550450000");
    pool.take(tn, 0);
    pool.take(tn, 0);
    await pool.refill(tn); // 3 counters ready
    const got = await dummiesFor(tn, undefined, pool);
    const fromPool = got.filter((d) => d.blob.length === 8).map((d) => id(d.blob));
    const inline = got.filter((d) => d.blob.length === ENVELOPE_LENGTH);
    expect(fromPool.length + inline.length).toBe(got.length);
    expect(fromPool.length).toBe(got.length); // 1-3 wanted, 3 ready: all from the pool
    expect(pool.size(tn)).toBe(3 - got.length); // no refill without defer
    const drained = await dummiesFor(tn, undefined, new DummyPool({ target: 3 }));
    expect(drained.every((d) => d.blob.length === ENVELOPE_LENGTH)).toBe(true); // empty pool: sealed inline
  });
});
