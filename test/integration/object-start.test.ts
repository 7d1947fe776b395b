/**
 * Expiry across a streaming object's restart (src/durable-objects/streaming-queue.ts): the pending alarm
 * is read once per wake-up, when the object first schedules one (issue 20: not at every start), so a
 * store into an object woken from eviction must keep an earlier alarm and bring a later one forward, and
 * an alarm of a woken object must still delete every expired row and clear the decoy-stream rows.
 */
import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { decodeEnvelope } from "../../src/stir/envelope.js";
import { sealedFor } from "../helpers/cps.js";
import { queueFor } from "../helpers/worker.js";

const alarmOf = (tn: string) => runInDurableObject(queueFor(tn), (_o, state) => state.storage.getAlarm());

describe("streaming object start", () => {
  it("keeps an earlier pending alarm when a woken object stores", async () => {
    const tn = "15550400001";
    const { text, another } = await sealedFor(tn);
    expect((await queueFor(tn).store(decodeEnvelope(text))).ok).toBe(true);
    const early = Date.now() + 5_000;
    await runInDurableObject(queueFor(tn), (_o, state) => state.storage.setAlarm(early));
    await evictDurableObject(queueFor(tn));
    const stored = await queueFor(tn).store(decodeEnvelope(await another()));
    expect(stored.ok && stored.expiresAt > early).toBe(true);
    expect(await alarmOf(tn)).toBe(early);
  });

  it("brings a later pending alarm forward to a woken object's new expiry", async () => {
    const tn = "15550400002";
    const { text, another } = await sealedFor(tn);
    expect((await queueFor(tn).store(decodeEnvelope(text))).ok).toBe(true);
    const late = Date.now() + 3_600_000;
    await runInDurableObject(queueFor(tn), (_o, state) => state.storage.setAlarm(late));
    await evictDurableObject(queueFor(tn));
    const stored = await queueFor(tn).store(decodeEnvelope(await another()));
    expect(stored.ok).toBe(true);
    expect(await alarmOf(tn)).toBe(stored.ok ? stored.expiresAt : -1);
    // A second store in the same wake-up, later expiry: the alarm stays at the first.
    const third = await queueFor(tn).store(decodeEnvelope(await another()));
    expect(third.ok && third.expiresAt >= (stored.ok ? stored.expiresAt : 0)).toBe(true);
    expect(await alarmOf(tn)).toBe(stored.ok ? stored.expiresAt : -1);
  });

  it("expires rows and clears stream rows in an alarm of a woken object, then schedules from scratch", async () => {
    const tn = "15550400003";
    const { text, another } = await sealedFor(tn);
    expect((await queueFor(tn).store(decodeEnvelope(text))).ok).toBe(true);
    await runInDurableObject(queueFor(tn), (_o, state) => {
      state.storage.sql.exec("UPDATE ppts SET expires_at = ?", Date.now() - 1);
      // Left by a stream that has ended (or an older version): no socket is attached.
      state.storage.sql.exec("INSERT INTO meta (k, v) VALUES ('dummyAt', '1'), ('decoysFrom', '1')");
    });
    await evictDurableObject(queueFor(tn));
    expect(await runDurableObjectAlarm(queueFor(tn))).toBe(true);
    await runInDurableObject(queueFor(tn), (_o, state) => {
      expect(state.storage.sql.exec("SELECT count(*) AS n FROM ppts").one().n).toBe(0);
      expect(state.storage.sql.exec("SELECT count(*) AS n FROM meta").one().n).toBe(0);
    });
    expect(await alarmOf(tn)).toBeNull();
    const stored = await queueFor(tn).store(decodeEnvelope(await another()));
    expect(await alarmOf(tn)).toBe(stored.ok ? stored.expiresAt : -1);
  });

  it("starts an object that was never stored to without writing any row", async () => {
    const tn = "15550400004";
    expect(await queueFor(tn).liveCount()).toBe(0);
    expect(await alarmOf(tn)).toBeNull();
    await runInDurableObject(queueFor(tn), (_o, state) => {
      expect(state.storage.sql.exec("SELECT count(*) AS n FROM ppts").one().n).toBe(0);
      expect(state.storage.sql.exec("SELECT count(*) AS n FROM meta").one().n).toBe(0);
    });
  });
});
