/** Pure discovery code (RFC 8816 §10): config parsing, URL rules, longest-prefix selection. */
import { describe, expect, it } from "vitest";
import {
  parseDiscoveryRegistration,
  parseProvisionedRecords,
  parseServedPrefixes,
  parseStoredRecord,
  selectRecord,
  servesTn,
} from "../../src/stir/discovery.js";
import { parseBaseUrl } from "../../src/stir/urls.js";

describe("discovery records", () => {
  const provisioned = parseProvisionedRecords(
    JSON.stringify([
      { prefix: "1", cps: "https://na.example/", ttl: 60 },
      { prefix: "1415", cps: "https://b.example" },
      { prefix: "1415555xxxx", cps: "https://c.example", keys: "https://keys.c.example/v1/keys" },
      { prefix: "1415555", cps: "https://d.example" },
    ]),
  );

  it("parses provisioned records with defaults", () => {
    expect(provisioned.map((c) => c.record)).toEqual([
      {
        prefix: "1",
        cps: "https://na.example",
        keys: "https://na.example/keys",
        ttl: 60,
        source: "provisioned",
      },
      {
        prefix: "1415",
        cps: "https://b.example",
        keys: "https://b.example/keys",
        ttl: 300,
        source: "provisioned",
      },
      {
        prefix: "1415555xxxx",
        cps: "https://c.example",
        keys: "https://keys.c.example/v1/keys",
        ttl: 300,
        source: "provisioned",
      },
      {
        prefix: "1415555",
        cps: "https://d.example",
        keys: "https://d.example/keys",
        ttl: 300,
        source: "provisioned",
      },
    ]);
  });

  it.each([
    ["14155550123", "1415555xxxx"], // block beats the bare prefix of the same digits
    ["141555501234", "1415555"], // other length: the block does not match
    ["14155560000", "1415"],
    ["13035550000", "1"],
  ])("longest prefix for %s is %s", (tn, prefix) => {
    expect(selectRecord(provisioned, tn)?.prefix).toBe(prefix);
  });

  it("served beats provisioned at equal specificity; nothing matches -> undefined", () => {
    const served = parseServedPrefixes("1415")!.map((pattern) => ({
      pattern,
      record: {
        prefix: "1415",
        cps: "https://self",
        keys: "https://self/keys",
        ttl: 300,
        source: "served" as const,
      },
    }));
    expect(selectRecord([...provisioned, ...served], "14155560000")?.source).toBe("served");
    expect(selectRecord(provisioned, "442079460000")).toBeUndefined();
  });

  it("served prefixes: empty = all", () => {
    expect(parseServedPrefixes("")).toBeNull();
    expect(servesTn(null, "442079460000")).toBe(true);
    const served = parseServedPrefixes("1202, 1415555xxxx");
    expect(servesTn(served, "12025550000")).toBe(true);
    expect(servesTn(served, "14155550000")).toBe(true);
    expect(servesTn(served, "141555500001")).toBe(false);
  });

  it.each([
    ["https://a.example/x/", false, "https://a.example/x"],
    ["http://a.example", true, undefined],
    ["http://127.0.0.1:8787", true, "http://127.0.0.1:8787"],
    ["http://127.0.0.1:8787", false, undefined],
    ["https://u:p@a.example", false, undefined],
    ["https://a.example/?q=1", false, undefined],
    ["javascript:alert(1)", true, undefined],
  ])("base URL %s (loopback http %s) -> %s", (url, loop, out) => {
    expect(parseBaseUrl(url, loop)).toBe(out);
  });

  it.each([
    ['[{"prefix":"1"}]'],
    ['[{"prefix":"1a","cps":"https://a.example"}]'],
    ['[{"prefix":"1","cps":"https://a.example","ttl":-5}]'],
    ['{"prefix":"1"}'],
  ])("refuses provisioned %s", (json) => {
    expect(() => parseProvisionedRecords(json)).toThrow();
  });

  it("registration bodies and stored records", () => {
    expect(parseDiscoveryRegistration({ cps: "https://e.example" }, false)).toEqual({
      cps: "https://e.example",
      keys: "https://e.example/keys",
      ttl: 300,
      lifetime: 30 * 86_400,
    });
    expect(() => parseDiscoveryRegistration({ cps: "https://e.example", lifetime: 10 }, false)).toThrow();
    const stored = {
      v: 1,
      prefix: "1",
      cps: "https://e",
      keys: "https://e/keys",
      ttl: 1,
      exp: 100,
      holder: "h",
    };
    expect(parseStoredRecord(stored, 99)).toEqual(stored);
    expect(parseStoredRecord(stored, 100)).toBeUndefined();
    expect(parseStoredRecord("junk", 0)).toBeUndefined();
  });
});
