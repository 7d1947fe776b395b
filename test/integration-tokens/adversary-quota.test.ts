/**
 * Issue 13, finding #3: the daily issuance quota was keyed on a fingerprint of the whole presented
 * chain, so the same leaf presented with the root appended, or with a self-made CA appended, started
 * a fresh quota. It is keyed on what identifies the credential holder: the leaf's subject and its
 * TNAuthList (src/tokens/quota.ts `quotaHolder`). Real `POST /tokens` in workerd, TOKEN_DAILY_QUOTA
 * from the integration-tokens bindings.
 */
import "reflect-metadata";
import { env, SELF } from "cloudflare:test";
import {
  BasicConstraintsExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  PemConverter,
  X509CertificateGenerator,
} from "@peculiar/x509";
import { describe, expect, it } from "vitest";
import type { TokenLedger } from "../../src/durable-objects/token-ledger.js";
import { encodeBase64url } from "../../src/stir/base64url.js";
import { QUOTA_TAIL_MS } from "../../src/tokens/quota.js";
import { bearerFor, type WorkerCredential } from "../helpers/pki.js";
import { BASE, pki } from "./helpers.js";

const QUOTA = Number(env.TOKEN_DAILY_QUOTA);

const messages = (n: number) =>
  Array.from({ length: n }, () => {
    const m = crypto.getRandomValues(new Uint8Array(256));
    m[0] = 0x01; // below any 2048-bit modulus with its top bit set
    return encodeBase64url(m);
  });

async function issue(credential: WorkerCredential, n: number) {
  const res = await SELF.fetch(`${BASE}/tokens`, {
    method: "POST",
    headers: {
      "Content-Type": "application/json",
      Authorization: await bearerFor(credential, "tokens:issue"),
    },
    body: JSON.stringify({ keyId: "test-current", blindedMessages: messages(n) }),
  });
  return { status: res.status, body: await res.json<Record<string, unknown>>() };
}

/** Issues `total` tokens in batches of at most 32; returns the statuses. */
async function issueAll(credential: WorkerCredential, total: number): Promise<number[]> {
  const statuses: number[] = [];
  for (let left = total; left > 0; left -= 32)
    statuses.push((await issue(credential, Math.min(32, left))).status);
  return statuses;
}

/** A self-made CA (self-signed, cA true): anyone can append one to a chain. */
async function selfMadeCa(): Promise<Uint8Array> {
  const alg = { name: "ECDSA", namedCurve: "P-256" } as const;
  const keys = (await crypto.subtle.generateKey(alg, true, ["sign", "verify"])) as CryptoKeyPair;
  const cert = await X509CertificateGenerator.createSelfSigned({
    serialNumber: "01",
    name: "CN=Self-made CA, O=TEST ONLY",
    keys,
    notBefore: new Date(Date.now() - 86_400_000),
    notAfter: new Date(Date.now() + 86_400_000),
    signingAlgorithm: { name: "ECDSA", hash: "SHA-256" },
    extensions: [
      new BasicConstraintsExtension(true, undefined, true),
      new KeyUsagesExtension(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign, true),
    ],
  });
  return new Uint8Array(cert.rawData);
}

describe("adversary #3: daily issuance quota bypass", () => {
  it("the same leaf with the root appended, or a self-made CA appended, shares one quota", async () => {
    const leaf = await pki.issue({ subject: "Chain Quota SP" });
    const root = new Uint8Array(PemConverter.decode(pki.rootPem)[0] ?? new ArrayBuffer(0));
    const withRoot: WorkerCredential = { ...leaf, der: [...leaf.der, root] };
    const withOwnCa: WorkerCredential = { ...leaf, der: [...leaf.der, await selfMadeCa()] };
    // Each longer chain is accepted as a credential (it validates), so the test is about the quota.
    expect((await issue(withRoot, 1)).status).toBe(200);
    expect((await issue(withOwnCa, 1)).status).toBe(200);
    // The plain chain takes the rest of the quota ...
    expect((await issueAll(leaf, QUOTA - 2)).every((s) => s === 200)).toBe(true);
    // ... and then every presentation of the same leaf is over it.
    for (const credential of [leaf, withRoot, withOwnCa]) {
      const over = await issue(credential, 1);
      expect(over.status, `chain of ${credential.der.length} certificates`).toBe(429);
      expect(over.body.code).toBe("ISSUANCE_QUOTA");
    }
  });

  it("a renewed leaf (new key, same subject and TNAuthList) shares the quota; another subject does not", async () => {
    const first = await pki.issue({ subject: "Renewed Quota SP" });
    expect((await issueAll(first, QUOTA)).every((s) => s === 200)).toBe(true);
    const renewed = await pki.issue({ subject: "Renewed Quota SP" });
    expect((await issue(renewed, 1)).status).toBe(429);
    // Another TNAuthList under the same subject is another credential (the CA scoped it apart).
    const otherScope = await pki.issue({
      subject: "Renewed Quota SP",
      tnAuthList: [{ type: "one", tn: "12025550199" }],
    });
    expect((await issue(otherScope, 1)).status).toBe(200);
    const other = await pki.issue({ subject: "Another Quota SP" });
    expect((await issue(other, 1)).status).toBe(200);
  });
});

// Issue 13 finding #2, hoarding: tokens stay spendable until their issuer key's notAfter, so a quota
// that resets every UTC day could be saved up for days and spent at once. Each token counts from
// issuance until its key's notAfter + 1 day + TTL (src/tokens/quota.ts). These tests call the quota
// object directly with a small limit and explicit clocks (days cannot pass in a test).
describe("adversary #2: saving up the issuance quota", () => {
  const DAY = 86_400_000;
  const TTL = Number(env.PASSPORT_TTL_SECONDS ?? "60") * 1000;
  const T0 = Date.UTC(2030, 0, 1, 12);
  let serial = 0;
  const quotaObject = () => {
    const ns = env.TOKEN_LEDGER as DurableObjectNamespace<TokenLedger>;
    return ns.get(ns.idFromName(`quota:hoard-test-${serial++}`));
  };
  const countsUntil = (notAfter: number) => notAfter + QUOTA_TAIL_MS + TTL;

  it("a long-lived key's tokens keep counting across UTC days until a day after its notAfter", async () => {
    const q = quotaObject();
    const notAfter = T0 + 30 * DAY;
    expect((await q.chargeQuota("a", countsUntil(notAfter), ["a"], 10, 10, T0)).ok).toBe(true);
    for (const later of [T0 + DAY, T0 + 2 * DAY, notAfter - 1, notAfter + DAY]) {
      const res = await q.chargeQuota("a", countsUntil(notAfter), ["a"], 1, 10, later);
      expect(res.ok, `at T0 + ${(later - T0) / DAY} days`).toBe(false);
    }
    const refused = await q.chargeQuota("a", countsUntil(notAfter), ["a"], 1, 10, T0 + DAY);
    expect(refused).toEqual({
      ok: false,
      retryAfterSeconds: Math.ceil((countsUntil(notAfter) - T0 - DAY) / 1000),
    });
    expect(
      (await q.chargeQuota("b", countsUntil(notAfter + 30 * DAY), ["a", "b"], 10, 10, countsUntil(notAfter)))
        .ok,
    ).toBe(true);
  });

  it("a rotated key does not refill the quota while the old key's tokens are spendable; a revoked key's do not count", async () => {
    const q = quotaObject();
    expect((await q.chargeQuota("old", countsUntil(T0 + DAY), ["old", "new"], 10, 10, T0)).ok).toBe(true);
    // "new" became current before "old" ended: the old tokens still count.
    expect(
      (await q.chargeQuota("new", countsUntil(T0 + 2 * DAY), ["old", "new"], 1, 10, T0 + DAY - 1)).ok,
    ).toBe(false);
    // Once "old" is removed from TOKEN_ISSUER_KEYS, its tokens buy nothing and stop counting.
    expect((await q.chargeQuota("new", countsUntil(T0 + 2 * DAY), ["new"], 10, 10, T0 + DAY - 1)).ok).toBe(
      true,
    );
  });

  it("property: whatever the schedule, the tokens spendable within any day + TTL never exceed the quota", async () => {
    const q = quotaObject();
    const LIMIT = 10;
    // Keys rotate every 20 h and live 30 h; the greedy holder asks for 3 tokens every 2 hours for 10 days.
    const keyAt = (t: number) => {
      const i = Math.floor((t - T0) / (20 * 3_600_000));
      return { id: `k${i}`, notAfter: T0 + i * 20 * 3_600_000 + 30 * 3_600_000 };
    };
    const issued: { at: number; notAfter: number }[] = [];
    for (let t = T0; t < T0 + 10 * DAY; t += 2 * 3_600_000) {
      const key = keyAt(t);
      const live = Array.from({ length: 20 }, (_, i) => `k${i}`);
      const res = await q.chargeQuota(key.id, countsUntil(key.notAfter), live, 3, LIMIT, t);
      if (res.ok) for (let i = 0; i < 3; i++) issued.push({ at: t, notAfter: key.notAfter });
    }
    expect(issued.length).toBeGreaterThan(LIMIT); // the holder keeps getting tokens
    // For every window [w, w + day + TTL): tokens issued before its end whose key is valid at its start.
    for (let w = T0 - DAY; w < T0 + 11 * DAY; w += 600_000) {
      const spendable = issued.filter((x) => x.at < w + DAY + TTL && x.notAfter > w).length;
      expect(spendable, `window from T0 + ${(w - T0) / 3_600_000} h`).toBeLessThanOrEqual(LIMIT);
    }
  });
});
