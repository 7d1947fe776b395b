/** Pure key-directory code: number blocks, range splitting, coverage, JWKs, records (RFC 8816 §11). */
import fc from "fast-check";
import { calculateJwkThumbprint } from "jose";
import { describe, expect, it } from "vitest";
import { CpsError } from "../../src/errors.js";
import {
  jwkSet,
  jwkThumbprint,
  MAX_KEYS_PER_HOLDER_BLOCK,
  MAX_METADATA_BYTES,
  parseKeyRegistration,
  withKey,
  x25519FromJwk,
} from "../../src/stir/key-records.js";
import {
  blockContainsTn,
  blocksContaining,
  formatBlock,
  parseBlock,
  parseSpcNumberBlocks,
  rangeToBlocks,
  tnAuthListCoversBlock,
} from "../../src/stir/number-blocks.js";

const code = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    return e instanceof CpsError ? e.code : "other";
  }
  return "none";
};

describe("number blocks", () => {
  it.each([
    ["12155551212", "12155551212", 0],
    ["120255501xx", "120255501", 2],
    ["1202555XXXX", "1202555", 4],
  ])("parses %s", (text, digits, open) => {
    expect(parseBlock(text)).toEqual({ digits, open });
  });

  it.each([["x1"], ["12"], ["1x"], ["12a4"], ["1234567890123456"], ["12x3"], [""]])("refuses %j", (t) => {
    expect(code(() => parseBlock(t))).toBe("INVALID_PREFIX");
  });

  it("blocksContaining lists the number and each wider block, most specific first", () => {
    expect(blocksContaining("12025550142").map(formatBlock)).toEqual([
      "12025550142",
      "1202555014x",
      "120255501xx",
      "12025550xxx",
      "1202555xxxx",
      "120255xxxxx",
      "12025xxxxxx",
      "1202xxxxxxx",
      "120xxxxxxxx",
      "12xxxxxxxxx",
      "1xxxxxxxxxx",
    ]);
  });

  it("splits a range into aligned blocks", () => {
    expect(rangeToBlocks("12025550100", 100).map(formatBlock)).toEqual(["120255501xx"]);
    expect(rangeToBlocks("14155550150", 60).map(formatBlock)).toEqual([
      "1415555015x",
      "1415555016x",
      "1415555017x",
      "1415555018x",
      "1415555019x",
      "1415555020x",
    ]);
    expect(rangeToBlocks("12025550105", 1).map(formatBlock)).toEqual(["12025550105"]);
    expect(code(() => rangeToBlocks("999", 2))).toBe("INVALID_PREFIX");
  });

  it("property: the blocks of a range hold exactly the range's numbers", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 99_999 }), fc.integer({ min: 1, max: 3_000 }), (s, count) => {
        const start = String(100_000 + s).padStart(6, "0");
        if (Number(start) + count - 1 > 999_999) return;
        let blocks: ReturnType<typeof rangeToBlocks>;
        try {
          blocks = rangeToBlocks(start, count);
        } catch (e) {
          expect((e as CpsError).code).toBe("INVALID_PREFIX"); // too fragmented
          return;
        }
        let total = 0;
        for (const b of blocks) total += 10 ** b.open;
        expect(total).toBe(count);
        // Every number in the range is in exactly one block; neighbours outside are in none.
        for (const probe of [
          Number(start),
          Number(start) + count - 1,
          Number(start) + Math.floor(count / 2),
        ]) {
          const tn = String(probe);
          expect(blocks.filter((b) => blockContainsTn(b, tn))).toHaveLength(1);
        }
        for (const probe of [Number(start) - 1, Number(start) + count]) {
          expect(blocks.some((b) => blockContainsTn(b, String(probe)))).toBe(false);
        }
      }),
    );
  });

  it("coverage: TN, range, mapped SPC; never another length", () => {
    const list = [
      { type: "spc", spc: "709J" },
      { type: "range", start: "12025550100", count: 100 },
      { type: "one", tn: "12155551212" },
    ] as const;
    const spcs = parseSpcNumberBlocks('{"709J":["1303555"]}');
    const covers = (b: string) => tnAuthListCoversBlock(list, parseBlock(b), spcs);
    expect(covers("12155551212")).toBe(true);
    expect(covers("120255501xx")).toBe(true);
    expect(covers("1202555015x")).toBe(true);
    expect(covers("1202555xxxx")).toBe(false);
    expect(covers("1202555010x")).toBe(true);
    expect(covers("120255501x")).toBe(false); // 10-digit numbers: another length
    expect(covers("1303555xxxx")).toBe(true);
    expect(covers("130355xxxxx")).toBe(false);
    expect(tnAuthListCoversBlock(list, parseBlock("1303555xxxx"), new Map())).toBe(false);
  });

  it.each([['{"a":"1202"}'], ["[]"], ['{"709J":["12a"]}'], ["not json"]])("SPC map %s is refused", (json) => {
    expect(() => parseSpcNumberBlocks(json)).toThrow();
  });
});

describe("JWKs and records", () => {
  const x = "9GXjPGGvmRq9F6Ng5dQQ_s31mfhxrcNZxRGONrmH30k";

  it("kid is the RFC 7638 thumbprint (checked against jose)", async () => {
    const raw = x25519FromJwk({ kty: "OKP", crv: "X25519", x });
    expect(await jwkThumbprint(raw)).toBe(
      await calculateJwkThumbprint({ kty: "OKP", crv: "X25519", x }, "sha256"),
    );
  });

  it.each([
    [{ kty: "EC", crv: "P-256", x }],
    [{ kty: "OKP", crv: "Ed25519", x }],
    [{ kty: "OKP", crv: "X25519", x: "AAAA" }],
    [{ kty: "OKP", crv: "X25519", x: "A".repeat(43) }], // all-zero point
    [{ kty: "OKP", crv: "X25519", x, d: x }],
    [null],
  ])("refuses key %j", (jwk) => {
    expect(code(() => x25519FromJwk(jwk))).toBe("INVALID_KEY");
  });

  it("parses a registration with defaults and refuses unknown members", () => {
    const reg = parseKeyRegistration({ jwk: { kty: "OKP", crv: "X25519", x }, label: "pbx" });
    expect(reg.ttlSeconds).toBe(30 * 86_400);
    expect(reg.count).toBeUndefined();
    expect(
      code(() => parseKeyRegistration({ jwk: { kty: "OKP", crv: "X25519", x }, label: "pbx", kid: "me" })),
    ).toBe("INVALID_BODY");
  });

  it("a full record of the longest keys fits KV list metadata; one more is KEY_LIMIT", () => {
    let record = { v: 1 as const, keys: [] as { kid: string; x: string; label: string; exp: number }[] };
    for (let i = 0; i < MAX_KEYS_PER_HOLDER_BLOCK; i++) {
      record = withKey(
        record,
        { kid: `${i}`.padEnd(43, "k"), x, label: "L".repeat(32), exp: 9_999_999_999 },
        0,
      ) as typeof record;
    }
    expect(new TextEncoder().encode(JSON.stringify(record)).length).toBeLessThanOrEqual(MAX_METADATA_BYTES);
    expect(code(() => withKey(record, { kid: "n".repeat(43), x, label: "x", exp: 9_999_999_999 }, 0))).toBe(
      "KEY_LIMIT",
    );
    // Dead keys do not count.
    expect(
      withKey(
        { v: 1, keys: [{ kid: "a", x, label: "old", exp: 5 }] },
        { kid: "b", x, label: "n", exp: 50 },
        10,
      ).keys,
    ).toHaveLength(1);
  });

  it("jwkSet drops expired keys, de-duplicates per block and sorts the most specific block first", () => {
    const e = (kid: string, exp: number) => ({ kid, x, label: kid, exp });
    const set = jwkSet(
      [
        { block: "1202555xxxx", entry: e("wide", 100) },
        { block: "12025550142", entry: e("own", 100) },
        { block: "12025550142", entry: e("own", 100) },
        { block: "120255501xx", entry: e("dead", 10) },
      ],
      50,
    );
    expect(set.keys.map((k) => [k.block, k.kid])).toEqual([
      ["12025550142", "own"],
      ["1202555xxxx", "wide"],
    ]);
  });
});
