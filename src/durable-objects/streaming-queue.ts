/**
 * The lifecycle both streaming objects share, PassportQueue (one number) and BlockQueue (one index
 * block of 10^4 numbers): their WebSocket subscribers (RFC 8816 §5.5 "subscription/notification
 * interface", docs/push-and-blocks.md), one alarm for expiry and the decoy stream, admission and the
 * greeting. The base owns the runtime's handlers (fetch, alarm, webSocket*); a subclass fills a few
 * hooks for what differs: its tables, which rows expire, what a subscription asks for and holds, and
 * which decoys its streams get.
 *
 * - Frames are JSON text `{"type":"passport","id","tn","blob"}`, the same shape and length for real
 *   blobs and decoys: nothing but the callee's private key tells them apart. Stores that overlap are
 *   sent together and a busy object paces its streams (push/batch.ts); sending never blocks a store
 *   (push/send-window.ts).
 * - The subscribe path lists and accepts in one synchronous stretch, so no store falls between a new
 *   socket's snapshot and its first pushed frame; frames still held by the batch are left out of the
 *   greeting and reach the new socket with the held message, so one connection never sees an id twice.
 * - Decoys (src/dummies/stream.ts) are pushed at their births by the object's one alarm, and only while
 *   a socket is attached: an object with no subscriber schedules nothing, and an alarm costs one short
 *   wake-up, whereas a per-socket timer would keep the object from hibernating. Every socket of a
 *   stream gets the same decoy, as with a real blob, so subscribers comparing notes learn nothing.
 *
 * Platform facts relied on: single-threaded, synchronous SQLite; a hibernated object keeps its
 * accepted sockets (up to 32,768) and their attachments (at most 2,048 bytes each) and is woken for
 * messages, closes and alarms; memory is lost on hibernation, so nothing lives only in memory but the
 * anonymous greeting budget (an object that hibernated was idle, and wakes with a full one). Every
 * object here is reached by name (storage/objects.ts), and reads its name back from `ctx.id.name`.
 */
import { DurableObject } from "cloudflare:workers";
import type { StreamDecoy } from "../dummies/stream.js";
import { reportSubscribers } from "../metrics/report.js";
import { Admission, CALLEE_TAG } from "../push/admission.js";
import { PushBatch } from "../push/batch.js";
import { broadcast, closeQuietly, SendWindow } from "../push/send-window.js";
import { joinFrames, type PushBlob, pushFrame } from "../stir/push-frames.js";
import { shuffle } from "../stir/shuffle.js";
import { META_DECOY_AT, META_DECOYS_FROM } from "../storage/layout.js";

/** One subscribe, as the object's hook reads it from the upgrade. */
export interface Subscription {
  /** The socket's group: "" for every socket of the object, else its tag (a block's sub-block). */
  group: string;
  /** Kept with the socket (with its flow-control state) across hibernation. */
  attachment: Record<string, unknown>;
  /** The greeting's decoys, chosen for the stream's `from`; those dead at the greeting are left out. */
  decoys: StreamDecoy[];
  /** The live rows, read in the synchronous stretch that accepts the socket. */
  rows(): PushBlob[];
}

export abstract class StreamingQueue extends DurableObject<Env> {
  protected readonly sql: SqlStorage;
  protected readonly meta: MetaTable;
  /**
   * The alarm time we last set or read (ms), null with none, undefined until first needed in this
   * wake-up: read then, once (`alarmRead`). A start that schedules nothing (a list) never reads it, nor
   * does an alarm (none is pending while it runs); a store after the first skips the storage call.
   */
  private alarmAt: number | null | undefined = undefined;
  private alarmRead: Promise<number | null> | undefined;
  /** Accepted sockets, cached between accepts and closes (null = ask the runtime again). */
  private socketCache: WebSocket[] | null = null;
  /** Sockets already reported gone (a close and an error for one socket count once). */
  private readonly dropped = new WeakSet<WebSocket>();
  /** Characters each socket has been sent and has proven read (slow-reader cap). */
  protected readonly window = new SendWindow();
  /** Subscriber slots and the anonymous greeting budget. */
  protected readonly admission = new Admission();
  /** Frames of stores in progress or waiting for the send budget. */
  protected readonly batch = new PushBatch(
    {
      of: (group) => (group === "" ? this.sockets() : this.ctx.getWebSockets(group)),
      count: () => this.sockets().length,
    },
    this.window,
  );

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.meta = new MetaTable(this.sql);
    // Keep-alive pings are answered by the runtime without waking a hibernated object.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"));
    // Synchronous, so a start (the commonest event: most numbers are called once in a while) needs no
    // blockConcurrencyWhile; an error still goes through it, to fail this start only, not every later
    // request.
    try {
      this.createTables();
    } catch (err) {
      void ctx.blockConcurrencyWhile(async () => {
        throw err;
      });
    }
  }

  /** Creates the object's tables (runs before a subclass's own fields are set). */
  protected abstract createTables(): void;
  /** Reads a subscribe's parameters and chooses its greeting's decoys; null refuses it (400). */
  protected abstract subscription(
    params: URLSearchParams,
    from: number,
    now: number,
  ): Promise<Subscription | null>;
  /** Deletes rows expired at `now`; returns the next expiry, or null with none left. */
  protected abstract expire(now: number): number | null;
  /** When a new stream's first decoy is due, the stream having pushed everything born by `from`. */
  protected abstract firstDecoyAt(from: number): Promise<number>;
  /** Pushes the decoys born in (from, now] to `sockets`; returns the next birth to wake for. */
  protected abstract pushDecoysBorn(sockets: WebSocket[], from: number, now: number): Promise<number>;

  /** This object's name, as the runtime knows it (storage/objects.ts forms it). */
  protected get name(): string {
    const name = this.ctx.id.name;
    if (name === undefined) throw new Error("streaming objects are reached by name only");
    return name;
  }

  /**
   * A subscribe (the route checked the number or block and any credential) arrives here. Accepts a
   * hibernatable WebSocket, greets it with every live row and the live decoys (as many as a list
   * shows), then streams each new row as stored and each decoy as it is born.
   */
  override async fetch(request: Request): Promise<Response> {
    const params = new URL(request.url).searchParams;
    // `callee`: the route verified a credential covering the number or block (routes/subscriptions.ts).
    const callee = params.get("auth") === "callee";
    const refused = this.admission.admit(this.ctx, request, callee, false);
    if (refused) return refused;
    // Decoys born after `from` reach every socket from the alarm, so the greeting leaves them out.
    const now = Date.now();
    const from = Math.min(now, Number(this.meta.get(META_DECOYS_FROM) ?? now));
    const sub = await this.subscription(params, from, now);
    if (sub === null) return new Response(null, { status: 400 });
    const { 0: client, 1: server } = new WebSocketPair();
    // Checked again here, in the stretch that accepts: subscribes that ran meanwhile count. Accept,
    // list and send in one synchronous stretch: no store can fall in between.
    const late = this.admission.admit(this.ctx, request, callee, true);
    if (late) return late;
    const tags = sub.group === "" ? [] : [sub.group];
    this.ctx.acceptWebSocket(server, callee ? [...tags, CALLEE_TAG] : tags);
    this.socketCache = null;
    // The push-subscriber gauge (docs/metrics.md): a count only, in this wake-up.
    reportSubscribers(this.ctx, this.env, 1);
    const held = this.batch.heldIds(sub.group);
    const rows = sub.rows().filter((row) => !held.has(row.id));
    const at = Date.now();
    const decoys = sub.decoys.filter((d) => d.expiresAt > at);
    // One message: the live rows and decoys in random order.
    const greeting = joinFrames(shuffle([...rows, ...decoys].map((p) => pushFrame(p))));
    this.window.greet(server, greeting, sub.attachment);
    if (!callee) this.admission.charge(greeting.length);
    await this.startDecoys(from);
    return new Response(null, { status: 101, webSocket: client });
  }

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    // Subscribers only acknowledge what they read; "ping" is answered by the runtime (auto-response).
    this.window.receive(ws, message);
  }

  override async webSocketClose(ws: WebSocket, code: number): Promise<void> {
    this.drop(ws, code);
  }

  override async webSocketError(ws: WebSocket): Promise<void> {
    this.drop(ws, 1011);
  }

  private drop(ws: WebSocket, code: number): void {
    if (!this.dropped.has(ws)) {
      this.dropped.add(ws);
      reportSubscribers(this.ctx, this.env, -1);
    }
    this.socketCache = null;
    this.window.forget(ws);
    closeQuietly(ws, code);
  }

  /** Every accepted socket. */
  protected sockets(): WebSocket[] {
    this.socketCache ??= this.ctx.getWebSockets();
    return this.socketCache;
  }

  /** Sends `blobs` to `sockets` in one message each (nothing if there are none). */
  protected pushTo(sockets: WebSocket[], blobs: readonly PushBlob[]): void {
    if (blobs.length > 0) broadcast(this.window, sockets, joinFrames(blobs.map((b) => pushFrame(b))));
  }

  /** Starts the decoy stream if none is pending: the alarm pushes every decoy born after `from`. */
  private async startDecoys(from: number): Promise<void> {
    if (this.meta.get(META_DECOY_AT) !== null) return;
    this.meta.set(META_DECOYS_FROM, String(from));
    const at = await this.firstDecoyAt(from);
    this.meta.set(META_DECOY_AT, String(at));
    await this.scheduleAlarm(at);
  }

  /**
   * Pushes the decoys born since the last push, deletes expired rows, and re-arms at the earliest of
   * the next expiry and the next decoy birth: one alarm per object. With no socket left the decoy
   * stream stops and the object forgets it (an object holding nothing keeps nothing).
   */
  override async alarm(): Promise<void> {
    const now = Date.now();
    this.alarmAt = null;
    let decoyAt = Number(this.meta.get(META_DECOY_AT) ?? Number.NaN);
    const sockets = this.ctx.getWebSockets();
    if (sockets.length === 0) {
      decoyAt = Number.NaN;
      // Every row, also any an older version kept (it stored the number here).
      this.meta.clear();
    } else if (!(decoyAt > now)) {
      // Due (or, defensively, never scheduled: then nothing was born to push).
      const from = decoyAt <= now ? Number(this.meta.get(META_DECOYS_FROM) ?? now) : now;
      decoyAt = await this.pushDecoysBorn(sockets, from, now);
      this.meta.set(META_DECOYS_FROM, String(now));
      this.meta.set(META_DECOY_AT, String(decoyAt));
    }
    const expiry = this.expire(now);
    const next = Math.min(
      expiry ?? Number.POSITIVE_INFINITY,
      Number.isNaN(decoyAt) ? Number.POSITIVE_INFINITY : decoyAt,
    );
    if (Number.isFinite(next)) await this.scheduleAlarm(next);
  }

  /** Sets the alarm to `at` unless one is already set no later. */
  protected async scheduleAlarm(at: number): Promise<void> {
    if (this.alarmAt === undefined) {
      this.alarmRead ??= this.ctx.storage.getAlarm();
      const set = await this.alarmRead;
      // An alarm that ran (or a call that set one) while this read was awaited knows better.
      if (this.alarmAt === undefined) this.alarmAt = set;
    }
    if (this.alarmAt !== null && this.alarmAt <= at) return;
    await this.ctx.storage.setAlarm(at);
    this.alarmAt = at;
  }
}

/** The `meta` table (storage/layout.ts): the few facts that must survive hibernation. */
export class MetaTable {
  constructor(private readonly sql: SqlStorage) {}

  get(k: string): string | null {
    const rows = this.sql.exec<{ v: string }>("SELECT v FROM meta WHERE k = ?", k).toArray();
    return rows[0]?.v ?? null;
  }

  set(k: string, v: string): void {
    this.sql.exec("INSERT INTO meta (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v", k, v);
  }

  clear(): void {
    this.sql.exec("DELETE FROM meta");
  }
}
