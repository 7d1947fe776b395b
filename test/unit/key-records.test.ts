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
  readSummary,
  summarise,
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

  it("a registration body is a signed record and nothing else; the unsigned shape is KEY_RECORD_REQUIRED", () => {
    expect(parseKeyRegistration({ record: "a.b.c" })).toEqual({ record: "a.b.c" });
    expect(code(() => parseKeyRegistration({ jwk: { kty: "OKP", crv: "X25519", x }, label: "pbx" }))).toBe(
      "KEY_RECORD_REQUIRED",
    );
    expect(code(() => parseKeyRegistration({}))).toBe("KEY_RECORD_REQUIRED");
    expect(code(() => parseKeyRegistration({ record: "a.b.c", label: "pbx" }))).toBe("INVALID_BODY");
    expect(code(() => parseKeyRegistration([]))).toBe("INVALID_BODY");
    expect(code(() => parseKeyRegistration(null))).toBe("INVALID_BODY");
  });

  it("the list metadata of a full record of the longest keys and records fits KV's 1,024 bytes; one more is KEY_LIMIT", () => {
    // Records near the 16,384-character limit: they live in the value, never in the metadata.
    const bigRecord = "r".repeat(16_000);
    let record = {
      v: 2 as const,
      keys: [] as { kid: string; x: string; label: string; exp: number; record?: string }[],
    };
    for (let i = 0; i < MAX_KEYS_PER_HOLDER_BLOCK; i++) {
      record = withKey(
        record,
        { kid: `${i}`.padEnd(43, "k"), x, label: "L".repeat(32), exp: 9_999_999_999, record: bigRecord },
        0,
      ) as typeof record;
    }
    expect(new TextEncoder().encode(JSON.stringify(summarise(record))).length).toBeLessThanOrEqual(
      MAX_METADATA_BYTES,
    );
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

  it("readSummary: live kids of a v2 summary (values to read), the keys of a v1 entry, nothing of anything else", () => {
    expect(
      readSummary(
        {
          v: 2,
          keys: [
            { kid: "a", exp: 100 },
            { kid: "b", exp: 10 },
          ],
        },
        50,
      ),
    ).toEqual({
      kids: ["a"],
    });
    const v1 = { v: 1, keys: [{ kid: "old", x, label: "legacy", exp: 100 }] };
    expect(readSummary(v1, 50)).toEqual({ kids: ["old"], keys: v1.keys });
    expect(readSummary(v1, 150)).toEqual({ kids: [], keys: [] });
    for (const junk of [null, "x", { v: 3, keys: [] }, { v: 2, keys: "no" }, { v: 2, keys: [null, 7] }]) {
      expect(readSummary(junk, 0).kids).toEqual([]);
    }
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
    // A signed entry is served with its record, unchanged; an unsigned one without the member.
    expect(set.keys.every((k) => !("record" in k))).toBe(true);
    const signed = jwkSet([{ block: "12025550142", entry: { ...e("s", 100), record: "h.p.s" } }], 50);
    expect(signed.keys[0]?.record).toBe("h.p.s");
  });
});
