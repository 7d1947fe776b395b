/**
 * The independent ATIS client (test/helpers/atis-independent-client.mjs) checked on its own, before
 * it is pointed at the CPS: its JWSs verify as ES256 with an unrelated library (jose), its tokens and
 * PASSporTs have the shapes of the public descriptions, and its digests equal values computed outside
 * JavaScript (Python's hashlib/json, by hand at authoring time), so a mistake shared by the client
 * and the CPS cannot make both agree on a wrong digest.
 */
import "reflect-metadata";
import { compactVerify, decodeProtectedHeader, importX509 } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { createTestPki, type TestPki } from "../../src/stir/test-pki.js";
import {
  accessToken,
  jcs,
  passportsDigest,
  passportsPath,
  pemToX5c,
  pythonJsonDumps,
  shakenPassport,
} from "../helpers/atis-independent-client.mjs";

let pki: TestPki;
beforeAll(async () => {
  pki = await createTestPki();
});

function claimsOf(jws: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(jws.split(".")[1] ?? "", "base64url").toString("utf8"));
}

async function verifies(jws: string): Promise<boolean> {
  const leaf = pki.valid.chain[0]?.toString("pem") ?? "";
  try {
    await compactVerify(jws, await importX509(leaf, "ES256"));
    return true;
  } catch {
    return false;
  }
}

describe("independent ATIS client", () => {
  it("signs a SHAKEN PASSporT (RFC 8588) that verifies as ES256, with the sample client's shape", async () => {
    const passport = shakenPassport({
      privateKey: pki.valid.privateKey,
      x5u: "https://certs.example/sp.pem",
      orig: "12025550101",
      dest: "12155551212",
    });
    expect(passport.split(".")).toHaveLength(3);
    expect(await verifies(passport)).toBe(true);
    expect(decodeProtectedHeader(passport)).toEqual({
      alg: "ES256",
      ppt: "shaken",
      typ: "passport",
      x5u: "https://certs.example/sp.pem",
    });
    const claims = claimsOf(passport);
    expect(claims).toMatchObject({ attest: "A", dest: { tn: ["12155551212"] }, orig: { tn: "12025550101" } });
    expect(claims.origid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(Math.abs((claims.iat as number) - Date.now() / 1000)).toBeLessThan(5);
    // A tampered signature must fail: the check above can fail.
    const [h, p, s = ""] = passport.split(".");
    const flipped = `${s.slice(0, 10)}${s[10] === "A" ? "B" : "A"}${s.slice(11)}`;
    expect(await verifies(`${h}.${p}.${flipped}`)).toBe(false);
  });

  it("builds access JWTs naming the certificate by x5u or by x5c (base64 DER of the chain)", async () => {
    const credential = {
      privateKey: pki.valid.privateKey,
      x5u: "https://certs.example/sp.pem",
      chainPem: pki.valid.pem,
    };
    const common = {
      credential,
      action: "publish",
      audience: "cps.example",
      orig: "12025550101",
      dest: "12155551212",
    };
    const byUrl = accessToken({
      ...common,
      via: "x5u",
      spc: "709J",
      iss: "709J",
      passports: "sha256-x",
      exp: 1060,
      iat: 1000,
    });
    expect(decodeProtectedHeader(byUrl)).toEqual({ alg: "ES256", x5u: "https://certs.example/sp.pem" });
    expect(claimsOf(byUrl)).toEqual({
      iat: 1000,
      exp: 1060,
      action: "publish",
      spc: "709J",
      iss: "709J",
      aud: "cps.example",
      jti: expect.stringMatching(/^[0-9a-f-]{36}$/),
      dest: { tn: ["12155551212"] },
      orig: { tn: "12025550101" },
      passports: "sha256-x",
    });
    expect(await verifies(byUrl)).toBe(true);

    const byChain = accessToken({ ...common, via: "x5c" });
    const x5c = decodeProtectedHeader(byChain).x5c ?? [];
    expect(x5c.map((b) => Buffer.from(b, "base64"))).toEqual(pki.valid.der.map((d) => Buffer.from(d)));
    expect(await verifies(byChain)).toBe(true);
    expect(claimsOf(byChain)).not.toHaveProperty("exp");
    expect(claimsOf(byChain)).not.toHaveProperty("spc");
    // Two tokens never share a jti (single use at the CPS).
    expect(claimsOf(byChain).jti).not.toBe(claimsOf(accessToken({ ...common, via: "x5c" })).jti);
  });

  it("computes each digest variant of the facts sheet as an outside tool does", () => {
    const passports = ["eyJhIjoxfQ.eyJiIjoyfQ.c2ln", "eyJ4IjoxfQ.eyJ5IjoyfQ.c2lnMg"];
    // Values from Python 3 (hashlib, json.dumps, base64), not from this client.
    expect(passportsDigest({ passports }, "atis")).toBe(
      "sha256-gHIQHhd94bbLKq1Ql0Xzr24ors4oJnQ9Mv81oVxNuYM=",
    );
    expect(passportsDigest({ passports }, "prototype")).toBe(
      "sha256-ODA3MjEwMWUxNzdkZTFiNmNiMmFhZDUwOTc0NWYzYWY2ZTI4YWVjZTI4MjY3NDNkMzJmZjM1YTE1YzRkYjk4Mw==",
    );
    expect(passportsDigest({ passports }, "prototype-python")).toBe(
      "sha256-MTI5NmZiNmQ4M2IzZTU1NTI1YmRhNjMwNTlmNGE2NWMzODQ0MDk3MzFmNTJlODkxNzg5Nzk0ZTBmMThjNDhlMA==",
    );
    expect(passportsDigest({ passports }, "vesper")).toBe("3B84Ma87Yuxtm_S4sygq_avRI24HlgFcZY6Hx4wSlvM");
    expect(passportsDigest({ passports }, "vesper-prefixed")).toBe(
      "sha256-3B84Ma87Yuxtm_S4sygq_avRI24HlgFcZY6Hx4wSlvM",
    );
    // JCS covers the whole body, member names sorted (RFC 8785 §3.2.3).
    const body = { passports, a: 1, Z: [true, null] } as unknown as { passports: string[] };
    expect(passportsDigest(body, "vesper")).toBe("wCjmKPtLQ0uAA6W_0GbpXwkjUp5Wu9gzYunR9og-vNg");
    expect(() => passportsDigest({ passports }, "nope" as never)).toThrow(/unknown variant/);
  });

  it("serialises JCS (RFC 8785) and Python's json.dumps text", () => {
    expect(jcs({ b: 1, a: ["x", { d: null, c: true }], "\u20ac": 1, "\r": 2 })).toBe(
      '{"\\r":2,"a":["x",{"c":true,"d":null}],"b":1,"\u20ac":1}',
    );
    // RFC 8785 §3.2.2.3 numbers: ECMAScript's serialisation.
    expect(jcs([1e21, 0.1, -0, 1e-7])).toBe("[1e+21,0.1,0,1e-7]");
    expect(pythonJsonDumps(["a", "b"])).toBe('["a", "b"]');
    expect(pythonJsonDumps({ k: ["a"] })).toBe('{"k": ["a"]}');
  });

  it("builds both ATIS path forms", () => {
    expect(passportsPath({ dest: "12155551212", orig: "12025550101" })).toBe(
      "/passports/12155551212/12025550101",
    );
    expect(passportsPath({ spc: "709J", dest: "12155551212", orig: "12025550101" })).toBe(
      "/passports/709J/12155551212/12025550101",
    );
  });

  it("turns a PEM chain into x5c entries (standard base64 of each DER)", () => {
    expect(pemToX5c(pki.valid.pem)).toEqual(pki.valid.der.map((d) => Buffer.from(d).toString("base64")));
    expect(() => pemToX5c("no pem here")).toThrow(/no CERTIFICATE/);
  });
});
