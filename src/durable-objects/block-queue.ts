/**
 * One BlockQueue per index block of 10^4 numbers (`idFromName("block:" + indexBlockOfTn(tn))`, see
 * stir/push-blocks.ts): a second copy of every live blob stored to a number of the block, with the
 * number beside it, so that a block query or a block subscription (RFC 8816 §5.5, §6.2) reads one
 * object instead of fanning out to up to 10,000 PassportQueues.
 *
 * Written by the number's PassportQueue on each store (`add`), read by `list` and by hibernatable
 * WebSocket subscribers whose attachment holds the sub-block they asked for. Same expiry rule as the
 * number queue: the row carries the number queue's `expires_at`, reads filter expired rows, one alarm.
 *
 * Platform facts relied on: single-threaded, synchronous SQLite; about 1k requests/s per object, and
 * every store to any number of the block is one request here: that is the ceiling of a hot block
 * (docs/push-and-blocks.md).
 */
import { DurableObject } from "cloudflare:workers";
import { blockDecoys, coverTn, decoysFor, decoyTtlMs } from "../dummies/decoys.js";
import { type BlockQuery, formatBlockQuery, MAX_BLOCK_OPEN_DIGITS } from "../stir/push-blocks.js";
import { joinFrames } from "../stir/push-frames.js";
import { shuffle } from "../stir/shuffle.js";
import {
  Admission,
  broadcast,
  CALLEE_TAG,
  closeQuietly,
  MetaTable,
  PushBatch,
  type PushBlob,
  pushFrame,
  SendWindow,
} from "./push.js";

/** Live rows one index block keeps; beyond this `add` refuses (false) and the number queue alone has it. */
export const MAX_LIVE_PER_BLOCK = 100_000;
/** Most blobs one block answer carries (~14 MB of JSON); the rest is flagged `truncated`. */
export const MAX_BLOCK_LIST = 10_000;

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS blobs (
    id TEXT PRIMARY KEY,
    tn TEXT NOT NULL,
    blob BLOB NOT NULL,
    expires_at INTEGER NOT NULL
  );
  CREATE INDEX IF NOT EXISTS blobs_expires_at ON blobs (expires_at);
  CREATE INDEX IF NOT EXISTS blobs_tn ON blobs (tn);
  ${MetaTable.SCHEMA}
`;

interface Attachment {
  v: 1;
  digits: string;
  open: number;
}

function queryOf(ws: WebSocket): BlockQuery | null {
  const a = ws.deserializeAttachment() as Attachment | null;
  return a && a.v === 1 ? { digits: a.digits, open: a.open } : null;
}

export class BlockQueue extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private readonly meta: MetaTable;
  private alarmAt: number | null = null;
  /** Live rows (over-estimate between alarms); null until first needed after a wake-up. */
  private live: number | null = null;
  /** Characters each socket has been sent and has proven read (slow-reader cap, push.ts). */
  private readonly window = new SendWindow();
  /** Subscriber slots and the anonymous greeting budget (push.ts). */
  private readonly admission = new Admission();
  /** Frames of adds in progress or waiting for the send budget (push.ts). */
  private readonly batch = new PushBatch(
    { of: (tag) => this.ctx.getWebSockets(tag), count: () => this.ctx.getWebSockets().length },
    this.window,
  );

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.meta = new MetaTable(this.sql);
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"));
    void ctx.blockConcurrencyWhile(async () => {
      this.sql.exec(SCHEMA);
      this.alarmAt = await ctx.storage.getAlarm();
    });
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
        const tag = formatBlockQuery({ digits: tn.slice(0, -open), open });
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
  list(query: BlockQuery): { blobs: PushBlob[]; truncated: boolean } {
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

  /** The numbers of the rows `list(query)` returns, in its order, without copying their blobs. */
  private tnsOf(query: BlockQuery): string[] {
    return this.rowsOf<{ tn: string }>("tn", query, MAX_BLOCK_LIST).map((r) => r.tn);
  }

  /** `columns` of the first `limit` live rows of `query`'s numbers, oldest first. */
  private rowsOf<T extends Record<string, SqlStorageValue>>(
    columns: string,
    query: BlockQuery,
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
   * `GET /cps/blocks/{block}/subscribe` arrives here (`?block=` already validated by the route).
   * Sends every live blob of the block with the live decoys of their numbers and of the block's cover
   * number (src/dummies/decoys.ts `blockDecoys`, as a block answer), then each new blob as it is filed
   * and each cover decoy as it is born.
   */
  override async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    // `callee`: the route verified a credential covering the block (routes/blocks.ts).
    const callee = url.searchParams.get("auth") === "callee";
    const refused = this.admission.admit(this.ctx, request, callee, false);
    if (refused) return refused;
    const digits = url.searchParams.get("digits") ?? "";
    const open = Number(url.searchParams.get("open"));
    if (!/^[0-9]{1,15}$/.test(digits) || !Number.isInteger(open) || open < 1 || open > 4) {
      return new Response(null, { status: 400 });
    }
    const query: BlockQuery = { digits, open };
    // Cover decoys born after `from` come from the alarm, so the greeting leaves them out.
    const now = Date.now();
    const from = Math.min(now, Number(this.meta.get("decoysFrom") ?? now));
    const { decoys, cover } = await blockDecoys(this.env, digits, open, this.tnsOf(query), now);
    const { 0: client, 1: server } = new WebSocketPair();
    // The tag is the sub-block: `add` finds its sockets by tag without reading attachments. Accept,
    // list and send in one synchronous stretch; the greeting is one message, the live blobs and the
    // decoys in random order.
    const tag = formatBlockQuery(query);
    // Checked again here, in the stretch that accepts: subscribes that ran meanwhile count.
    const late = this.admission.admit(this.ctx, request, callee, true);
    if (late) return late;
    this.ctx.acceptWebSocket(server, callee ? [tag, CALLEE_TAG] : [tag]);
    // Written to the socket by `greet`, with its flow-control state.
    const attachment = { v: 1, digits, open } satisfies Attachment;
    // Frames still held for this sub-block go to this socket with the held message.
    const held = this.batch.heldIds(tag);
    // Every live blob: a reconnecting subscriber misses none (decoys come for up to
    // MAX_BLOCK_DECOY_NUMBERS numbers, as in a block answer).
    const blobs = this.list(query).blobs.filter((b) => !held.has(b.id));
    const at = Date.now();
    const dummies = decoys
      .filter((d) => d.expiresAt > at && (d.tn !== cover || d.birth <= from))
      .map((d) => pushFrame({ id: d.id, tn: d.tn, blob: d.blob }));
    const greeting = joinFrames(shuffle([...blobs.map((b) => pushFrame(b)), ...dummies]));
    this.window.greet(server, greeting, attachment);
    if (!callee) this.admission.charge(greeting.length);
    await this.scheduleDummies(from);
    return new Response(null, { status: 101, webSocket: client });
  }

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    // Only acknowledgements; "ping" is answered by the runtime.
    this.window.receive(ws, message);
  }

  override async webSocketClose(ws: WebSocket, code: number): Promise<void> {
    this.window.forget(ws);
    closeQuietly(ws, code);
  }

  override async webSocketError(ws: WebSocket): Promise<void> {
    this.window.forget(ws);
    closeQuietly(ws, 1011);
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

  /**
   * Expiry plus stream dummies, exactly as PassportQueue.alarm: each sub-block with sockets gets the
   * cover decoys born since the last push.
   */
  override async alarm(): Promise<void> {
    const now = Date.now();
    this.sql.exec("DELETE FROM blobs WHERE expires_at <= ?", now);
    this.live = null;
    this.alarmAt = null;
    let dummyAt = Number(this.meta.get("dummyAt") ?? Number.NaN);
    const sockets = this.ctx.getWebSockets();
    if (sockets.length === 0) {
      dummyAt = Number.NaN;
      this.meta.set("dummyAt", null);
      this.meta.set("decoysFrom", null);
    } else if (!(dummyAt > now)) {
      const from = Number(this.meta.get("decoysFrom") ?? now);
      dummyAt = await this.sendDummies(sockets, dummyAt <= now ? from : now, now);
      this.meta.set("decoysFrom", String(now));
      this.meta.set("dummyAt", String(dummyAt));
    }
    const expiry = this.sql.exec<{ e: number | null }>("SELECT min(expires_at) AS e FROM blobs").one().e;
    const next = Math.min(
      expiry ?? Number.POSITIVE_INFINITY,
      Number.isNaN(dummyAt) ? Number.POSITIVE_INFINITY : dummyAt,
    );
    if (Number.isFinite(next)) await this.scheduleAlarm(next);
  }

  /**
   * Pushes each sub-block's cover decoys born in (from, now] to its sockets; returns the next cover
   * decoy birth over all sub-blocks with sockets.
   */
  private async sendDummies(sockets: WebSocket[], from: number, now: number): Promise<number> {
    const groups = new Map<string, { query: BlockQuery; sockets: WebSocket[] }>();
    for (const ws of sockets) {
      const query = queryOf(ws);
      if (!query) continue;
      const key = formatBlockQuery(query);
      const group = groups.get(key) ?? { query, sockets: [] };
      group.sockets.push(ws);
      groups.set(key, group);
    }
    const ttlMs = decoyTtlMs(this.env);
    const all = decoysFor(this.env);
    let next = now + ttlMs;
    for (const { query, sockets: group } of groups.values()) {
      const tn = await coverTn(this.env, query.digits, query.open);
      const decoys = await all.bornIn(tn, ttlMs, from, now);
      if (decoys.length > 0) {
        broadcast(
          this.window,
          group,
          joinFrames(decoys.map((d) => pushFrame({ id: d.id, tn, blob: d.blob }))),
        );
      }
      next = Math.min(next, await all.schedule(tn, ttlMs).nextBirthAfter(now));
    }
    return next;
  }

  /** Starts the cover-decoy stream if none is pending (the alarm pushes births after `from`). */
  private async scheduleDummies(from: number): Promise<void> {
    if (this.meta.get("dummyAt") !== null) return;
    this.meta.set("decoysFrom", String(from));
    this.meta.set("dummyAt", String(from));
    // Due at once: the alarm pushes what was born since `from` (nothing) and finds the next birth.
    await this.scheduleAlarm(from);
  }

  private async scheduleAlarm(at: number): Promise<void> {
    if (this.alarmAt !== null && this.alarmAt <= at) return;
    await this.ctx.storage.setAlarm(at);
    this.alarmAt = at;
  }
}
