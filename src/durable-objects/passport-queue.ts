/**
 * One PassportQueue per canonical called number (`idFromName(tn)`): the short-lived queue of sealed
 * blobs stored under that number (RFC 8816 §6, §9). It only ever sees opaque blobs, random ids and
 * expiry times: nothing about who stored them (docs/design.md invariants 1 and 3).
 *
 * Push (RFC 8816 §5.5, docs/push-and-blocks.md): it also serves the number's WebSocket subscribers
 * (hibernation API, see push.ts) and files every stored blob in the number's index block (BlockQueue)
 * so that block retrieval reads one object instead of 10^4.
 *
 * Platform facts relied on: a Durable Object is single-threaded, so the count-then-insert below cannot
 * race; SQLite calls are synchronous inside it; about 1k requests/s per object is the planning figure.
 * The subscribe path lists and accepts in one synchronous stretch, so no store falls between a new
 * subscriber's snapshot and its first pushed frame; blobs whose frames are still held (push.ts
 * PushBatch) are left out of the snapshot and reach the new socket with the held message, so one
 * connection never sees an id twice.
 *
 * Retried stores: a store whose retry key (from the storage-token check: a hash of number, blob and
 * K_temp signature, so only the same request sent again repeats it) matches a live row's is that
 * store sent again after a lost answer, so it gets the id and expiry it already has and is neither
 * stored, pushed nor filed twice. Never matched on the bytes alone: anyone can copy a listed blob, and
 * "same id back" for a real blob but "new id" for a decoy was a re-store oracle (issue 13 finding 5).
 * The key lives in the `digest` column (16 bytes, NULL for untokened stores).
 *
 * Dummies are the number's decoys (src/dummies/decoys.ts), computed, not stored: the greeting carries
 * the ones live, and the alarm pushes each one as it is born, as a store pushes a real blob.
 */
import { DurableObject } from "cloudflare:workers";
import { readConfig } from "../config.js";
import { decoysFor, decoyTtlMs, liveDecoys } from "../dummies/decoys.js";
import { logEvent } from "../log.js";
import { decodeBase64url } from "../stir/base64url.js";
import { newBlobId } from "../stir/blob-id.js";
import { indexBlockOfTn } from "../stir/push-blocks.js";
import { joinFrames } from "../stir/push-frames.js";
import { shuffle } from "../stir/shuffle.js";
import { type CanonicalTn, isCanonicalTn } from "../stir/tn.js";
import { blockQueue } from "../storage/objects.js";
import {
  Admission,
  broadcast,
  CALLEE_TAG,
  closeQuietly,
  MetaTable,
  PushBatch,
  pushFrame,
  SendWindow,
} from "./push.js";

export interface StoredBlob {
  id: string;
  blob: Uint8Array;
}

export type StoreResult =
  /** `repeat`: the same request was already stored under this id (a retried store). */
  | { ok: true; id: string; expiresAt: number; repeat: boolean }
  | { ok: false; code: "QUEUE_FULL"; retryAfterSeconds: number };

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS ppts (
    id TEXT PRIMARY KEY,
    blob BLOB NOT NULL,
    expires_at INTEGER NOT NULL,
    digest BLOB
  );
  CREATE INDEX IF NOT EXISTS ppts_expires_at ON ppts (expires_at);
  CREATE INDEX IF NOT EXISTS ppts_digest ON ppts (digest);
  ${MetaTable.SCHEMA}
`;
/**
 * Creates the tables, or brings a `ppts` table made before the digest column (retried stores) up to
 * date. The common start runs the schema alone: only when its digest index fails on an old table is
 * the column added, so a cold object (most numbers) pays nothing for the migration, and an object
 * that never stored keeps no rows at all.
 */
export function applySchema(sql: SqlStorage): void {
  try {
    sql.exec(SCHEMA);
  } catch {
    const columns = sql.exec<{ name: string }>("PRAGMA table_info(ppts)").toArray();
    if (!columns.some((c) => c.name === "digest")) sql.exec("ALTER TABLE ppts ADD COLUMN digest BLOB");
    sql.exec(SCHEMA);
  }
}

/** The BlockQueue a number's blobs are also filed in. */
export function blockQueueFor(env: Env, tn: string) {
  return blockQueue(env, indexBlockOfTn(tn));
}

export class PassportQueue extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  /** The alarm time we last set (ms), or null: saves a storage round trip per store. */
  private alarmAt: number | null = null;
  private readonly meta: MetaTable;
  /** This object's number, learnt from the first store or subscribe that names it (kept in meta). */
  private tn: string | null = null;
  /** Accepted sockets, cached between accepts and closes (null = ask the runtime again). */
  private sockets: WebSocket[] | null = null;
  /** Characters each socket has been sent and has proven read (slow-reader cap, push.ts). */
  private readonly window = new SendWindow();
  /** Subscriber slots and the anonymous greeting budget (push.ts). */
  private readonly admission = new Admission();
  /** Frames of stores in progress or waiting for the send budget (push.ts). */
  private readonly batch = new PushBatch(
    { of: () => this.socketList(), count: () => this.socketList().length },
    this.window,
  );

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.meta = new MetaTable(this.sql);
    // Keep-alive pings are answered by the runtime without waking a hibernated object.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"));
    // Errors escape blockConcurrencyWhile and fail this start only, not every later request.
    void ctx.blockConcurrencyWhile(async () => {
      applySchema(this.sql);
      this.tn = this.meta.get("tn");
      this.alarmAt = await ctx.storage.getAlarm();
    });
  }

  /**
   * Stores one blob until now + TTL, unless the number already holds the maximum live blobs. With `tn`
   * (the route always passes it) the blob is also pushed to subscribers and filed in its index block.
   */
  async store(blob: Uint8Array, tn?: CanonicalTn, retryKey?: string): Promise<StoreResult> {
    const { ttlSeconds, maxLivePerNumber } = readConfig(this.env);
    const digest = retryKey === undefined ? null : decodeBase64url(retryKey);
    // From here to the insert nothing awaits: the check and the insert cannot interleave.
    const now = Date.now();
    const same =
      digest === null
        ? undefined
        : this.sql
            .exec<{ id: string; expires_at: number }>(
              "SELECT id, expires_at FROM ppts WHERE digest = ? AND expires_at > ?",
              digest,
              now,
            )
            .toArray()[0];
    if (same) return { ok: true, id: same.id, expiresAt: same.expires_at, repeat: true };
    const live = this.sql
      .exec<{ n: number }>("SELECT count(*) AS n FROM ppts WHERE expires_at > ?", now)
      .one().n;
    if (live >= maxLivePerNumber) {
      const oldest = this.sql
        .exec<{ e: number }>("SELECT min(expires_at) AS e FROM ppts WHERE expires_at > ?", now)
        .one().e;
      return {
        ok: false,
        code: "QUEUE_FULL",
        retryAfterSeconds: Math.max(1, Math.ceil((oldest - now) / 1000)),
      };
    }
    const id = newBlobId();
    const expiresAt = now + ttlSeconds * 1000;
    this.sql.exec(
      "INSERT INTO ppts (id, blob, expires_at, digest) VALUES (?, ?, ?, ?)",
      id,
      blob,
      expiresAt,
      digest,
    );
    if (tn !== undefined) this.rememberTn(tn);
    this.batch.begin();
    try {
      if (this.tn !== null) {
        if (this.socketList().length > 0) this.batch.add("", id, pushFrame({ id, tn: this.tn, blob }));
      }
      await Promise.all([
        this.scheduleAlarm(expiresAt),
        tn !== undefined && this.env.PUSH_BLOCK_INDEX !== "false"
          ? this.fileInBlock(tn, id, blob, expiresAt)
          : undefined,
      ]);
    } finally {
      // This store's frame, with those of stores that came in while it waited (push.ts PushBatch).
      this.batch.settle();
    }
    return { ok: true, id, expiresAt, repeat: false };
  }

  /**
   * Files the blob in its index block. Awaited (a block query right after a 201 sees the blob) but in
   * parallel with the alarm write; one retry, then logged: the number's own queue stays authoritative
   * and the store is not failed, since a retried store would duplicate the blob.
   */
  private async fileInBlock(tn: string, id: string, blob: Uint8Array, expiresAt: number): Promise<void> {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const filed = await blockQueueFor(this.env, tn).add(tn, id, blob, expiresAt);
        if (!filed) logEvent({ event: "block_full", code: "BLOCK_FULL" });
        return;
      } catch {
        // retried once below
      }
    }
    logEvent({ event: "block_file_failed", code: "BLOCK_FILE_FAILED" });
  }

  private rememberTn(tn: string): void {
    if (this.tn === tn) return;
    this.tn = tn;
    this.meta.set("tn", tn);
  }

  /**
   * `GET /cps/{tn}/subscribe` arrives here (routes/subscriptions.ts, `?tn=` canonical). Accepts a
   * hibernatable WebSocket, sends every live blob plus the number's live decoys (as many as a list
   * shows, issue 13 finding 4), then each new blob as stored and each decoy as it is born.
   */
  override async fetch(request: Request): Promise<Response> {
    const params = new URL(request.url).searchParams;
    // `callee`: the route verified a credential covering the number (routes/subscriptions.ts).
    const callee = params.get("auth") === "callee";
    const refused = this.admission.admit(this.ctx, request, callee, false);
    if (refused) return refused;
    const tn = params.get("tn") ?? "";
    if (!isCanonicalTn(tn)) return new Response(null, { status: 400 });
    this.rememberTn(tn);
    // Decoys born after `from` reach every socket from the alarm, so the greeting leaves them out.
    const now = Date.now();
    const from = Math.min(now, Number(this.meta.get("decoysFrom") ?? now));
    const decoys = (await liveDecoys(this.env, tn, now)).filter((d) => d.birth <= from);
    const { 0: client, 1: server } = new WebSocketPair();
    // Accept, list and send in one synchronous stretch: no store can fall in between. The greeting is
    // one message, the live blobs and decoys in random order.
    // Checked again here, in the stretch that accepts: subscribes that ran meanwhile count.
    const late = this.admission.admit(this.ctx, request, callee, true);
    if (late) return late;
    this.ctx.acceptWebSocket(server, callee ? [CALLEE_TAG] : []);
    this.sockets = null;
    // Written to the socket by `greet`, with its flow-control state.
    const attachment = { v: 1, at: Date.now() };
    // Frames still held go to this socket with the held message, so the greeting leaves them out.
    const held = this.batch.heldIds("");
    const live = this.list()
      .filter((row) => !held.has(row.id))
      .map((row) => pushFrame({ ...row, tn }));
    const at = Date.now();
    const dummies = decoys
      .filter((d) => d.expiresAt > at)
      .map((d) => pushFrame({ id: d.id, tn, blob: d.blob }));
    const greeting = joinFrames(shuffle([...live, ...dummies]));
    this.window.greet(server, greeting, attachment);
    if (!callee) this.admission.charge(greeting.length);
    await this.scheduleDummies(tn, from);
    return new Response(null, { status: 101, webSocket: client });
  }

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    // Subscribers only acknowledge what they read; "ping" is answered by the runtime (auto-response).
    this.window.receive(ws, message);
  }

  override async webSocketClose(ws: WebSocket, code: number): Promise<void> {
    this.sockets = null;
    this.window.forget(ws);
    closeQuietly(ws, code);
  }

  override async webSocketError(ws: WebSocket): Promise<void> {
    this.sockets = null;
    this.window.forget(ws);
    closeQuietly(ws, 1011);
  }

  private socketList(): WebSocket[] {
    this.sockets ??= this.ctx.getWebSockets();
    return this.sockets;
  }

  /**
   * Starts the decoy stream if none is pending: the alarm fires at the next decoy birth after `from`
   * (the time the greeting's decoys were taken at) and pushes every decoy born since.
   */
  private async scheduleDummies(tn: string, from: number): Promise<void> {
    if (this.meta.get("dummyAt") !== null) return;
    this.meta.set("decoysFrom", String(from));
    const at = await this.decoySchedule(tn).nextBirthAfter(from);
    this.meta.set("dummyAt", String(at));
    await this.scheduleAlarm(at);
  }

  private decoySchedule(tn: string) {
    return decoysFor(this.env).schedule(tn as CanonicalTn, decoyTtlMs(this.env));
  }

  /** Pushes the decoys born in (from, now] that are still live, in one message per socket. */
  private async pushDecoys(sockets: WebSocket[], tn: string, from: number, now: number): Promise<void> {
    const decoys = await decoysFor(this.env).bornIn(tn as CanonicalTn, decoyTtlMs(this.env), from, now);
    if (decoys.length === 0) return;
    broadcast(this.window, sockets, joinFrames(decoys.map((d) => pushFrame({ id: d.id, tn, blob: d.blob }))));
  }

  /** Every live blob. Expired rows are filtered here too, so a late alarm never serves stale data. */
  list(): StoredBlob[] {
    const rows = this.sql.exec<{ id: string; blob: ArrayBuffer }>(
      "SELECT id, blob FROM ppts WHERE expires_at > ?",
      Date.now(),
    );
    return rows.toArray().map((r) => ({ id: r.id, blob: new Uint8Array(r.blob) }));
  }

  /**
   * Every live blob and the instant they were judged live by. The route judges the number's decoys at
   * that same instant, so a real row and a decoy near the end of its life are treated alike.
   */
  listAt(): { at: number; rows: StoredBlob[] } {
    const at = Date.now();
    return { at, rows: this.list() };
  }

  /** One live blob by id (or null), and the instant it was judged by (see `listAt`). */
  async getAt(id: string): Promise<{ at: number; blob: Uint8Array | null }> {
    const at = Date.now();
    const rows = this.sql
      .exec<{ blob: ArrayBuffer }>("SELECT blob FROM ppts WHERE id = ? AND expires_at > ?", id, Date.now())
      .toArray();
    return { at, blob: rows[0] ? new Uint8Array(rows[0].blob) : null };
  }

  /** Count of live blobs (for tests and operators; reveals nothing a list would not). */
  async liveCount(): Promise<number> {
    return this.sql
      .exec<{ n: number }>("SELECT count(*) AS n FROM ppts WHERE expires_at > ?", Date.now())
      .one().n;
  }

  /**
   * Deletes expired rows, pushes the decoys born since the last push, and re-arms at the earliest of
   * the next expiry and the next decoy birth: one alarm per object. With no subscriber left the decoy
   * stream stops.
   */
  override async alarm(): Promise<void> {
    const now = Date.now();
    this.sql.exec("DELETE FROM ppts WHERE expires_at <= ?", now);
    this.alarmAt = null;
    let dummyAt = Number(this.meta.get("dummyAt") ?? Number.NaN);
    const sockets = this.ctx.getWebSockets();
    if (sockets.length === 0 || this.tn === null) {
      dummyAt = Number.NaN;
      this.meta.set("dummyAt", null);
      this.meta.set("decoysFrom", null);
    } else if (!(dummyAt > now)) {
      // Due (or, defensively, never scheduled): push what was born, then wait for the next birth.
      const from = Number(this.meta.get("decoysFrom") ?? now);
      if (dummyAt <= now) await this.pushDecoys(sockets, this.tn, from, now);
      this.meta.set("decoysFrom", String(now));
      dummyAt = await this.decoySchedule(this.tn).nextBirthAfter(now);
      this.meta.set("dummyAt", String(dummyAt));
    }
    const expiry = this.sql.exec<{ e: number | null }>("SELECT min(expires_at) AS e FROM ppts").one().e;
    if (expiry === null && sockets.length === 0 && this.tn !== null) {
      // Nothing live and nobody listening: forget the number too, so a subscribe-only visit leaves
      // no storage behind.
      this.tn = null;
      this.meta.set("tn", null);
    }
    const next = Math.min(
      expiry ?? Number.POSITIVE_INFINITY,
      Number.isNaN(dummyAt) ? Number.POSITIVE_INFINITY : dummyAt,
    );
    if (Number.isFinite(next)) await this.scheduleAlarm(next);
  }

  private async scheduleAlarm(at: number): Promise<void> {
    if (this.alarmAt !== null && this.alarmAt <= at) return;
    await this.ctx.storage.setAlarm(at);
    this.alarmAt = at;
  }
}
