/**
 * ATIS access JWTs (src/stir/atis-token.ts) through the verifier the routes use: credential-token.ts
 * with the audience list, `checkClaims` = checkAtisClaims and `beforeSpend` = checkAtisCoverage
 * (docs/atis-api.md "The access JWT"). Real keys and chains from the test PKI. Attacks first: a
 * token refused for its claims costs no x5u fetch and spends no jti.
 */
import { createHash } from "node:crypto";
import { decodeJwt, decodeProtectedHeader } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { CpsError } from "../../src/errors.js";
import {
  ATIS_PUBLISH_ACTIONS,
  ATIS_RETRIEVE_ACTIONS,
  type AtisAction,
  type AtisClaims,
  checkAtisClaims,
  checkAtisCoverage,
} from "../../src/stir/atis-claims.js";
import { acceptedPassportsDigests } from "../../src/stir/atis-digest.js";
import { parsePublishBody } from "../../src/stir/atis-passports.js";
import { type IssueAtisTokenOptions, issueAtisToken } from "../../src/stir/atis-token.js";
import { CertificateValidator, parseCertificateChain } from "../../src/stir/certificates.js";
import { type ReplayCheck, verifyCredentialToken } from "../../src/stir/credential-token.js";
import { createPassport } from "../../src/stir/passport.js";
import { createTestPki, type TestPki } from "../../src/stir/test-pki.js";
import { type CanonicalTn, canonicalTn } from "../../src/stir/tn.js";

const ORIG = canonicalTn("12025550100");
const DEST = canonicalTn("12155551212");
const NOW = Math.floor(Date.now() / 1000);
const X5U = "https://certs.example/sp.pem";
const AUDIENCES = ["cps.example:8443", "cps.example", "https://cps.example:8443"];

let pki: TestPki;
let validator: CertificateValidator;
let passports: string[];

beforeAll(async () => {
  pki = await createTestPki();
  validator = new CertificateValidator({ anchors: [pki.root.certificate] });
  passports = [
    await createPassport(
      {
        x5u: X5U,
        ppt: "shaken",
        claims: {
          attest: "A",
          dest: { tn: [DEST] },
          iat: NOW,
          orig: { tn: ORIG },
          origid: crypto.randomUUID(),
        },
      },
      pki.valid.privateKey,
    ),
  ];
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

const issue = (extra: Partial<IssueAtisTokenOptions> = {}) =>
  issueAtisToken({
    privateKey: pki.valid.privateKey,
    x5c: pki.valid.der,
    audience: "cps.example",
    action: "publish",
    orig: ORIG,
    dest: DEST,
    spc: "709J",
    iss: "709J",
    passports,
    exp: NOW + 15,
    now: NOW,
    ...extra,
  });

/** What the ATIS publish/retrieve route does with a token (src/http/atis-auth.ts), minus I/O. */
async function atisVerify(
  token: string,
  opts: {
    route?: "publish" | "retrieve";
    body?: string;
    spc?: string;
    orig?: CanonicalTn;
    replay?: ReturnType<typeof ledger>;
    fetches?: { n: number };
  } = {},
): Promise<{ atis: AtisClaims; publisherSpc: string | null }> {
  const actions: readonly AtisAction[] =
    opts.route === "retrieve" ? ATIS_RETRIEVE_ACTIONS : ATIS_PUBLISH_ACTIONS;
  const body = parsePublishBody(opts.body ?? JSON.stringify({ passports }));
  const digests = await acceptedPassportsDigests(body);
  let atis: AtisClaims | undefined;
  let publisherSpc: string | null = null;
  await verifyCredentialToken(token, {
    audience: AUDIENCES,
    actions,
    validator,
    replayCheck: opts.replay ?? ledger(),
    now: NOW,
    fetchChain: async (url) => {
      if (opts.fetches) opts.fetches.n++;
      if (url !== X5U) throw new CpsError("X5U_FETCH_FAILED", "unknown");
      return parseCertificateChain(pki.valid.pem);
    },
    checkClaims: (c) => {
      atis = checkAtisClaims(c, {
        actions,
        dest: DEST,
        orig: opts.orig ?? ORIG,
        ...(opts.spc === undefined ? {} : { spc: opts.spc }),
        digests,
      });
    },
    beforeSpend: async (v) => {
      publisherSpc = checkAtisCoverage(v.tnAuthList, atis ?? {}, new Map()).publisherSpc;
      return true;
    },
  });
  if (atis === undefined) throw new Error("checkClaims was not run");
  return { atis, publisherSpc };
}

describe("refused tokens spend nothing and fetch nothing", () => {
  it("a token for another path, action or body: refused before the x5u fetch, jti unspent", async () => {
    const replay = ledger();
    const fetches = { n: 0 };
    const x5u = { x5c: undefined, x5u: X5U };
    const cases: [Partial<IssueAtisTokenOptions>, string, Parameters<typeof atisVerify>[1]][] = [
      [{ ...x5u, orig: "12025550101" }, "ATIS_CLAIM_MISMATCH", {}],
      [{ ...x5u, dest: "12155551213" }, "ATIS_CLAIM_MISMATCH", {}],
      [{ ...x5u, spc: "OTHER" }, "ATIS_CLAIM_MISMATCH", { spc: "709J" }],
      [{ ...x5u, action: "retrieve" }, "AUTH_ACTION", {}],
      [{ ...x5u, passports: [...passports, ...passports] }, "ATIS_DIGEST_MISMATCH", {}],
      [{ ...x5u, exp: NOW + 61 }, "ATIS_EXP_TOO_LONG", {}],
      [{ ...x5u, audience: "evil.example" }, "AUTH_AUDIENCE", {}],
      [{ ...x5u, now: NOW - 61, exp: undefined }, "AUTH_EXPIRED", {}],
    ];
    for (const [extra, code, opts] of cases) {
      await expect(atisVerify(await issue(extra), { ...opts, replay, fetches })).rejects.toMatchObject({
        code,
      });
    }
    expect(fetches.n).toBe(0);
    expect(replay.seen.size).toBe(0);
  });

  it("an spc or iss the certificate does not list: CERT_NOT_AUTHORISED after the chain, jti unspent", async () => {
    const replay = ledger();
    await expect(atisVerify(await issue({ spc: "OTHER", iss: "709J" }), { replay })).rejects.toMatchObject({
      code: "CERT_NOT_AUTHORISED",
    });
    await expect(atisVerify(await issue({ iss: "OTHER" }), { replay })).rejects.toMatchObject({
      code: "CERT_NOT_AUTHORISED",
    });
    await expect(atisVerify(await issue({ sub: "19995550100" }), { replay })).rejects.toMatchObject({
      code: "CERT_NOT_AUTHORISED",
    });
    expect(replay.seen.size).toBe(0);
  });

  it("signed by a key that is not the certificate's: AUTH_INVALID; replayed: AUTH_REPLAYED", async () => {
    await expect(atisVerify(await issue({ privateKey: pki.expired.privateKey }))).rejects.toMatchObject({
      code: "AUTH_INVALID",
    });
    const replay = ledger();
    const token = await issue();
    await atisVerify(token, { replay });
    await expect(atisVerify(token, { replay })).rejects.toMatchObject({ code: "AUTH_REPLAYED" });
  });

  it("issuing refuses a token without exactly one of x5u and x5c, and a key that cannot sign", async () => {
    await expect(issue({ x5u: X5U })).rejects.toMatchObject({ code: "AUTH_MALFORMED" });
    await expect(issue({ x5c: undefined })).rejects.toMatchObject({ code: "AUTH_MALFORMED" });
    await expect(issue({ privateKey: pki.valid.publicKey })).rejects.toMatchObject({ code: "INVALID_KEY" });
  });
});

describe("issued tokens", () => {
  it("the ATIS-1000105 shape: ES256, typ JWT, x5c; claims of the ATIS sample client", async () => {
    const token = await issue({ jti: "0f5b1c9e-6f2a-4a8e-9a61-3c1f2d1e4b7a" });
    expect(decodeProtectedHeader(token)).toEqual({
      alg: "ES256",
      typ: "JWT",
      x5c: pki.valid.der.map((d) => Buffer.from(d).toString("base64")),
    });
    expect(decodeJwt(token)).toEqual({
      iat: NOW,
      exp: NOW + 15,
      jti: "0f5b1c9e-6f2a-4a8e-9a61-3c1f2d1e4b7a",
      action: "publish",
      aud: "cps.example",
      orig: { tn: ORIG },
      dest: { tn: [DEST] },
      spc: "709J",
      iss: "709J",
      passports: `sha256-${createHash("sha256").update(JSON.stringify(passports)).digest("base64")}`,
    });
  });

  it("optional claims are left out when not asked for; jti defaults to a fresh UUID", async () => {
    const a = decodeJwt(
      await issue({
        action: "retrieve",
        spc: undefined,
        iss: undefined,
        passports: undefined,
        exp: undefined,
      }),
    );
    expect(Object.keys(a).sort()).toEqual(["action", "aud", "dest", "iat", "jti", "orig"]);
    expect(a.jti).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(decodeJwt(await issue()).jti).not.toBe(a.jti);
  });

  it("publish verifies end to end (x5c and x5u), with the publisher SPC", async () => {
    const out = await atisVerify(await issue(), { spc: "709J" });
    expect(out).toEqual({
      atis: { action: "publish", spc: "709J", iss: "709J", exp: NOW + 15, digestVariant: "A" },
      publisherSpc: "709J",
    });
    const fetches = { n: 0 };
    await atisVerify(await issue({ x5c: undefined, x5u: X5U }), { fetches });
    expect(fetches.n).toBe(1);
  });

  it("each digest variant, the VESPER one over a body with more members", async () => {
    const body = { token: "x.y.z", passports };
    for (const digestVariant of ["A", "B", "C"] as const) {
      const token = await issue({ digestVariant, body });
      const out = await atisVerify(token, { body: JSON.stringify(body) });
      expect(out.atis.digestVariant).toBe(digestVariant);
    }
  });

  it("republish and retrieve tokens; audience as host, hostname or origin", async () => {
    expect((await atisVerify(await issue({ action: "republish" }))).atis.action).toBe("republish");
    for (const audience of AUDIENCES) {
      const token = await issue({ action: "retrieve", passports: undefined, exp: undefined, audience });
      expect((await atisVerify(token, { route: "retrieve" })).atis.action).toBe("retrieve");
    }
  });
});
