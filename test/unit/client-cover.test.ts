/**
 * Cover traffic by the AS (RFC 8816 §7.4, §13; src/client/cover.ts): the planner's rate (daily
 * profile, first-day fallback, fixed rate), its destinations (learned prefixes and copy counts, its own
 * repeats, never a real callee's number), and cover calls made through the AS's own store path: same
 * request form and headers, one token per blob, blobs nobody can open. The CPS-side measurements are
 * `npm run privacy -- --only e`; the Worker run is test/e2e/cover-decoys.test.ts.
 */
import "reflect-metadata";
import { beforeAll, describe, expect, it } from "vitest";
import { prng } from "../../bench/lib/stats.mjs";
import { CoverPlanner, CoverTraffic } from "../../src/client/cover.js";
import { Discovery } from "../../src/client/discovery.js";
import type { StoreTokenSource } from "../../src/client/store-tokens.js";
import {
  decodeEnvelope,
  ENVELOPE_LENGTH,
  generateRecipientKeyPair,
  openPassport,
} from "../../src/stir/envelope.js";
import { createTestPki, type TestCredential, type TestPki } from "../../src/stir/test-pki.js";
import { type CanonicalTn, canonicalTn } from "../../src/stir/tn.js";
import { fakeCps, fakeCpsAs } from "./client-fake-cps.js";

const DAY = 86_400_000;
const HOUR = 3_600_000;
const T0 = 1_800_000_000_000 - (1_800_000_000_000 % DAY); // a midnight
const BOB = canonicalTn("+2 222 555 2222");
const CPS = ["https://cps.test"];

let pki: TestPki;
let callees: TestCredential;

beforeAll(async () => {
  pki = await createTestPki({ tnAuthList: [{ type: "one", tn: canonicalTn("+1 111 555 1111") }] });
  callees = await pki.issue({ tnAuthList: [{ type: "one", tn: BOB }], subject: "callees" });
});

describe("CoverPlanner: when", () => {
  it("sends nothing before it has learned a call, and has nowhere to send it", () => {
    const p = new CoverPlanner(T0, { random: prng(1) });
    expect(p.rateAt(T0 + HOUR)).toBe(0);
    expect(p.nextAt(T0, T0 + DAY)).toBeUndefined();
    expect(p.target()).toBeUndefined();
  });

  it("on the first day runs at the mean real rate since start, times perCall, without a burst at the start", () => {
    const p = new CoverPlanner(T0, { perCall: 2, random: prng(2) });
    for (let i = 0; i < 10; i++) p.observe({ to: BOB, cpses: CPS, copies: 1 }, T0 + i * 60_000);
    // 10 calls in the first 10 minutes, asked at 20 min: 1 every 2 minutes, so 1 cover call a minute.
    expect(p.rateAt(T0 + 1_200_000) * 60_000).toBeCloseTo(1, 6);
    // One call a second after start is not "one a second": learnMs (10 min) is the least it averages over.
    const q = new CoverPlanner(T0, { random: prng(2) });
    q.observe({ to: BOB, cpses: CPS, copies: 1 }, T0 + 1000);
    expect(q.rateAt(T0 + 1000) * 600_000).toBeCloseTo(1, 6);
  });

  it("from the second day follows the daily profile: same hour, same rate; quiet hours stay quiet", () => {
    const p = new CoverPlanner(T0, { random: prng(3) });
    // Day 0: 30 calls between 10:00 and 11:00, none otherwise.
    for (let i = 0; i < 30; i++) p.observe({ to: BOB, cpses: CPS, copies: 1 }, T0 + 10 * HOUR + i * 120_000);
    const day1 = T0 + DAY;
    expect(p.rateAt(day1 + 10.5 * HOUR) * HOUR).toBeCloseTo(30, 6); // the slot's centre
    expect(p.rateAt(day1 + 3 * HOUR)).toBe(0);
    // Between slot centres it interpolates: 10:00 is halfway between 9:30 (0) and 10:30 (30).
    expect(p.rateAt(day1 + 10 * HOUR) * HOUR).toBeCloseTo(15, 6);
    // No single call moves today's rate (a rate reacting to each call would cluster cover after calls).
    const before = p.rateAt(day1 + 10.5 * HOUR);
    p.observe({ to: BOB, cpses: CPS, copies: 1 }, day1 + 10.4 * HOUR);
    expect(p.rateAt(day1 + 10.5 * HOUR)).toBe(before);
  });

  it("draws Poisson times: mean gap 1/rate, exponential spread (a fixed rate of 3600 an hour)", () => {
    const p = new CoverPlanner(T0, { perHour: 3600, random: prng(4) });
    const gaps: number[] = [];
    let t = T0;
    for (let i = 0; i < 20_000; i++) {
      const n = p.nextAt(t, t + DAY) as number;
      gaps.push(n - t);
      t = n;
    }
    const mean = gaps.reduce((a, b) => a + b, 0) / gaps.length;
    expect(mean).toBeGreaterThan(980);
    expect(mean).toBeLessThan(1020);
    // Exponential: P(gap > mean) = 1/e; fixed intervals would give 0 or 1.
    const over = gaps.filter((g) => g > 1000).length / gaps.length;
    expect(over).toBeGreaterThan(0.35);
    expect(over).toBeLessThan(0.385);
  });

  it("refuses nonsense options", () => {
    expect(() => new CoverPlanner(T0, { perCall: -1 })).toThrow(TypeError);
    expect(() => new CoverPlanner(T0, { suffixDigits: 0 })).toThrow(TypeError);
    expect(() => new CoverPlanner(T0, { profileSlots: 7 })).toThrow(TypeError);
    expect(() => new CoverPlanner(T0, { learnMs: -1 })).toThrow(TypeError);
  });
});

describe("CoverPlanner: where", () => {
  it("new numbers keep a learned prefix and length, with the copy count seen for such numbers", () => {
    const p = new CoverPlanner(T0, { random: prng(5) });
    p.observe({ to: canonicalTn("12025550100"), cpses: CPS, copies: 2 }, T0);
    p.observe({ to: canonicalTn("442079460000"), cpses: ["https://cps.uk.test"], copies: 1 }, T0 + 1);
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const t = p.target()!;
      seen.add(t.tn);
      if (t.tn.startsWith("1202555")) {
        expect(t.tn).toHaveLength(11);
        expect(t).toMatchObject({ copies: 2, cpses: CPS });
      } else {
        expect(t.tn).toMatch(/^44207946\d{4}$/);
        expect(t).toMatchObject({ copies: 1, cpses: ["https://cps.uk.test"] });
      }
      expect(["12025550100", "442079460000"]).not.toContain(t.tn);
    }
    expect(seen.size).toBeGreaterThan(150); // random last digits
  });

  it("repeats as often as the real caller does, its own numbers, never a real callee's", () => {
    const p = new CoverPlanner(T0, { random: prng(6) });
    const real = ["12025550101", "12025550102", "12025550103"].map((n) => canonicalTn(n));
    // Half the real calls repeat the number called just before (rank 0).
    for (let i = 0; i < 400; i++)
      p.observe({ to: real[Math.floor(i / 2) % 3] as CanonicalTn, cpses: CPS, copies: 1 }, T0 + i);
    let repeats = 0;
    let last = "";
    for (let i = 0; i < 2000; i++) {
      const t = p.target()!;
      expect(real).not.toContain(t.tn);
      if (t.tn === last) repeats++;
      last = t.tn;
    }
    expect(repeats / 2000).toBeGreaterThan(0.45);
    expect(repeats / 2000).toBeLessThan(0.55);
  });
});

describe("CoverTraffic with the AS", () => {
  function setup(tokens?: StoreTokenSource) {
    const cps = fakeCps({ signer: callees });
    const cover = new CoverTraffic({ fetch: cps.fetch, ...(tokens ? { tokens } : {}) });
    const as = fakeCpsAs(cps, pki.valid, [pki.root.certificate], { cover, ...(tokens ? { tokens } : {}) });
    return { cps, cover, as };
  }

  /** A token source that counts spends and adds headers shaped like the wallet's. */
  function countingTokens() {
    const spent: string[] = [];
    const tokens: StoreTokenSource = {
      headersForStore: async (cps, tn) => {
        spent.push(`${cps} ${tn}`);
        return { "CPS-Token": "t".repeat(400), "CPS-Token-Signature": "s".repeat(86) };
      },
      prefetch: async () => undefined,
    };
    return { spent, tokens };
  }

  it("learns from a placed call, then stores a cover call like it: same form, one token per blob, unopenable", async () => {
    const { spent, tokens } = countingTokens();
    const { cps, cover, as } = setup(tokens);
    const keys = [await generateRecipientKeyPair(), await generateRecipientKeyPair()];
    await cps.registerKey(BOB, "bob-1", keys[0]!.publicKey);
    await cps.registerKey(BOB, "bob-2", keys[1]!.publicKey);
    expect(await cover.coverCall()).toBeUndefined(); // nothing learned yet: nothing sent
    expect(cover.stats.skipped).toBe(1);
    await as.placeCall({ from: "+1 111 555 1111", to: BOB });
    expect(cover.stats.realCalls).toBe(1);
    const realHeaders = cps.storeHeaders.slice();
    expect(spent).toHaveLength(2);

    const target = (await cover.coverCall())!;
    expect(target.tn).toMatch(/^2222555\d{4}$/);
    expect(target.tn).not.toBe(BOB);
    expect(target.copies).toBe(2); // Bob has two keys: a real call to such a number stores two
    expect(spent).toHaveLength(4); // one token per cover blob, like the real ones
    const blobs = cps.stored.get(target.tn)!;
    expect(blobs).toHaveLength(2);
    const shape = (h: Headers) =>
      [...h.entries()]
        .map(([k, v]) => `${k}:${v.length}`)
        .sort()
        .join(",");
    for (const h of cps.storeHeaders.slice(realHeaders.length)) expect(shape(h)).toBe(shape(realHeaders[0]!));
    for (const { blob } of blobs) {
      const bytes = decodeEnvelope(blob);
      expect(bytes).toHaveLength(ENVELOPE_LENGTH);
      for (const k of keys)
        await expect(openPassport(k.keyPair, canonicalTn(target.tn), bytes)).rejects.toThrow();
    }
    expect(cover.stats).toMatchObject({ coverCalls: 1, blobs: 2, failures: 0 });
  });

  it("keyedNumbers: cover goes to numbers of the block that have keys, one copy per key, repeats kept", async () => {
    const cps = fakeCps({ signer: callees });
    const discovery = new Discovery({ bootstrap: cps.base, fetch: cps.fetch });
    const carol = canonicalTn("+2 222 555 2233"); // Bob's 100-block (lookupOpenDigits 2)
    await cps.registerKey(BOB, "bob-1", (await generateRecipientKeyPair()).publicKey);
    await cps.registerKey(carol, "carol-1", (await generateRecipientKeyPair()).publicKey);
    await cps.registerKey(carol, "carol-2", (await generateRecipientKeyPair()).publicKey);
    const cover = new CoverTraffic({
      fetch: cps.fetch,
      discovery,
      keyedNumbers: true,
      suffixDigits: 2,
      random: prng(8),
    });
    cover.observe({ to: BOB, cpses: [cps.base], copies: 1 });
    const seen = new Map<string, number>();
    for (let i = 0; i < 12; i++) {
      const t = (await cover.coverCall())!;
      seen.set(t.tn, t.copies);
    }
    // Only numbers with keys, each with as many copies as it has keys; never a random keyless number.
    expect([...seen.keys()].every((n) => n === BOB || n === carol)).toBe(true);
    expect(seen.size).toBe(2);
    expect(seen.get(carol)).toBe(2);
    expect(seen.get(BOB)).toBe(1);
    expect(cps.stored.get(carol)!.length + cps.stored.get(BOB)!.length).toBe(cover.stats.blobs);
  });

  it("runs on its own with an explicit number source and a fixed rate, until stopped", async () => {
    const cps = fakeCps();
    const cover = new CoverTraffic({
      fetch: cps.fetch,
      cps: cps.base,
      numbers: () => "+1 202 555 0199",
      perHour: 36_000, // ten a second
    });
    cover.start();
    await new Promise((r) => setTimeout(r, 800));
    await cover.stop();
    const n = cover.stats.coverCalls;
    expect(n).toBeGreaterThan(1);
    expect(cps.stored.get("12025550199")).toHaveLength(n);
    await new Promise((r) => setTimeout(r, 300));
    expect(cover.stats.coverCalls).toBe(n); // stopped means stopped
  });

  it("needs a CPS and a rate for an explicit number source", () => {
    expect(() => new CoverTraffic({ numbers: () => "12025550199", perHour: 1 })).toThrow(TypeError);
    expect(() => new CoverTraffic({ numbers: () => "12025550199", cps: "https://cps.test" })).toThrow(
      TypeError,
    );
  });

  it("a refused cover store is counted and reported, and the error is the CPS's", async () => {
    const cps = fakeCps();
    const errors: unknown[] = [];
    const cover = new CoverTraffic({
      fetch: cps.fetch,
      cps: cps.base,
      numbers: () => "12025550199",
      perHour: 1,
      onError: (e) => errors.push(e),
    });
    cps.failStores(1, 401, "TOKEN_MISSING");
    await expect(cover.coverCall()).rejects.toThrow();
    expect(cover.stats.failures).toBe(1);
    expect(errors).toHaveLength(1);
  });
});
