/**
 * CI-sized privacy measurement (RFC 8816 §6.2: dummies "plausible"; docs/design.md invariant 2), the short
 * form of `npm run privacy` part (a): 1,000 real sealed PASSporTs vs 1,000 CPS dummies. The full run
 * (10,000 vs 10,000, bound 50 % +- 2 %) is in BENCHMARKS.md "Privacy measurements".
 *
 * Each check has a positive control, so a blind statistic cannot pass by accident: the same tests
 * against plain random bytes posing as dummies (no X25519 structure in `enc`) must see the difference.
 */
import { beforeAll, describe, expect, it } from "vitest";
import {
  type BlobReport,
  blobReport,
  chiSquarePValue,
  chiSquareTwoSample,
  medianDifferenceNoise,
  prng,
  simulatedReport,
} from "../../bench/privacy-stats.js";
import { Decoys } from "../../src/dummies/decoys.js";
import { ENVELOPE_LENGTH } from "../../src/stir/envelope.js";
import { canonicalTn } from "../../src/stir/tn.js";

const N = 1000;
// Test set is 600: one standard deviation of a coin-flip accuracy is 2.0 points; 6 points is 3 sigma.
const BOUND = 0.06;

describe(`real blobs vs dummies, ${N} each (npm run privacy --short in the test suite)`, () => {
  let r: BlobReport;
  beforeAll(async () => {
    r = await blobReport(N, Date.now() % 100_000);
  }, 60_000);

  it("every blob, real or dummy, is exactly one envelope long, whatever the PASSporT length", () => {
    expect(r.lengths).toEqual({ real: [ENVELOPE_LENGTH], dummies: [ENVELOPE_LENGTH] });
    expect(r.passportLengths.max).toBeGreaterThan(r.passportLengths.min); // the inputs did vary
  });

  it("byte frequencies: neither population departs from uniform, nor from the other (p > 0.001)", () => {
    for (const c of Object.values(r.chiSquare)) {
      expect(c.dof).toBe(255);
      expect(c.p).toBeGreaterThan(0.001);
    }
  });

  it("no byte position tells them apart beyond chance (1072 positions, Bonferroni at 0.001)", () => {
    expect(r.positional.worst.p * 1072).toBeGreaterThan(0.001);
  });

  it(`two trained classifiers stay within 50 % +- ${BOUND * 100} points on the held-out 30 %`, () => {
    expect(r.accuracy.testSize).toBe(600);
    expect(Math.abs(r.accuracy.naiveBayes - 0.5)).toBeLessThanOrEqual(BOUND);
    expect(Math.abs(r.accuracy.logistic - 0.5)).toBeLessThanOrEqual(BOUND);
  });

  it("positive control: against random-byte 'dummies' the same tools do see the X25519 top bit", () => {
    expect(r.control.positionalWorst.pos).toBe(31);
    expect(r.control.positionalWorst.p).toBeLessThan(1e-20);
    expect(r.control.logistic).toBeGreaterThan(0.6);
  });
});

describe("the statistics themselves", () => {
  it("chi-square p-values: the median of chi2(255) is ~0.5, a large statistic ~0", () => {
    expect(chiSquarePValue(254.33, 255)).toBeCloseTo(0.5, 2);
    expect(chiSquarePValue(400, 255)).toBeLessThan(1e-6);
  });

  it("two-sample chi-square flags a biased histogram and passes two uniform draws", () => {
    const rand = prng(3);
    const draw = (bias: number) => {
      const h = new Float64Array(256);
      for (let i = 0; i < 200_000; i++) h[rand() < bias ? 0 : Math.floor(rand() * 256)]!++;
      return h;
    };
    expect(chiSquareTwoSample(draw(0), draw(0)).p).toBeGreaterThan(0.001);
    expect(chiSquareTwoSample(draw(0), draw(0.01)).p).toBeLessThan(1e-6);
  });

  it("the median-difference noise catches a real shift and accepts none", () => {
    const rand = prng(5);
    const a = Array.from({ length: 400 }, () => 3 + rand());
    const same = Array.from({ length: 400 }, () => 3 + rand());
    const shifted = Array.from({ length: 400 }, () => 3.3 + rand());
    const n0 = medianDifferenceNoise(a, same, 500);
    const n1 = medianDifferenceNoise(a, shifted, 500);
    expect(Math.abs(n0.observed)).toBeLessThanOrEqual(n0.p99);
    expect(Math.abs(n1.observed)).toBeGreaterThan(n1.p99);
  });
});

describe("adversary #6: the two-poll, GET-any-id observer (npm run privacy part c, short)", () => {
  it(`cannot tell ${N} real blobs from ${N} decoys (50 % +- ${BOUND * 100}), and sees the old fresh dummies at once`, async () => {
    const r = await simulatedReport(N, 60_000, Date.now() % 100_000);
    expect(r.real).toBe(N);
    expect(r.decoys).toBe(N);
    expect(Math.abs(r.best.accuracy - 0.5), `best table ${r.best.features}`).toBeLessThanOrEqual(BOUND);
    // Positive control: the same observer against the old design (fresh dummies, GET 404).
    expect(Math.max(...Object.values(r.control ?? {}))).toBeGreaterThan(0.8);
  }, 60_000);
});

describe("decoy schedule (src/dummies/schedule.ts)", () => {
  it("is never empty, every decoy lives exactly one TTL, about 3 live on average", async () => {
    const decoys = new Decoys("unit-test-secret-0123456789abcdef0123456789");
    const ttlMs = 60_000;
    const tn = canonicalTn("15550999999");
    let total = 0;
    const t0 = 1_800_000_000_000;
    for (let k = 0; k < 2000; k++) {
      const at = t0 + k * 7_919;
      const births = await decoys.schedule(tn, ttlMs).live(at);
      expect(births.length).toBeGreaterThanOrEqual(1);
      for (const b of births) expect(at - b.birth >= 0 && at - b.birth < ttlMs).toBe(true);
      total += births.length;
    }
    expect(total / 2000).toBeGreaterThan(2.7);
    expect(total / 2000).toBeLessThan(3.4);
  });
});
