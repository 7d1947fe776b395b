/**
 * A hot number (HOT_NUMBERS, docs/capacity.md "Hot numbers") with storage tokens: a store's shard is
 * chosen from its retry key, so a retried store (the same request sent again after a lost answer,
 * docs/tokens.md "Retried stores") meets its first attempt on the same shard and gets the same id,
 * instead of being stored a second time on another shard.
 */
import { env, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { canonicalTn } from "../../src/stir/tn.js";
import { passportQueueName } from "../../src/storage/objects.js";
import { BASE, directToken, issuerPrivateKey, sealedFor, store, tokenHeaders } from "./helpers.js";

const HOT = "13125557701";
const SHARDS = 4;

/** Live rows on each shard of the hot number, asked of each PassportQueue itself (src/storage/objects.ts). */
async function perShard(): Promise<number[]> {
  const tn = canonicalTn(HOT);
  return Promise.all(
    Array.from({ length: SHARDS }, (_, k) =>
      env.PASSPORT_QUEUE.getByName(passportQueueName(tn, k)).liveCount(),
    ),
  );
}

describe("hot number with storage tokens", () => {
  it("a retried store gets its first attempt's id, from whichever shard it went to", async () => {
    const key = await issuerPrivateKey("test-current");
    const before = (await perShard()).reduce((a, b) => a + b, 0);
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) {
      const { token, privateKey } = await directToken("test-current", key);
      const { text } = await sealedFor(HOT);
      const headers = await tokenHeaders(token, privateKey, HOT, text);
      const first = await store(HOT, text, headers);
      expect(first.status).toBe(201);
      const again = await store(HOT, text, headers);
      expect(again.status).toBe(201);
      expect(again.body.id).toBe(first.body.id);
      ids.push(first.body.id as string);
    }
    expect(new Set(ids).size).toBe(12);
    const counts = await perShard();
    // Stored once each: the retries added nothing, on any shard.
    expect(counts.reduce((a, b) => a + b, 0) - before).toBe(12);
    // And the stores did spread (12 stores on one shard of 4 by chance: (1/4)^11).
    expect(counts.filter((n) => n > 0).length).toBeGreaterThan(1);
    // The list merges every shard: each id shows once.
    const list = (await (await SELF.fetch(`${BASE}/cps/${HOT}/ppts`)).json()) as {
      passports: { id: string }[];
    };
    const listed = list.passports.map((p) => p.id);
    for (const id of ids) expect(listed.filter((x) => x === id)).toHaveLength(1);
  });
});
