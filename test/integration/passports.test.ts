/**
 * The CPS store/retrieve API inside workerd with real Durable Objects (RFC 8816 §6, §7.5, §9).
 */
import {
  env,
  evictDurableObject,
  listDurableObjectIds,
  runDurableObjectAlarm,
  runInDurableObject,
} from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { EXPIRY_GRAIN_MS } from "../../src/durable-objects/block-queue.js";
import {
  decodeEnvelope,
  ENVELOPE_LENGTH,
  ENVELOPE_TEXT_LENGTH,
  openPassport,
} from "../../src/stir/envelope.js";
import { canonicalTn } from "../../src/stir/tn.js";
import { createPassportQueueTables } from "../../src/storage/layout.js";
import { passportQueueName } from "../../src/storage/objects.js";
import { type ListBody, RFC8816_EXAMPLE_PASSPORT, sealedFor, storeRequest } from "../helpers/cps.js";
import { BASE, blockFor, fetchApp, list, liveCountOf, queueFor } from "../helpers/worker.js";

/** Backdates every row of `tn` in its index block (the block holds its neighbours' rows too). */
async function expireAllOf(tn: string): Promise<void> {
  await runInDurableObject(blockFor(tn), (_obj, state) => {
    state.storage.sql.exec("UPDATE blobs SET expires_at = ? WHERE tn = ?", Date.now() - 1, canonicalTn(tn));
  });
}

/** The ids of `tn`'s rows in its index block, live or not. */
function rowIdsOf(tn: string): Promise<string[]> {
  return runInDurableObject(blockFor(tn), (_obj, state) =>
    state.storage.sql
      .exec<{ id: string }>("SELECT id FROM blobs WHERE tn = ? ORDER BY id", canonicalTn(tn))
      .toArray()
      .map((r) => r.id),
  );
}

/** The first expiry-alarm instant at or after `at` (block-queue.ts sets alarms on this grid). */
const onGrid = (at: number) => Math.ceil(at / EXPIRY_GRAIN_MS) * EXPIRY_GRAIN_MS;

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
    expect(await liveCountOf(tn)).toBe(3);
  });

  it("a retry key matches while its row lives, and stores anew once the row expired", async () => {
    const tn = "15550000302";
    const { text } = await sealedFor(tn);
    const key = "AAAAAAAAAAAAAAAAAAAAAA";
    const number = canonicalTn(tn);
    const first = await blockFor(tn).storeNumber(number, decodeEnvelope(text), key);
    const again = await blockFor(tn).storeNumber(number, decodeEnvelope(text), key);
    expect(first.ok && again.ok && again.repeat && again.id === first.id).toBe(true);
    // The same key on another number of the block is another store (keys are matched per number).
    const neighbour = await blockFor(tn).storeNumber(canonicalTn("15550000303"), decodeEnvelope(text), key);
    expect(neighbour.ok && !neighbour.repeat && neighbour.id !== (first.ok ? first.id : "")).toBe(true);
    await expireAllOf(tn);
    const later = await blockFor(tn).storeNumber(number, decodeEnvelope(text), key);
    expect(later.ok && !later.repeat && later.id !== (first.ok ? first.id : "")).toBe(true);
    expect(await liveCountOf(tn)).toBe(1);
  });

  it("a block made by the previous version (blobs without digest) keeps working: store, retry, list, fetch, expire", async () => {
    // A block no other test uses (1555096): its table is rebuilt by hand in the old shape.
    const tn = "15550960302";
    const number = canonicalTn(tn);
    const OLD_ID = "0123456789abcdef0123456789abcdef";
    const { text, another } = await sealedFor(tn);
    // The previous version's exact tables (src/storage/layout.ts before the digest column), with one live
    // row of the number (a copy its own queue filed) and one of a neighbour.
    await runInDurableObject(blockFor(tn), (_obj, state) => {
      const sql = state.storage.sql;
      sql.exec("DROP TABLE IF EXISTS blobs");
      sql.exec("DROP TABLE IF EXISTS watched");
      sql.exec(
        "CREATE TABLE blobs (id TEXT PRIMARY KEY, tn TEXT NOT NULL, blob BLOB NOT NULL, expires_at INTEGER NOT NULL)",
      );
      sql.exec("CREATE INDEX blobs_expires_at ON blobs (expires_at)");
      sql.exec("CREATE INDEX blobs_tn ON blobs (tn)");
      const insert = "INSERT INTO blobs (id, tn, blob, expires_at) VALUES (?, ?, ?, ?)";
      sql.exec(insert, OLD_ID, number, decodeEnvelope(text), Date.now() + 60_000);
      sql.exec(
        insert,
        "fedcba9876543210fedcba9876543210",
        "15550960303",
        decodeEnvelope(text),
        Date.now() + 60_000,
      );
      const columns = sql.exec<{ name: string }>("PRAGMA table_info(blobs)").toArray();
      expect(columns.map((c) => c.name)).toEqual(["id", "tn", "blob", "expires_at"]);
    });
    // Start the object again on that storage, as after a deploy.
    await evictDurableObject(blockFor(tn));
    const key = "AQEBAQEBAQEBAQEBAQEBAQ";
    const blob = decodeEnvelope(await another());
    const first = await blockFor(tn).storeNumber(number, blob, key);
    const again = await blockFor(tn).storeNumber(number, blob, key);
    expect(first.ok && again.ok && !first.repeat && again.repeat && again.id === first.id).toBe(true);
    const ids = (await list(tn)).passports.map((p) => p.id);
    expect(ids).toContain(OLD_ID);
    expect(ids).toContain(first.ok ? first.id : "missing");
    expect(ids).not.toContain("fedcba9876543210fedcba9876543210");
    expect((await fetchApp(`${BASE}/cps/${tn}/ppts/${OLD_ID}`)).status).toBe(200);
    expect(await liveCountOf(tn)).toBe(2);
    await runInDurableObject(blockFor(tn), (_obj, state) => {
      const columns = state.storage.sql.exec<{ name: string }>("PRAGMA table_info(blobs)").toArray();
      expect(columns.map((c) => c.name)).toEqual(["id", "tn", "blob", "expires_at", "digest"]);
    });
    await expireAllOf(tn);
    expect(await runDurableObjectAlarm(blockFor(tn))).toBe(true);
    expect(await liveCountOf(tn)).toBe(0);
    expect(await rowIdsOf(tn)).toEqual([]);
    // The neighbour's row, still live, was kept.
    expect(await rowIdsOf("15550960303")).toEqual(["fedcba9876543210fedcba9876543210"]);
  });

  it("adds the digest column to a hot number's shard table made before it existed, keeping its rows", async () => {
    const tn = "15550000301";
    // A hot number's shard (HOT_NUMBERS) still keeps blobs in a PassportQueue's `ppts`.
    const shard = env.PASSPORT_QUEUE.getByName(passportQueueName(canonicalTn(tn), 1));
    const { text, another } = await sealedFor(tn);
    const first = await shard.store(decodeEnvelope(text), undefined, canonicalTn(tn));
    // Rebuild the table in the old shape (id, blob, expires_at), then start the object again.
    await runInDurableObject(shard, (_obj, state) => {
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
    await evictDurableObject(shard);
    // The shard's own rows (the block's filed copy would hide a loss from a list through the app).
    expect((await shard.listAt()).rows.map((r) => r.id)).toContain(first.ok ? first.id : "missing");
    const second = await shard.store(decodeEnvelope(await another()), undefined, canonicalTn(tn));
    expect(second.ok && !second.repeat).toBe(true);
    expect(await shard.liveCount()).toBe(2);
  });

  it("a number's store writes nothing to a PassportQueue: no object for a number nobody subscribes to", async () => {
    // A block no other test uses (1555098).
    const tn = "15550980001";
    const { text, another } = await sealedFor(tn);
    const stored: string[] = [];
    for (const t of [text, await another()]) {
      const res = await fetchApp(storeRequest(BASE, tn, t));
      expect(res.status).toBe(201);
      stored.push((await res.json<{ id: string }>()).id);
    }
    const listed = (await list(tn)).passports.map((p) => p.id);
    for (const id of stored) {
      expect(listed).toContain(id);
      expect((await fetchApp(`${BASE}/cps/${tn}/ppts/${id}`)).status).toBe(200);
    }
    // The rows are the number's, in its index block.
    expect(await rowIdsOf(tn)).toEqual([...stored].sort());
    expect(await liveCountOf(tn)).toBe(2);
    // No PassportQueue object was made for the number (control: the block's object is listed).
    const named = async <T extends Rpc.DurableObjectBranded | undefined>(
      ns: DurableObjectNamespace<T>,
      name: string,
    ) => {
      const id = ns.idFromName(name);
      return (await listDurableObjectIds(ns)).some((x) => x.equals(id));
    };
    expect(await named(env.BLOCK_QUEUE, "block:1555098")).toBe(true);
    expect(await named(env.PASSPORT_QUEUE, canonicalTn(tn))).toBe(false);
    // And, opening it, it holds nothing: no row in `ppts`, nothing in `meta`.
    await runInDurableObject(queueFor(tn), (_obj, state) => {
      const sql = state.storage.sql;
      expect(sql.exec<{ n: number }>("SELECT count(*) AS n FROM ppts").one().n).toBe(0);
      expect(sql.exec<{ n: number }>("SELECT count(*) AS n FROM meta").one().n).toBe(0);
    });
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
    // A block no other test uses (1555097): its next expiry is this number's second row's.
    const tn = "15550975555";
    const number = canonicalTn(tn);
    const stub = blockFor(tn);
    const { text, another } = await sealedFor(tn);
    const first = await stub.storeNumber(number, decodeEnvelope(text));
    expect(first.ok).toBe(true);
    // Backdate the first row, add a second fresh one: the alarm must drop only the first.
    await runInDurableObject(stub, async (_obj, state) => {
      state.storage.sql.exec("UPDATE blobs SET expires_at = ? WHERE tn = ?", Date.now() - 1, number);
      // Set by the store, on the expiry grid.
      expect(await state.storage.getAlarm()).toBe(first.ok ? onGrid(first.expiresAt) : -1);
    });
    const second = await stub.storeNumber(number, decodeEnvelope(await another()));
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    await runInDurableObject(stub, async (_obj, state) => {
      const ids = state.storage.sql
        .exec<{ id: string }>("SELECT id FROM blobs")
        .toArray()
        .map((r) => r.id);
      expect(ids).toEqual([second.ok ? second.id : "missing"]);
      expect(await state.storage.getAlarm()).toBe(second.ok ? onGrid(second.expiresAt) : -1);
    });
  });

  it("reads filter expired rows even before the alarm runs", async () => {
    const tn = "15550006666";
    const { text } = await sealedFor(tn);
    const res = await fetchApp(storeRequest(BASE, tn, text));
    const { id } = await res.json<{ id: string }>();
    expect(await rowIdsOf(tn)).toEqual([id]);
    await expireAllOf(tn);
    expect((await list(tn)).passports.map((p) => p.id)).not.toContain(id);
    expect((await fetchApp(`${BASE}/cps/${tn}/ppts/${id}`)).status).toBe(404);
    expect(await liveCountOf(tn)).toBe(0);
  });
});

describe("cap on live blobs per number", () => {
  it("answers 429 QUEUE_FULL with Retry-After once MAX_LIVE_PER_NUMBER are live", async () => {
    const tn = "15550007777";
    const { text } = await sealedFor(tn);
    const blob = decodeEnvelope(text);
    // Fill through the DO directly (1,000 HTTP round trips would only slow the test down).
    await runInDurableObject(blockFor(tn), (_obj, state) => {
      const expires = Date.now() + 30_000;
      for (let i = 0; i < 1000; i++) {
        state.storage.sql.exec(
          "INSERT INTO blobs (id, tn, blob, expires_at) VALUES (?, ?, ?, ?)",
          `fill${i}`,
          canonicalTn(tn),
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
    expect(await liveCountOf(tn)).toBe(1000);
    // The cap is the number's: a neighbour in the same index block still stores.
    const neighbour = "15550007778";
    expect((await fetchApp(storeRequest(BASE, neighbour, (await sealedFor(neighbour)).text))).status).toBe(
      201,
    );
  });
});
