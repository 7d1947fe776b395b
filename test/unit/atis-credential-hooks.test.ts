/**
 * The credential-token hooks the ATIS routes use (issue 16, docs/atis-api.md): an audience list with
 * `aud` as a string or an array, `checkClaims` before any certificate work, `beforeSpend` between the
 * signature and the jti spend. The RFC 8816 behaviour (a single audience string) is covered, unchanged,
 * by stir-credential-token.test.ts.
 */
import { CompactSign, decodeJwt } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { CpsError } from "../../src/errors.js";
import { CertificateValidator, parseCertificateChain } from "../../src/stir/certificates.js";
import {
  type ReplayCheck,
  type VerifyCredentialTokenOptions,
  verifyCredentialToken,
} from "../../src/stir/credential-token.js";
import { createTestPki, type TestPki } from "../../src/stir/test-pki.js";

const NOW = Math.floor(Date.now() / 1000);
const AUDIENCES = ["cps.example:8443", "cps.example", "https://cps.example:8443"] as const;
const X5U = "https://certs.example/sp.pem";

let pki: TestPki;
let validator: CertificateValidator;

beforeAll(async () => {
  pki = await createTestPki();
  validator = new CertificateValidator({ anchors: [pki.root.certificate] });
});

function ledger(): ReplayCheck & { seen: Map<string, number> } {
  const seen = new Map<string, number>();
  return Object.assign(
    async (jti: string, exp: number) => {
      if (seen.has(jti)) return false;
      seen.set(jti, exp);
      return true;
    },
    { seen },
  );
}

const std = (d: Uint8Array) => btoa(String.fromCharCode(...d));

function sign(claims: Record<string, unknown>, header: Record<string, unknown> = {}): Promise<string> {
  return new CompactSign(new TextEncoder().encode(JSON.stringify(claims)))
    .setProtectedHeader({ alg: "ES256", typ: "JWT", x5c: pki.valid.der.map(std), ...header } as {
      alg: string;
    })
    .sign(pki.valid.privateKey);
}

const claims = (extra: Record<string, unknown> = {}) => ({
  action: "publish",
  aud: "cps.example",
  iat: NOW,
  jti: crypto.randomUUID(),
  ...extra,
});

function options(extra: Partial<VerifyCredentialTokenOptions> = {}): VerifyCredentialTokenOptions {
  return { audience: AUDIENCES, validator, replayCheck: ledger(), now: NOW, ...extra };
}

describe("audience list (ATIS: host, hostname or origin; aud a string or an array)", () => {
  it("refuses an aud that names none of them, in either form", async () => {
    for (const aud of [
      "cps.example.",
      "CPS.EXAMPLE",
      "https://cps.example",
      ["other.example"],
      [],
      [1, 2],
      { aud: "cps.example" },
      null,
      undefined,
    ]) {
      await expect(verifyCredentialToken(await sign(claims({ aud })), options())).rejects.toMatchObject({
        code: "AUTH_AUDIENCE",
      });
    }
  });

  it("accepts each audience as a string, and an array containing one", async () => {
    for (const aud of [...AUDIENCES, ["other.example", "cps.example"], ["https://cps.example:8443"]]) {
      const out = await verifyCredentialToken(await sign(claims({ aud })), options());
      expect(out.claims.aud).toEqual(aud);
    }
  });

  it("a single audience string still refuses an array aud (the RFC 8816 rule)", async () => {
    const token = await sign(claims({ aud: ["cps.example"] }));
    await expect(verifyCredentialToken(token, options({ audience: "cps.example" }))).rejects.toMatchObject({
      code: "AUTH_AUDIENCE",
    });
    const ok = await verifyCredentialToken(await sign(claims()), options({ audience: "cps.example" }));
    expect(ok.action).toBe("publish");
  });
});

describe("checkClaims: route rules before any certificate work (threat model #10)", () => {
  it("a refusing checkClaims stops the token before the x5u fetch and the spend", async () => {
    let fetched = 0;
    const replay = ledger();
    const token = await sign(claims(), { x5c: undefined, x5u: X5U });
    const err = verifyCredentialToken(
      token,
      options({
        replayCheck: replay,
        fetchChain: async () => {
          fetched++;
          return parseCertificateChain(pki.valid.pem);
        },
        checkClaims: () => {
          throw new CpsError("ATIS_CLAIM_MISMATCH", "orig is not the path's");
        },
      }),
    );
    await expect(err).rejects.toMatchObject({ code: "ATIS_CLAIM_MISMATCH" });
    expect(fetched).toBe(0);
    expect(replay.seen.size).toBe(0);
  });

  it("runs after the built-in checks: an expired token is AUTH_EXPIRED whatever checkClaims says", async () => {
    let called = 0;
    const token = await sign(claims({ iat: NOW - 61 }));
    await expect(
      verifyCredentialToken(
        token,
        options({
          checkClaims: () => {
            called++;
            throw new CpsError("ATIS_CLAIM_MISMATCH", "x");
          },
        }),
      ),
    ).rejects.toMatchObject({ code: "AUTH_EXPIRED" });
    expect(called).toBe(0);
  });

  it("runs after the action and audience checks too: those codes win", async () => {
    let called = 0;
    const checkClaims = () => {
      called++;
    };
    await expect(
      verifyCredentialToken(
        await sign(claims({ action: "retrieve" })),
        options({ actions: ["publish"], checkClaims }),
      ),
    ).rejects.toMatchObject({ code: "AUTH_ACTION" });
    await expect(
      verifyCredentialToken(await sign(claims({ aud: "evil.example" })), options({ checkClaims })),
    ).rejects.toMatchObject({ code: "AUTH_AUDIENCE" });
    expect(called).toBe(0);
  });

  it("sees every claim as signed", async () => {
    const seen: Record<string, unknown>[] = [];
    const c = claims({ orig: { tn: "12025550100" }, dest: { tn: ["12025550142"] }, spc: "709J" });
    await verifyCredentialToken(await sign(c), options({ checkClaims: (x) => void seen.push({ ...x }) }));
    expect(seen).toEqual([c]);
  });
});

describe("beforeSpend: between the signature and the jti spend", () => {
  it("a refusing beforeSpend leaves the jti unspent, so the holder may retry it", async () => {
    const replay = ledger();
    const token = await sign(claims());
    await expect(
      verifyCredentialToken(
        token,
        options({
          replayCheck: replay,
          beforeSpend: async () => {
            throw new CpsError("CERT_NOT_AUTHORISED", "x");
          },
        }),
      ),
    ).rejects.toMatchObject({ code: "CERT_NOT_AUTHORISED" });
    expect(replay.seen.size).toBe(0);
    await verifyCredentialToken(token, options({ replayCheck: replay }));
    expect(replay.seen.size).toBe(1);
  });

  it("is never reached by a token whose signature does not verify", async () => {
    let called = 0;
    const [h, p] = (await sign(claims())).split(".");
    const [, , s] = (await sign(claims({ jti: crypto.randomUUID() }))).split(".");
    await expect(
      verifyCredentialToken(
        `${h}.${p}.${s}`,
        options({
          beforeSpend: async () => {
            called++;
            return true;
          },
        }),
      ),
    ).rejects.toMatchObject({ code: "AUTH_INVALID" });
    expect(called).toBe(0);
  });

  it("false skips the spend (an idempotent repeat); true or undefined spends", async () => {
    const replay = ledger();
    const token = await sign(claims());
    await verifyCredentialToken(token, options({ replayCheck: replay, beforeSpend: async () => true }));
    // The same token again: spent, so refused, unless the route says it is an exact repeat.
    await expect(verifyCredentialToken(token, options({ replayCheck: replay }))).rejects.toMatchObject({
      code: "AUTH_REPLAYED",
    });
    const again = await verifyCredentialToken(
      token,
      options({ replayCheck: replay, beforeSpend: async () => false }),
    );
    expect(again.jti).toBe(decodeJwt(token).jti);
    const other = await sign(claims());
    await verifyCredentialToken(other, options({ replayCheck: replay, beforeSpend: async () => undefined }));
    expect(replay.seen.size).toBe(2);
  });

  it("receives the verified token with claims, exp and the TNAuthList", async () => {
    let got: unknown;
    const c = claims({ exp: NOW + 30, spc: "709J" });
    const out = await verifyCredentialToken(
      await sign(c),
      options({
        beforeSpend: async (v) => {
          got = v;
          return true;
        },
      }),
    );
    expect(got).toBe(out);
    expect(out.exp).toBe(NOW + 30);
    expect(out.claims).toEqual(c);
    expect(out.tnAuthList.length).toBeGreaterThan(0);
    const noExp = await verifyCredentialToken(await sign(claims()), options());
    expect(noExp.exp).toBeUndefined();
    expect("exp" in noExp).toBe(false);
  });
});
