/**
 * One BlockQueue per index block of 10^4 numbers, named `block:{indexBlockOfTn(tn)}` (storage/objects.ts,
 * stir/push-blocks.ts): a second copy of every live blob stored to a number of the block, with the
 * number beside it, so that a block query or a block subscription (RFC 8816 §5.5, §6.2) reads one
 * object instead of fanning out to up to 10,000 PassportQueues.
 *
 * Written by the number's PassportQueue on each store (`add`), read by `list` and by hibernatable
 * WebSocket subscribers (streaming-queue.ts) tagged with the sub-block they asked for. Same expiry
 * rule as the number queue: the row carries the number queue's `expires_at`, reads filter expired
 * rows, one alarm.
 *
 * Platform facts relied on: single-threaded, synchronous SQLite; about 1k requests/s per object, and
 * every store to any number of the block is one request here: that is the ceiling of a hot block
 * (docs/push-and-blocks.md).
 */
import { decoyTtlMs } from "../dummies/decoys.js";
import { blockGreetingDecoys, blockStreamTn, decoysBorn } from "../dummies/stream.js";
import { formatBlock, type NumberBlock } from "../stir/number-blocks.js";
import { MAX_BLOCK_OPEN_DIGITS } from "../stir/push-blocks.js";
import { type PushBlob, pushFrame } from "../stir/push-frames.js";
import { BLOCK_QUEUE_SCHEMA } from "../storage/layout.js";
import { StreamingQueue, type Subscription } from "./streaming-queue.js";

/** Live rows one index block keeps; beyond this `add` refuses (false) and the number queue alone has it. */
export const MAX_LIVE_PER_BLOCK = 100_000;
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

export class BlockQueue extends StreamingQueue {
  /** Live rows (over-estimate between alarms); null until first needed after a wake-up. */
  private live: number | null = null;

  protected createTables(): void {
    this.sql.exec(BLOCK_QUEUE_SCHEMA);
  }

  /** Files one blob stored to `tn` (idempotent by id) and pushes it to the sub-blocks holding `tn`. */
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
      // A number lies in exactly one sub-block per open-digit count: at most 4 tag look-ups, no
      // per-socket attachment reads on the store path.
      let frame: string | null = null;
      for (let open = 1; open <= MAX_BLOCK_OPEN_DIGITS && open < tn.length; open++) {
        const tag = formatBlock({ digits: tn.slice(0, -open), open });
        if (this.ctx.getWebSockets(tag).length === 0) continue;
        frame ??= pushFrame({ id, tn, blob });
        this.batch.add(tag, id, frame);
      }
      await this.scheduleAlarm(expiresAt);
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
    return this.sql.exec<{ e: number | null }>("SELECT min(expires_at) AS e FROM blobs").one().e;
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
