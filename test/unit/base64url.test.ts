/**
 * Strict base64url of the wire (RFC 4648 §5, no padding; whitespace tolerated as RFC 8816 §9 folds).
 * Runs in the `unit` project (Node 20: jose's codec) and in `integration` (workerd: the runtime's
 * own Uint8Array base64), so both paths of src/stir/base64url.ts meet the same cases.
 */
import fc from "fast-check";
import { base64url } from "jose";
import { describe, expect, it } from "vitest";
import { CpsError } from "../../src/errors.js";
import { decodeBase64url, encodeBase64url, NATIVE_BASE64 } from "../../src/stir/base64url.js";

const inWorkerd = typeof navigator !== "undefined" && navigator.userAgent === "Cloudflare-Workers";

const bytes = (...b: number[]) => Uint8Array.from(b);

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof CpsError ? err.code : `not a CpsError: ${String(err)}`;
  }
  return undefined;
}

describe("base64url", () => {
  // RFC 4648 §10 test vectors, in the URL-safe alphabet without padding.
  it.each([
    ["", ""],
    ["f", "Zg"],
    ["fo", "Zm8"],
    ["foo", "Zm9v"],
    ["foob", "Zm9vYg"],
    ["fooba", "Zm9vYmE"],
    ["foobar", "Zm9vYmFy"],
  ])("RFC 4648 §10: %j <-> %j", (plain, encoded) => {
    const raw = new TextEncoder().encode(plain);
    expect(encodeBase64url(raw)).toBe(encoded);
    expect(decodeBase64url(encoded)).toEqual(raw);
  });

  it("uses the URL-safe alphabet (- and _) and no padding", () => {
    expect(encodeBase64url(bytes(0xfb, 0xff, 0xbf))).toBe("-_-_");
    expect(decodeBase64url("-_-_")).toEqual(bytes(0xfb, 0xff, 0xbf));
    expect(encodeBase64url(bytes(0xff))).toBe("_w");
  });

  it("drops ASCII whitespace (space, tab, CR, LF) anywhere, as in RFC 8816 §9 folded bodies", () => {
    expect(decodeBase64url("  Zm9v\r\n YmFy\t\n")).toEqual(new TextEncoder().encode("foobar"));
    expect(decodeBase64url("Z m 9 v")).toEqual(new TextEncoder().encode("foo"));
  });

  it.each([
    ["standard alphabet +", "ab+c"],
    ["standard alphabet /", "ab/c"],
    ["padding", "Zg=="],
    ["one padding char", "Zm8="],
    ["dot", "Zm.9v"],
    ["non-ASCII", "Zm9vé"],
    ["replacement char", "Zm9v\uFFFD"],
    ["vertical tab", "Zm9v\u000b"],
    ["form feed", "Zm9v\u000c"],
    ["non-breaking space", "Zm9v\u00a0"],
    ["NUL", "Zm9v\u0000"],
    ["length 1 mod 4", "Zm9vY"],
    ["single char", "A"],
    ["non-canonical trailing bits (2 chars)", "Zh"],
    ["non-canonical trailing bits (3 chars)", "Zm9"],
  ])("refuses %s with BLOB_ENCODING", (_label, text) => {
    expect(codeOf(() => decodeBase64url(text))).toBe("BLOB_ENCODING");
  });

  it("uses the runtime's own base64 in workerd, jose's in Node 20", () => {
    expect(NATIVE_BASE64).toBe(inWorkerd);
  });

  it("gives jose's text for any bytes, and its bytes back", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1100 }), (raw) => {
        const text = base64url.encode(raw);
        expect(encodeBase64url(raw)).toBe(text);
        expect(decodeBase64url(text)).toEqual(raw);
      }),
      { numRuns: 500 },
    );
  });

  it("round-trips any bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (raw) => {
        const text = encodeBase64url(raw);
        expect(text).toMatch(/^[A-Za-z0-9_-]*$/);
        expect(decodeBase64url(text)).toEqual(raw);
      }),
    );
  });

  it("decodes every accepted text to bytes that encode back to it (one text form per byte string)", () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[A-Za-z0-9_-]{0,12}$/), (text) => {
        let raw: Uint8Array;
        try {
          raw = decodeBase64url(text);
        } catch (err) {
          expect(err).toBeInstanceOf(CpsError);
          return;
        }
        expect(encodeBase64url(raw)).toBe(text);
      }),
      { numRuns: 2000 },
    );
  });

  it("throws only CpsError BLOB_ENCODING, for any string", () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.string(), fc.string({ unit: "binary" }), fc.stringMatching(/^[A-Za-z0-9_\- =+/\n]*$/)),
        (s) => {
          try {
            decodeBase64url(s);
          } catch (err) {
            expect(err).toBeInstanceOf(CpsError);
            expect((err as CpsError).code).toBe("BLOB_ENCODING");
          }
        },
      ),
      { numRuns: 2000 },
    );
  });
});
