/**
 * HOT_NUMBERS (src/stir/hot-numbers.ts, src/config.ts): the numbers whose blobs are spread over several
 * PassportQueue shards (shard 0: the number's own; shard k: `{tn}~{k}`) instead of their index block,
 * and which shard a store goes to. A malformed value is MISCONFIGURED naming the var, like
 * every var.
 */
import { describe, expect, it } from "vitest";
import { readConfig } from "../../src/config.js";
import { CpsError } from "../../src/errors.js";
import { encodeBase64url } from "../../src/stir/base64url.js";
import { MAX_HOT_SHARDS, MIN_HOT_SHARDS, parseHotNumbers, storeShard } from "../../src/stir/hot-numbers.js";
import type { CanonicalTn } from "../../src/stir/tn.js";
import {
  numberShardForStore,
  numberShards,
  passportQueueName,
  tnOfPassportQueueName,
} from "../../src/storage/objects.js";

const config = (vars: Record<string, string>) => readConfig(vars as unknown as Env);

describe("parseHotNumbers: accepted values", () => {
  it("empty (the default) is no hot number", () => {
    expect(parseHotNumbers("").size).toBe(0);
    expect(parseHotNumbers("  ").size).toBe(0);
    expect(config({}).hotNumbers.size).toBe(0);
    expect(config({ HOT_NUMBERS: "" }).hotNumbers.size).toBe(0);
  });

  it("reads number:shards pairs, canonicalising each number as the routes do", () => {
    const map = parseHotNumbers("12025550100:4, +1-800-555-1234:8,2.222.555.2222:2 ,911:16");
    expect([...map]).toEqual([
      ["12025550100", 4],
      ["18005551234", 8],
      ["22225552222", 2],
      ["911", 16],
    ]);
    expect([...config({ HOT_NUMBERS: "12025550100:4" }).hotNumbers]).toEqual([["12025550100", 4]]);
  });

  it(`accepts ${MIN_HOT_SHARDS} to ${MAX_HOT_SHARDS} shards`, () => {
    expect(MIN_HOT_SHARDS).toBe(2);
    expect(MAX_HOT_SHARDS).toBe(16);
    for (let k = MIN_HOT_SHARDS; k <= MAX_HOT_SHARDS; k++) {
      expect(parseHotNumbers(`12025550100:${k}`).get("12025550100" as CanonicalTn)).toBe(k);
    }
  });
});

describe("parseHotNumbers: malformed values fail loudly (MISCONFIGURED naming HOT_NUMBERS)", () => {
  it.each([
    ["1 shard (that is no sharding)", "12025550100:1"],
    ["0 shards", "12025550100:0"],
    ["17 shards", "12025550100:17"],
    ["a negative count", "12025550100:-4"],
    ["a fractional count", "12025550100:2.5"],
    ["a count that is not a number", "12025550100:four"],
    ["a count in exponent form", "12025550100:4e0"],
    ["no count", "12025550100"],
    ["an empty count", "12025550100:"],
    ["two colons", "12025550100:4:4"],
    ["a duplicate number", "12025550100:4,18005551234:2,12025550100:8"],
    ["a duplicate number in another spelling", "12025550100:4,+1-202-555-0100:4"],
    ["a number with letters", "1202555O100:4"],
    ["a number too short", "12:4"],
    ["a number too long", "1234567890123456:4"],
    ["no number", ":4"],
    ["a shard-name separator in the number", "12025550100~1:4"],
    ["JSON instead of the list", '{"12025550100":4}'],
  ])("%s: %s", (_what, raw) => {
    expect(() => parseHotNumbers(raw)).toThrow(Error);
    let thrown: unknown;
    try {
      config({ HOT_NUMBERS: raw });
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(CpsError);
    expect((thrown as CpsError).code).toBe("MISCONFIGURED");
    expect((thrown as CpsError).message).toContain("HOT_NUMBERS");
  });
});

describe("object names of a hot number's shards (src/storage/objects.ts)", () => {
  const tn = "12025550100" as CanonicalTn;

  it("shard 0 is the number's own queue; shard k is `<number>~k`, read back as the number", () => {
    expect(passportQueueName(tn, 0)).toBe(tn);
    expect(passportQueueName(tn, 3)).toBe("12025550100~3");
    for (let k = 0; k < MAX_HOT_SHARDS; k++) expect(tnOfPassportQueueName(passportQueueName(tn, k))).toBe(tn);
  });

  /** An Env whose two namespaces record the object names asked for. */
  function recordingEnv(): { env: Env; names: string[] } {
    const names: string[] = [];
    const namespace = (kind: string) => ({
      getByName: (name: string) => {
        names.push(`${kind} ${name}`);
        return {};
      },
    });
    return {
      env: { BLOCK_QUEUE: namespace("block"), PASSPORT_QUEUE: namespace("queue") } as unknown as Env,
      names,
    };
  }

  it("a normal number's blobs are in its index block only: no PassportQueue is addressed", () => {
    const { env, names } = recordingEnv();
    const hotNumbers = new Map<CanonicalTn, number>();
    expect(numberShards(env, { hotNumbers }, tn)).toHaveLength(1);
    numberShardForStore(env, { hotNumbers }, tn, encodeBase64url(new Uint8Array(16)));
    numberShardForStore(env, { hotNumbers }, tn);
    expect(names).toEqual(["block block:1202555", "block block:1202555", "block block:1202555"]);
  });

  it("a hot number's shards are its PassportQueues `<number>` and `<number>~k`; its block is not read", () => {
    const { env, names } = recordingEnv();
    expect(numberShards(env, { hotNumbers: new Map([[tn, 4]]) }, tn)).toHaveLength(4);
    expect(names).toEqual([
      "queue 12025550100",
      "queue 12025550100~1",
      "queue 12025550100~2",
      "queue 12025550100~3",
    ]);
  });
});

describe("storeShard: which shard a store goes to", () => {
  const key = (i: number) => {
    const bytes = new Uint8Array(16);
    new DataView(bytes.buffer).setUint32(0, i * 2_654_435_761);
    bytes[15] = i;
    return encodeBase64url(bytes);
  };

  it("a retried store (same retry key) goes to the same shard, so the shard's dedupe sees it", () => {
    for (let i = 0; i < 50; i++) {
      const first = storeShard(4, key(i));
      for (let again = 0; again < 5; again++) expect(storeShard(4, key(i))).toBe(first);
    }
  });

  it("different retry keys and keyless stores spread over every shard, within range", () => {
    for (const shards of [2, 4, 7, 16]) {
      const byKey = new Set(Array.from({ length: 400 }, (_, i) => storeShard(shards, key(i))));
      const byRandom = new Set(Array.from({ length: 400 }, () => storeShard(shards)));
      for (const seen of [byKey, byRandom]) {
        expect([...seen].sort((a, b) => a - b)).toEqual(Array.from({ length: shards }, (_, k) => k));
      }
    }
  });
});
