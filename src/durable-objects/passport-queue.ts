/**
 * One PassportQueue per canonical called number, named by the number (storage/objects.ts): the
 * number's push subscribers (RFC 8816 §5.5, docs/push-and-blocks.md; streaming-queue.ts), and for a
 * hot number (HOT_NUMBERS) its shards' blobs (shard 0 here, shard k in `{tn}~{k}`). Every other
 * number's blobs live in its index block's BlockQueue (block-queue.ts), so a number nobody subscribes
 * to has no object of its own. It only ever sees opaque blobs, random ids and expiry times: nothing
 * about who stored them (docs/design.md invariants 1 and 3).
 *
 * Subscribers: a subscribe asks the index block to `watch` the number (a lease this object renews at
 * half-life while it has sockets); from then on each store to the number is forwarded here
 * (`pushStored`) and pushed. The block answers `watch` with the number's live blobs except those whose
 * forward is on its way; forwards are kept in memory while live (the last RECENT_PUSHES), and a new
 * socket's greeting is the block's answer and those, each id once. A forward sent before the socket
 * was accepted never reached it, and one after reaches it as a push, so it sees every blob once.
 *
 * Hot shards: a store lands in one shard (`store`) and is filed in the index block (`add`), so block
 * queries and block sockets see it; the number's retrievals merge its shards (routes/passports.ts).
 *
 * Decoys are the number's (src/dummies/), computed, not stored: the greeting carries the ones live,
 * and the alarm pushes each one as it is born, as a store pushes a real blob.
 *
 * Platform facts relied on: single-threaded, synchronous SQLite; while an outgoing call is awaited,
 * other calls may run (so `watch` and forwards interleave in any order, as handled above).
 */
import { readConfig } from "../config.js";
import { decoysBorn, nextDecoyBirth, numberGreetingDecoys } from "../dummies/stream.js";
import { logEvent } from "../log.js";
import { type PushBlob, pushFrame } from "../stir/push-frames.js";
import type { CanonicalTn } from "../stir/tn.js";
import { createPassportQueueTables, META_WATCH_UNTIL } from "../storage/layout.js";
import { blockQueueOfTn, tnOfPassportQueueName } from "../storage/objects.js";
import { WATCH_LEASE_MS } from "./block-queue.js";
import {
  type ExpiringBlob,
  expiresIfStoredAt,
  liveCount,
  liveRow,
  liveRows,
  type NumberRows,
  type StoredBlob,
  type StoreResult,
  storeRow,
} from "./number-rows.js";
import { StreamingQueue, type Subscription } from "./streaming-queue.js";

export type { StoredBlob, StoreResult } from "./number-rows.js";

/**
 * Forwarded blobs kept in memory for greetings. A greeting needs those the block left out of its
 * `watch` answer as in flight, which this object got within a call's round trip of it: more than this
 * many stores to one number in that time is far beyond one object's rate.
 */
const RECENT_PUSHES = 256;

export class PassportQueue extends StreamingQueue {
  /** The number as a caller named it (store, subscribe, forward), in this instance's memory. */
  private knownTn: CanonicalTn | undefined;
  /** The last RECENT_PUSHES forwarded blobs and their expiries, in arrival order. */
  private readonly recent: { blob: PushBlob; expiresAt: number }[] = [];

  /**
   * This object's number: its name, less the shard suffix of a hot number's shard (storage/objects.ts).
   * An instance the runtime started for an overdue alarm may have no `ctx.id.name`, even for the
   * requests it then serves, so the number a call names wins, and each subscriber's socket carries it
   * in its attachment (kept by the runtime, not in storage) for the alarm's decoy pushes.
   */
  protected get tn(): CanonicalTn {
    if (this.knownTn !== undefined) return this.knownTn;
    if (this.ctx.id.name !== undefined) return tnOfPassportQueueName(this.ctx.id.name);
    const attached = this.sockets()[0]?.deserializeAttachment() as { tn?: unknown } | null | undefined;
    if (typeof attached?.tn === "string") return attached.tn as CanonicalTn;
    return tnOfPassportQueueName(this.name);
  }

  protected createTables(): void {
    createPassportQueueTables(this.sql);
  }

  private get rows(): NumberRows {
    return { sql: this.sql, table: "ppts", tn: null };
  }

  /**
   * A hot number's shard: stores one blob until now + TTL, unless this shard already holds the
   * maximum live blobs, and files it in the number's index block.
   */
  async store(blob: Uint8Array, retryKey?: string, tn?: CanonicalTn): Promise<StoreResult> {
    if (tn !== undefined) this.knownTn = tn;
    const { ttlSeconds, maxLivePerNumber } = readConfig(this.env);
    const result = storeRow(this.rows, blob, retryKey, { ttlSeconds, maxLive: maxLivePerNumber });
    if (!result.ok || result.repeat) return result;
    await Promise.all([
      this.scheduleAlarm(result.expiresAt),
      this.fileInBlock(result.id, blob, result.expiresAt),
    ]);
    return result;
  }

  /**
   * Files the blob in its index block. Awaited (a block query right after a 201 sees the blob) but in
   * parallel with the alarm write; one retry, then logged: this shard stays authoritative and the
   * store is not failed, since a retried store would duplicate the blob.
   */
  protected async fileInBlock(id: string, blob: Uint8Array, expiresAt: number): Promise<void> {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        // Inside the try: the row is in, so nothing here may fail the store.
        const tn = this.tn;
        const filed = await blockQueueOfTn(this.env, tn).add(tn, id, blob, expiresAt);
        if (!filed) logEvent({ event: "block_full", code: "BLOCK_FULL" });
        return;
      } catch {
        // retried once below
      }
    }
    logEvent({ event: "block_file_failed", code: "BLOCK_FILE_FAILED" });
  }

  /** A store to the watched number, forwarded by its index block: pushed to every socket. */
  async pushStored(blob: PushBlob, expiresAt: number): Promise<void> {
    this.knownTn = blob.tn as CanonicalTn;
    this.recent.push({ blob, expiresAt });
    if (this.recent.length > RECENT_PUSHES) this.recent.shift();
    if (this.sockets().length === 0) return;
    this.batch.begin();
    this.batch.add("", blob.id, pushFrame(blob));
    this.batch.settle();
  }

  /** `GET /cps/{tn}/subscribe` (routes/subscriptions.ts): every socket of the number is one stream. */
  protected async subscription(params: URLSearchParams, from: number, now: number): Promise<Subscription> {
    // The route names the number (only the Worker reaches this object); the socket keeps it for the alarm.
    const named = params.get("tn");
    if (named !== null && /^[0-9]{1,15}$/.test(named)) this.knownTn = named as CanonicalTn;
    const tn = this.tn;
    const [watched, decoys] = await Promise.all([
      this.watch(now, true),
      numberGreetingDecoys(this.env, tn, from, now),
    ]);
    return {
      group: "",
      attachment: { v: 1, at: now, tn },
      decoys,
      // Called in the stretch that accepts the socket: later forwards reach it as pushes. Everything
      // is judged live at this instant (a blob of the block's answer may have expired since).
      rows: () => {
        const at = Date.now();
        const byId = new Map<string, PushBlob>();
        for (const row of watched)
          if (row.expiresAt > at) byId.set(row.id, { id: row.id, tn, blob: row.blob });
        for (const row of liveRows(this.rows)) byId.set(row.id, { ...row, tn });
        for (const p of this.recent) if (p.expiresAt > at) byId.set(p.blob.id, p.blob);
        return [...byId.values()];
      },
    };
  }

  /**
   * Asks the index block to forward the number's stores until a lease from `now`. A greeting gets the
   * number's live blobs; a renewal only those stored after the lease this object held had ended: none,
   * unless it lapsed (a renewal failed for half a lease), and those were never forwarded, so they are
   * pushed to the sockets connected all along (a greeting's own socket is not accepted yet).
   */
  private async watch(now: number, greeting: boolean): Promise<ExpiringBlob[]> {
    const until = now + WATCH_LEASE_MS;
    const held = Number(this.meta.get(META_WATCH_UNTIL) ?? 0);
    const rows = await blockQueueOfTn(this.env, this.tn).watch(this.tn, until, greeting ? 0 : held);
    // Of two watches out at once (a renewal and a greeting), the first answered pushes what was missed.
    const first = Number(this.meta.get(META_WATCH_UNTIL) ?? 0) === held;
    if (held < until) this.meta.set(META_WATCH_UNTIL, String(until));
    const missedFrom = expiresIfStoredAt(held, readConfig(this.env).ttlSeconds);
    const missed = held === 0 || !first ? [] : rows.filter((r) => r.expiresAt >= missedFrom);
    if (missed.length > 0 && this.sockets().length > 0) {
      const tn = this.tn;
      this.batch.begin();
      for (const r of missed) this.batch.add("", r.id, pushFrame({ id: r.id, tn, blob: r.blob }));
      this.batch.settle();
    }
    // Wake to renew at half-life even if no decoy is born before then (long TTLs).
    await this.scheduleAlarm(until - WATCH_LEASE_MS / 2);
    return rows;
  }

  /** Renews the watch when half its lease is gone, while sockets are attached; then the shared alarm. */
  override async alarm(): Promise<void> {
    const now = Date.now();
    const until = Number(this.meta.get(META_WATCH_UNTIL) ?? 0);
    if (this.ctx.getWebSockets().length > 0 && until - now < WATCH_LEASE_MS / 2) {
      try {
        await this.watch(now, false);
      } catch {
        logEvent({ event: "push_watch_failed", code: "PUSH_WATCH_FAILED" });
      }
    }
    await super.alarm();
  }

  protected expire(now: number): number | null {
    this.sql.exec("DELETE FROM ppts WHERE expires_at <= ?", now);
    const next = this.sql.exec<{ e: number | null }>("SELECT min(expires_at) AS e FROM ppts").one().e;
    const until = Number(this.meta.get(META_WATCH_UNTIL) ?? Number.NaN);
    if (this.ctx.getWebSockets().length === 0 || Number.isNaN(until)) return next;
    // Wake to renew the watch at half its lease (at least a second from now, should a renewal fail).
    const renewAt = Math.max(until - WATCH_LEASE_MS / 2, now + 1_000);
    return Math.min(next ?? Number.POSITIVE_INFINITY, renewAt);
  }

  protected firstDecoyAt(from: number): Promise<number> {
    return nextDecoyBirth(this.env, this.tn, from);
  }

  protected async pushDecoysBorn(sockets: WebSocket[], from: number, now: number): Promise<number> {
    const { born, next } = await decoysBorn(this.env, this.tn, from, now);
    this.pushTo(sockets, born);
    return next;
  }

  /** This shard's live blobs and the instant they were judged live by (routes/passports.ts). */
  listAt(): { at: number; rows: StoredBlob[] } {
    const at = Date.now();
    return { at, rows: liveRows(this.rows) };
  }

  /** One of this shard's live blobs by id (or null), and the instant it was judged by. */
  getAt(id: string): { at: number; blob: Uint8Array | null } {
    const at = Date.now();
    return { at, blob: liveRow(this.rows, id) };
  }

  /** Count of this shard's live blobs (tests and operators). */
  liveCount(): number {
    return liveCount(this.rows);
  }
}
