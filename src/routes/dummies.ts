/**
 * Dummy blobs for retrievals (RFC 8816 §6.2: "at least one unique and plausible encrypted response to
 * all retrieval requests", never repeated). A random count from 1 to 3 per answer, so the number of
 * entries does not equal the number of calls plus one.
 *
 * Dummies come first from this isolate's pool of pre-sealed ones (src/dummies/pool.ts; each used at
 * most once) and are sealed inline when the pool is short; the refill runs after the answer through
 * `defer` (the route passes `ctx.waitUntil`). Without `defer`, nothing is refilled.
 */
import type { Context } from "hono";
import { DummyPool } from "../dummies/pool.js";
import { newBlobId } from "../stir/blob-id.js";
import { makeDummy } from "../stir/envelope.js";
import type { CanonicalTn } from "../stir/tn.js";

export const MIN_DUMMIES = 1;
export const MAX_DUMMIES = 3;

/** This isolate's pool (module scope lives as long as the isolate). */
export const dummyPool = new DummyPool({ target: MAX_DUMMIES });

export type Defer = (work: Promise<unknown>) => void;

export async function dummiesFor(
  tn: CanonicalTn,
  defer?: Defer,
  pool: DummyPool = dummyPool,
): Promise<{ id: string; blob: Uint8Array }[]> {
  const [r] = crypto.getRandomValues(new Uint32Array(1));
  const count = MIN_DUMMIES + (r! % (MAX_DUMMIES - MIN_DUMMIES + 1));
  const ready = pool.take(tn, count);
  const inline = await Promise.all(Array.from({ length: count - ready.length }, () => makeDummy(tn)));
  // After a macrotask, so the seals do not compete with building and sending this answer.
  defer?.(new Promise((resolve) => setTimeout(resolve, 0)).then(() => pool.refill(tn)));
  return [...ready, ...inline].map((blob) => ({ id: newBlobId(), blob }));
}

/** `ctx.waitUntil` of a Hono context, or undefined where there is no execution context. */
export function deferOf(c: Context): Defer | undefined {
  try {
    const ctx = c.executionCtx;
    return (work) => ctx.waitUntil(work);
  } catch {
    return undefined;
  }
}
