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
import { newBlobId } from "../stir/blob-id.js";
import { makeDummy } from "../stir/envelope.js";
import {
  type BlockQuery,
  formatBlockQuery,
  MAX_BLOCK_OPEN_DIGITS,
  randomTnInBlock,
} from "../stir/push-blocks.js";
import { joinFrames } from "../stir/push-frames.js";
import { shuffle } from "../stir/shuffle.js";
import type { CanonicalTn } from "../stir/tn.js";
import {
  broadcast,
  checkUpgrade,
  closeQuietly,
  MetaTable,
  nextDummyDelay,
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
  /** Characters each socket has been sent and has acknowledged (slow-reader cap, push.ts). */
  private readonly window = new SendWindow();
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
    const length = query.digits.length + query.open;
    // Range scan on the tn index: every digit string starting with `digits` sorts in [digits, digits:).
    const rows = this.sql
      .exec<{ id: string; tn: string; blob: ArrayBuffer }>(
        `SELECT id, tn, blob FROM blobs
         WHERE tn >= ? AND tn < ? AND length(tn) = ? AND expires_at > ?
         ORDER BY expires_at LIMIT ?`,
        query.digits,
        `${query.digits}:`,
        length,
        Date.now(),
        MAX_BLOCK_LIST + 1,
      )
      .toArray();
    const truncated = rows.length > MAX_BLOCK_LIST;
    const blobs = rows
      .slice(0, MAX_BLOCK_LIST)
      .map((r) => ({ id: r.id, tn: r.tn, blob: new Uint8Array(r.blob) }));
    return { blobs, truncated };
  }

  /**
   * `GET /cps/blocks/{block}/subscribe` arrives here (`?block=` already validated by the route).
   * Sends every live blob of the block plus one dummy, then each new one as it is filed.
   */
  override async fetch(request: Request): Promise<Response> {
    const refused = checkUpgrade(request, this.ctx.getWebSockets().length);
    if (refused) return refused;
    const url = new URL(request.url);
    const digits = url.searchParams.get("digits") ?? "";
    const open = Number(url.searchParams.get("open"));
    if (!/^[0-9]{1,15}$/.test(digits) || !Number.isInteger(open) || open < 1 || open > 4) {
      return new Response(null, { status: 400 });
    }
    const query: BlockQuery = { digits, open };
    const dummy = await this.dummyFrame(query);
    const { 0: client, 1: server } = new WebSocketPair();
    // The tag is the sub-block: `add` finds its sockets by tag without reading attachments. Accept,
    // list and send in one synchronous stretch; the greeting is one message, the live blobs and a
    // fresh dummy in random order.
    const tag = formatBlockQuery(query);
    this.ctx.acceptWebSocket(server, [tag]);
    server.serializeAttachment({ v: 1, digits, open } satisfies Attachment);
    // Frames still held for this sub-block go to this socket with the held message.
    const held = this.batch.heldIds(tag);
    const blobs = this.list(query).blobs.filter((b) => !held.has(b.id));
    this.window.greet(server, joinFrames(shuffle([...blobs.map((b) => pushFrame(b)), dummy])));
    await this.scheduleDummies();
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

  /** Expiry plus stream dummies, exactly as PassportQueue.alarm; one dummy per distinct sub-block. */
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
    } else if (!(dummyAt > now)) {
      if (dummyAt <= now) await this.sendDummies(sockets);
      dummyAt = Date.now() + nextDummyDelay();
      this.meta.set("dummyAt", String(dummyAt));
    }
    const expiry = this.sql.exec<{ e: number | null }>("SELECT min(expires_at) AS e FROM blobs").one().e;
    const next = Math.min(
      expiry ?? Number.POSITIVE_INFINITY,
      Number.isNaN(dummyAt) ? Number.POSITIVE_INFINITY : dummyAt,
    );
    if (Number.isFinite(next)) await this.scheduleAlarm(next);
  }

  private async sendDummies(sockets: WebSocket[]): Promise<void> {
    const groups = new Map<string, { query: BlockQuery; sockets: WebSocket[] }>();
    for (const ws of sockets) {
      const query = queryOf(ws);
      if (!query) continue;
      const key = formatBlockQuery(query);
      const group = groups.get(key) ?? { query, sockets: [] };
      group.sockets.push(ws);
      groups.set(key, group);
    }
    for (const { query, sockets: group } of groups.values()) {
      broadcast(this.window, group, await this.dummyFrame(query));
    }
  }

  private async dummyFrame(query: BlockQuery): Promise<string> {
    const tn = randomTnInBlock(query);
    return pushFrame({ id: newBlobId(), tn, blob: await makeDummy(tn as CanonicalTn) });
  }

  private async scheduleDummies(): Promise<void> {
    if (this.meta.get("dummyAt") !== null) return;
    const at = Date.now() + nextDummyDelay();
    this.meta.set("dummyAt", String(at));
    await this.scheduleAlarm(at);
  }

  private async scheduleAlarm(at: number): Promise<void> {
    if (this.alarmAt !== null && this.alarmAt <= at) return;
    await this.ctx.storage.setAlarm(at);
    this.alarmAt = at;
  }
}
