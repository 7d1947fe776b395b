import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CpsError } from "../../src/errors.js";
import {
  formatIdentityHeader,
  parseIdentityHeader,
  parseIdentityHeaders,
} from "../../src/stir/identity-header.js";

const JWS = "eyJhbGciOiJFUzI1NiJ9.eyJpYXQiOjF9.c2lnbmF0dXJl";
const INFO = "https://cert.example.org/passport.cer";

describe("Identity header (RFC 8224 §4.1)", () => {
  it("formats and parses back", () => {
    const value = formatIdentityHeader({ passport: JWS, info: INFO, ppt: "shaken" });
    expect(value).toBe(`${JWS};info=<${INFO}>;alg=ES256;ppt=shaken`);
    expect(parseIdentityHeader(value)).toEqual({
      passport: JWS,
      info: INFO,
      alg: "ES256",
      ppt: "shaken",
      extensions: {},
    });
  });

  it.each([
    ["header name and spaces", `Identity: ${JWS} ; info=<${INFO}> ; alg=ES256 ; ppt=shaken`],
    ["compact header name", `y: ${JWS};info=<${INFO}>;alg=ES256;ppt=shaken`],
    ["quoted ppt and alg", `${JWS};info=<${INFO}>;alg="ES256";ppt="shaken"`],
    ["parameters in another order, upper-case names", `${JWS};PPT=shaken;ALG=ES256;Info=<${INFO}>`],
    ["folded over lines", `${JWS};\r\n info=<${INFO}>;alg=ES256;\r\n\tppt=shaken`],
  ])("accepts %s", (_name, value) => {
    const h = parseIdentityHeader(value);
    expect(h).toMatchObject({ passport: JWS, info: INFO, alg: "ES256", ppt: "shaken" });
  });

  it("keeps and otherwise ignores unknown parameters", () => {
    const h = parseIdentityHeader(`${JWS};info=<${INFO}>;foo=bar;flag;q="a;b,c";ppt=shaken`);
    expect(h.ppt).toBe("shaken");
    expect(h.extensions).toEqual({ foo: "bar", flag: "", q: "a;b,c" });
  });

  it("accepts a compact-form PASSporT (RFC 8224 §5)", () => {
    const compact = "eyJhbGciOiJFUzI1NiJ9..c2lnbmF0dXJl";
    expect(parseIdentityHeader(`${compact};info=<${INFO}>`).passport).toBe(compact);
  });

  it("parses several headers, as separate values and comma-joined", () => {
    const a = `${JWS};info=<${INFO}>;ppt=shaken`;
    const b = `${JWS};info=<https://x.example/a,b.pem>;ppt=div`;
    const all = parseIdentityHeaders([`${a}, ${b}`, a]);
    expect(all.map((h) => h.ppt)).toEqual(["shaken", "div", "shaken"]);
    expect(all[1]?.info).toBe("https://x.example/a,b.pem");
  });

  it.each([
    ["empty", ""],
    ["no info", `${JWS};alg=ES256`],
    ["info not in angle brackets", `${JWS};info=${INFO}`],
    ["info not absolute", `${JWS};info=<passport.cer>`],
    ["info twice", `${JWS};info=<${INFO}>;info=<${INFO}>`],
    ["two segments", `eyJhbGciOiJFUzI1NiJ9.eyJpYXQiOjF9;info=<${INFO}>`],
    ["bad character in digest", `eyJh!GciOiJ9.eyJ.c2ln;info=<${INFO}>`],
    ["unterminated quote", `${JWS};info=<${INFO}>;ppt="shaken`],
    ["unterminated URI", `${JWS};info=<${INFO}`],
    ["ppt without value", `${JWS};info=<${INFO}>;ppt`],
    ["alg twice", `${JWS};info=<${INFO}>;alg=ES256;alg=ES256`],
    ["value not a token", `${JWS};info=<${INFO}>;ppt=sha ken`],
    ["too long", `${"a".repeat(20_000)}.b.c;info=<${INFO}>`],
  ])("refuses %s", (_name, value) => {
    expect(() => parseIdentityHeader(value)).toThrow(
      expect.objectContaining({ code: "IDENTITY_HEADER_MALFORMED" }),
    );
  });

  it("refuses no header at all and non-strings", () => {
    for (const bad of [[], [""], [42 as unknown as string]]) {
      expect(() => parseIdentityHeaders(bad)).toThrow(CpsError);
    }
  });

  it("parsers throw nothing but CpsError (property)", () => {
    const piece = fc.constantFrom(
      ";",
      ",",
      "=",
      "<",
      ">",
      '"',
      "\\",
      " ",
      "\r\n ",
      "info",
      "ppt",
      "alg",
      JWS,
      INFO,
      ".",
    );
    const arb = fc.oneof(
      fc.string(),
      fc.array(piece, { maxLength: 20 }).map((a) => a.join("")),
    );
    fc.assert(
      fc.property(arb, (s) => {
        for (const f of [() => parseIdentityHeader(s), () => parseIdentityHeaders([s, s])]) {
          try {
            f();
          } catch (e) {
            if (!(e instanceof CpsError)) throw e;
          }
        }
      }),
      { numRuns: 1000 },
    );
  });

  it("format then parse is the identity on valid input (property)", () => {
    const token = fc.stringMatching(/^[A-Za-z0-9-]{1,12}$/);
    fc.assert(
      fc.property(token, fc.option(token, { nil: undefined }), (alg, ppt) => {
        const h = parseIdentityHeader(formatIdentityHeader({ passport: JWS, info: INFO, alg, ppt }));
        expect(h.alg).toBe(alg);
        expect(h.ppt).toBe(ppt);
      }),
    );
  });
});
