/**
 * Retrieval answers with their decoys (RFC 8816 §6.2 dummies; docs/design.md invariant 2): what a
 * list, a fetch by id and a block answer carry besides the stored blobs, and in what order. The
 * routes stay thin: they read the object and shape the JSON; the mixing is here.
 *
 * Decoys are judged live at the instant the object judged its rows (`at`), so a real blob and a
 * decoy near the end of their lives are treated alike. The decoys of "now" are sealed while the
 * object is read, so the second look, at the object's instant, finds them in the isolate's cache.
 */
import type { NumberBlock } from "../stir/number-blocks.js";
import { shuffle } from "../stir/shuffle.js";
import type { CanonicalTn } from "../stir/tn.js";
import { blockDecoys, type Decoy, liveDecoys } from "./decoys.js";

/** What every item of an answer has, stored blob or decoy alike. */
export interface AnswerItem {
  readonly id: string;
  readonly blob: Uint8Array;
}

/**
 * The items of `GET /cps/{tn}/ppts`: the rows the number's object read at its instant `at`, and the
 * decoys live at that instant, shuffled together (position must not tell them apart).
 */
export async function listAnswer<T extends AnswerItem>(
  env: Env,
  tn: CanonicalTn,
  read: Promise<{ at: number; rows: T[] }>,
): Promise<(T | Decoy)[]> {
  const [{ at, rows }] = await Promise.all([read, liveDecoys(env, tn)]);
  const dummies = await liveDecoys(env, tn, at);
  return shuffle([...rows, ...dummies]);
}

/**
 * The blob `GET /cps/{tn}/ppts/{id}` answers, stored or a decoy's, or undefined. Both are looked at,
 * whatever the id: a decoy GET takes the real one's path (the object is asked) and a real GET the
 * decoy's (the live decoys are computed), so the time taken does not tell them apart.
 */
export async function blobAnswer(
  env: Env,
  tn: CanonicalTn,
  id: string,
  read: Promise<{ at: number; blob: Uint8Array | null }>,
): Promise<Uint8Array | undefined> {
  const [{ at, blob: stored }] = await Promise.all([read, liveDecoys(env, tn)]);
  return stored ?? (await liveDecoys(env, tn, at)).find((d) => d.id === id)?.blob;
}

/**
 * The items of `GET /cps/blocks/{block}/ppts`: the block's stored rows, each number's live decoys and
 * the block's cover number's (`blockDecoys`: a number's real blobs never show without its decoys, and
 * an empty block still answers with dummies), shuffled together. Real rows are never left out (a
 * call centre needs them).
 */
export async function blockAnswer<T extends AnswerItem & { readonly tn: string }>(
  env: Env,
  block: NumberBlock,
  rows: T[],
): Promise<(T | (Decoy & { tn: string }))[]> {
  const { decoys } = await blockDecoys(
    env,
    block.digits,
    block.open,
    rows.map((b) => b.tn),
  );
  return shuffle([...rows, ...decoys]);
}
