/**
 * Expiry across a streaming object's restart (src/durable-objects/streaming-queue.ts): the pending alarm
 * is read once per wake-up, when the object first schedules one (issue 20: not at every start), so a
 * store into an object woken from eviction must keep an earlier alarm and bring a later one forward, and
 * an alarm of a woken object must still delete every expired row and clear the decoy-stream rows.
 *
 * A number's blobs live in its index block's BlockQueue (block-queue.ts), whose store sets the expiry
 * alarm on a grid of EXPIRY_GRAIN_MS: the first grid instant at or after the row's expiry. Each test
 * uses a number alone in its index block, so the block's alarm is that number's.
 */
import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { EXPIRY_GRAIN_MS } from "../../src/durable-objects/block-queue.js";
import { decodeEnvelope } from "../../src/stir/envelope.js";
import { canonicalTn } from "../../src/stir/tn.js";
import { sealedFor } from "../helpers/cps.js";
import { blockFor, liveCountOf, queueFor } from "../helpers/worker.js";

const alarmOf = (tn: string) => runInDurableObject(blockFor(tn), (_o, state) => state.storage.getAlarm());
const storeTo = (tn: string, text: string) => blockFor(tn).storeNumber(canonicalTn(tn), decodeEnvelope(text));
/** The first expiry-alarm instant at or after `at`. */
const onGrid = (at: number) => Math.ceil(at / EXPIRY_GRAIN_MS) * EXPIRY_GRAIN_MS;
const countOf = (state: DurableObjectState, table: string): number =>
  state.storage.sql.exec<{ n: number }>(`SELECT count(*) AS n FROM ${table}`).one().n;

describe("streaming object start (a number's index block)", () => {
  it("keeps an earlier pending alarm when a woken object stores", async () => {
    const tn = "15550440001";
    const { text, another } = await sealedFor(tn);
    expect((await storeTo(tn, text)).ok).toBe(true);
    // Off the grid, and earlier than any store's: only a kept alarm can be exactly this.
    const early = Date.now() + 5_001;
    await runInDurableObject(blockFor(tn), (_o, state) => state.storage.setAlarm(early));
    await evictDurableObject(blockFor(tn));
    const stored = await storeTo(tn, await another());
    expect(stored.ok && stored.expiresAt > early).toBe(true);
    expect(await alarmOf(tn)).toBe(early);
  });

  it("brings a later pending alarm forward to a woken object's new expiry (on the grid)", async () => {
    const tn = "15550450001";
    const { text, another } = await sealedFor(tn);
    expect((await storeTo(tn, text)).ok).toBe(true);
    const late = Date.now() + 3_600_000;
    await runInDurableObject(blockFor(tn), (_o, state) => state.storage.setAlarm(late));
    await evictDurableObject(blockFor(tn));
    const stored = await storeTo(tn, await another());
    expect(stored.ok).toBe(true);
    const due = stored.ok ? onGrid(stored.expiresAt) : -1;
    expect(due).toBeLessThan(late);
    expect(await alarmOf(tn)).toBe(due);
    // A second store in the same wake-up, later expiry: the alarm stays at the first.
    const third = await storeTo(tn, await another());
    expect(third.ok && third.expiresAt >= (stored.ok ? stored.expiresAt : 0)).toBe(true);
    expect(await alarmOf(tn)).toBe(due);
  });

  it("expires rows and clears stream rows in an alarm of a woken object, then schedules from scratch", async () => {
    const tn = "15550460001";
    const { text, another } = await sealedFor(tn);
    expect((await storeTo(tn, text)).ok).toBe(true);
    await runInDurableObject(blockFor(tn), (_o, state) => {
      state.storage.sql.exec("UPDATE blobs SET expires_at = ? WHERE tn = ?", Date.now() - 1, canonicalTn(tn));
      // Left by a stream that has ended (or an older version): no socket is attached.
      state.storage.sql.exec("INSERT INTO meta (k, v) VALUES ('dummyAt', '1'), ('decoysFrom', '1')");
      // And a watch whose lease has run out (its PassportQueue's subscribers are gone).
      state.storage.sql.exec(
        "INSERT INTO watched (tn, until) VALUES (?, ?)",
        canonicalTn(tn),
        Date.now() - 1,
      );
      expect(countOf(state, "blobs")).toBe(1);
    });
    await evictDurableObject(blockFor(tn));
    expect(await runDurableObjectAlarm(blockFor(tn))).toBe(true);
    await runInDurableObject(blockFor(tn), (_o, state) => {
      expect(countOf(state, "blobs")).toBe(0);
      expect(countOf(state, "meta")).toBe(0);
      expect(countOf(state, "watched")).toBe(0);
    });
    expect(await alarmOf(tn)).toBeNull();
    const stored = await storeTo(tn, await another());
    expect(await alarmOf(tn)).toBe(stored.ok ? onGrid(stored.expiresAt) : -1);
  });

  it("starts an object that was never stored to without writing any row", async () => {
    const tn = "15550470001";
    expect(await liveCountOf(tn)).toBe(0);
    expect(await alarmOf(tn)).toBeNull();
    await runInDurableObject(blockFor(tn), (_o, state) => {
      for (const table of ["blobs", "watched", "meta"]) expect(countOf(state, table)).toBe(0);
    });
    // Nor does the number's PassportQueue (its push subscribers, a hot number's shards).
    expect(await queueFor(tn).liveCount()).toBe(0);
    await runInDurableObject(queueFor(tn), async (_o, state) => {
      for (const table of ["ppts", "meta"]) expect(countOf(state, table)).toBe(0);
      expect(await state.storage.getAlarm()).toBeNull();
    });
  });
});
