/**
 * Hot numbers (HOT_NUMBERS; docs/capacity.md "Hot numbers"): a number spread over several shards, stores
 * to one shard, retrievals merging every shard, in workerd with real Durable Objects. The shards are
 * PassportQueues: shard 0 the number's own, shard k named `{tn}~{k}`; each files a copy of its blobs
 * in the index block for block queries (src/storage/objects.ts). A normal number's blobs are in its
 * index block only.
 * vitest.config.ts sets HOT_NUMBERS to HOT_TN with 4 shards for this project; no other test uses
 * HOT_TN, NORMAL_TN or their block (1312555).
 */
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { ENVELOPE_TEXT_LENGTH } from "../../src/stir/envelope.js";
import { canonicalTn } from "../../src/stir/tn.js";
import { sealedFor, storeRequest } from "../helpers/cps.js";
import { subscribe } from "../helpers/push.js";
import { BASE, blockFor, fetchApp, list, queueFor } from "../helpers/worker.js";

const HOT_TN = "13125557700";
const SHARDS = 4;
/** Same index block as HOT_TN, not hot. */
const NORMAL_TN = "13125557701";

/** The PassportQueue of shard k of a hot number, reached as the Worker names it (src/storage/objects.ts). */
const shard = (tn: string, k: number) => env.PASSPORT_QUEUE.getByName(k === 0 ? tn : `${tn}~${k}`);

/** Every row of every table of a PassportQueue (its `ppts` and `meta`), counted per table. */
const rowsOf = (stub: DurableObjectStub) =>
  runInDurableObject(stub, (_i: unknown, ctx) => {
    const sql = ctx.storage.sql;
    const tables = sql
      .exec<{ name: string }>(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_%' ESCAPE '\\'",
      )
      .toArray()
      .map((t) => t.name);
    return Object.fromEntries(
      tables.map((t) => [t, sql.exec<{ n: number }>(`SELECT count(*) AS n FROM "${t}"`).one().n]),
    );
  });

async function store(tn: string, text: string): Promise<string> {
  const res = await fetchApp(storeRequest(BASE, tn, text));
  expect(res.status).toBe(201);
  const { id } = await res.json<{ id: string }>();
  expect(res.headers.get("Location")).toBe(`/cps/${tn}/ppts/${id}`);
  return id;
}

/** Runs `work` over `items` with at most `width` in flight. */
async function pool<T>(items: T[], width: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await work(items[next++]!);
    }),
  );
}

describe("a hot number (4 shards) under concurrent stores and retrievals", () => {
  it("the test Worker has HOT_TN with 4 shards (vitest.config.ts)", () => {
    expect(env.HOT_NUMBERS.split(",")).toContain(`${HOT_TN}:${SHARDS}`);
  });

  it("lists, fetches and block-lists every stored blob exactly once, spread over all 4 shards", async () => {
    const { another } = await sealedFor(HOT_TN);
    const texts = await Promise.all(Array.from({ length: 200 }, another));
    const stored = new Map<string, string>(); // id -> envelope text, once its 201 came back
    const listFailures: string[] = [];
    let lists = 0;
    let storing = true;

    // Four readers list the number over and over while 24 writers store: every list must show each id
    // once, and every id whose 201 came back before the list was asked for (read-your-writes across
    // shards), byte-exact.
    const reader = async () => {
      while (storing) {
        const before = new Map(stored);
        const { passports } = await list(HOT_TN);
        lists++;
        const ids = passports.map((p) => p.id);
        if (new Set(ids).size !== ids.length) listFailures.push(`list ${lists} shows an id twice`);
        const byId = new Map(passports.map((p) => [p.id, p.blob]));
        for (const [id, text] of before) {
          if (byId.get(id) !== text) listFailures.push(`list ${lists} lacks or alters ${id}`);
        }
      }
    };
    const readers = Array.from({ length: 4 }, reader);
    await pool(texts, 24, async (text) => {
      stored.set(await store(HOT_TN, text), text);
    });
    storing = false;
    await Promise.all(readers);

    expect(listFailures).toEqual([]);
    expect(lists).toBeGreaterThanOrEqual(4);
    expect(stored.size).toBe(200);

    // The final list: every stored id exactly once, byte-exact, plus the number's one decoy set.
    const { passports } = await list(HOT_TN);
    const ids = passports.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const real = passports.filter((p) => stored.has(p.id));
    expect(real).toHaveLength(200);
    for (const p of real) expect(p.blob).toBe(stored.get(p.id));
    expect(passports.length).toBeGreaterThan(200); // at least one decoy
    for (const p of passports) expect(p.blob).toHaveLength(ENVELOPE_TEXT_LENGTH);

    // GET by id finds each blob on whichever shard holds it.
    await pool([...stored], 16, async ([id, text]) => {
      const res = await fetchApp(`${BASE}/cps/${HOT_TN}/ppts/${id}`);
      expect(res.status).toBe(200);
      expect(await res.text()).toBe(text);
    });
    // A decoy of the list answers GET by id as on any number; an unknown id is 404.
    const decoy = passports.find((p) => !stored.has(p.id))!;
    const decoyRes = await fetchApp(`${BASE}/cps/${HOT_TN}/ppts/${decoy.id}/`);
    expect(decoyRes.status).toBe(200);
    expect(await decoyRes.text()).toBe(decoy.blob);
    expect((await fetchApp(`${BASE}/cps/${HOT_TN}/ppts/${"0".repeat(32)}`)).status).toBe(404);

    // Each of the 4 shard objects holds some rows, no 5th exists, and the counts add up; the block holds
    // a copy of each, under the number.
    const counts = await Promise.all(Array.from({ length: SHARDS }, (_, k) => shard(HOT_TN, k).liveCount()));
    for (const n of counts) expect(n).toBeGreaterThan(0);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(200);
    expect(await blockFor(HOT_TN).numberLiveCount(canonicalTn(HOT_TN))).toBe(200);
    expect(await shard(HOT_TN, SHARDS).liveCount()).toBe(0);

    // Every shard filed its blobs in the number's index block, under the number itself.
    const block = await fetchApp(`${BASE}/cps/blocks/1312555770x/ppts`);
    expect(block.status).toBe(200);
    const blockBody = await block.json<{ passports: { id: string; tn: string; blob: string }[] }>();
    const blockIds = blockBody.passports.map((p) => p.id);
    expect(new Set(blockIds).size).toBe(blockIds.length);
    const blockReal = blockBody.passports.filter((p) => stored.has(p.id));
    expect(blockReal).toHaveLength(200);
    for (const p of blockReal) {
      expect(p.tn).toBe(HOT_TN);
      expect(p.blob).toBe(stored.get(p.id));
    }
    for (const p of blockBody.passports) expect(p.tn).toMatch(/^1312555770[0-9]$/);
  });

  it("a block subscription sees the stores of every shard", async () => {
    const sub = await subscribe("/cps/blocks/1312555770x/subscribe");
    const { another } = await sealedFor(HOT_TN);
    const texts = await Promise.all(Array.from({ length: 24 }, another));
    const ids = await Promise.all(texts.map((text) => store(HOT_TN, text)));
    await sub.until((frames) => ids.every((id) => frames.some((f) => f.id === id)));
    for (const [i, id] of ids.entries()) {
      expect(sub.frames.find((f) => f.id === id)).toMatchObject({ tn: HOT_TN, blob: texts[i] });
    }
    sub.close();
  });

  it("a normal number uses only its index block: its rows there, no shard objects, no queue rows", async () => {
    const { another } = await sealedFor(NORMAL_TN);
    const texts = await Promise.all(Array.from({ length: 20 }, another));
    const ids = new Set<string>();
    await pool(texts, 8, async (text) => {
      ids.add(await store(NORMAL_TN, text));
    });
    expect(await blockFor(NORMAL_TN).numberLiveCount(canonicalTn(NORMAL_TN))).toBe(20);
    const inBlock = (await blockFor(NORMAL_TN).listNumberAt(canonicalTn(NORMAL_TN))).rows.map((r) => r.id);
    expect(new Set(inBlock)).toEqual(ids);
    for (let k = 1; k < SHARDS; k++) {
      const rows = await rowsOf(env.PASSPORT_QUEUE.getByName(`${NORMAL_TN}~${k}`));
      expect(rows, `shard object ${k} of a normal number`).toEqual({ meta: 0, ppts: 0 });
    }
    expect(await rowsOf(queueFor(NORMAL_TN)), "the number's own PassportQueue").toEqual({ meta: 0, ppts: 0 });
    const listed = (await list(NORMAL_TN)).passports.filter((p) => ids.has(p.id));
    expect(listed).toHaveLength(20);
  });
});

describe("GET /cps/{tn}/subscribe to a hot number", () => {
  it.each([
    ["a WebSocket upgrade", { Upgrade: "websocket" }],
    ["no upgrade (checked first)", {}],
    ["a malformed credential (checked first)", { Upgrade: "websocket", Authorization: "Bearer x" }],
  ])("with %s: 409 NUMBER_SHARDED problem pointing at the block route", async (_what, headers) => {
    for (const path of [`/cps/${HOT_TN}/subscribe`, "/cps/+1.312.555.7700/subscribe"]) {
      const res = await fetchApp(`${BASE}${path}`, { headers });
      expect(res.status).toBe(409);
      expect(res.headers.get("Content-Type")).toBe("application/problem+json");
      expect(res.headers.get("Cache-Control")).toBe("no-store");
      const body = await res.json<{ code: string; status: number; title: string }>();
      expect(body).toMatchObject({ code: "NUMBER_SHARDED", status: 409 });
      expect(body.title).toContain("/cps/blocks/{block}/subscribe");
      expect(body.title).not.toContain(HOT_TN.slice(1)); // no telephone number in a message
    }
  });

  it("a normal number in the same block still subscribes", async () => {
    const sub = await subscribe(`/cps/${NORMAL_TN}/subscribe`);
    expect(sub.ws.readyState).toBe(WebSocket.OPEN);
    sub.close();
  });
});
