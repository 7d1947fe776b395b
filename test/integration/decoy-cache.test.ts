/**
 * The isolate's cache of sealed decoys (src/dummies/decoys.ts): a decoy served from the cache is the
 * same bytes as one sealed afresh (so a cache hit, a miss, another isolate or a Durable Object answer
 * alike: docs/design.md invariant 2), and the cache never holds more than its bound, dropping the
 * least recently used.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { Decoys } from "../../src/dummies/decoys.js";
import { canonicalTn } from "../../src/stir/tn.js";

const TTL_MS = 60_000;
const hex = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
const secret = () => env.DECOY_SECRET as string;

/** Every live decoy of `tn` at `at` as comparable text (id, birth, expiry, blob bytes in hex). */
async function snapshot(decoys: Decoys, tn: string, at: number): Promise<string[]> {
  const live = await decoys.live(canonicalTn(tn), TTL_MS, at);
  return live.map((d) => `${d.id} ${d.birth} ${d.expiresAt} ${hex(d.blob)}`).sort();
}

describe("sealed decoy cache", () => {
  it("answers a number looked at again with the bytes a fresh isolate seals", async () => {
    const at = Date.now();
    const cached = new Decoys(secret());
    const first = await snapshot(cached, "15550300001", at);
    const sealedBefore = cached.cachedSeals;
    expect(sealedBefore).toBe(first.length);
    const again = await snapshot(cached, "15550300001", at + 1);
    // The second look sealed nothing new (a hit) ...
    expect(cached.cachedSeals).toBe(sealedBefore);
    // ... and what it served is what an isolate with an empty cache computes.
    const fresh = await snapshot(new Decoys(secret()), "15550300001", at + 1);
    expect(again).toEqual(fresh);
    expect(first.length).toBeGreaterThanOrEqual(1);
  });

  it("keeps at most its bound, drops the least recently used, and reseals an evicted decoy identically", async () => {
    const at = Date.now();
    const bound = 6;
    const decoys = new Decoys(secret(), bound);
    const numbers = Array.from({ length: 12 }, (_, i) => `155503001${String(i).padStart(2, "0")}`);
    const firstLooks = new Map<string, string[]>();
    for (const tn of numbers) {
      firstLooks.set(tn, await snapshot(decoys, tn, at));
      expect(decoys.cachedSeals).toBeLessThanOrEqual(bound);
    }
    expect(decoys.cachedSeals).toBe(bound);
    // The first number's decoys were evicted long ago: sealed again, the same bytes.
    expect(await snapshot(decoys, numbers[0]!, at)).toEqual(firstLooks.get(numbers[0]!));
    expect(decoys.cachedSeals).toBeLessThanOrEqual(bound);
    // A different secret seals different decoys (the cache is per secret, never shared).
    const other = await snapshot(new Decoys(`${secret()}-other`), numbers[0]!, at);
    expect(other).not.toEqual(firstLooks.get(numbers[0]!));
  });
});
