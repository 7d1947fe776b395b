/** Ids of stored blobs and dummies: 128 random bits as 32 lowercase hex characters, one format for both. */
import { CpsError } from "../errors.js";

/** A blob id (and a push-stream mark, same format): 32 lowercase hex digits. */
export const BLOB_ID = /^[0-9a-f]{32}$/;

export function newBlobId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

/** Checks a path segment is a blob id, or throws `INVALID_ID` (400). */
export function parseBlobId(raw: string): string {
  if (!BLOB_ID.test(raw)) throw new CpsError("INVALID_ID", "A PASSporT id is 32 lowercase hex digits");
  return raw;
}
