/**
 * Issue 16 "must show": a client written from the PUBLIC descriptions alone (ATIS-1000096 and
 * ATIS-1000105 as publicly described, draft-wendt-stir-vesper-oob, the TransNexus sample client's
 * README; test/helpers/atis-independent-client.mjs, which imports nothing of this repository)
 * publishes and retrieves through both path forms, /passports/{DEST}/{ORIG} and
 * /passports/{SPC}/{DEST}/{ORIG}, with access JWTs naming the certificate by x5u and by x5c, and with
 * each `passports` digest variant of the facts sheet, against the real CPS under `wrangler dev`.
 *
 * The certificates come from the test PKI (src/stir/test-pki.ts, TEST ONLY keys made here) and are
 * served over https by a local certificate repository on 127.0.0.1 (test/helpers/https-certs.ts),
 * whose TLS test CA the CPS trusts through NODE_EXTRA_CA_CERTS (miniflare hands it to workerd); the
 * CPS runs with ALLOW_LOOPBACK_X5U so that an x5u on loopback passes its URL policy
 * (src/stir/x5u.ts `checkX5uUrl`) and with the test PKI's root as TRUST_ANCHORS_PEM. Nothing is
 * mocked: every PASSporT and every x5u token makes the CPS fetch its chain over TLS.
 */
import "reflect-metadata";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, type LocalServer, startLocalServer } from "../../src/dev/local-server.mjs";
import { createTestPki, type TestPki } from "../../src/stir/test-pki.js";
import {
  type AtisCredential,
  type DigestVariant,
  type PathForm,
  publish,
  retrieve,
  shakenPassport,
  type TokenVia,
} from "../helpers/atis-independent-client.mjs";
import { type HttpsCertServer, startHttpsCertServer } from "../helpers/https-certs.js";

/** The valid leaf's TNAuthList (src/stir/test-pki.ts DEFAULT_TEST_TN_AUTH_LIST): SPC 709J, 12025550100-199. */
const SPC = "709J";
const CALLING = "12155551212";
/** Called numbers inside the credential's range, so it may retrieve them (ATIS-1000096 authorisation). */
const called = (n: number) => String(12025550100 + n);

let pki: TestPki;
let certs: HttpsCertServer;
let server: LocalServer;
/** What a carrier's AS/VS holds: its private key as PEM, its chain's URL and its chain. */
let credential: AtisCredential;
let passportX5u: string;

beforeAll(async () => {
  pki = await createTestPki();
  certs = await startHttpsCertServer();
  const pkcs8 = (await crypto.subtle.exportKey("pkcs8", pki.valid.privateKey)) as ArrayBuffer;
  const pkcs8Pem = Buffer.from(pkcs8)
    .toString("base64")
    .replace(/.{1,64}/g, "$&\n");
  credential = {
    privateKey: `-----BEGIN PRIVATE KEY-----\n${pkcs8Pem}-----END PRIVATE KEY-----\n`,
    // Separate URLs for the access JWTs and the PASSporTs, so the log shows the CPS fetched each.
    x5u: certs.serve("/sti-cr/709J-token.pem", pki.valid.pem),
    chainPem: pki.valid.pem,
  };
  passportX5u = certs.serve("/sti-cr/709J.pem", pki.valid.pem);
  server = await startLocalServer({
    vars: { TRUST_ANCHORS_PEM: pki.root.certificate.toString("pem"), ALLOW_LOOPBACK_X5U: "true" },
    env: { NODE_EXTRA_CA_CERTS: certs.caFile },
    // An inspector port of its own: another wrangler dev (a bench, a second CPS) may hold 9229.
    args: ["--inspector-port", String(await freePort())],
  });
});

afterAll(async () => {
  await server?.stop();
  await certs?.close();
});

/** How many times the CPS fetched `path` from the repository (no-store: every verification fetches). */
function fetches(path: string): number {
  return certs.requests.filter((r) => r.path === path && r.status === 200).length;
}

function passportFor(dest: string, orig = CALLING): string {
  return shakenPassport({ privateKey: credential.privateKey, x5u: passportX5u, orig, dest });
}

const FORMS: PathForm[] = ["dest-orig", "spc"];
const VIAS: TokenVia[] = ["x5u", "x5c"];
/** The facts sheet's three digest variants (ATIS sample client, research prototype, VESPER). */
const DIGESTS: DigestVariant[] = ["atis", "prototype", "vesper"];
const COMBINATIONS = FORMS.flatMap((pathForm) =>
  VIAS.flatMap((via) => DIGESTS.map((digest) => ({ pathForm, via, digest }))),
).map((c, i) => ({ ...c, dest: called(10 + i) }));

describe("an independent ATIS client against wrangler dev", () => {
  it("finds the CPS healthy without authentication (GET /health, as the sample client checks first)", async () => {
    const res = await fetch(`${server.url}/health`);
    expect(res.status).toBe(200);
  });

  it.each(COMBINATIONS)(
    "publishes (201) and retrieves (200, the same PASSporT) on the $pathForm path, $via token, $digest digest",
    async ({ pathForm, via, digest, dest }) => {
      const passport = passportFor(dest);
      // The VESPER rows also send the VESPER token's extras: `sub` beside `iss`, and `typ: JWT`.
      const style = digest === "vesper" ? { sub: SPC, tokenHeader: { typ: "JWT" } } : {};
      const request = { cps: server.url, credential, via, pathForm, spc: SPC, dest, orig: CALLING, ...style };
      const before = { passport: fetches("/sti-cr/709J.pem"), token: fetches("/sti-cr/709J-token.pem") };
      const published = await publish({ ...request, passports: [passport], digest });
      expect(published.status, published.text).toBe(201);
      expect(published.json).toEqual({ status: 201, message: "Created" });
      expect(published.headers.get("content-type")).toMatch(/^application\/json/);
      // The CPS verified the PASSporT with the chain its x5u names, fetched over TLS just now, and an
      // x5u token's chain likewise (an x5c token carries its own).
      expect(fetches("/sti-cr/709J.pem")).toBe(before.passport + 1);
      expect(fetches("/sti-cr/709J-token.pem")).toBe(before.token + (via === "x5u" ? 1 : 0));

      const got = await retrieve(request);
      expect(got.status, got.text).toBe(200);
      expect(got.json).toEqual({ passports: [passport] });
      expect(got.headers.get("content-type")).toMatch(/^application\/json/);
      expect(got.headers.get("cache-control")).toMatch(/no-store/);
    },
  );

  it("fetched both chains over https from the local repository (x5u of the PASSporTs and of the tokens)", () => {
    const fetched = new Set(certs.requests.filter((r) => r.status === 200).map((r) => r.path));
    expect(fetched).toContain("/sti-cr/709J.pem");
    expect(fetched).toContain("/sti-cr/709J-token.pem");
  });

  it.each([
    ["dest-orig", "x5c", "prototype-python"],
    ["spc", "x5u", "vesper-prefixed"],
  ] as const)(
    "accepts the other spellings seen in public clients: %s path, %s token, %s digest",
    async (pathForm, via, digest) => {
      const dest = called(pathForm === "spc" ? 31 : 30);
      const passport = passportFor(dest);
      const request = { cps: server.url, credential, via, pathForm, spc: SPC, dest, orig: CALLING };
      const published = await publish({ ...request, passports: [passport], digest });
      expect(published.status, published.text).toBe(201);
      expect((await retrieve(request)).json).toEqual({ passports: [passport] });
    },
  );

  it.each(FORMS)("answers 404 on the %s path for a pair with nothing published", async (pathForm) => {
    const got = await retrieve({
      cps: server.url,
      credential,
      via: "x5c",
      pathForm,
      spc: SPC,
      dest: called(40),
      orig: CALLING,
    });
    expect(got.status, got.text).toBe(404);
    // The error body the ATIS/VESPER clients read: status and message (ours add code).
    expect(got.json).toMatchObject({ status: 404, message: expect.any(String), code: "NOT_FOUND" });
  });

  describe("refuses with 403 when the path and the token disagree, and stores nothing", () => {
    const dest = called(50);
    const other = called(51);

    it("token dest is not the path's DEST (publish, /passports/{DEST}/{ORIG})", async () => {
      const passport = passportFor(dest);
      const res = await publish({
        cps: server.url,
        credential,
        dest,
        orig: CALLING,
        passports: [passport],
        path: `/passports/${other}/${CALLING}`,
      });
      expect(res.status, res.text).toBe(403);
      expect(res.json).toMatchObject({ status: 403, code: "ATIS_CLAIM_MISMATCH" });
      for (const d of [dest, other]) {
        expect((await retrieve({ cps: server.url, credential, dest: d, orig: CALLING })).status).toBe(404);
      }
    });

    it("token spc is not the path's SPC (publish, /passports/{SPC}/{DEST}/{ORIG})", async () => {
      const passport = passportFor(dest);
      const res = await publish({
        cps: server.url,
        credential,
        via: "x5c",
        pathForm: "spc",
        spc: SPC,
        dest,
        orig: CALLING,
        passports: [passport],
        path: `/passports/OTHER1/${dest}/${CALLING}`,
      });
      expect(res.status, res.text).toBe(403);
      expect(res.json).toMatchObject({ status: 403, code: "ATIS_CLAIM_MISMATCH" });
      expect((await retrieve({ cps: server.url, credential, dest, orig: CALLING })).status).toBe(404);
    });

    it("token orig is not the path's ORIG (retrieve)", async () => {
      const res = await retrieve({
        cps: server.url,
        credential,
        dest,
        orig: CALLING,
        path: `/passports/${dest}/${called(52)}`,
      });
      expect(res.status, res.text).toBe(403);
      expect(res.json).toMatchObject({ status: 403, code: "ATIS_CLAIM_MISMATCH" });
    });
  });

  it("answers a repeated publish with the same Idempotency-Key like the first, storing one copy (VESPER)", async () => {
    const dest = called(60);
    const passport = passportFor(dest);
    const request = { cps: server.url, credential, dest, orig: CALLING, passports: [passport] };
    const key = crypto.randomUUID();
    const first = await publish({ ...request, idempotencyKey: key });
    const again = await publish({ ...request, idempotencyKey: key, digest: "vesper", via: "x5c" });
    expect([first.status, again.status]).toEqual([201, 201]);
    expect(again.json).toEqual(first.json);
    expect((await retrieve({ ...request })).json).toEqual({ passports: [passport] });
  });
});
