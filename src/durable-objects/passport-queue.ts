/**
 * One PassportQueue per canonical called number (`idFromName(tn)`): the short-lived queue of sealed
 * blobs stored under that number (RFC 8816 §6, §9). It only ever sees opaque blobs, random ids and
 * expiry times: nothing about who stored them (DESIGN.md invariants 1 and 3).
 *
 * Platform facts relied on: a Durable Object is single-threaded, so the count-then-insert below cannot
 * race; SQLite calls are synchronous inside it; about 1k requests/s per object is the planning figure.
 */
import { DurableObject } from "cloudflare:workers";
import { readConfig } from "../config.js";
import { newBlobId } from "../stir/blob-id.js";

export interface StoredBlob {
  id: string;
  blob: Uint8Array;
}

export type StoreResult =
  | { ok: true; id: string; expiresAt: number }
  | { ok: false; code: "QUEUE_FULL"; retryAfterSeconds: number };

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS ppts (
    id TEXT PRIMARY KEY,
    blob BLOB NOT NULL,
    expires_at INTEGER NOT NULL
  );
  CREATE INDEX IF NOT EXISTS ppts_expires_at ON ppts (expires_at);
`;

export class PassportQueue extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  /** The alarm time we last set (ms), or null: saves a storage round trip per store. */
  private alarmAt: number | null = null;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    // Errors escape blockConcurrencyWhile and fail this start only, not every later request.
    void ctx.blockConcurrencyWhile(async () => {
      this.sql.exec(SCHEMA);
      this.alarmAt = await ctx.storage.getAlarm();
    });
  }

  /** Stores one blob until now + TTL, unless the number already holds the maximum live blobs. */
  async store(blob: Uint8Array): Promise<StoreResult> {
    const { ttlSeconds, maxLivePerNumber } = readConfig(this.env);
    const now = Date.now();
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
    this.sql.exec("INSERT INTO ppts (id, blob, expires_at) VALUES (?, ?, ?)", id, blob, expiresAt);
    await this.scheduleAlarm(expiresAt);
    return { ok: true, id, expiresAt };
  }

  /** Every live blob. Expired rows are filtered here too, so a late alarm never serves stale data. */
  async list(): Promise<StoredBlob[]> {
    const rows = this.sql.exec<{ id: string; blob: ArrayBuffer }>(
      "SELECT id, blob FROM ppts WHERE expires_at > ?",
      Date.now(),
    );
    return rows.toArray().map((r) => ({ id: r.id, blob: new Uint8Array(r.blob) }));
  }

  /** One live blob by id, or null. */
  async get(id: string): Promise<Uint8Array | null> {
    const rows = this.sql
      .exec<{ blob: ArrayBuffer }>("SELECT blob FROM ppts WHERE id = ? AND expires_at > ?", id, Date.now())
      .toArray();
    return rows[0] ? new Uint8Array(rows[0].blob) : null;
  }

  /** Count of live blobs (for tests and operators; reveals nothing a list would not). */
  async liveCount(): Promise<number> {
    return this.sql
      .exec<{ n: number }>("SELECT count(*) AS n FROM ppts WHERE expires_at > ?", Date.now())
      .one().n;
  }

  /** Deletes expired rows and re-arms at the next expiry: one alarm per object, at the earliest expiry. */
  override async alarm(): Promise<void> {
    const now = Date.now();
    this.sql.exec("DELETE FROM ppts WHERE expires_at <= ?", now);
    this.alarmAt = null;
    const next = this.sql.exec<{ e: number | null }>("SELECT min(expires_at) AS e FROM ppts").one().e;
    if (next !== null) await this.scheduleAlarm(next);
  }

  private async scheduleAlarm(at: number): Promise<void> {
    if (this.alarmAt !== null && this.alarmAt <= at) return;
    await this.ctx.storage.setAlarm(at);
    this.alarmAt = at;
  }
}
