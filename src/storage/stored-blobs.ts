/**
 * What the objects holding a number's blobs answer (durable-objects/number-rows.ts), as the routes see
 * it through storage/objects.ts.
 */

export interface StoredBlob {
  id: string;
  blob: Uint8Array;
}

/** A live blob with its expiry (ms): what a block's `watch` answers, to be judged again at greeting time. */
export interface ExpiringBlob extends StoredBlob {
  expiresAt: number;
}

export type StoreResult =
  /** `repeat`: the same request was already stored under this id (a retried store). */
  | { ok: true; id: string; expiresAt: number; repeat: boolean }
  | { ok: false; code: "QUEUE_FULL"; retryAfterSeconds: number };
