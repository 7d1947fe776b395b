/**
 * The ATIS vars of src/config.ts (docs/atis-api.md "Configuration"): ATIS_API, ATIS_AGREEMENTS (SPC
 * pairs, symmetric), ATIS_PEERS (peer CPS origins, https; http only to loopback from a loopback CPS),
 * ATIS_CPS_CREDENTIAL (kept as set). A malformed value is MISCONFIGURED naming the var, like every var.
 */
import { describe, expect, it } from "vitest";
import { parseAtisAgreements, parseAtisPeers, readConfig } from "../../src/config.js";
import { CpsError } from "../../src/errors.js";

const config = (vars: Record<string, string>) => readConfig(vars as unknown as Env);

function misconfigured(vars: Record<string, string>, name: string) {
  try {
    config(vars);
  } catch (err) {
    expect(err).toBeInstanceOf(CpsError);
    expect((err as CpsError).code).toBe("MISCONFIGURED");
    expect((err as CpsError).message).toContain(name);
    return;
  }
  throw new Error(`${JSON.stringify(vars)} was accepted`);
}

describe("ATIS_API", () => {
  it("defaults to on; on and off as said; anything else is MISCONFIGURED", () => {
    expect(config({}).atisApi).toBe(true);
    expect(config({ ATIS_API: "on" }).atisApi).toBe(true);
    expect(config({ ATIS_API: "off" }).atisApi).toBe(false);
    for (const bad of ["true", "false", "OFF", "0", " on"]) misconfigured({ ATIS_API: bad }, "ATIS_API");
  });
});

describe("ATIS_AGREEMENTS", () => {
  it("pairs are symmetric and gather per SPC", () => {
    const map = parseAtisAgreements('[["SPCA","SPCB"],["SPCA","SPCC"]]');
    expect([...(map.get("SPCA") ?? [])].sort()).toEqual(["SPCB", "SPCC"]);
    expect([...(map.get("SPCB") ?? [])]).toEqual(["SPCA"]);
    expect([...(map.get("SPCC") ?? [])]).toEqual(["SPCA"]);
    expect(map.has("SPCD")).toBe(false);
    expect(config({}).atisAgreements.size).toBe(0);
  });

  it.each([
    ["not JSON", "[["],
    ["an object", '{"SPCA":"SPCB"}'],
    ["a lone SPC", '["SPCA"]'],
    ["a triple", '[["A","B","C"]]'],
    ["an SPC with a hyphen", '[["SPC-A","SPCB"]]'],
    ["a number", '[["SPCA",1234]]'],
    ["an SPC with itself", '[["SPCA","SPCA"]]'],
  ])("%s is MISCONFIGURED", (_what, raw) => {
    misconfigured({ ATIS_AGREEMENTS: raw }, "ATIS_AGREEMENTS");
  });
});

describe("ATIS_PEERS", () => {
  it("an https origin and an SPC; the audience is the host (with the port)", () => {
    expect(parseAtisPeers('[{"url":"https://cps-b.example/","spc":"SPCB"}]', false)).toEqual([
      { url: "https://cps-b.example", spc: "SPCB", audience: "cps-b.example" },
    ]);
    expect(parseAtisPeers('[{"url":"https://cps-b.example:8443","spc":"B1"}]', false)).toEqual([
      { url: "https://cps-b.example:8443", spc: "B1", audience: "cps-b.example:8443" },
    ]);
  });

  it("plain http only to loopback, and only from a loopback CPS_ORIGIN (local tests)", () => {
    const raw = '[{"url":"http://127.0.0.1:8788","spc":"SPCB"}]';
    expect(parseAtisPeers(raw, true)[0]?.audience).toBe("127.0.0.1:8788");
    expect(() => parseAtisPeers(raw, false)).toThrow(/https/);
    expect(() => parseAtisPeers('[{"url":"http://cps-b.example","spc":"SPCB"}]', true)).toThrow(/https/);
    expect(config({ CPS_ORIGIN: "http://127.0.0.1:8787", ATIS_PEERS: raw }).atisPeers).toHaveLength(1);
    misconfigured({ CPS_ORIGIN: "https://cps.example", ATIS_PEERS: raw }, "ATIS_PEERS");
  });

  it.each([
    ["not JSON", "[{"],
    ["not a list", '{"url":"https://cps-b.example","spc":"SPCB"}'],
    ["a string entry", '["https://cps-b.example"]'],
    ["no spc", '[{"url":"https://cps-b.example"}]'],
    ["a bad spc", '[{"url":"https://cps-b.example","spc":"S B"}]'],
    ["no url", '[{"spc":"SPCB"}]'],
    ["a path", '[{"url":"https://cps-b.example/cps","spc":"SPCB"}]'],
    ["credentials", '[{"url":"https://u:p@cps-b.example","spc":"SPCB"}]'],
    ["a query", '[{"url":"https://cps-b.example/?a=1","spc":"SPCB"}]'],
    ["another scheme", '[{"url":"ftp://cps-b.example","spc":"SPCB"}]'],
  ])("%s is MISCONFIGURED", (_what, raw) => {
    misconfigured({ ATIS_PEERS: raw }, "ATIS_PEERS");
  });
});

describe("ATIS_CPS_CREDENTIAL", () => {
  it('is kept as set ("" unset), parsed only where re-publishing needs it', () => {
    expect(config({}).atisCredential).toBe("");
    expect(config({ ATIS_CPS_CREDENTIAL: "{not parsed here" }).atisCredential).toBe("{not parsed here");
  });
});
