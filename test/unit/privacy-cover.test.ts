/**
 * CI-sized cover-traffic and decoy-polling measurements (RFC 8816 §7.4, §6.2, §13), the short form of
 * `npm run privacy` parts e and f (bench/privacy-cover.ts) on the client code with exact times:
 * 1,000 real calls with CoverTraffic's cover, and 1,000 owned-number retrievals with DecoyPlan's
 * decoys. The full run (10,000, bound 50 % +- 2 points) and its Worker runs are in BENCHMARKS.md.
 * Each has a positive control: cover or decoys made badly must be seen.
 */
import { describe, expect, it } from "vitest";
import { coverSimulation, decoySimulation } from "../../bench/privacy-cover.js";

const N = 1000;
// About 1,000 held out: one standard deviation of a coin-flip accuracy is 1.6 points; 6 points is 3.7 sigma.
const BOUND = 0.06;

describe(`cover traffic, ${N} real calls (npm run privacy --short --only e in the test suite)`, () => {
  it("the CPS's lookup tables do not tell cover from real stores; badly made cover they do", async () => {
    const r = await coverSimulation(N);
    expect(r.forms.real).toEqual(r.forms.cover); // one request form for both
    expect(r.forms.real).toHaveLength(1);
    expect(Math.abs(r.tables.best.accuracy - 0.5)).toBeLessThanOrEqual(BOUND);
    for (const c of Object.values(r.controls)) expect(c.accuracy).toBeGreaterThan(0.5 + BOUND);
    // Cover costs what calls cost: as many blobs (tokens, store requests) per real call as a real call.
    expect(Math.abs(r.perRealCall.coverBlobs - r.perRealCall.realBlobs)).toBeLessThan(0.2);
  }, 120_000);
});

describe(`decoy polling, ${N} calls (npm run privacy --short --only f in the test suite)`, () => {
  it("owned-number retrievals look like decoys without store timing; decoys sent late do not", () => {
    const r = decoySimulation(N);
    expect(Math.abs(r.tables.best.accuracy - 0.5)).toBeLessThanOrEqual(BOUND);
    expect(r.control.accuracy).toBeGreaterThan(0.9);
    // What store timing still gives away (docs/cover-and-decoys.md): the call-time retrieval.
    expect(r.ownedSingledOut).toBeGreaterThan(0.95);
    expect(r.perRealRetrieval.decoy).toBe(3);
  });
});
