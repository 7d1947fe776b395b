/**
 * Revocation at key and discovery registration (RFC 8816 §10, §11; docs/design.md invariant 5):
 * the CPS fetches the CRLs named by the credential's certificates, and by the signed key record's
 * (served by the test PKI's CRL repository through miniflare's outboundService, vitest.config.ts: real
 * CRL bytes, verified by the CPS), and refuses a revoked leaf or a leaf under a revoked intermediate
 * with 403 CERT_REVOKED, a CRL it cannot fetch or use with 403 CERT_REVOCATION_UNKNOWN; nothing is
 * written to KV either way (docs/design.md invariant 7).
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { app } from "../../src/app.js";
import { encodeBase64url } from "../../src/stir/base64url.js";
import { generateRecipientKeyPair } from "../../src/stir/envelope.js";
import { signedKeyBody } from "../helpers/key-records.js";
import { TEST_CPS_ORIGIN } from "../helpers/origin.js";
import { bearerFor, type CredentialName, loadTestPki, type WorkerCredential } from "../helpers/pki.js";

const pki = loadTestPki(env.TEST_PKI);
const federated = { ...env, SERVED_PREFIXES: "1202, 1215" } as Env;

function call(path: string, init: RequestInit, bindings: Env = env) {
  return app.request(`${TEST_CPS_ORIGIN}${path}`, init, bindings);
}

async function newKey() {
  const { publicKey } = await generateRecipientKeyPair();
  return { x: encodeBase64url(publicKey) };
}

/** `PUT /keys/{tn}`: bearer of `cred`, record signed by `signer` (default `cred`). */
async function putKey(tn: string, cred: WorkerCredential, signer: WorkerCredential = cred) {
  const body = await signedKeyBody(signer, await newKey(), { blocks: [tn] });
  return call(`/keys/${tn}`, {
    method: "PUT",
    headers: { "Content-Type": "application/json", Authorization: await bearerFor(cred, "keys:put") },
    body: JSON.stringify(body),
  });
}

async function putDiscovery(block: string, cred: WorkerCredential) {
  return call(
    `/discovery/${block}`,
    {
      method: "PUT",
      headers: { "Content-Type": "application/json", Authorization: await bearerFor(cred, "discovery:put") },
      body: JSON.stringify({ cps: "https://enterprise.example", ttl: 60 }),
    },
    federated,
  );
}

/** Every KV entry (the key directory and discovery records): what a refusal must leave as it was. */
async function kvSnapshot(): Promise<string> {
  const out: string[] = [];
  for (const prefix of ["key:", "disc:"]) {
    const res = await env.CPS_KV.list({ prefix });
    for (const k of res.keys) out.push(`${k.name}=${await env.CPS_KV.get(k.name)}`);
  }
  return out.sort().join("\n");
}

async function expectRefused(res: Response, code: string, before: string) {
  expect(res.status).toBe(403);
  expect(res.headers.get("content-type")).toContain("application/problem+json");
  const body = await res.json<{ code: string }>();
  expect(body.code).toBe(code);
  expect(await kvSnapshot()).toBe(before);
}

const REVOKED: [string, CredentialName][] = [
  ["a revoked leaf (on its intermediate's CRL)", "crlRevokedLeaf"],
  ["a leaf under a revoked intermediate (on the root's CRL)", "underRevokedIntermediate"],
];

/** A leaf under the CRL intermediate whose distribution point is `url`. */
async function leafWithCrl(url: string, subject: string) {
  return pki.issue({ issuer: await pki.crlIntermediate(), crlUrl: url, subject });
}

describe("PUT /keys/{tn}: revocation", () => {
  it("an unrevoked credential naming CRLs registers (the CPS fetched and verified both CRLs)", async () => {
    const res = await putKey("12025550160", await pki.credential("crlValid"));
    expect(res.status).toBe(201);
    const lookup = await call("/keys/12025550160", {});
    expect((await lookup.json<{ keys: unknown[] }>()).keys).toHaveLength(1);
  });

  it.each(REVOKED)("%s: 403 CERT_REVOKED, nothing written", async (_n, name) => {
    const before = await kvSnapshot();
    await expectRefused(await putKey("12025550161", await pki.credential(name)), "CERT_REVOKED", before);
  });

  it.each(REVOKED)(
    "a record signed by %s is refused CERT_REVOKED even under an unrevoked bearer",
    async (_n, name) => {
      // The bearer credential (`valid`) names no CRL; the record's signer is revoked. The record check
      // runs the same validator, so revocation answers before the signer-mismatch check would.
      const before = await kvSnapshot();
      const res = await putKey("12025550162", await pki.credential("valid"), await pki.credential(name));
      await expectRefused(res, "CERT_REVOKED", before);
    },
  );

  it("a revoked credential cannot delete keys either", async () => {
    const res = await call("/keys/12025550160", {
      method: "DELETE",
      headers: { Authorization: await bearerFor(await pki.credential("crlRevokedLeaf"), "keys:delete") },
    });
    expect(res.status).toBe(403);
    expect((await res.json<{ code: string }>()).code).toBe("CERT_REVOKED");
  });

  it.each([
    ["cannot be fetched (404)", "missing"],
    ["is signed by the wrong key", "wrongSigner"],
    ["is stale (nextUpdate passed)", "stale"],
  ])("a CRL that %s: 403 CERT_REVOCATION_UNKNOWN, nothing written", async (_n, which) => {
    const url =
      which === "missing"
        ? `${new URL(pki.crlUrls.root).origin}/missing.crl`
        : pki.crlUrls[which as "wrongSigner" | "stale"];
    const leaf = await leafWithCrl(url, `SHAKEN CRL ${which}`);
    const before = await kvSnapshot();
    await expectRefused(await putKey("12025550163", leaf), "CERT_REVOCATION_UNKNOWN", before);
  });
});

describe("PUT /discovery/{block}: revocation", () => {
  it("an unrevoked credential naming CRLs registers", async () => {
    expect((await putDiscovery("120255501xx", await pki.credential("crlValid"))).status).toBe(201);
  });

  it.each(REVOKED)("%s: 403 CERT_REVOKED, nothing written", async (_n, name) => {
    const before = await kvSnapshot();
    await expectRefused(
      await putDiscovery("12155551212", await pki.credential(name)),
      "CERT_REVOKED",
      before,
    );
  });

  it("a CRL that cannot be fetched: 403 CERT_REVOCATION_UNKNOWN, nothing written", async () => {
    const leaf = await leafWithCrl(`${new URL(pki.crlUrls.root).origin}/gone.crl`, "SHAKEN CRL gone");
    const before = await kvSnapshot();
    await expectRefused(await putDiscovery("12155551212", leaf), "CERT_REVOCATION_UNKNOWN", before);
  });
});
