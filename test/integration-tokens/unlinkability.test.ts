/**
 * Unlinkability (docs/design.md invariant 3, RFC 8816 §7.5): what the issuer is shown and signs is the
 * blinded message only, never K_temp, the token message or the final signature; and what a store
 * leaves where the number's blobs are (its index block's BlockQueue; its own PassportQueue, which only
 * serves subscribers, gets nothing) holds no token data (the ledger holds hashes only).
 */
import { env, runInDurableObject, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { ledgerShard } from "../../src/durable-objects/token-ledger.js";
import { decodeBase64url, encodeBase64url } from "../../src/stir/base64url.js";
import { decodeEnvelope } from "../../src/stir/envelope.js";
import {
  blindTokenRequest,
  finalizeToken,
  importIssuerPublicKey,
  storeReceipt,
  tokenIdOf,
  tokenMessage,
} from "../../src/stir/storage-token.js";
import { canonicalTn } from "../../src/stir/tn.js";
import { blockQueueOfTn } from "../../src/storage/objects.js";
import { bearerFor } from "../helpers/pki.js";
import { BASE, pki, sealedFor, store, tokenHeaders } from "./helpers.js";

function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}
const text = new TextEncoder();

describe("the issuer never sees K_temp or the final signature", () => {
  it("POST /tokens carries only {keyId, blindedMessages}; nothing in it or its answer reveals the token", async () => {
    const keys = await (await SELF.fetch(`${BASE}/tokens/keys`)).json<{
      keys: { id: string; publicKey: string }[];
    }>();
    const current = keys.keys[0];
    if (!current) throw new Error("no key");
    const publicKey = await importIssuerPublicKey(decodeBase64url(current.publicKey));
    const pending = await blindTokenRequest(publicKey, current.id);
    const requestBody = JSON.stringify({
      keyId: current.id,
      blindedMessages: [encodeBase64url(pending.blindedMessage)],
    });
    const res = await SELF.fetch(`${BASE}/tokens`, {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        Authorization: await bearerFor(await pki.credential("valid"), "tokens:issue"),
      },
      body: requestBody,
    });
    expect(res.status).toBe(200);
    const responseBody = await res.text();
    const { blindSignatures } = JSON.parse(responseBody) as { blindSignatures: string[] };
    const token = await finalizeToken(publicKey, pending, decodeBase64url(blindSignatures[0] ?? ""));

    expect(Object.keys(JSON.parse(requestBody)).sort()).toEqual(["blindedMessages", "keyId"]);
    // Everything the issuer saw, as bytes and as text, against every piece of the final token.
    const seen = [
      text.encode(requestBody),
      text.encode(responseBody),
      pending.blindedMessage,
      decodeBase64url(blindSignatures[0] ?? ""),
    ];
    const secrets = [
      token.kTempSpki,
      token.nonce,
      token.signature,
      tokenMessage(token.keyId, token.kTempSpki),
    ];
    for (const s of secrets) {
      for (const view of seen) {
        expect(contains(view, s.subarray(0, 16))).toBe(false);
        expect(contains(view, text.encode(encodeBase64url(s).slice(0, 16)))).toBe(false);
      }
    }
    // The blinded message is not the prepared message, and the blind signature is not the signature.
    expect(encodeBase64url(pending.blindedMessage)).not.toBe(encodeBase64url(pending.prepared));
    expect(blindSignatures[0]).not.toBe(encodeBase64url(token.signature));
  });

  it("blinding the same K_temp message twice gives unrelated blinded messages", async () => {
    const keys = await (await SELF.fetch(`${BASE}/tokens/keys`)).json<{
      keys: { id: string; publicKey: string }[];
    }>();
    const current = keys.keys[0];
    if (!current) throw new Error("no key");
    const publicKey = await importIssuerPublicKey(decodeBase64url(current.publicKey));
    const a = await blindTokenRequest(publicKey, current.id);
    const b = await blindTokenRequest(publicKey, current.id);
    expect(encodeBase64url(a.blindedMessage)).not.toBe(encodeBase64url(b.blindedMessage));
  });
});

describe("a store with a token leaves no token data with the blob", () => {
  it("the block's row is (id, tn, blob, expires_at, retry key) with the posted bytes; the ledger holds hashes only", async () => {
    const { directToken, issuerPrivateKey } = await import("./helpers.js");
    const tn = "12025559876";
    const { token, privateKey } = await directToken("test-current", await issuerPrivateKey("test-current"));
    const { text: body } = await sealedFor(tn);
    const headers = await tokenHeaders(token, privateKey, tn, body);
    const res = await store(tn, body, headers);
    expect(res.status).toBe(201);

    const needles = [
      token.kTempSpki,
      token.signature,
      token.nonce,
      decodeBase64url(headers["CPS-Token-Signature"] ?? ""),
    ].map((b) => b.subarray(0, 16));
    const textNeedles = [headers["CPS-Token"] ?? "", headers["CPS-Token-Signature"] ?? ""].map((h) =>
      h.slice(0, 24),
    );

    /** Every row of every table of one object, with its table's name. */
    const dumpRows = (stub: DurableObjectStub) =>
      runInDurableObject(stub, (_i, state) => {
        const sql = state.storage.sql;
        const tables = sql
          .exec<{ name: string }>(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_%' ESCAPE '\\'",
          )
          .toArray()
          .map((t) => t.name);
        return tables.flatMap((t) =>
          sql
            .exec(`SELECT * FROM "${t}"`)
            .toArray()
            .map((r): Record<string, unknown> => ({ table: t, ...r })),
        );
      });
    // The number's own PassportQueue (subscribers only) holds nothing of the store.
    expect(await dumpRows(env.PASSPORT_QUEUE.get(env.PASSPORT_QUEUE.idFromName(tn)))).toEqual([]);
    // Every row of the block (any number's, and its other tables) is searched for token data below.
    const rows = await dumpRows(blockQueueOfTn(env, tn));
    const ppts = rows.filter((r) => r.table === "blobs" && r.tn === tn);
    expect(ppts).toHaveLength(1);
    expect(Object.keys(ppts[0] ?? {}).sort()).toEqual(["blob", "digest", "expires_at", "id", "table", "tn"]);
    expect(ppts[0]?.id).toBe(res.body.id);
    expect(new Uint8Array(ppts[0]?.blob as ArrayBuffer)).toEqual(decodeEnvelope(body));
    // The queue's retry key (the `digest` column) is the second half of the store receipt, a hash of
    // (token, number, blob, K_temp signature): the signature is dropped, so nothing stored can
    // recompute it, and it shares no value with the ledger's half (checked below).
    const tokenId = await tokenIdOf(token.kTempSpki);
    const signature = decodeBase64url(headers["CPS-Token-Signature"] ?? "");
    const receipt = await storeReceipt(tokenId, canonicalTn(tn), decodeEnvelope(body), signature);
    expect(new Uint8Array(ppts[0]?.digest as ArrayBuffer)).toEqual(receipt.queue);
    const blobHash = new Uint8Array(await crypto.subtle.digest("SHA-256", decodeEnvelope(body)));
    for (const row of rows) {
      for (const value of Object.values(row)) {
        const bytes = value instanceof ArrayBuffer ? new Uint8Array(value) : text.encode(String(value));
        for (const n of needles) expect(contains(bytes, n)).toBe(false);
        for (const t of textNeedles) expect(String(value)).not.toContain(t);
      }
    }

    // The ledger: the token appears only as SHA-256 of K_temp; no number, blob id or signature.
    const ledger = env.TOKEN_LEDGER.get(env.TOKEN_LEDGER.idFromName(`token-shard-${ledgerShard(tokenId)}`));
    const ledgerRows = await runInDurableObject(ledger, (_i, state) => ({
      tokens: state.storage.sql.exec("SELECT * FROM tokens").toArray(),
      spends: state.storage.sql.exec("SELECT * FROM spends").toArray(),
    }));
    // The retry receipt is half of a hash over (token, number, blob, K_temp signature); the
    // signature is dropped, so stored state cannot recompute it from a blob: it links no blob to the
    // token. The queue's retry key is the other half, so the two rows share no value.
    expect(ledgerRows.spends.map((r) => r.receipt)).toContain(encodeBase64url(receipt.ledger));
    expect(JSON.stringify(ledgerRows)).not.toContain(encodeBase64url(receipt.queue));
    for (const row of rows) {
      for (const value of Object.values(row)) {
        const bytes = value instanceof ArrayBuffer ? new Uint8Array(value) : text.encode(String(value));
        expect(contains(bytes, receipt.ledger)).toBe(false);
        expect(String(value)).not.toContain(encodeBase64url(receipt.ledger));
      }
    }
    expect(JSON.stringify(ledgerRows)).not.toContain(encodeBase64url(blobHash.subarray(0, 16)));
    expect(ledgerRows.tokens.map((r) => r.token)).toContain(encodeBase64url(tokenId));
    const dump = JSON.stringify(ledgerRows);
    expect(dump).not.toContain(tn);
    expect(dump).not.toContain(String(res.body.id));
    for (const t of textNeedles) expect(dump).not.toContain(t);
  });
});
