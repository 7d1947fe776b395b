/**
 * The forward path of a number's push (docs/push-and-blocks.md; RFC 8816 §5.5): a number's blobs live
 * in its index block's BlockQueue; its PassportQueue only serves its subscribers, and while it has any
 * it holds a lease (`watch`) on the block, which forwards each store of the number to it
 * (`pushStored`). Real workerd objects and sockets through the app. Numbers of index block 1555060,
 * used by no other test.
 */
import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it, onTestFinished } from "vitest";
import { type BlockQueue, WATCH_LEASE_MS } from "../../src/durable-objects/block-queue.js";
import { PassportQueue } from "../../src/durable-objects/passport-queue.js";
import { newBlobId } from "../../src/stir/blob-id.js";
import { decodeEnvelope } from "../../src/stir/envelope.js";
import { canonicalTn } from "../../src/stir/tn.js";
import { sealedFor, storeRequest } from "../helpers/cps.js";
import { BASE, type Subscription, subscribe } from "../helpers/push.js";
import { blockFor, fetchApp, queueFor } from "../helpers/worker.js";

async function store(tn: string, text: string): Promise<string> {
  const res = await fetchApp(storeRequest(BASE, tn, text));
  expect(res.status).toBe(201);
  return (await res.json<{ id: string }>()).id;
}

/** The frames of a subscription's first message (its greeting). */
const greetingOf = (sub: Subscription) => sub.frames.slice(0, sub.messages[0] ?? 0);

/** The block's lease end for `tn` (its `watched` row), or null. */
const watchedUntil = (tn: string) =>
  runInDurableObject(
    blockFor(tn),
    (_i: BlockQueue, ctx) =>
      ctx.storage.sql.exec<{ until: number }>("SELECT until FROM watched WHERE tn = ?", tn).toArray()[0]
        ?.until ?? null,
  );

/** Every row of the number's PassportQueue, per table (`ppts`, `meta`). */
const queueRows = (tn: string) =>
  runInDurableObject(queueFor(tn), (_i: PassportQueue, ctx) => ({
    ppts: ctx.storage.sql.exec("SELECT * FROM ppts").toArray(),
    meta: ctx.storage.sql.exec("SELECT * FROM meta").toArray(),
  }));

/** How many forwards the number's PassportQueue instance has received (white box: its recent pushes). */
const recentPushes = (tn: string) =>
  runInDurableObject(
    queueFor(tn),
    (i: PassportQueue) => (i as unknown as { recent: unknown[] }).recent.length,
  );

/** A row of `tn` written straight into its block (no store, so no forward), live for `lifeMs`. */
async function blockRow(tn: string, lifeMs: number) {
  const blob = decodeEnvelope((await sealedFor(tn)).text);
  const id = newBlobId();
  const expiresAt = Date.now() + lifeMs;
  await runInDurableObject(blockFor(tn), (_i: BlockQueue, ctx) => {
    ctx.storage.sql.exec(
      "INSERT INTO blobs (id, tn, blob, expires_at) VALUES (?, ?, ?, ?)",
      id,
      tn,
      blob,
      expiresAt,
    );
  });
  return { id, blob, expiresAt };
}

/**
 * Resolves once the number's queue has dropped every socket: a test that ends while a close is still
 * being handled lets that work outlive its file (vitest then reports a teardown error).
 */
async function socketsGone(tn: string): Promise<void> {
  const open = () => runInDurableObject(queueFor(tn), (_i: PassportQueue, ctx) => ctx.getWebSockets().length);
  for (let i = 0; i < 100 && (await open()) > 0; i++) await new Promise((r) => setTimeout(r, 20));
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

describe("a number's stores reach its subscribers through its index block", () => {
  it("the greeting holds a blob stored before; a store made right after subscribing is pushed", async () => {
    const tn = "15550600001";
    const { another } = await sealedFor(tn);
    const [t1, t2] = await Promise.all([another(), another()]);
    const before = await store(tn, t1);
    // Before any subscriber the block forwards nothing for the number.
    expect(await watchedUntil(tn)).toBeNull();
    const sub = await subscribe(`/cps/${tn}/subscribe`);
    // Right after the subscribe answered, before reading anything.
    const after = await store(tn, t2);
    await sub.until((f) => f.some((x) => x.id === after));
    const greeting = greetingOf(sub);
    expect(greeting.find((f) => f.id === before)).toMatchObject({ type: "passport", tn, blob: t1 });
    expect(greeting.map((f) => f.id)).not.toContain(after);
    expect(sub.frames.find((f) => f.id === after)).toMatchObject({ type: "passport", tn, blob: t2 });
    const seen = sub.frames.map((f) => f.id);
    expect(seen.length).toBe(new Set(seen).size);
    // The subscribe set the lease on the block.
    expect(await watchedUntil(tn)).toBeGreaterThan(Date.now() + WATCH_LEASE_MS / 2);
    sub.close();
  });

  it("concurrent stores while subscribers connect: each socket sees every id exactly once", async () => {
    const tn = "15550600002";
    const { another } = await sealedFor(tn);
    const texts = await Promise.all(Array.from({ length: 120 }, another));
    const storedText = new Map<string, string>();
    /** Per store: when its request went out, when its 201 came back, its id. */
    const stores: { sentAt: number; doneAt: number; id: string }[] = [];
    /** Per socket: when its subscribe went out and when it was answered (the greeting was sent). */
    const sockets: { askedAt: number; openAt: number; sub: Subscription }[] = [];
    const connect = async () => {
      const askedAt = performance.now();
      const sub = await subscribe(`/cps/${tn}/subscribe`);
      sockets.push({ askedAt, openAt: performance.now(), sub });
    };
    let started = 0;
    const waves: Promise<void>[] = [];
    // 24 stores in flight at once; every 12 stores sent, a wave of two concurrent subscribes (ten
    // waves), while the stores go on.
    await pool(texts, 24, async (text) => {
      const n = started++;
      if (n % 12 === 0) waves.push(Promise.all([connect(), connect()]).then());
      const sentAt = performance.now();
      const id = await store(tn, text);
      stores.push({ sentAt, doneAt: performance.now(), id });
      storedText.set(id, text);
    });
    await Promise.all(waves);
    expect(sockets).toHaveLength(20);
    expect(stores).toHaveLength(120);
    const ids = stores.map((s) => s.id);
    // Not vacuous: sockets opened mid-stream, greeted with some blobs and pushed others.
    const midStream = sockets.filter(({ sub }) => {
      const greeted = new Set(greetingOf(sub).map((f) => f.id));
      return ids.some((id) => greeted.has(id)) && ids.some((id) => !greeted.has(id));
    });
    expect(midStream.length).toBeGreaterThanOrEqual(5);

    for (const [i, { askedAt, openAt, sub }] of sockets.entries()) {
      // Every stored blob is live (TTL 60 s), so every socket gets every id: in its greeting if stored
      // before, pushed if after, and either way once if the store overlapped the subscribe.
      await sub.until((f) => ids.every((id) => f.some((x) => x.id === id)), 15_000).catch(() => {});
      const seen = sub.frames.map((f) => f.id);
      const twice = seen.filter((id, k) => seen.indexOf(id) !== k);
      expect(twice, `socket ${i}: ids seen twice`).toEqual([]);
      const got = new Set(seen);
      const storedAfter = stores.filter((s) => s.sentAt > openAt && !got.has(s.id)).map((s) => s.id);
      expect(storedAfter, `socket ${i}: stored after its greeting, never pushed`).toEqual([]);
      // (In its greeting, or in the message the object held back from every socket while pacing.)
      const storedBefore = stores.filter((s) => s.doneAt < askedAt && !got.has(s.id)).map((s) => s.id);
      expect(storedBefore, `socket ${i}: stored before it asked, never received`).toEqual([]);
      const missing = ids.filter((id) => !got.has(id));
      expect(missing, `socket ${i}: overlapping stores missed`).toEqual([]);
      for (const f of sub.frames) {
        expect(f.tn).toBe(tn);
        if (storedText.has(f.id)) expect(f.blob).toBe(storedText.get(f.id));
      }
      expect(new Set(sub.frames.map((f) => f.length)).size).toBe(1);
    }
    for (const { sub } of sockets) sub.close();
  });

  it("a number nobody subscribes to: its stores write nothing in its PassportQueue, no lease", async () => {
    const tn = "15550600003";
    const { another } = await sealedFor(tn);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await store(tn, await another()));
    // The blobs are in the block, under the number.
    const { rows } = await blockFor(tn).listNumberAt(canonicalTn(tn));
    expect(rows.map((r) => r.id).sort()).toEqual([...ids].sort());
    expect(await watchedUntil(tn)).toBeNull();
    expect(await queueRows(tn)).toEqual({ ppts: [], meta: [] });
    expect(
      await runInDurableObject(queueFor(tn), (_i: PassportQueue, ctx) => ctx.storage.getAlarm()),
    ).toBeNull();
    // Nor was anything forwarded to it (white box: a forward lands in its memory of recent pushes).
    expect(await recentPushes(tn)).toBe(0);
  });

  it("the lease: the queue's alarm renews it while subscribed; the block forgets it once ended", async () => {
    const tn = "15550600004";
    const { another } = await sealedFor(tn);
    const sub = await subscribe(`/cps/${tn}/subscribe`);
    await sub.until((f) => f.length >= 1);
    const leased = await watchedUntil(tn);
    expect(leased).toBeGreaterThan(Date.now() + WATCH_LEASE_MS / 2);

    // More than half the lease gone (on both sides), as if five minutes had passed.
    const near = Date.now() + 60_000;
    await runInDurableObject(queueFor(tn), (_i: PassportQueue, ctx) => {
      ctx.storage.sql.exec("UPDATE meta SET v = ? WHERE k = 'watchUntil'", String(near));
    });
    await runInDurableObject(blockFor(tn), (_i: BlockQueue, ctx) => {
      ctx.storage.sql.exec("UPDATE watched SET until = ? WHERE tn = ?", near, tn);
    });
    await evictDurableObject(blockFor(tn)); // its memory of the lease too
    expect(await watchedUntil(tn)).toBe(near);
    const ranAt = Date.now();
    expect(await runDurableObjectAlarm(queueFor(tn))).toBe(true);
    const renewed = await watchedUntil(tn);
    expect(renewed, "the block's lease must be renewed by the queue's alarm").toBeGreaterThanOrEqual(
      ranAt + WATCH_LEASE_MS,
    );
    const queueLease = await runInDurableObject(
      queueFor(tn),
      (_i: PassportQueue, ctx) =>
        ctx.storage.sql.exec<{ v: string }>("SELECT v FROM meta WHERE k = 'watchUntil'").one().v,
    );
    expect(Number(queueLease)).toBe(renewed);
    // And the renewed lease forwards: a store is still pushed.
    const id = await store(tn, await another());
    await sub.until((f) => f.some((x) => x.id === id));

    // No socket left: once the lease has ended, the block's alarm forgets it, and a store is no
    // longer forwarded (nothing reaches the queue).
    sub.close();
    await new Promise((r) => setTimeout(r, 50));
    await runInDurableObject(blockFor(tn), (_i: BlockQueue, ctx) => {
      ctx.storage.sql.exec("UPDATE watched SET until = ? WHERE tn = ?", Date.now() - 1, tn);
    });
    await evictDurableObject(blockFor(tn));
    expect(await watchedUntil(tn)).not.toBeNull(); // not forgotten before the alarm runs
    expect(await runDurableObjectAlarm(blockFor(tn))).toBe(true);
    expect(await watchedUntil(tn)).toBeNull();
    // The queue's own alarm, with no socket, forgets its side (every meta row) and schedules nothing more.
    await runInDurableObject(queueFor(tn), (_i: PassportQueue, ctx) => {
      ctx.storage.sql.exec("UPDATE meta SET v = '0' WHERE k = 'dummyAt'");
    });
    await runDurableObjectAlarm(queueFor(tn));
    expect(await queueRows(tn)).toEqual({ ppts: [], meta: [] });
    await evictDurableObject(queueFor(tn));
    const quiet = await store(tn, await another());
    // A forward would have reached the fresh instance's memory.
    expect(await recentPushes(tn)).toBe(0);
    const late = await subscribe(`/cps/${tn}/subscribe`);
    await late.until((f) => f.some((x) => x.id === quiet));
    // The store went to the block only: the new subscriber got it in its greeting, once.
    expect(greetingOf(late).map((f) => f.id)).toContain(quiet);
    expect(late.frames.filter((f) => f.id === quiet)).toHaveLength(1);
    late.close();
  });

  // Calls between two objects are not ordered by any platform fact: the queue may see a forward, then
  // a subscribe, and the block may see that subscribe's `watch` before the forward's answer, so `watch`
  // leaves the blob out as in flight. White box: the objects' state is set to that interleaving.
  it("a forward the queue got before a subscribe, answered to the block after its watch, still greets the socket", async () => {
    const tn = "15550600091";
    const first = await subscribe(`/cps/${tn}/subscribe`);
    await first.until((f) => f.length >= 1);
    const { id, blob, expiresAt } = await blockRow(tn, 60_000);
    type Forwarding = { forwarding: Map<string, Set<string>> };
    await runInDurableObject(blockFor(tn), (i: BlockQueue) => {
      (i as unknown as Forwarding).forwarding.set(tn, new Set([id]));
    });
    await queueFor(tn).pushStored({ id, tn, blob }, expiresAt);
    await first.until((f) => f.some((x) => x.id === id));
    const second = await subscribe(`/cps/${tn}/subscribe`);
    await runInDurableObject(blockFor(tn), (i: BlockQueue) => {
      (i as unknown as Forwarding).forwarding.delete(tn);
    });
    await second.until((f) => f.length >= 1);
    expect(greetingOf(second).filter((f) => f.id === id)).toHaveLength(1);
    first.close();
    second.close();
  });

  // Decoys wake the queue at least once a TTL; with a TTL beyond half the lease that would be too late,
  // so the watch itself sets the queue's alarm for the renewal. White box: the alarm is cleared, then
  // a watch is made as a subscribe makes it.
  it("a watch wakes the queue at the lease's half-life, whatever the decoys' next birth", async () => {
    const tn = "15550600092";
    const sub = await subscribe(`/cps/${tn}/subscribe`);
    await sub.until((f) => f.length >= 1);
    const { before, alarm } = await runInDurableObject(queueFor(tn), async (i: PassportQueue, ctx) => {
      await ctx.storage.deleteAlarm();
      // Reset the instance's memory of the alarm it set, as a fresh wake-up has none.
      (i as unknown as { alarmAt: number | null | undefined }).alarmAt = undefined;
      (i as unknown as { alarmRead: Promise<number | null> | undefined }).alarmRead = undefined;
      const before = Date.now();
      await (i as unknown as { watch(now: number): Promise<unknown> }).watch(before);
      return { before, alarm: await ctx.storage.getAlarm() };
    });
    expect(alarm).toBe(before + WATCH_LEASE_MS / 2);
    sub.close();
  });
});

// Attacks on the forward path. Each was seen to succeed before its fix (docs/threat-model.md).
describe("adversary #18: a slow queue, a lapsed lease, a blob expiring before the greeting", () => {
  /**
   * Makes the number's PassportQueue answer forwards `ms` late, as a slow or stuck peer would (a test
   * double of a misbehaving peer: `pushStored` is wrapped for this number only; runtime and calls are
   * real). Returns the undo.
   */
  const slowQueue = (tn: string, ms: number) => {
    const proto = PassportQueue.prototype;
    const pushStored = proto.pushStored;
    proto.pushStored = async function (this: PassportQueue, blob, expiresAt) {
      if (blob.tn === tn) await new Promise((r) => setTimeout(r, ms));
      return pushStored.call(this, blob, expiresAt);
    };
    return () => {
      proto.pushStored = pushStored;
    };
  };

  // A storer must not learn from the answer's timing that someone subscribes to the number (the
  // forward is not awaited), and a slow queue must not hold the block's pushes of other numbers.
  it("a store to a watched number whose queue is stuck is answered at once, and the block's other pushes go out", async () => {
    const tn = "15550600101";
    const neighbour = "15550600102";
    const [{ another }, { another: anotherNeighbour }] = await Promise.all([
      sealedFor(tn),
      sealedFor(neighbour),
    ]);
    const [t1, t2] = await Promise.all([another(), anotherNeighbour()]);
    const sub = await subscribe(`/cps/${tn}/subscribe`);
    const blockSub = await subscribe("/cps/blocks/155506001xx/subscribe");
    await Promise.all([sub.until((f) => f.length >= 1), blockSub.until((f) => f.length >= 0)]);
    const HOLD_MS = 3_000;
    onTestFinished(slowQueue(tn, HOLD_MS));
    const releasedAt = Date.now() + HOLD_MS;
    const watchedStore = store(tn, t1).then((id) => ({ id, at: Date.now() }));
    const neighbourStore = store(neighbour, t2);
    const [watched, otherId] = await Promise.all([watchedStore, neighbourStore]);
    await blockSub.until((f) => f.some((x) => x.id === otherId));
    const pushedAt = Date.now();
    expect(watched.at, "the store waited for the stuck queue").toBeLessThan(releasedAt - 1_000);
    expect(pushedAt, "the block's push waited for the stuck queue").toBeLessThan(releasedAt - 1_000);
    // Once the queue is free the forward still reaches the number's subscriber.
    await sub.until((f) => f.some((x) => x.id === watched.id), HOLD_MS + 5_000);
    expect(sub.frames.filter((f) => f.id === watched.id)).toHaveLength(1);
    sub.close();
    blockSub.close();
    await socketsGone(tn);
  });

  // Invariant 4 (no expired blob is served): the block's `watch` answer is read before the socket is
  // accepted; a row that expires in between must not be in the greeting. White box: the queue's
  // subscription is made, then its greeting rows are read after the row's expiry.
  it("a blob of the block's watch answer that expires before the greeting is left out of it", async () => {
    const tn = "15550600103";
    const { id, expiresAt } = await blockRow(tn, 300);
    type Sub = { rows(): { id: string }[] };
    type Subscribing = { subscription(p: URLSearchParams, from: number, now: number): Promise<Sub> };
    const ids = await runInDurableObject(queueFor(tn), async (i: PassportQueue) => {
      const now = Date.now();
      const s = await (i as unknown as Subscribing).subscription(new URLSearchParams({ tn }), now, now);
      const early = s.rows().map((r) => r.id);
      await new Promise((r) => setTimeout(r, Math.max(0, expiresAt - Date.now()) + 50));
      return { early, late: s.rows().map((r) => r.id) };
    });
    expect(ids.early).toContain(id);
    expect(ids.late).not.toContain(id);
  });

  /** The number's lease, on both sides, as if it had ended a moment ago (renewals failing meanwhile). */
  async function lapseLease(tn: string): Promise<void> {
    const lapsed = Date.now() - 1;
    await runInDurableObject(queueFor(tn), (_i: PassportQueue, ctx) => {
      ctx.storage.sql.exec("UPDATE meta SET v = ? WHERE k = 'watchUntil'", String(lapsed));
    });
    await runInDurableObject(blockFor(tn), (_i: BlockQueue, ctx) => {
      ctx.storage.sql.exec("UPDATE watched SET until = ? WHERE tn = ?", lapsed, tn);
    });
    await evictDurableObject(blockFor(tn)); // its memory of the lease too
  }

  // Should the queue fail to renew its lease in time, the block stops forwarding; a blob stored then
  // must still reach the sockets connected all along once the lease is renewed, and only once.
  it("a blob stored while the lease had lapsed reaches the connected socket when the lease is renewed", async () => {
    const tn = "15550600104";
    const { another } = await sealedFor(tn);
    const [t1, t2] = await Promise.all([another(), another()]);
    const sub = await subscribe(`/cps/${tn}/subscribe`);
    await sub.until((f) => f.length >= 1);
    const forwarded = await store(tn, t1);
    await sub.until((f) => f.some((x) => x.id === forwarded));
    // A renewal while the lease holds ships no blob: all stored since the greeting were forwarded.
    const held = (await watchedUntil(tn)) as number;
    expect(await blockFor(tn).watch(canonicalTn(tn), held, held)).toEqual([]);
    await lapseLease(tn);
    const missed = await store(tn, t2);
    await new Promise((r) => setTimeout(r, 100));
    expect(
      sub.frames.map((f) => f.id),
      "not forwarded while the lease had lapsed",
    ).not.toContain(missed);
    expect(await runDurableObjectAlarm(queueFor(tn))).toBe(true);
    await sub.until((f) => f.some((x) => x.id === missed));
    expect(sub.frames.filter((f) => f.id === missed)).toHaveLength(1);
    expect(sub.frames.filter((f) => f.id === forwarded)).toHaveLength(1);
    sub.close();
    await socketsGone(tn);
  });

  it("a renewal and a new subscribe after a lapse, at once: the connected socket gets the missed blob once", async () => {
    const tn = "15550600105";
    const { another } = await sealedFor(tn);
    const sub = await subscribe(`/cps/${tn}/subscribe`);
    await sub.until((f) => f.length >= 1);
    await lapseLease(tn);
    const missed = await store(tn, await another());
    // The renewal as the queue's alarm makes it (white box: its `watch`), while a subscribe comes in.
    const [, late] = await Promise.all([
      runInDurableObject(queueFor(tn), (i: PassportQueue) =>
        (i as unknown as { watch(now: number, greeting: boolean): Promise<unknown> }).watch(
          Date.now(),
          false,
        ),
      ),
      subscribe(`/cps/${tn}/subscribe`),
    ]);
    await sub.until((f) => f.some((x) => x.id === missed));
    await late.until((f) => f.some((x) => x.id === missed));
    await new Promise((r) => setTimeout(r, 200));
    expect(sub.frames.filter((f) => f.id === missed)).toHaveLength(1);
    expect(late.frames.filter((f) => f.id === missed)).toHaveLength(1);
    sub.close();
    late.close();
    await socketsGone(tn);
  });
});
