import fc from "fast-check";
import { base64url, CompactSign } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { CpsError } from "../../src/errors.js";
import {
  CertificateValidator,
  coversRange,
  coversSpc,
  coversTn,
  parseCertificateChain,
} from "../../src/stir/certificates.js";
import {
  bearerToken,
  issueCredentialToken,
  type ReplayCheck,
  type VerifyCredentialTokenOptions,
  verifyCredentialToken,
} from "../../src/stir/credential-token.js";
import { createTestPki, type TestCredential, type TestPki } from "../../src/stir/test-pki.js";

const AUD = "https://cps.example";
const X5U = "https://certs.example/sp.pem";
const NOW = Math.floor(Date.now() / 1000);

let pki: TestPki;
let validator: CertificateValidator;

beforeAll(async () => {
  pki = await createTestPki();
  validator = new CertificateValidator({ anchors: [pki.root.certificate] });
});

/** An in-memory replay ledger like the Durable Object the route uses. */
function ledger(): ReplayCheck & { seen: Map<string, number> } {
  const seen = new Map<string, number>();
  const check = async (jti: string, exp: number) => {
    if (seen.has(jti)) return false;
    seen.set(jti, exp);
    return true;
  };
  return Object.assign(check, { seen });
}

function options(extra: Partial<VerifyCredentialTokenOptions> = {}): VerifyCredentialTokenOptions {
  return {
    audience: AUD,
    validator,
    replayCheck: ledger(),
    fetchChain: async (url) => {
      if (url !== X5U) throw new CpsError("X5U_FETCH_FAILED", "unknown");
      return parseCertificateChain(pki.valid.pem);
    },
    now: NOW,
    ...extra,
  };
}

const issue = (cred: TestCredential, extra: Record<string, unknown> = {}) =>
  issueCredentialToken({
    privateKey: cred.privateKey,
    x5c: cred.der,
    audience: AUD,
    action: "keys:put",
    now: NOW,
    ...extra,
  });

describe("credential token (ATIS-1000096 shape)", () => {
  it("x5c token verifies and returns action, TNAuthList and jti", async () => {
    const token = await issue(pki.valid);
    const replay = ledger();
    const out = await verifyCredentialToken(token, options({ replayCheck: replay, actions: ["keys:put"] }));
    expect(out.action).toBe("keys:put");
    expect(coversTn(out.tnAuthList, "12025550142")).toBe(true);
    expect(coversRange(out.tnAuthList, "12025550100", 100)).toBe(true);
    expect(coversSpc(out.tnAuthList, "709J")).toBe(true);
    expect(replay.seen.get(out.jti)).toBe(NOW + 60);
    const header = JSON.parse(new TextDecoder().decode(base64url.decode(token.split(".")[0] ?? "")));
    expect(header).toMatchObject({ alg: "ES256", typ: "JWT" });
    expect(header.x5c).toHaveLength(2);
  });

  it("x5u token verifies through the injected fetcher", async () => {
    const token = await issueCredentialToken({
      privateKey: pki.valid.privateKey,
      x5u: X5U,
      audience: AUD,
      action: "discovery:put",
      now: NOW,
    });
    expect((await verifyCredentialToken(token, options())).action).toBe("discovery:put");
  });

  it("a replayed jti is detected by the caller's check", async () => {
    const token = await issue(pki.valid);
    const opts = options();
    await verifyCredentialToken(token, opts);
    await expect(verifyCredentialToken(token, opts)).rejects.toMatchObject({ code: "AUTH_REPLAYED" });
  });

  it("a refused token never spends its jti", async () => {
    const replay = ledger();
    const token = await issue(pki.valid, { audience: "https://other.example" });
    await expect(verifyCredentialToken(token, options({ replayCheck: replay }))).rejects.toMatchObject({
      code: "AUTH_AUDIENCE",
    });
    expect(replay.seen.size).toBe(0);
  });

  it("TN outside the certificate's range and SPC mismatch are visible to the route", async () => {
    const { tnAuthList } = await verifyCredentialToken(await issue(pki.valid), options());
    expect(coversTn(tnAuthList, "12025550200")).toBe(false);
    expect(coversRange(tnAuthList, "12025550150", 60)).toBe(false);
    expect(coversSpc(tnAuthList, "123A")).toBe(false);
  });

  const forged = async (header: Record<string, unknown>, claims: Record<string, unknown>) =>
    new CompactSign(new TextEncoder().encode(JSON.stringify(claims)))
      .setProtectedHeader(header as { alg: string })
      .sign(pki.valid.privateKey);
  const x5c = () => pki.valid.der.map((d) => btoa(String.fromCharCode(...d)));
  const goodClaims = () => ({ action: "keys:put", aud: AUD, iat: NOW, jti: "abcdefghijklmnop" });

  it.each<[string, () => Promise<string>, string]>([
    ["expired certificate", () => issue(pki.expired), "CERT_EXPIRED"],
    ["not-yet-valid certificate", () => issue(pki.notYetValid), "CERT_NOT_YET_VALID"],
    ["wrong anchor", () => issue(pki.wrongAnchor), "CERT_UNTRUSTED"],
    ["non-CA intermediate", () => issue(pki.nonCaIntermediate), "CERT_CHAIN_INVALID"],
    ["certificate without TNAuthList", () => issue(pki.noTnAuthList), "CERT_NO_TNAUTHLIST"],
    [
      "signed by another key than the certificate's",
      async () =>
        issueCredentialToken({
          privateKey: pki.expired.privateKey,
          x5c: pki.valid.der,
          audience: AUD,
          action: "keys:put",
          now: NOW,
        }),
      "AUTH_INVALID",
    ],
    [
      "tampered claims",
      async () => {
        const [h, , s] = (await issue(pki.valid)).split(".");
        return `${h}.${base64url.encode(JSON.stringify({ ...goodClaims(), action: "keys:delete" }))}.${s}`;
      },
      "AUTH_INVALID",
    ],
    ["stale iat", () => issue(pki.valid, { now: NOW - 61 }), "AUTH_EXPIRED"],
    ["iat in the future", () => issue(pki.valid, { now: NOW + 30 }), "AUTH_EXPIRED"],
    ["wrong audience", () => issue(pki.valid, { audience: "https://evil.example" }), "AUTH_AUDIENCE"],
    ["action not allowed here", () => issue(pki.valid, { action: "tokens:issue" }), "AUTH_ACTION"],
    [
      "alg none",
      async () =>
        `${base64url.encode(JSON.stringify({ alg: "none", x5c: x5c() }))}.${base64url.encode(JSON.stringify(goodClaims()))}.`,
      "AUTH_INVALID",
    ],
    [
      "alg HS256",
      async () =>
        `${base64url.encode(JSON.stringify({ alg: "HS256", x5c: x5c() }))}.${base64url.encode(JSON.stringify(goodClaims()))}.c2ln`,
      "AUTH_INVALID",
    ],
    [
      "both x5u and x5c",
      () => forged({ alg: "ES256", x5u: X5U, x5c: x5c() }, goodClaims()),
      "AUTH_MALFORMED",
    ],
    ["neither x5u nor x5c", () => forged({ alg: "ES256" }, goodClaims()), "AUTH_MALFORMED"],
    ["x5c not base64", () => forged({ alg: "ES256", x5c: ["***"] }, goodClaims()), "AUTH_MALFORMED"],
    [
      "missing jti",
      () => forged({ alg: "ES256", x5c: x5c() }, { ...goodClaims(), jti: undefined }),
      "AUTH_MALFORMED",
    ],
    [
      "short jti",
      () => forged({ alg: "ES256", x5c: x5c() }, { ...goodClaims(), jti: "abc" }),
      "AUTH_MALFORMED",
    ],
    ["not a JWS", async () => "abc.def", "AUTH_MALFORMED"],
  ])("refuses %s", async (_n, make, code) => {
    const token = await make();
    await expect(verifyCredentialToken(token, options({ actions: ["keys:put"] }))).rejects.toMatchObject({
      code,
    });
  });

  it("x5u tokens are refused when no fetcher is configured", async () => {
    const token = await issueCredentialToken({
      privateKey: pki.valid.privateKey,
      x5u: X5U,
      audience: AUD,
      action: "keys:put",
      now: NOW,
    });
    await expect(verifyCredentialToken(token, options({ fetchChain: undefined }))).rejects.toMatchObject({
      code: "AUTH_INVALID",
    });
  });

  it.each([
    [null, "AUTH_MISSING"],
    ["", "AUTH_MISSING"],
    ["Basic dXNlcjpwYXNz", "AUTH_MALFORMED"],
    ["Bearer", "AUTH_MALFORMED"],
    ["Bearer a b", "AUTH_MALFORMED"],
  ])("bearerToken(%j) is %s", (value, code) => {
    expect(() => bearerToken(value)).toThrow(expect.objectContaining({ code }));
  });

  it("bearerToken returns the token", () => {
    expect(bearerToken("Bearer abc.def.ghi")).toBe("abc.def.ghi");
  });

  it("the verifier throws nothing but CpsError on junk (property)", async () => {
    await fc.assert(
      fc.asyncProperty(fc.jsonValue(), fc.jsonValue(), fc.string(), async (h, p, s) => {
        const token = `${base64url.encode(JSON.stringify(h) ?? "")}.${base64url.encode(JSON.stringify(p) ?? "")}.${s}`;
        try {
          await verifyCredentialToken(token, options());
        } catch (e) {
          if (!(e instanceof CpsError)) throw e;
        }
      }),
      { numRuns: 200 },
    );
  });
});
