/**
 * One BlockQueue per index block of 10^4 numbers, named `block:{indexBlockOfTn(tn)}` (storage/objects.ts,
 * stir/push-blocks.ts): where the live blobs of every number of the block are kept, with the number
 * beside each (RFC 8816 §6, §9). A store, a list and a fetch by id of one number are each one call
 * here (`storeNumber`, `listNumberAt`, `getNumberAt`), and a block query or a block subscription
 * (RFC 8816 §5.5, §6.2) reads the same rows: one object, no fan-out over 10,000 numbers, and no object
 * (nor SQLite database) per number for the numbers nobody subscribes to, which are nearly all.
 *
 * A hot number (HOT_NUMBERS) keeps its blobs in the PassportQueues of its shards instead, which file a
 * copy of each here (`add`), so block queries and block sockets see them; its own retrievals read the
 * shards. A number's reads here take its copies too, so a number no longer hot keeps its live blobs.
 *
 * Push: block sockets (streaming-queue.ts) are tagged with the sub-block they asked for; a number's own
 * subscribers are on its PassportQueue, which asks this object to `watch` the number: while the lease
 * holds, each store to the number is forwarded to it (`pushStored`).
 *
 * Expiry: the rows carry `expires_at`, reads filter expired rows, and one alarm deletes them, set on a
 * {@link EXPIRY_GRAIN_MS} grid so that a busy block wakes once per grain, not once per store.
 *
 * Platform facts relied on: single-threaded, synchronous SQLite; about 1k requests/s per object, and
 * every store to any number of the block is one request here: that is the ceiling of a hot block
 * (docs/push-and-blocks.md, docs/capacity.md).
 */

import { readConfig } from "../config.js";
import { decoyTtlMs } from "../dummies/decoys.js";
import { blockGreetingDecoys, blockStreamTn, decoysBorn } from "../dummies/stream.js";
import { logEvent } from "../log.js";
import { formatBlock, type NumberBlock } from "../stir/number-blocks.js";
import { MAX_BLOCK_OPEN_DIGITS } from "../stir/push-blocks.js";
import { type PushBlob, pushFrame } from "../stir/push-frames.js";
import type { CanonicalTn } from "../stir/tn.js";
import { createBlockQueueTables } from "../storage/layout.js";
import { passportQueue } from "../storage/objects.js";
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

/**
 * Live rows (of any number) beyond which `add` refuses a hot shard's copy (false; the shard alone has
 * the blob). A number's own stores are never refused for the block's sake: one number's flood must
 * not fill its neighbours' queues (each number has MAX_LIVE_PER_NUMBER).
 */
export const MAX_LIVE_PER_BLOCK = 100_000;
/** Expiry alarms fall on this grid (ms): a row is deleted at most this long after it stopped being served. */
export const EXPIRY_GRAIN_MS = 5_000;
/** How long a `watch` lasts (ms); the number's PassportQueue renews it while it has subscribers. */
export const WATCH_LEASE_MS = 10 * 60_000;
/** Most blobs one block answer carries (~14 MB of JSON); the rest is flagged `truncated`. */
export const MAX_BLOCK_LIST = 10_000;

/** A block socket's attachment: the sub-block it asked for. */
interface Attachment {
  v: 1;
  digits: string;
  open: number;
}

function blockOf(ws: WebSocket): NumberBlock | null {
  const a = ws.deserializeAttachment() as Attachment | null;
  return a && a.v === 1 ? { digits: a.digits, open: a.open } : null;
}

/** The first grid instant at or after `at` (EXPIRY_GRAIN_MS). */
function onGrid(at: number): number {
  return Math.ceil(at / EXPIRY_GRAIN_MS) * EXPIRY_GRAIN_MS;
}

export class BlockQueue extends StreamingQueue {
  /** Live rows (over-estimate between alarms); null until first needed after a wake-up. */
  private live: number | null = null;
  /** Watched numbers and their lease ends (ms), from the `watched` table; null until first needed. */
  private watchers: Map<string, number> | null = null;
  /** Per number, the ids whose forward to its PassportQueue has not answered yet (see `watch`). */
  private readonly forwarding = new Map<string, Set<string>>();

  protected createTables(): void {
    createBlockQueueTables(this.sql);
  }

  private numberRows(tn: string): NumberRows {
    return { sql: this.sql, table: "blobs", tn };
  }

  /**
   * `POST /cps/{tn}/ppts` (routes/passports.ts): stores one blob to `tn` unless the number already
   * holds MAX_LIVE_PER_NUMBER live blobs (number-rows.ts), pushes it to the sub-blocks' sockets and,
   * while the number is watched, to its own subscribers.
   */
  async storeNumber(tn: CanonicalTn, blob: Uint8Array, retryKey?: string): Promise<StoreResult> {
    const { ttlSeconds, maxLivePerNumber } = readConfig(this.env);
    const result = storeRow(this.numberRows(tn), blob, retryKey, { ttlSeconds, maxLive: maxLivePerNumber });
    if (!result.ok || result.repeat) return result;
    if (this.live !== null) this.live++;
    const { id, expiresAt } = result;
    // Not awaited (forward never throws): the answer's timing must not tell a storer that the number
    // has subscribers, and a slow queue must not hold this block's pushes of other numbers.
    this.ctx.waitUntil(this.forward(tn, id, blob, expiresAt));
    this.batch.begin();
    try {
      this.pushToBlocks(tn, id, blob);
      await this.scheduleAlarm(onGrid(expiresAt));
    } finally {
      this.batch.settle();
    }
    return result;
  }

  /**
   * Every live blob of `tn` and the instant they were judged live by. The route judges the number's
   * decoys at that same instant, so a real row and a decoy near the end of its life are treated alike.
   */
  listNumberAt(tn: CanonicalTn): { at: number; rows: StoredBlob[] } {
    const at = Date.now();
    return { at, rows: liveRows(this.numberRows(tn)) };
  }

  /** One live blob of `tn` by id (or null), and the instant it was judged by (see `listNumberAt`). */
  getNumberAt(tn: CanonicalTn, id: string): { at: number; blob: Uint8Array | null } {
    const at = Date.now();
    return { at, blob: liveRow(this.numberRows(tn), id) };
  }

  /** Count of `tn`'s live blobs (tests and operators; reveals nothing a list would not). */
  numberLiveCount(tn: CanonicalTn): number {
    return liveCount(this.numberRows(tn));
  }

  /**
   * The number's PassportQueue has subscribers: from now until `until` each store to `tn` is
   * forwarded to it. Returns the number's live blobs stored at or after `storedSince` (0: all; a
   * renewal passes the end of the lease it held, so it gets only what was stored while that lease had
   * lapsed, never forwarded), less those whose forward is still on its way (they reach the queue as
   * pushes), so that, with the pushes it records while this call is out, the queue greets a new socket
   * with every blob exactly once (passport-queue.ts).
   */
  async watch(tn: CanonicalTn, until: number, storedSince = 0): Promise<ExpiringBlob[]> {
    const watchers = this.watchersNow();
    const renewed = (watchers.get(tn) ?? 0) < until;
    if (renewed) {
      watchers.set(tn, until);
      this.sql.exec(
        "INSERT INTO watched (tn, until) VALUES (?, ?) ON CONFLICT (tn) DO UPDATE SET until = excluded.until",
        tn,
        until,
      );
    }
    // Read in the same synchronous stretch as the lease is set: a store is either listed or forwarded.
    const inFlight = this.forwarding.get(tn);
    const rows = liveRows(
      this.numberRows(tn),
      expiresIfStoredAt(storedSince, readConfig(this.env).ttlSeconds),
    );
    const answer = inFlight === undefined ? rows : rows.filter((r) => !inFlight.has(r.id));
    // The alarm forgets the lease once it ends (an object holding nothing keeps nothing).
    if (renewed) await this.scheduleAlarm(onGrid(until));
    return answer;
  }

  private watchersNow(): Map<string, number> {
    if (this.watchers === null) {
      const rows = this.sql
        .exec<{ tn: string; until: number }>("SELECT tn, until FROM watched WHERE until > ?", Date.now())
        .toArray();
      this.watchers = new Map(rows.map((r) => [r.tn, r.until]));
    }
    return this.watchers;
  }

  /**
   * Sends a new blob of a watched number to its PassportQueue. Never throws, and the store does not
   * wait for it: the row is in (a greeting lists it), and a failed forward is logged.
   */
  private async forward(tn: CanonicalTn, id: string, blob: Uint8Array, expiresAt: number): Promise<void> {
    if (!((this.watchersNow().get(tn) ?? 0) > Date.now())) return;
    const inFlight = this.forwarding.get(tn) ?? new Set<string>();
    this.forwarding.set(tn, inFlight);
    inFlight.add(id);
    try {
      await passportQueue(this.env, tn).pushStored({ id, tn, blob }, expiresAt);
    } catch {
      logEvent({ event: "push_forward_failed", code: "PUSH_FORWARD_FAILED" });
    } finally {
      inFlight.delete(id);
      if (inFlight.size === 0) this.forwarding.delete(tn);
    }
  }

  /** A number lies in exactly one sub-block per open-digit count: at most 4 tag look-ups. */
  private pushToBlocks(tn: string, id: string, blob: Uint8Array): void {
    let frame: string | null = null;
    for (let open = 1; open <= MAX_BLOCK_OPEN_DIGITS && open < tn.length; open++) {
      const tag = formatBlock({ digits: tn.slice(0, -open), open });
      if (this.ctx.getWebSockets(tag).length === 0) continue;
      frame ??= pushFrame({ id, tn, blob });
      this.batch.add(tag, id, frame);
    }
  }

  /**
   * Files a copy of one blob a hot number's shard stored (idempotent by id) and pushes it to the
   * sub-blocks holding `tn`.
   */
  async add(tn: string, id: string, blob: Uint8Array, expiresAt: number): Promise<boolean> {
    // Counted once per wake-up, then kept in memory (an over-estimate until the alarm recounts): a
    // count(*) per add would cost O(live rows) on every store to the block.
    this.live ??= this.countLive();
    if (this.live >= MAX_LIVE_PER_BLOCK) return false;
    this.sql.exec(
      "INSERT OR IGNORE INTO blobs (id, tn, blob, expires_at) VALUES (?, ?, ?, ?)",
      id,
      tn,
      blob,
      expiresAt,
    );
    this.live++;
    this.batch.begin();
    try {
      this.pushToBlocks(tn, id, blob);
      await this.scheduleAlarm(onGrid(expiresAt));
    } finally {
      this.batch.settle();
    }
    return true;
  }

  /** Live blobs of the numbers in `query` (which must lie in this index block), oldest first. */
  list(query: NumberBlock): { blobs: PushBlob[]; truncated: boolean } {
    const rows = this.rowsOf<{ id: string; tn: string; blob: ArrayBuffer }>(
      "id, tn, blob",
      query,
      MAX_BLOCK_LIST + 1,
    );
    const truncated = rows.length > MAX_BLOCK_LIST;
    const blobs = rows
      .slice(0, MAX_BLOCK_LIST)
      .map((r) => ({ id: r.id, tn: r.tn, blob: new Uint8Array(r.blob) }));
    return { blobs, truncated };
  }

  /** `columns` of the first `limit` live rows of `query`'s numbers, oldest first. */
  private rowsOf<T extends Record<string, SqlStorageValue>>(
    columns: string,
    query: NumberBlock,
    limit: number,
  ): T[] {
    // Range scan on the tn index: every digit string starting with `digits` sorts in [digits, digits:).
    return this.sql
      .exec<T>(
        `SELECT ${columns} FROM blobs
         WHERE tn >= ? AND tn < ? AND length(tn) = ? AND expires_at > ?
         ORDER BY expires_at LIMIT ?`,
        query.digits,
        `${query.digits}:`,
        query.digits.length + query.open,
        Date.now(),
        limit,
      )
      .toArray();
  }

  /**
   * `GET /cps/blocks/{block}/subscribe` (routes/blocks.ts; `?digits=&open=` already validated there).
   * The socket's tag is its sub-block: `add` finds its sockets by tag without reading attachments. The
   * greeting holds every live blob of the sub-block (a reconnecting subscriber misses none) with the
   * decoys a block answer carries; then the stream carries each new blob and each cover decoy born.
   */
  protected async subscription(
    params: URLSearchParams,
    from: number,
    now: number,
  ): Promise<Subscription | null> {
    const digits = params.get("digits") ?? "";
    const open = Number(params.get("open"));
    if (!/^[0-9]{1,15}$/.test(digits) || !Number.isInteger(open) || open < 1 || open > 4) return null;
    const query: NumberBlock = { digits, open };
    // The numbers of the rows `list(query)` returns, without copying their blobs.
    const tns = this.rowsOf<{ tn: string }>("tn", query, MAX_BLOCK_LIST).map((r) => r.tn);
    return {
      group: formatBlock(query),
      attachment: { v: 1, digits, open } satisfies Attachment,
      decoys: await blockGreetingDecoys(this.env, query, tns, from, now),
      rows: () => this.list(query).blobs,
    };
  }

  /** Count of live rows (tests and operators). */
  async liveCount(): Promise<number> {
    return this.countLive();
  }

  private countLive(): number {
    return this.sql
      .exec<{ n: number }>("SELECT count(*) AS n FROM blobs WHERE expires_at > ?", Date.now())
      .one().n;
  }

  protected expire(now: number): number | null {
    this.sql.exec("DELETE FROM blobs WHERE expires_at <= ?", now);
    this.live = null;
    this.sql.exec("DELETE FROM watched WHERE until <= ?", now);
    this.watchers = null;
    const next = this.sql
      .exec<{ e: number | null; u: number | null }>(
        "SELECT (SELECT min(expires_at) FROM blobs) AS e, (SELECT min(until) FROM watched) AS u",
      )
      .one();
    const at = Math.min(next.e ?? Number.POSITIVE_INFINITY, next.u ?? Number.POSITIVE_INFINITY);
    return Number.isFinite(at) ? onGrid(at) : null;
  }

  /** Due at once: the alarm pushes what was born since `from` (nothing) and finds the next birth. */
  protected async firstDecoyAt(from: number): Promise<number> {
    return from;
  }

  /**
   * Each sub-block with sockets gets its cover number's decoys born in (from, now]; returns the next
   * cover decoy birth over all of them.
   */
  protected async pushDecoysBorn(sockets: WebSocket[], from: number, now: number): Promise<number> {
    const groups = new Map<string, { block: NumberBlock; sockets: WebSocket[] }>();
    for (const ws of sockets) {
      const block = blockOf(ws);
      if (!block) continue;
      const key = formatBlock(block);
      const group = groups.get(key) ?? { block, sockets: [] };
      group.sockets.push(ws);
      groups.set(key, group);
    }
    let next = now + decoyTtlMs(this.env);
    for (const { block, sockets: group } of groups.values()) {
      const { born, next: birth } = await decoysBorn(
        this.env,
        await blockStreamTn(this.env, block),
        from,
        now,
      );
      this.pushTo(group, born);
      next = Math.min(next, birth);
    }
    return next;
  }
}
