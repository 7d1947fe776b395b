/**
 * The CPS store/retrieve API inside workerd with real Durable Objects (RFC 8816 §6, §7.5, §9).
 */
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import {
  decodeEnvelope,
  ENVELOPE_LENGTH,
  ENVELOPE_TEXT_LENGTH,
  openPassport,
} from "../../src/stir/envelope.js";
import { canonicalTn } from "../../src/stir/tn.js";
import { createPassportQueueTables } from "../../src/storage/layout.js";
import { type ListBody, RFC8816_EXAMPLE_PASSPORT, sealedFor, storeRequest } from "../helpers/cps.js";
import { BASE, fetchApp, list, queueFor } from "../helpers/worker.js";

describe("RFC 8816 §9 store -> list -> fetch -> open", () => {
  it("gives the PASSporT back to the holder of the callee key", async () => {
    const { callee, text } = await sealedFor("22225552222");
    const stored = await fetchApp(storeRequest(BASE, "2.222.555.2222", text));
    expect(stored.status).toBe(201);
    const location = stored.headers.get("Location");
    const { id, expires } = await stored.json<{ id: string; expires: string }>();
    expect(location).toBe(`/cps/22225552222/ppts/${id}`);
    expect(Date.parse(expires) - Date.now()).toBeGreaterThan(50_000);

    const { passports } = await list("2.222.555.2222");
    expect(passports.map((p) => p.id)).toContain(id);

    const one = await fetchApp(`${BASE}${location}/`);
    expect(one.status).toBe(200);
    expect(one.headers.get("Content-Type")).toBe("application/passport");
    expect(one.headers.get("Link")).toBe('</cps/22225552222/ppts>; rel="collection"');
    const jws = await openPassport(
      callee.keyPair,
      canonicalTn("22225552222"),
      decodeEnvelope(await one.text()),
    );
    expect(jws).toBe(RFC8816_EXAMPLE_PASSPORT);
  });

  it("accepts the body folded over lines as RFC 8816 §9 prints it", async () => {
    const { text } = await sealedFor("22225552222");
    const folded = text.match(/.{1,64}/g)!.join("\r\n");
    const res = await fetchApp(storeRequest(BASE, "22225552222", `${folded}\n`));
    expect(res.status).toBe(201);
  });

  it("gives 200 concurrent stores to one number 200 distinct ids, all listed", async () => {
    const tn = "15550000200";
    const { another } = await sealedFor(tn);
    const texts = await Promise.all(Array.from({ length: 200 }, another));
    const results = await Promise.all(texts.map((text) => fetchApp(storeRequest(BASE, tn, text))));
    expect(results.map((r) => r.status)).toEqual(Array(200).fill(201));
    const ids = await Promise.all(results.map(async (r) => (await r.json<{ id: string }>()).id));
    expect(new Set(ids).size).toBe(200);
    const listed = new Set((await list(tn)).passports.map((p) => p.id));
    for (const id of ids) expect(listed.has(id)).toBe(true);
    expect(listed.size).toBeGreaterThanOrEqual(201);
  });
});

describe("retried stores (docs/tokens.md): only the same request again is the same store", () => {
  it("identical bytes without a retry key are a new store each time (a copy is not a retry)", async () => {
    const tn = "15550000300";
    const { text } = await sealedFor(tn);
    const answers = [];
    for (let i = 0; i < 3; i++) answers.push(await fetchApp(storeRequest(BASE, tn, text)));
    const bodies = await Promise.all(answers.map((r) => r.json<{ id: string; expires: string }>()));
    expect(answers.map((r) => r.status)).toEqual([201, 201, 201]);
    expect(new Set(bodies.map((b) => b.id)).size).toBe(3);
    expect(await queueFor(tn).liveCount()).toBe(3);
  });

  it("a retry key matches while its row lives, and stores anew once the row expired", async () => {
    const tn = "15550000302";
    const { text } = await sealedFor(tn);
    const key = "AAAAAAAAAAAAAAAAAAAAAA";
    const first = await queueFor(tn).store(decodeEnvelope(text), key);
    const again = await queueFor(tn).store(decodeEnvelope(text), key);
    expect(first.ok && again.ok && again.repeat && again.id === first.id).toBe(true);
    await runInDurableObject(queueFor(tn), (_obj, state) => {
      state.storage.sql.exec("UPDATE ppts SET expires_at = ?", Date.now() - 1);
    });
    const later = await queueFor(tn).store(decodeEnvelope(text), key);
    expect(later.ok && !later.repeat && later.id !== (first.ok ? first.id : "")).toBe(true);
    expect(await queueFor(tn).liveCount()).toBe(1);
  });

  it("an object made by the previous version (primary key, two indexes) keeps working: store, retry, list, fetch, expire", async () => {
    const tn = "15550000302";
    const { text, another } = await sealedFor(tn);
    // The previous version's exact table (src/storage/layout.ts before issue 20), with one live row.
    await runInDurableObject(queueFor(tn), (_obj, state) => {
      const sql = state.storage.sql;
      sql.exec("DROP TABLE IF EXISTS ppts");
      sql.exec(
        "CREATE TABLE ppts (id TEXT PRIMARY KEY, blob BLOB NOT NULL, expires_at INTEGER NOT NULL, digest BLOB)",
      );
      sql.exec("CREATE INDEX ppts_expires_at ON ppts (expires_at)");
      sql.exec("CREATE INDEX ppts_digest ON ppts (digest)");
      sql.exec(
        "INSERT INTO ppts (id, blob, expires_at, digest) VALUES (?, ?, ?, NULL)",
        "0123456789abcdef0123456789abcdef",
        decodeEnvelope(text),
        Date.now() + 60_000,
      );
      createPassportQueueTables(sql);
    });
    const key = "AQEBAQEBAQEBAQEBAQEBAQ";
    const blob = decodeEnvelope(await another());
    const first = await queueFor(tn).store(blob, key);
    const again = await queueFor(tn).store(blob, key);
    expect(first.ok && again.ok && again.repeat && again.id === first.id).toBe(true);
    const ids = (await list(tn)).passports.map((p) => p.id);
    expect(ids).toContain("0123456789abcdef0123456789abcdef");
    expect(ids).toContain(first.ok ? first.id : "missing");
    expect((await fetchApp(`${BASE}/cps/${tn}/ppts/0123456789abcdef0123456789abcdef`)).status).toBe(200);
    await runInDurableObject(queueFor(tn), (_obj, state) => {
      state.storage.sql.exec("UPDATE ppts SET expires_at = ?", Date.now() - 1);
    });
    await runDurableObjectAlarm(queueFor(tn));
    expect(await queueFor(tn).liveCount()).toBe(0);
    const rows = await runInDurableObject(
      queueFor(tn),
      (_obj, state) => state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM ppts").one().n,
    );
    expect(rows).toBe(0);
  });

  it("adds the digest column to a queue table made before it existed, keeping its rows", async () => {
    const tn = "15550000301";
    const { text, another } = await sealedFor(tn);
    const first = await queueFor(tn).store(decodeEnvelope(text));
    // Rebuild the table in the old shape (id, blob, expires_at), then start the object again.
    await runInDurableObject(queueFor(tn), (_obj, state) => {
      const sql = state.storage.sql;
      // Whichever index names the digest column (older objects: ppts_digest; newer: ppts_has_digest).
      sql.exec("DROP INDEX IF EXISTS ppts_digest");
      sql.exec("DROP INDEX IF EXISTS ppts_has_digest");
      sql.exec("CREATE TABLE old AS SELECT id, blob, expires_at FROM ppts");
      sql.exec("DROP TABLE ppts");
      sql.exec("ALTER TABLE old RENAME TO ppts");
      createPassportQueueTables(sql);
      const columns = sql.exec<{ name: string }>("PRAGMA table_info(ppts)").toArray();
      expect(columns.map((c) => c.name)).toEqual(["id", "blob", "expires_at", "digest"]);
    });
    expect((await list(tn)).passports.map((p) => p.id)).toContain(first.ok ? first.id : "missing");
    const second = await queueFor(tn).store(decodeEnvelope(await another()));
    expect(second.ok && !second.repeat).toBe(true);
    expect(await queueFor(tn).liveCount()).toBe(2);
  });
});

describe("RFC 8816 §6.2 retrieval always answers with something", () => {
  it("returns at least one decoy for an empty number, each the envelope length", async () => {
    const { passports } = await list("15550001111");
    expect(passports.length).toBeGreaterThanOrEqual(1);
    for (const p of passports) {
      expect(p.blob).toHaveLength(ENVELOPE_TEXT_LENGTH);
      expect(decodeEnvelope(p.blob)).toHaveLength(ENVELOPE_LENGTH);
      expect(p.id).toMatch(/^[0-9a-f]{32}$/);
    }
  });

  it("answers a number with one real blob in the same shape as an empty number", async () => {
    const { text } = await sealedFor("15550002222");
    await fetchApp(storeRequest(BASE, "15550002222", text));
    const withCall = await list("15550002222");
    const empty = await list("15550003333");
    const shape = (b: ListBody) =>
      b.passports.map((p) => [Object.keys(p).sort().join(), p.id.length, p.blob.length]);
    expect(new Set(shape(withCall).map(String))).toEqual(new Set(shape(empty).map(String)));
    expect(withCall.passports.length).toBeGreaterThanOrEqual(2);
  });

  it("places the real blob at a random position", async () => {
    const tn = "15550004444";
    const { text } = await sealedFor(tn);
    const { id } = await (await fetchApp(storeRequest(BASE, tn, text))).json<{ id: string }>();
    const positions = new Set<number>();
    for (let i = 0; i < 40; i++) positions.add((await list(tn)).passports.findIndex((p) => p.id === id));
    expect(positions.size).toBeGreaterThan(1);
  });
});

describe("RFC 8816 §7.5 ageing out (TTL 60 s)", () => {
  it("the alarm deletes expired rows and re-arms for the next expiry", async () => {
    const tn = "15550005555";
    const stub = queueFor(tn);
    const { text, another } = await sealedFor(tn);
    const first = await stub.store(decodeEnvelope(text));
    expect(first.ok).toBe(true);
    // Backdate the first row, add a second fresh one: the alarm must drop only the first.
    await runInDurableObject(stub, async (_obj, state) => {
      state.storage.sql.exec("UPDATE ppts SET expires_at = ?", Date.now() - 1);
      expect(await state.storage.getAlarm()).not.toBeNull();
    });
    const second = await stub.store(decodeEnvelope(await another()));
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    await runInDurableObject(stub, async (_obj, state) => {
      const ids = state.storage.sql
        .exec<{ id: string }>("SELECT id FROM ppts")
        .toArray()
        .map((r) => r.id);
      expect(ids).toEqual([second.ok ? second.id : "missing"]);
      expect(await state.storage.getAlarm()).toBe(second.ok ? second.expiresAt : -1);
    });
  });

  it("reads filter expired rows even before the alarm runs", async () => {
    const tn = "15550006666";
    const { text } = await sealedFor(tn);
    const res = await fetchApp(storeRequest(BASE, tn, text));
    const { id } = await res.json<{ id: string }>();
    await runInDurableObject(queueFor(tn), (_obj, state) => {
      state.storage.sql.exec("UPDATE ppts SET expires_at = ?", Date.now() - 1);
    });
    expect((await list(tn)).passports.map((p) => p.id)).not.toContain(id);
    expect((await fetchApp(`${BASE}/cps/${tn}/ppts/${id}`)).status).toBe(404);
    expect(await queueFor(tn).liveCount()).toBe(0);
  });
});

describe("cap on live blobs per number", () => {
  it("answers 429 QUEUE_FULL with Retry-After once MAX_LIVE_PER_NUMBER are live", async () => {
    const tn = "15550007777";
    const stub = queueFor(tn);
    const { text } = await sealedFor(tn);
    const blob = decodeEnvelope(text);
    // Fill through the DO directly (1,000 HTTP round trips would only slow the test down).
    await runInDurableObject(stub, (_obj, state) => {
      const expires = Date.now() + 30_000;
      for (let i = 0; i < 1000; i++) {
        state.storage.sql.exec(
          "INSERT INTO ppts (id, blob, expires_at) VALUES (?, ?, ?)",
          `fill${i}`,
          blob,
          expires,
        );
      }
    });
    const res = await fetchApp(storeRequest(BASE, tn, text));
    expect(res.status).toBe(429);
    expect(res.headers.get("Content-Type")).toBe("application/problem+json");
    expect((await res.json<{ code: string }>()).code).toBe("QUEUE_FULL");
    const retry = Number(res.headers.get("Retry-After"));
    expect(retry).toBeGreaterThanOrEqual(1);
    expect(retry).toBeLessThanOrEqual(30);
    expect(await stub.liveCount()).toBe(1000);
  });
});
