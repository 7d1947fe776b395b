/**
 * The bridge from the ATIS routes to RFC 8816 (src/federation/bridge.ts) inside workerd, with the real
 * key directory (KV) and the index blocks' BlockQueue objects, where a number's blobs are: every
 * PASSporT sealed once to every distinct live key registered for the number (however many blocks it is
 * registered under), each blob opening with its key for that number only; nothing for a number
 * without keys; a PASSporT too long for an envelope skipped; and a failing key directory (a test
 * double of KV that errors: the point is a misbehaving platform) never failing the publish. The
 * end-to-end path through the ATIS route and `stir-oob verify` is test/e2e/atis-bridge.test.ts.
 */
import { env } from "cloudflare:test";
import { afterEach, describe, expect, it, vi } from "vitest";
import { bridgeToRfc8816 } from "../../src/federation/bridge.js";
import {
  decodeEnvelope,
  generateRecipientKeyPair,
  MAX_PASSPORT_LENGTH,
  openPassport,
  type RecipientKeyPair,
} from "../../src/stir/envelope.js";
import { type CanonicalTn, canonicalTn } from "../../src/stir/tn.js";
import { signedKeyBody } from "../helpers/key-records.js";
import { bearerFor, loadTestPki, type WorkerCredential } from "../helpers/pki.js";
import { BASE, fetchApp } from "../helpers/worker.js";

const pki = loadTestPki(env.TEST_PKI);
/** Shaped like full-form JWSs: the bridge seals what the route verified, it does not look inside. */
const P1 = "eyJhbGciOiJFUzI1NiJ9.eyJwIjoxfQ.c2lnMQ";
const P2 = "eyJhbGciOiJFUzI1NiJ9.eyJwIjoyfQ.c2lnMg";

afterEach(() => {
  vi.restoreAllMocks();
});

/** Registers `key` for `block` (a number or `120255501xx`) as signed by `cred` (PUT /keys). */
async function register(cred: WorkerCredential, block: string, key: RecipientKeyPair): Promise<void> {
  const res = await fetchApp(`${BASE}/keys/${block}`, {
    method: "PUT",
    headers: { "Content-Type": "application/json", Authorization: await bearerFor(cred, "keys:put") },
    body: JSON.stringify(await signedKeyBody(cred, key.publicKey, { blocks: [block] })),
  });
  expect(res.status, await res.clone().text()).toBe(201);
}

/** The plaintexts of the number's listed blobs that open with `key` (decoys and others' do not). */
async function opened(tn: CanonicalTn, key: RecipientKeyPair): Promise<string[]> {
  const res = await fetchApp(`${BASE}/cps/${tn}/ppts`);
  const { passports } = (await res.json()) as { passports: { blob: string }[] };
  const out: string[] = [];
  for (const p of passports) {
    try {
      out.push(await openPassport(key.keyPair, tn, decodeEnvelope(p.blob)));
    } catch {
      // a decoy, or a blob for another key
    }
  }
  return out.sort();
}

describe("bridgeToRfc8816", () => {
  it("seals each PASSporT once to each distinct registered key; each blob opens with its key", async () => {
    const tn = canonicalTn("12025550150");
    const [k1, k2] = [await generateRecipientKeyPair(), await generateRecipientKeyPair()];
    const valid = await pki.credential("valid");
    const other = await pki.issue({ tnAuthList: [{ type: "range", start: "12025550100", count: 100 }] });
    // k1 for the number and again for its block (one key, two entries); k2 by another holder.
    await register(valid, tn, k1);
    await register(valid, "120255501xx", k1);
    await register(other, tn, k2);

    expect(await bridgeToRfc8816(env, tn, [P1, P2])).toBe(4);
    expect(await opened(tn, k1)).toEqual([P1, P2]);
    expect(await opened(tn, k2)).toEqual([P1, P2]);
    // Bound to the number (RFC 8816 §7.4): the neighbour's queue got nothing that opens.
    expect(await opened(canonicalTn("12025550151"), k1)).toEqual([]);
  });

  it("stores nothing for a number without registered keys", async () => {
    const tn = canonicalTn("14155550160");
    const ids = async () => {
      const { passports } = (await (await fetchApp(`${BASE}/cps/${tn}/ppts`)).json()) as {
        passports: { id: string }[];
      };
      return passports.map((p) => p.id).sort();
    };
    const before = await ids();
    expect(await bridgeToRfc8816(env, tn, [P1])).toBe(0);
    // Only decoys, the same ones (they live a whole TTL; answers list them in a shuffled order).
    expect(await ids()).toEqual(before);
  });

  it("skips a PASSporT too long for an envelope and bridges the rest", async () => {
    // Outside the block the first test registered a key for.
    const tn = canonicalTn("14155550170");
    const key = await generateRecipientKeyPair();
    await register(await pki.issue({ tnAuthList: [{ type: "one", tn }] }), tn, key);
    const long = `eyJhbGciOiJFUzI1NiJ9.${"A".repeat(MAX_PASSPORT_LENGTH)}.c2ln`;
    const logs: string[] = [];
    vi.spyOn(console, "log").mockImplementation((line: unknown) => {
      logs.push(String(line));
    });
    expect(await bridgeToRfc8816(env, tn, [long, P1])).toBe(1);
    expect(await opened(tn, key)).toEqual([P1]);
    expect(logs.map((l) => JSON.parse(l))).toContainEqual({
      event: "atis_bridge_skipped",
      reason: "too_long",
      passports: 1,
    });
  });

  it("never throws: a failing key directory is logged (counts and codes only) and bridges nothing", async () => {
    const tn = canonicalTn("12025550180");
    const logs: string[] = [];
    vi.spyOn(console, "log").mockImplementation((line: unknown) => {
      logs.push(String(line));
    });
    const failing = {
      ...env,
      CPS_KV: {
        list: () => Promise.reject(new Error("KV unavailable")),
        get: () => Promise.reject(new Error("KV unavailable")),
      },
    } as unknown as Env;
    expect(await bridgeToRfc8816(failing, tn, [P1])).toBe(0);
    expect(logs.map((l) => JSON.parse(l))).toContainEqual({
      event: "atis_bridge_failed",
      code: "internal",
      stored: 0,
    });
    for (const line of logs) expect(line).not.toContain(tn);
  });
});
