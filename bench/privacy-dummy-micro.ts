/**
 * In-process part of bench/privacy-dummy-cost.mjs: the cost of one dummy and of the decoys of one
 * retrieval with a cold cache (a number not looked at this TTL in this isolate: every live decoy is
 * sealed) vs warm (a repeated poll: the schedule's HMACs only), on Node's WebCrypto (the same code
 * the Worker runs). Interleaved, medians over rounds.
 */
import { Decoys } from "../src/dummies/decoys.js";
import { makeDummy } from "../src/stir/envelope.js";
import { canonicalTn } from "../src/stir/tn.js";
import { median } from "./lib/stats.mjs";

export async function micro(rounds = 5, per = 400) {
  const tn = canonicalTn("15550800000");
  const ttlMs = 60_000;
  const r = { makeDummyMs: [] as number[], drainedMs: [] as number[], warmMs: [] as number[] };
  for (let i = 0; i < 200; i++) await makeDummy(tn);
  for (let round = 0; round < rounds; round++) {
    let one = 0;
    let drained = 0;
    let warm = 0;
    for (let i = 0; i < per; i++) {
      let t = performance.now();
      await makeDummy(tn);
      one += performance.now() - t;
      // Cold: a fresh cache (another isolate, or a number not polled here this TTL).
      const decoys = new Decoys("0123456789abcdef0123456789abcdef-micro");
      const at = Date.now() + i * ttlMs;
      t = performance.now();
      await decoys.live(tn, ttlMs, at);
      drained += performance.now() - t;
      t = performance.now();
      await decoys.live(tn, ttlMs, at); // warm: the same look again, sealed decoys cached
      warm += performance.now() - t;
    }
    r.makeDummyMs.push(one / per);
    r.drainedMs.push(drained / per);
    r.warmMs.push(warm / per);
  }
  return {
    rounds,
    per,
    makeDummyMs: median(r.makeDummyMs),
    dummiesPerRetrievalMs: { drained: median(r.drainedMs), warm: median(r.warmMs) },
  };
}
