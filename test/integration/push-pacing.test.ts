/**
 * Pacing of push streams (docs/push-and-blocks.md "Pacing"; RFC 8816 §5.5): an object spends at most
 * PUSH_SENDS_PER_S socket-messages per second, so stores faster than that share messages; frames
 * wait at most MAX_PACE_MS; and a socket accepted while frames wait gets each id once, none missing.
 *
 * Real workerd objects and sockets. The budget is lowered on the one object under test (white box,
 * through runInDurableObject) so that pacing shows with one or two sockets instead of hundreds.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { afterAll, describe, expect, it } from "vitest";
import type { BlockQueue } from "../../src/durable-objects/block-queue.js";
import type { PassportQueue } from "../../src/durable-objects/passport-queue.js";
import { MAX_PACE_MS, type PushBatch } from "../../src/push/batch.js";
import { blockQueue } from "../../src/storage/objects.js";
import { sealedFor, storeRequest } from "../helpers/cps.js";
import { BASE, subscribe } from "../helpers/push.js";
import { fetchApp, queueFor } from "../helpers/worker.js";

async function store(tn: string, text: string): Promise<string> {
  const res = await fetchApp(storeRequest(BASE, tn, text));
  expect(res.status).toBe(201);
  return (await res.json<{ id: string }>()).id;
}

type WithBatch = { batch: PushBatch };

/** Sets the send budget of a number's object. */
const numberBudget = (tn: string, sendsPerS: number) =>
  runInDurableObject(queueFor(tn), (i: PassportQueue) => {
    (i as unknown as WithBatch).batch.sendsPerS = sendsPerS;
  });

const heldForNumber = (tn: string) =>
  runInDurableObject(queueFor(tn), (i: PassportQueue) => [...(i as unknown as WithBatch).batch.heldIds("")]);

/**
 * Stops the object's decoy stream for the rest of the test: a decoy born meanwhile is pushed by the
 * alarm in a message of its own, which these tests of store pacing do not count (the stream is
 * tested in push.test.ts). `dummyAt` far ahead keeps a new subscribe from re-arming it.
 */
const quietDecoys = (stub: DurableObjectStub) =>
  runInDurableObject(stub, async (_i: unknown, ctx) => {
    ctx.storage.sql.exec(
      "INSERT INTO meta (k, v) VALUES ('dummyAt', ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
      String(Date.now() + 3_600_000),
    );
    await ctx.storage.deleteAlarm();
  });

function blockObject(name: string) {
  return blockQueue(env, name);
}

describe("push pacing (send budget per object)", () => {
  // The tests close their sockets without waiting; the objects then report the subscriber gauge to
  // the MetricsHub in a waitUntil. Let that finish before the file's workerd environment is torn
  // down (seen once in CI: "Closing rpc while resolve was pending" at teardown).
  afterAll(() => new Promise((r) => setTimeout(r, 1000)));

  it("stores faster than the budget share messages; each id once, all within MAX_PACE_MS", async () => {
    const tn = "15550400001";
    const sub = await subscribe(`/cps/${tn}/subscribe`);
    await sub.until((f) => f.length >= 1); // greeting
    await quietDecoys(queueFor(tn));
    await numberBudget(tn, 10); // one socket: one message per 100 ms
    const { another } = await sealedFor(tn);
    const texts = await Promise.all(Array.from({ length: 12 }, another));
    const started = Date.now();
    const ids: string[] = [];
    // One at a time: no overlap, so only pacing can put two frames in one message.
    for (const t of texts) ids.push(await store(tn, t));
    const storedAt = Date.now();
    await sub.until((f) => ids.every((id) => f.some((x) => x.id === id)));
    const deliveredAt = Date.now();
    const seen = sub.frames.map((f) => f.id);
    expect(seen.length).toBe(new Set(seen).size);
    const pushed = sub.messages.slice(1); // after the greeting
    expect(pushed.reduce((a, b) => a + b, 0)).toBe(12);
    expect(pushed.length).toBeLessThan(12);
    // At most one message per 100 ms, plus the first, which goes at once.
    expect(pushed.length).toBeLessThanOrEqual(Math.ceil((deliveredAt - started) / 100) + 1);
    // The last frame waited no longer than one gap (plus scheduling slack).
    expect(deliveredAt - storedAt).toBeLessThan(MAX_PACE_MS + 200);
    sub.close();
  });

  it("an idle stream is not delayed: a store after a quiet spell goes out in its own message", async () => {
    const tn = "15550400002";
    const sub = await subscribe(`/cps/${tn}/subscribe`);
    await sub.until((f) => f.length >= 1);
    await quietDecoys(queueFor(tn));
    await numberBudget(tn, 10);
    const { another } = await sealedFor(tn);
    const text = await another();
    await new Promise((r) => setTimeout(r, 150)); // longer than the 100 ms gap
    const id = await store(tn, text);
    // Already sent when the store answered: nothing held.
    expect(await heldForNumber(tn)).toEqual([]);
    await sub.until((f) => f.some((x) => x.id === id));
    expect(sub.messages.slice(1)).toEqual([1]); // after the greeting, its own message
    sub.close();
  });

  it("a subscriber accepted while frames wait gets each id once and misses none", async () => {
    const tn = "15550400003";
    const first = await subscribe(`/cps/${tn}/subscribe`);
    await first.until((f) => f.length >= 1);
    await quietDecoys(queueFor(tn));
    await numberBudget(tn, 4); // one socket: 250 ms between messages
    const { another } = await sealedFor(tn);
    const [t1, t2] = await Promise.all([another(), another()]);
    const sent = await store(tn, t1); // goes at once
    const held = await store(tn, t2); // waits for the gap
    expect(await heldForNumber(tn)).toEqual([held]);
    const second = await subscribe(`/cps/${tn}/subscribe`);
    await Promise.all(
      [first, second].map((s) => s.until((f) => [sent, held].every((id) => f.some((x) => x.id === id)))),
    );
    for (const s of [first, second]) {
      const seen = s.frames.map((f) => f.id);
      expect(seen.length).toBe(new Set(seen).size);
    }
    // The greeting had the sent blob and the dummies; the held one came after, in the held message.
    const greeting = second.messages[0]!;
    expect(second.frames.slice(0, greeting).map((f) => f.id)).toContain(sent);
    expect(second.frames.slice(greeting).map((f) => f.id)).toEqual([held]);
    first.close();
    second.close();
  });

  it("the same holds for a block subscription and its sub-block", async () => {
    const block = "155504001xx";
    const object = blockObject("1555040");
    const first = await subscribe(`/cps/blocks/${block}/subscribe`);
    await first.until((f) => f.length >= 1);
    await quietDecoys(object);
    await runInDurableObject(object, (i: BlockQueue) => {
      (i as unknown as WithBatch).batch.sendsPerS = 4;
    });
    const { another } = await sealedFor("15550400100");
    const [t1, t2] = await Promise.all([another(), another()]);
    const sent = await store("15550400100", t1);
    const held = await store("15550400100", t2);
    expect(
      await runInDurableObject(object, (i: BlockQueue) => [
        ...(i as unknown as WithBatch).batch.heldIds(block),
      ]),
    ).toEqual([held]);
    const second = await subscribe(`/cps/blocks/${block}/subscribe`);
    await Promise.all(
      [first, second].map((s) => s.until((f) => [sent, held].every((id) => f.some((x) => x.id === id)))),
    );
    for (const s of [first, second]) {
      const seen = s.frames.map((f) => f.id);
      expect(seen.length).toBe(new Set(seen).size);
    }
    expect(second.frames.slice(second.messages[0]).map((f) => f.id)).toEqual([held]);
    first.close();
    second.close();
  });
});
