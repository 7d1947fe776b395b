/**
 * Push delivery for one number (RFC 8816 §5.5 subscription/notification interface, §6.2 dummies),
 * inside workerd with real Durable Objects, hibernatable WebSockets and the eviction helpers.
 */
import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { PassportQueue } from "../../src/durable-objects/passport-queue.js";
import { decodeEnvelope, ENVELOPE_TEXT_LENGTH, openPassport } from "../../src/stir/envelope.js";
import { canonicalTn } from "../../src/stir/tn.js";
import { type ListBody, RFC8816_EXAMPLE_PASSPORT, sealedFor, storeRequest } from "../helpers/cps.js";
import { BASE, subscribe } from "../helpers/push.js";
import { fetchApp, queueFor } from "../helpers/worker.js";

async function store(tn: string, text: string): Promise<string> {
  const res = await fetchApp(storeRequest(BASE, tn, text));
  expect(res.status).toBe(201);
  return (await res.json<{ id: string }>()).id;
}

describe("GET /cps/{tn}/subscribe (RFC 8816 §5.5)", () => {
  it("subscribe then store: the blob arrives with its id and opens with the callee key", async () => {
    const tn = "15550300001";
    const sub = await subscribe(`/cps/${tn}/subscribe`);
    await sub.until((f) => f.length >= 1); // the greeting dummy
    const { callee, text } = await sealedFor(tn);
    const id = await store(tn, text);
    await sub.until((f) => f.some((x) => x.id === id));
    const frame = sub.frames.find((x) => x.id === id)!;
    expect(frame).toMatchObject({ type: "passport", tn, blob: text });
    expect(await openPassport(callee.keyPair, canonicalTn(tn), decodeEnvelope(frame.blob))).toBe(
      RFC8816_EXAMPLE_PASSPORT,
    );
    sub.close();
  });

  it("store then subscribe: live blobs come first, with at least one dummy, all frames one length", async () => {
    const tn = "15550300002";
    const { another } = await sealedFor(tn);
    const ids = [await store(tn, await another()), await store(tn, await another())];
    const sub = await subscribe(`/cps/${tn}/subscribe`);
    await sub.until((f) => f.length >= 3);
    expect([...sub.ids()]).toEqual(expect.arrayContaining(ids));
    const dummies = sub.frames.filter((f) => !ids.includes(f.id));
    expect(dummies.length).toBeGreaterThanOrEqual(1);
    expect(new Set(sub.frames.map((f) => f.length)).size).toBe(1);
    for (const f of sub.frames) {
      expect(f.type).toBe("passport");
      expect(f.blob).toHaveLength(ENVELOPE_TEXT_LENGTH);
    }
    sub.close();
  });

  it("two subscribers both get a new blob; a closed third does not slow or fail the store", async () => {
    const tn = "15550300003";
    const [a, b, gone] = await Promise.all([1, 2, 3].map(() => subscribe(`/cps/+${tn}/subscribe`)));
    gone!.close();
    const { another } = await sealedFor(tn);
    const id = await store(tn, await another());
    await Promise.all([a!, b!].map((s) => s.until((f) => f.some((x) => x.id === id))));
    a!.close();
    b!.close();
  });

  it("overlapping stores share messages: each id once, every frame line one length, nothing lost", async () => {
    const tn = "15550300016";
    const sub = await subscribe(`/cps/${tn}/subscribe`);
    await sub.until((f) => f.length >= 1); // the greeting dummy
    const { another } = await sealedFor(tn);
    const texts = await Promise.all(Array.from({ length: 50 }, another));
    const ids = await Promise.all(texts.map((t) => store(tn, t)));
    await sub.until((f) => ids.every((id) => f.some((x) => x.id === id)));
    const seen = sub.frames.map((f) => f.id);
    expect(seen.length).toBe(new Set(seen).size);
    expect(new Set(sub.frames.map((f) => f.length)).size).toBe(1);
    expect(sub.messages.reduce((a, b) => a + b, 0)).toBe(sub.frames.length);
    // 50 stores in flight at once overlap in the object: fewer messages than frames.
    expect(sub.messages.length).toBeLessThan(sub.frames.length);
    sub.close();
  });

  it("a subscriber that disconnects and reconnects within the TTL misses nothing", async () => {
    const tn = "15550300004";
    const { another } = await sealedFor(tn);
    const first = await subscribe(`/cps/${tn}/subscribe`);
    const before = await store(tn, await another());
    await first.until((f) => f.some((x) => x.id === before));
    first.close();
    const during = [await store(tn, await another()), await store(tn, await another())];
    const second = await subscribe(`/cps/${tn}/subscribe`);
    const after = await store(tn, await another());
    await second.until((f) => [before, ...during, after].every((id) => f.some((x) => x.id === id)));
    // Each id exactly once on the new connection: duplicates only ever come from reconnecting.
    const seen = second.frames.map((f) => f.id);
    expect(seen.length).toBe(new Set(seen).size);
    second.close();
  });

  it("hibernation (eviction) keeps the subscriber: a store after it is still pushed", async () => {
    const tn = "15550300005";
    const sub = await subscribe(`/cps/${tn}/subscribe`);
    await sub.until((f) => f.length >= 1);
    const stub = queueFor(tn);
    await runInDurableObject(stub, (instance: PassportQueue) => {
      (instance as unknown as { marker?: number }).marker = 1;
    });
    await evictDurableObject(stub);
    // A fresh instance: in-memory state gone, the socket (and its attachment) still there.
    const state = await runInDurableObject(stub, (instance: PassportQueue, ctx) => ({
      marker: (instance as unknown as { marker?: number }).marker,
      sockets: ctx.getWebSockets().length,
      attachment: ctx.getWebSockets()[0]?.deserializeAttachment() as { v: number } | null,
    }));
    expect(state.marker).toBeUndefined();
    expect(state.sockets).toBe(1);
    expect(state.attachment?.v).toBe(1);
    const { another } = await sealedFor(tn);
    const id = await store(tn, await another());
    await sub.until((f) => f.some((x) => x.id === id));
    sub.close();
  });

  it("sends dummies from the alarm while subscribed, and stops scheduling them when nobody is", async () => {
    const tn = "15550300006";
    const sub = await subscribe(`/cps/${tn}/subscribe`);
    await sub.until((f) => f.length >= 1);
    const stub = queueFor(tn);
    const dummyAt = () =>
      runInDurableObject(
        stub,
        (_i: PassportQueue, ctx) =>
          ctx.storage.sql.exec<{ v: string }>("SELECT v FROM meta WHERE k = 'dummyAt'").toArray()[0]?.v ??
          null,
      );
    const scheduled = Number(await dummyAt());
    expect(scheduled).toBeGreaterThan(Date.now());
    expect(
      await runInDurableObject(stub, (_i: PassportQueue, ctx) => ctx.storage.getAlarm()),
    ).toBeLessThanOrEqual(scheduled);
    // The stream's dummies are the number's decoys, pushed at their births. The clock cannot be moved
    // here, so pretend the last push was a lifetime ago and make it due: the alarm then pushes every
    // decoy born since, i.e. the live ones (which the greeting held too).
    const greeted = sub.frames.length;
    await runInDurableObject(stub, (_i: PassportQueue, ctx) => {
      ctx.storage.sql.exec("UPDATE meta SET v = '0' WHERE k IN ('dummyAt', 'decoysFrom')");
    });
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    await sub.until((f) => f.length > greeted);
    const listed = new Set(
      ((await (await fetchApp(`${BASE}/cps/${tn}/ppts`)).json()) as ListBody).passports.map((p) => p.id),
    );
    const ticks = sub.frames.slice(greeted);
    expect(ticks.every((t) => listed.has(t.id))).toBe(true);
    expect(ticks.every((t) => t.length === sub.frames[0]!.length)).toBe(true);
    expect(Number(await dummyAt())).toBeGreaterThan(Date.now());

    sub.close();
    await new Promise((r) => setTimeout(r, 50));
    await runInDurableObject(stub, (_i: PassportQueue, ctx) => {
      ctx.storage.sql.exec("UPDATE meta SET v = '0' WHERE k = 'dummyAt'");
    });
    await runDurableObjectAlarm(stub);
    expect(await dummyAt()).toBeNull();
    // No blob and no subscriber left: the object keeps nothing, not even the number.
    expect(
      await runInDurableObject(stub, (_i: PassportQueue, ctx) =>
        ctx.storage.sql.exec("SELECT k FROM meta").toArray(),
      ),
    ).toEqual([]);
    expect(await runInDurableObject(stub, (_i: PassportQueue, ctx) => ctx.storage.getAlarm())).toBeNull();
  });

  it("knows its number from the runtime (ctx.id.name): after an eviction, decoys and stores are pushed with it", async () => {
    const tn = "15550300008";
    // Nothing sends the object its number: the subscribe upgrade carries none.
    const sub = await subscribe(`/cps/${tn}/subscribe`);
    await sub.until((f) => f.length >= 1);
    expect(sub.frames.every((f) => f.tn === tn)).toBe(true);
    const stub = queueFor(tn);
    const meta = () =>
      runInDurableObject(stub, (_i: PassportQueue, ctx) =>
        ctx.storage.sql.exec<{ k: string; v: string }>("SELECT k, v FROM meta ORDER BY k").toArray(),
      );
    const ppts = () =>
      runInDurableObject(
        stub,
        (_i: PassportQueue, ctx) =>
          ctx.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM ppts").one().n,
      );
    // No copy of the number nor of its blobs is stored: only the decoy stream's clock and the end of
    // the watch lease on its index block, all instants (ms), none the number.
    const noCopy = async () => {
      const rows = await meta();
      expect(rows.map((r) => r.k)).toEqual(["decoysFrom", "dummyAt", "watchUntil"]);
      for (const { v } of rows) {
        expect(v).toMatch(/^[0-9]{1,13}$/);
        expect(v).not.toContain(tn);
      }
      expect(await ppts()).toBe(0);
    };
    await noCopy();
    // Make the stream due (as if a lifetime had passed), then drop the instance: the alarm runs in a
    // fresh one, with nothing in memory.
    await runInDurableObject(stub, (_i: PassportQueue, ctx) => {
      ctx.storage.sql.exec("UPDATE meta SET v = '0' WHERE k IN ('dummyAt', 'decoysFrom')");
    });
    await evictDurableObject(stub);
    const greeted = sub.frames.length;
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    await sub.until((f) => f.length > greeted);
    expect(sub.frames.slice(greeted).every((f) => f.tn === tn)).toBe(true);
    // Evicted again: a store (into the number's index block, forwarded from there) is still pushed.
    await evictDurableObject(stub);
    const { another } = await sealedFor(tn);
    const text = await another();
    const id = await store(tn, text);
    await sub.until((f) => f.some((x) => x.id === id));
    expect(sub.frames.find((x) => x.id === id)).toMatchObject({ type: "passport", tn, blob: text });
    await noCopy();
    sub.close();
  });

  it.each([
    ["no Upgrade header", "/cps/15550300007/subscribe", {}, 426, "UPGRADE_REQUIRED"],
    ["a bad number", "/cps/12ab/subscribe", { Upgrade: "websocket" }, 400, "INVALID_TN"],
    ["too few digits", "/cps/12/subscribe", { Upgrade: "websocket" }, 400, "INVALID_TN"],
  ])("refuses %s with a problem", async (_name, path, headers, status, code) => {
    const res = await fetchApp(`${BASE}${path}`, { headers });
    expect(res.status).toBe(status);
    expect(res.headers.get("Content-Type")).toBe("application/problem+json");
    expect(res.headers.get("Cache-Control")).toBe("no-store");
    expect(((await res.json()) as { code: string }).code).toBe(code);
  });

  it("answers 405 for other methods", async () => {
    const res = await fetchApp(`${BASE}/cps/15550300007/subscribe`, { method: "POST" });
    expect(res.status).toBe(405);
    expect(res.headers.get("Allow")).toBe("GET");
  });
});
