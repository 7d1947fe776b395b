/**
 * The decoys a push stream carries (RFC 8816 §5.5, §6.2; docs/push-and-blocks.md "Dummies on the
 * stream"): its greeting's, then each decoy born later, pushed by the object's alarm at its birth, as
 * a store pushes a real blob. One rule keeps a connection from seeing an id twice: the greeting takes
 * the decoys born by `from`, the time the stream last pushed, and the alarm every one born after it.
 */
import type { NumberBlock } from "../stir/number-blocks.js";
import type { CanonicalTn } from "../stir/tn.js";
import { blockDecoys, coverTn, type Decoy, decoysFor, decoyTtlMs, liveDecoys } from "./decoys.js";

/** A decoy with the number it is a decoy of (its push frame names it). */
export type StreamDecoy = Decoy & { tn: string };

/** A number's greeting decoys: those live at `now` and born by `from`. */
export async function numberGreetingDecoys(
  env: Env,
  tn: CanonicalTn,
  from: number,
  now: number,
): Promise<StreamDecoy[]> {
  return (await liveDecoys(env, tn, now)).filter((d) => d.birth <= from).map((d) => ({ ...d, tn }));
}

/**
 * A block greeting's decoys: a block answer's (`blockDecoys`: the live decoys of the numbers `tns`
 * and of the block's cover number) less the cover number's born after `from`. A block stream pushes
 * only its cover number's decoys, so only those could come twice.
 */
export async function blockGreetingDecoys(
  env: Env,
  block: NumberBlock,
  tns: Iterable<string>,
  from: number,
  now: number,
): Promise<StreamDecoy[]> {
  const { decoys, cover } = await blockDecoys(env, block.digits, block.open, tns, now);
  return decoys.filter((d) => d.tn !== cover || d.birth <= from);
}

/** The number whose decoys a block stream carries: the block's cover number. */
export function blockStreamTn(env: Env, block: NumberBlock): Promise<CanonicalTn> {
  return coverTn(env, block.digits, block.open);
}

/** The decoys of `tn` born in (from, now] and still live (what the stream pushes), and the next birth. */
export async function decoysBorn(
  env: Env,
  tn: CanonicalTn,
  from: number,
  now: number,
): Promise<{ born: StreamDecoy[]; next: number }> {
  const ttlMs = decoyTtlMs(env);
  const all = decoysFor(env);
  const born = await all.bornIn(tn, ttlMs, from, now);
  const next = await all.schedule(tn, ttlMs).nextBirthAfter(now);
  return { born: born.map((d) => ({ ...d, tn })), next };
}

/** The first decoy birth of `tn` after `after` (there is one within a TTL). */
export function nextDecoyBirth(env: Env, tn: CanonicalTn, after: number): Promise<number> {
  return decoysFor(env).schedule(tn, decoyTtlMs(env)).nextBirthAfter(after);
}
