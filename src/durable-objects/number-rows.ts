/**
 * One number's live blobs as rows of an object's SQLite table: what a store checks and writes, and
 * what a list or a fetch by id reads (RFC 8816 §6, §9). Shared by the two objects that hold a
 * number's blobs: its index block's BlockQueue (the rows carry the number) and, for each shard of a
 * hot number, a PassportQueue (its rows are all the number's).
 *
 * Retried stores: a store whose retry key (from the storage-token check: a hash of number, blob and
 * K_temp signature, so only the same request sent again repeats it) matches a live row's is that
 * store sent again after a lost answer, so it gets the id and expiry it already has and is neither
 * stored nor pushed twice. Never matched on the bytes alone: anyone can copy a listed blob, and "same
 * id back" for a real blob but "new id" for a decoy would tell them apart. The key lives in the
 * `digest` column (16 bytes, NULL for untokened stores).
 *
 * Every function is synchronous: inside a Durable Object nothing can run between the checks and the
 * insert (single-threaded, synchronous SQLite).
 */
import { decodeBase64url } from "../stir/base64url.js";
import { newBlobId } from "../stir/blob-id.js";
import type { ExpiringBlob, StoreResult } from "../storage/stored-blobs.js";

export type { ExpiringBlob, StoredBlob, StoreResult } from "../storage/stored-blobs.js";

/**
 * Where one number's rows are: the table, and the condition (with its arguments) picking the number's
 * rows out of it: none for a PassportQueue's `ppts`, `tn = ?` (on the `blobs_tn` index) for a block.
 */
export interface NumberRows {
  readonly sql: SqlStorage;
  readonly table: "ppts" | "blobs";
  readonly tn: string | null;
}

function scope(rows: NumberRows): { where: string; args: string[] } {
  return rows.tn === null ? { where: "", args: [] } : { where: "tn = ? AND ", args: [rows.tn] };
}

/**
 * When a blob stored at `storedAt` (ms) expires: what lets a lease renewal ask for the blobs stored
 * since an instant (the rows keep only their expiry).
 */
export function expiresIfStoredAt(storedAt: number, ttlSeconds: number): number {
  return storedAt + ttlSeconds * 1000;
}

/**
 * Stores one blob until now + `ttlSeconds`, unless it repeats a live store (same retry key: its id
 * and expiry back) or the number already holds `maxLive` live blobs (QUEUE_FULL, with the seconds
 * until its oldest expires). Returns the new row's id and expiry; the caller pushes and schedules.
 */
export function storeRow(
  rows: NumberRows,
  blob: Uint8Array,
  retryKey: string | undefined,
  limits: { ttlSeconds: number; maxLive: number },
): StoreResult {
  const { where, args } = scope(rows);
  const digest = retryKey === undefined ? null : decodeBase64url(retryKey);
  const now = Date.now();
  if (digest !== null) {
    const same = rows.sql
      .exec<{ id: string; expires_at: number }>(
        `SELECT id, expires_at FROM ${rows.table} WHERE ${where}digest = ? AND expires_at > ?`,
        ...args,
        digest,
        now,
      )
      .toArray()[0];
    if (same) return { ok: true, id: same.id, expiresAt: same.expires_at, repeat: true };
  }
  const live = rows.sql
    .exec<{ n: number; e: number | null }>(
      `SELECT count(*) AS n, min(expires_at) AS e FROM ${rows.table} WHERE ${where}expires_at > ?`,
      ...args,
      now,
    )
    .one();
  if (live.n >= limits.maxLive) {
    return {
      ok: false,
      code: "QUEUE_FULL",
      retryAfterSeconds: Math.max(1, Math.ceil(((live.e ?? now) - now) / 1000)),
    };
  }
  const id = newBlobId();
  const expiresAt = expiresIfStoredAt(now, limits.ttlSeconds);
  if (rows.tn === null) {
    rows.sql.exec(
      "INSERT INTO ppts (id, blob, expires_at, digest) VALUES (?, ?, ?, ?)",
      id,
      blob,
      expiresAt,
      digest,
    );
  } else {
    rows.sql.exec(
      "INSERT INTO blobs (id, tn, blob, expires_at, digest) VALUES (?, ?, ?, ?, ?)",
      id,
      rows.tn,
      blob,
      expiresAt,
      digest,
    );
  }
  return { ok: true, id, expiresAt, repeat: false };
}

/**
 * Every live blob of the number that expires at or after `expiresFrom` (ms; 0: every live blob), with
 * its expiry. Expired rows are filtered here, so a late alarm never serves them.
 */
export function liveRows(rows: NumberRows, expiresFrom = 0): ExpiringBlob[] {
  const { where, args } = scope(rows);
  return rows.sql
    .exec<{ id: string; blob: ArrayBuffer; expires_at: number }>(
      `SELECT id, blob, expires_at FROM ${rows.table} WHERE ${where}expires_at > ? AND expires_at >= ?`,
      ...args,
      Date.now(),
      expiresFrom,
    )
    .toArray()
    .map((r) => ({ id: r.id, blob: new Uint8Array(r.blob), expiresAt: r.expires_at }));
}

/** One live blob of the number by id, or null. */
export function liveRow(rows: NumberRows, id: string): Uint8Array | null {
  const { where, args } = scope(rows);
  const found = rows.sql
    .exec<{ blob: ArrayBuffer }>(
      `SELECT blob FROM ${rows.table} WHERE ${where}id = ? AND expires_at > ?`,
      ...args,
      id,
      Date.now(),
    )
    .toArray()[0];
  return found ? new Uint8Array(found.blob) : null;
}

/** Count of the number's live blobs (tests and operators; reveals nothing a list would not). */
export function liveCount(rows: NumberRows): number {
  const { where, args } = scope(rows);
  return rows.sql
    .exec<{ n: number }>(
      `SELECT count(*) AS n FROM ${rows.table} WHERE ${where}expires_at > ?`,
      ...args,
      Date.now(),
    )
    .one().n;
}
