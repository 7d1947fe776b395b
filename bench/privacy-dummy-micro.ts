/**
 * In-process part of bench/privacy-dummy-cost.mjs: the cost of one dummy and of the dummies of one
 * retrieval with the pool drained vs warm, on Node's WebCrypto (the same code the Worker runs).
 * Interleaved, medians over rounds.
 */
import { DummyPool } from "../src/dummies/pool.js";
import { dummiesFor } from "../src/routes/dummies.js";
import { makeDummy } from "../src/stir/envelope.js";
import { canonicalTn } from "../src/stir/tn.js";
import { median } from "./lib/stats.mjs";

export async function micro(rounds = 5, per = 400) {
  const tn = canonicalTn("15550800000");
  const pool = new DummyPool({ target: 3 });
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
      pool.take(tn, 3); // drained: every dummy of this retrieval is sealed inline
      t = performance.now();
      await dummiesFor(tn, undefined, pool);
      drained += performance.now() - t;
      await pool.refill(tn); // what ctx.waitUntil does after the answer
      t = performance.now();
      await dummiesFor(tn, undefined, pool); // warm: taken from the pool
      warm += performance.now() - t;
      await pool.refill(tn);
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
