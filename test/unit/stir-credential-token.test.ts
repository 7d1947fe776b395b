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
        // A well-formed change (claims are checked before the signature): only the signature fails.
        return `${h}.${base64url.encode(JSON.stringify({ ...goodClaims(), jti: "tamperedtampered" }))}.${s}`;
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

/** A JWS with any header (jose refuses to sign some), and a signature of zeros. */
const unsigned = (header: Record<string, unknown>, claims: Record<string, unknown>) =>
  `${base64url.encode(JSON.stringify(header))}.${base64url.encode(JSON.stringify(claims))}.${base64url.encode(new Uint8Array(64))}`;

describe("adversary #10: no x5u fetch for a token whose cheap checks already fail", () => {
  const x5uToken = (extra: Record<string, unknown> = {}) =>
    issueCredentialToken({
      privateKey: pki.valid.privateKey,
      x5u: "https://attacker.example/probe",
      audience: AUD,
      action: "keys:put",
      now: NOW,
      ...extra,
    });
  const raw = (header: Record<string, unknown>, claims: Record<string, unknown>) =>
    new CompactSign(new TextEncoder().encode(JSON.stringify(claims)))
      .setProtectedHeader(header as { alg: string })
      .sign(pki.valid.privateKey);
  const claims = () => ({ action: "keys:put", aud: AUD, iat: NOW, jti: "abcdefghijklmnop" });
  const header = { alg: "ES256", x5u: "https://attacker.example/probe" };

  it.each<[string, () => Promise<string>, string]>([
    ["stale iat", () => x5uToken({ now: NOW - 3600 }), "AUTH_EXPIRED"],
    ["iat in the future", () => x5uToken({ now: NOW + 3600 }), "AUTH_EXPIRED"],
    ["another audience", () => x5uToken({ audience: "https://other.example" }), "AUTH_AUDIENCE"],
    ["an action this route does not allow", () => x5uToken({ action: "tokens:issue" }), "AUTH_ACTION"],
    ["a malformed jti", () => raw(header, { ...claims(), jti: "short" }), "AUTH_MALFORMED"],
    ["no iat", () => raw(header, { ...claims(), iat: undefined }), "AUTH_MALFORMED"],
    ["a typ that is not JWT", () => raw({ ...header, typ: "passport" }, claims()), "AUTH_MALFORMED"],
    ["crit", async () => unsigned({ ...header, crit: ["exp"], exp: 1 }, claims()), "AUTH_MALFORMED"],
    ["x5u not a string", () => raw({ ...header, x5u: 42 }, claims()), "AUTH_MALFORMED"],
  ])("%s: refused without fetching", async (_n, make, code) => {
    const fetched: string[] = [];
    const replay = ledger();
    const opts = options({
      actions: ["keys:put"],
      replayCheck: replay,
      fetchChain: async (url) => {
        fetched.push(url);
        return parseCertificateChain(pki.valid.pem);
      },
    });
    await expect(verifyCredentialToken(await make(), opts)).rejects.toMatchObject({ code });
    expect(fetched).toEqual([]);
    expect(replay.seen.size).toBe(0);
  });
});

describe("credential token wire rules (docs/passport-and-credentials.md, issue #16)", () => {
  const sign = (
    header: Record<string, unknown>,
    claims: Record<string, unknown>,
    key = pki.valid.privateKey,
  ) =>
    new CompactSign(new TextEncoder().encode(JSON.stringify(claims)))
      .setProtectedHeader(header as { alg: string })
      .sign(key);
  const std = (d: Uint8Array) => btoa(String.fromCharCode(...d));
  const x5c = (ders: readonly Uint8Array[] = pki.valid.der) => ders.map(std);
  const claims = (extra: Record<string, unknown> = {}) => ({
    action: "keys:put",
    aud: AUD,
    iat: NOW,
    jti: "abcdefghijklmnop",
    ...extra,
  });
  const verify = (token: string) => verifyCredentialToken(token, options({ actions: ["keys:put"] }));
  const ok = async (header: Record<string, unknown>, c: Record<string, unknown>) =>
    expect((await verify(await sign(header, c))).action).toBe("keys:put");
  const refused = async (header: Record<string, unknown>, c: Record<string, unknown>, code: string) =>
    expect(verify(await sign(header, c))).rejects.toMatchObject({ code });
  const h = (extra: Record<string, unknown> = {}) => ({ alg: "ES256", x5c: x5c(), ...extra });

  it("jti: base64url alphabet, 16 to 128 characters", async () => {
    await ok(h(), claims({ jti: "A".repeat(16) }));
    await ok(h(), claims({ jti: `${"a-_Z9".repeat(25)}xyz` }));
    await refused(h(), claims({ jti: "A".repeat(15) }), "AUTH_MALFORMED");
    await refused(h(), claims({ jti: "A".repeat(129) }), "AUTH_MALFORMED");
    await refused(h(), claims({ jti: "abcdefghijklmno+" }), "AUTH_MALFORMED");
    await refused(h(), claims({ jti: "abcdefghijklmno=" }), "AUTH_MALFORMED");
    await refused(h(), claims({ jti: 1234567890123456 }), "AUTH_MALFORMED");
  });

  it("iat: an integer NumericDate, at most 60 s old and at most 5 s ahead", async () => {
    await ok(h(), claims({ iat: NOW - 60 }));
    await ok(h(), claims({ iat: NOW + 5 }));
    await refused(h(), claims({ iat: NOW - 61 }), "AUTH_EXPIRED");
    await refused(h(), claims({ iat: NOW + 6 }), "AUTH_EXPIRED");
    await refused(h(), claims({ iat: NOW + 0.5 }), "AUTH_MALFORMED");
    await refused(h(), claims({ iat: String(NOW) }), "AUTH_MALFORMED");
  });

  it("exp and nbf, when present, are honoured (5 s skew); other claims are ignored", async () => {
    await ok(h(), claims({ exp: NOW + 30, nbf: NOW - 1, iss: "anything", sub: "anything" }));
    await refused(h(), claims({ exp: NOW - 6 }), "AUTH_EXPIRED");
    await refused(h(), claims({ nbf: NOW + 6 }), "AUTH_EXPIRED");
    await refused(h(), claims({ exp: "tomorrow" }), "AUTH_MALFORMED");
  });

  it("aud: one string, byte for byte the CPS origin (no trailing slash, no case folding, no array)", async () => {
    await ok(h(), claims());
    await refused(h(), claims({ aud: `${AUD}/` }), "AUTH_AUDIENCE");
    await refused(h(), claims({ aud: AUD.toUpperCase() }), "AUTH_AUDIENCE");
    await refused(h(), claims({ aud: [AUD] }), "AUTH_AUDIENCE");
    await refused(h(), claims({ aud: undefined }), "AUTH_AUDIENCE");
  });

  it("typ: optional; when present JWT in any case; anything else is refused", async () => {
    await ok({ alg: "ES256", x5c: x5c() }, claims());
    await ok(h({ typ: "JWT" }), claims());
    await ok(h({ typ: "jwt" }), claims());
    await refused(h({ typ: "passport" }), claims(), "AUTH_MALFORMED");
    await refused(h({ typ: 1 }), claims(), "AUTH_MALFORMED");
  });

  it("alg: ES256 only", async () => {
    await expect(verify(unsigned(h({ alg: "ES384" }), claims()))).rejects.toMatchObject({
      code: "AUTH_INVALID",
    });
    await expect(verify(unsigned(h({ alg: "es256" }), claims()))).rejects.toMatchObject({
      code: "AUTH_INVALID",
    });
  });

  it("action: lower-case word from the route's list", async () => {
    await ok(h(), claims({ action: "keys:put" }));
    await refused(h(), claims({ action: "Keys:put" }), "AUTH_MALFORMED");
    await refused(h(), claims({ action: "keys:delete" }), "AUTH_ACTION");
    await refused(h(), claims({ action: ["keys:put"] }), "AUTH_MALFORMED");
  });

  it("x5c: the leaf first, then every intermediate up to an anchor (the root may be left out)", async () => {
    const [leaf, intermediate] = pki.valid.der;
    if (!leaf || !intermediate) throw new Error("chain");
    const root = new Uint8Array(pki.root.certificate.rawData);
    await ok(h({ x5c: x5c([leaf, intermediate]) }), claims());
    await ok(h({ x5c: x5c([leaf, intermediate, root]) }), claims());
    await refused(h({ x5c: x5c([leaf]) }), claims(), "CERT_UNTRUSTED");
    await refused(h({ x5c: x5c([intermediate, leaf]) }), claims(), "CERT_CHAIN_INVALID");
    await refused(h({ x5c: x5c(Array(9).fill(leaf)) }), claims(), "CERT_MALFORMED");
    await refused(h({ x5c: [] }), claims(), "AUTH_MALFORMED");
  });

  it("x5c: standard base64 (RFC 7515 §4.1.6), padding optional; base64url and whitespace refused", async () => {
    const encoded = x5c();
    const url = encoded.map((s) => s.replace(/\+/g, "-").replace(/\//g, "_"));
    expect(url).not.toEqual(encoded); // the test certificates do use + or /
    await ok(h({ x5c: encoded.map((s) => s.replace(/=+$/, "")) }), claims());
    await refused(h({ x5c: url }), claims(), "AUTH_MALFORMED");
    await refused(
      h({ x5c: encoded.map((s) => `${s.slice(0, 64)}\n${s.slice(64)}`) }),
      claims(),
      "AUTH_MALFORMED",
    );
  });

  it("size: a token over 16,384 characters is refused before any work", async () => {
    const big = await sign(h(), claims({ pad: "x".repeat(16_384) }));
    await expect(verify(big)).rejects.toMatchObject({ code: "AUTH_MALFORMED" });
  });

  it("the JWS signature is the 64-byte R||S of RFC 7518 §3.4, not DER", async () => {
    const token = await sign(h(), claims());
    const [a, b, s] = token.split(".");
    const rs = base64url.decode(s ?? "");
    const int = (x: Uint8Array) => {
      let i = 0;
      while (i < x.length - 1 && x[i] === 0) i++;
      const v = x.subarray(i);
      return (v[0] ?? 0) & 0x80 ? [0x02, v.length + 1, 0, ...v] : [0x02, v.length, ...v];
    };
    const body = [...int(rs.subarray(0, 32)), ...int(rs.subarray(32))];
    const der = new Uint8Array([0x30, body.length, ...body]);
    await expect(verify(`${a}.${b}.${base64url.encode(der)}`)).rejects.toMatchObject({
      code: "AUTH_INVALID",
    });
  });
});
