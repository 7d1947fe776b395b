/**
 * One PassportQueue per canonical called number, named by the number (storage/objects.ts): the
 * short-lived queue of sealed blobs stored under that number (RFC 8816 §6, §9). A hot number
 * (HOT_NUMBERS) has several, its shards, each holding some of its blobs (up to MAX_LIVE_PER_NUMBER
 * each) and filing them in the number's index block; retrievals merge them (routes/passports.ts).
 * It only ever sees opaque blobs, random ids and expiry times: nothing about who stored them
 * (docs/design.md invariants 1 and 3).
 *
 * Push (RFC 8816 §5.5, docs/push-and-blocks.md): it serves the number's WebSocket subscribers
 * (streaming-queue.ts) and files every stored blob in the number's index block (BlockQueue) so that
 * block retrieval reads one object instead of 10^4.
 *
 * Platform facts relied on: a Durable Object is single-threaded, so the count-then-insert below cannot
 * race; SQLite calls are synchronous inside it; about 1k requests/s per object is the planning figure.
 *
 * Retried stores: a store whose retry key (from the storage-token check: a hash of number, blob and
 * K_temp signature, so only the same request sent again repeats it) matches a live row's is that
 * store sent again after a lost answer, so it gets the id and expiry it already has and is neither
 * stored, pushed nor filed twice. Never matched on the bytes alone: anyone can copy a listed blob, and
 * "same id back" for a real blob but "new id" for a decoy would tell them apart. The key lives in the
 * `digest` column (16 bytes, NULL for untokened stores).
 *
 * Decoys are the number's (src/dummies/), computed, not stored: the greeting carries the ones live,
 * and the alarm pushes each one as it is born, as a store pushes a real blob.
 */
import { readConfig } from "../config.js";
import { decoysBorn, nextDecoyBirth, numberGreetingDecoys } from "../dummies/stream.js";
import { logEvent } from "../log.js";
import { decodeBase64url } from "../stir/base64url.js";
import { newBlobId } from "../stir/blob-id.js";
import { pushFrame } from "../stir/push-frames.js";
import type { CanonicalTn } from "../stir/tn.js";
import { createPassportQueueTables } from "../storage/layout.js";
import { blockQueueOfTn, tnOfPassportQueueName } from "../storage/objects.js";
import { StreamingQueue, type Subscription } from "./streaming-queue.js";

export interface StoredBlob {
  id: string;
  blob: Uint8Array;
}

export type StoreResult =
  /** `repeat`: the same request was already stored under this id (a retried store). */
  | { ok: true; id: string; expiresAt: number; repeat: boolean }
  | { ok: false; code: "QUEUE_FULL"; retryAfterSeconds: number };

export class PassportQueue extends StreamingQueue {
  /** The number as a caller named it (store, subscribe), in this instance's memory. */
  private knownTn: CanonicalTn | undefined;

  /**
   * This object's number: its name, less the shard suffix of a hot number's shard (storage/objects.ts).
   * Push frames, block filing and decoys are the number's, whichever shard holds the blob. An instance
   * the runtime started for an overdue alarm may have no `ctx.id.name`, even for the requests it then
   * serves, so the number a store or subscribe names wins, and each subscriber's socket carries it in
   * its attachment (kept by the runtime, not in storage) for the alarm's decoy pushes.
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

  /**
   * Stores one blob until now + TTL, unless the number already holds the maximum live blobs, pushes it
   * to the number's subscribers and files it in its index block.
   */
  async store(blob: Uint8Array, retryKey?: string, tn?: CanonicalTn): Promise<StoreResult> {
    if (tn !== undefined) this.knownTn = tn;
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
    this.batch.begin();
    try {
      if (this.sockets().length > 0) this.batch.add("", id, pushFrame({ id, tn: this.tn, blob }));
      await Promise.all([this.scheduleAlarm(expiresAt), this.fileInBlock(id, blob, expiresAt)]);
    } finally {
      // This store's frame, with those of stores that came in while it waited (push/batch.ts).
      this.batch.settle();
    }
    return { ok: true, id, expiresAt, repeat: false };
  }

  /**
   * Files the blob in its index block. Awaited (a block query right after a 201 sees the blob) but in
   * parallel with the alarm write; one retry, then logged: the number's own queue stays authoritative
   * and the store is not failed, since a retried store would duplicate the blob. Protected so that a
   * bench Worker can measure the index's cost by overriding it.
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

  /** `GET /cps/{tn}/subscribe` (routes/subscriptions.ts): every socket of the number is one stream. */
  protected async subscription(params: URLSearchParams, from: number, now: number): Promise<Subscription> {
    // The route names the number (only the Worker reaches this object); the socket keeps it for the alarm.
    const named = params.get("tn");
    if (named !== null && /^[0-9]{1,15}$/.test(named)) this.knownTn = named as CanonicalTn;
    const tn = this.tn;
    return {
      group: "",
      attachment: { v: 1, at: now, tn },
      decoys: await numberGreetingDecoys(this.env, tn, from, now),
      rows: () => this.list().map((row) => ({ ...row, tn })),
    };
  }

  protected expire(now: number): number | null {
    this.sql.exec("DELETE FROM ppts WHERE expires_at <= ?", now);
    return this.sql.exec<{ e: number | null }>("SELECT min(expires_at) AS e FROM ppts").one().e;
  }

  protected firstDecoyAt(from: number): Promise<number> {
    return nextDecoyBirth(this.env, this.tn, from);
  }

  protected async pushDecoysBorn(sockets: WebSocket[], from: number, now: number): Promise<number> {
    const { born, next } = await decoysBorn(this.env, this.tn, from, now);
    this.pushTo(sockets, born);
    return next;
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
}
