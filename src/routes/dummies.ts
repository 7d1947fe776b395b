/**
 * Dummy blobs for retrievals (RFC 8816 §6.2: "at least one unique and plausible encrypted response to
 * all retrieval requests", never repeated). A random count from 1 to 3 per answer, so the number of
 * entries does not equal the number of calls plus one.
 */
import { newBlobId } from "../stir/blob-id.js";
import { makeDummy } from "../stir/envelope.js";
import type { CanonicalTn } from "../stir/tn.js";

export const MIN_DUMMIES = 1;
export const MAX_DUMMIES = 3;

export async function dummiesFor(tn: CanonicalTn): Promise<{ id: string; blob: Uint8Array }[]> {
  const [r] = crypto.getRandomValues(new Uint32Array(1));
  const count = MIN_DUMMIES + (r! % (MAX_DUMMIES - MIN_DUMMIES + 1));
  return Promise.all(
    Array.from({ length: count }, async () => ({ id: newBlobId(), blob: await makeDummy(tn) })),
  );
}
