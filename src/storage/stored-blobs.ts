/**
 * What the objects holding a number's blobs answer (durable-objects/number-rows.ts), as the routes see
 * it through storage/objects.ts.
 */

export interface StoredBlob {
  id: string;
  blob: Uint8Array;
}

export type StoreResult =
  /** `repeat`: the same request was already stored under this id (a retried store). */
  | { ok: true; id: string; expiresAt: number; repeat: boolean }
  | { ok: false; code: "QUEUE_FULL"; retryAfterSeconds: number };
