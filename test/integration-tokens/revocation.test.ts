/**
 * Revocation at token issuance (POST /tokens, RFC 8816 §7.5; docs/passport-and-credentials.md
 * "Revocation"): the CPS fetches the CRLs the credential's certificates name (served by the test
 * PKI's CRL repository through miniflare's outboundService, vitest.config.ts), and refuses a revoked
 * leaf or a leaf under a revoked intermediate with 403 CERT_REVOKED, spending nothing: no blind
 * signature, no quota charged, the jti still unspent.
 */
import "reflect-metadata";
import { env, runInDurableObject, SELF } from "cloudflare:test";
import { X509Certificate } from "@peculiar/x509";
import { decodeJwt } from "jose";
import { describe, expect, it } from "vitest";
import { replayShard } from "../../src/durable-objects/replay-guard.js";
import { encodeBase64url } from "../../src/stir/base64url.js";
import { certificateTnAuthList } from "../../src/stir/cert-parse.js";
import type { VerifiedCredentialToken } from "../../src/stir/credential-token.js";
import { quotaLedger, replayGuardShard } from "../../src/storage/objects.js";
import { quotaHolder } from "../../src/tokens/quota.js";
import { bearerFor, type CredentialName, type WorkerCredential } from "../helpers/pki.js";
import { BASE, pki } from "./helpers.js";

const messages = (n: number) =>
  Array.from({ length: n }, () => {
    const m = crypto.getRandomValues(new Uint8Array(256));
    m[0] = 0x01;
    return encodeBase64url(m);
  });

async function issue(authorization: string) {
  const res = await SELF.fetch(`${BASE}/tokens`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: authorization },
    body: JSON.stringify({ keyId: "test-current", blindedMessages: messages(2) }),
  });
  return {
    status: res.status,
    type: res.headers.get("content-type"),
    body: await res.json<Record<string, unknown>>(),
  };
}

/** Rows in the holder's issuance-quota object: what a charge would have written. */
async function quotaRows(cred: WorkerCredential): Promise<number> {
  const leaf = new X509Certificate(cred.der[0] as Uint8Array);
  const holder = await quotaHolder({
    certificate: { leaf },
    tnAuthList: certificateTnAuthList(leaf) ?? [],
  } as unknown as VerifiedCredentialToken);
  return runInDurableObject(quotaLedger(env, holder), (_obj, state) =>
    Number(state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM quota").one().n),
  );
}

describe("POST /tokens refuses revoked credentials (CRLs fetched by the CPS)", () => {
  it("an unrevoked credential whose certificates name CRLs is served (the CRLs are fetched and pass)", async () => {
    const res = await issue(await bearerFor(await pki.credential("crlValid"), "tokens:issue"));
    expect(res.status).toBe(200);
    expect(res.body.blindSignatures).toHaveLength(2);
  });

  it.each([
    ["a revoked leaf (on its intermediate's CRL)", "crlRevokedLeaf"],
    ["a leaf under a revoked intermediate (on the root's CRL)", "underRevokedIntermediate"],
  ] as [string, CredentialName][])("%s: 403 CERT_REVOKED, nothing issued or charged", async (_n, name) => {
    const cred = await pki.credential(name);
    const bearer = await bearerFor(cred, "tokens:issue");
    const res = await issue(bearer);
    expect(res.status).toBe(403);
    expect(res.type).toContain("application/problem+json");
    expect(res.body.code).toBe("CERT_REVOKED");
    expect(res.body).not.toHaveProperty("blindSignatures");
    expect(await quotaRows(cred)).toBe(0);
    // The jti was never spent: the guard still takes it as a first use.
    const { jti, iat } = decodeJwt(bearer.slice("Bearer ".length));
    const guard = replayGuardShard(env, replayShard(jti as string));
    expect(await guard.claim(jti as string, (iat as number) + 60)).toBe(true);
  });

  it("a CRL the CPS cannot fetch: 403 CERT_REVOCATION_UNKNOWN (fail closed)", async () => {
    const leaf = await pki.issue({
      issuer: await pki.crlIntermediate(),
      crlUrl: `${new URL(pki.crlUrls.root).origin}/missing.crl`,
      subject: "CN=CRL missing",
    });
    const res = await issue(await bearerFor(leaf, "tokens:issue"));
    expect(res.status).toBe(403);
    expect(res.body.code).toBe("CERT_REVOCATION_UNKNOWN");
    expect(await quotaRows(leaf)).toBe(0);
  });
});
