/**
 * When a number's decoys are born (RFC 8816 §6.2 dummies), as a pure function of a secret PRF, the
 * number and time: no storage, and every isolate and Durable Object computes the same schedule.
 *
 * Model, chosen so that a decoy behaves like a real blob to an observer who polls and GETs ids:
 * - a decoy lives exactly `ttlMs` from its birth, like a stored blob (so persistence between two
 *   polls, and the remaining life at a look, have the real blobs' distribution);
 * - births form a Poisson process of mean MEAN_LIVE_DECOYS births per `ttlMs` (drawn slot by slot:
 *   Poisson counts per slot, uniform positions), the same law as real stores arriving independently.
 *   Mixed with Poisson real stores, which item is which is then a thinning of one Poisson process:
 *   neither birth times, gaps nor counts tell them apart;
 * - RFC 8816 §6.2 wants at least one dummy in every answer, so a gap of more than `ttlMs` between two
 *   births is repaired with the fewest filler births, each at a pseudo-random place inside the gap that
 *   keeps every sub-gap at most `ttlMs` (no filler sits at a death or a midpoint). With a mean of 3,
 *   gaps that need one are e^-3 ~ 5 % of gaps: that repair is the only departure from Poisson, and
 *   what an observer can exploit of it is measured by `npm run privacy` (bench/privacy-observer.ts).
 *
 * A decoy is named by its `key` (slot and index, or filler gap and index), from which the caller
 * derives its id and seal seed with the same PRF (src/dummies/decoys.ts).
 */

/** Mean live decoys per number (before the repair, which adds ~0.05). */
export const MEAN_LIVE_DECOYS = 3;
/** Slots per TTL: Poisson counts are drawn per slot (mean MEAN_LIVE_DECOYS / SLOTS_PER_TTL each). */
const SLOTS_PER_TTL = 4;
/** Most births one slot draws (P(more) < 1e-6 at mean 0.75). */
const MAX_PER_SLOT = 7;
/** How far to look for the births around a window before giving up (P(empty) ~ e^-48). */
const MAX_SCAN_SLOTS = 64;
/** Slot draws one schedule remembers; past this it forgets them all (they are recomputed on demand). */
const MAX_MEMO_SLOTS = 256;

/** 32 pseudo-random bytes for a label (HMAC-SHA256 under the decoy secret). */
export type Prf = (label: string) => Promise<Uint8Array>;

export interface DecoyBirth {
  /** Names the decoy within its number: `s<slot>.<i>` or `f<gap start>.<i>`. */
  key: string;
  /** Birth time (ms since the epoch); the decoy is live on [birth, birth + ttlMs). */
  birth: number;
}

function uint32(bytes: Uint8Array, at: number): number {
  return ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!) >>> 0;
}

/** A uniform in [0, 1) from 4 bytes. */
const unit = (bytes: Uint8Array, at: number) => uint32(bytes, at) / 2 ** 32;

/** Inverse CDF of Poisson(mean) at u, capped at `max`. */
function poisson(u: number, mean: number, max: number): number {
  let p = Math.exp(-mean);
  let cdf = p;
  let k = 0;
  while (u >= cdf && k < max) {
    k++;
    p *= mean / k;
    cdf += p;
  }
  return k;
}

export class DecoySchedule {
  readonly slotMs: number;
  private readonly slots = new Map<number, DecoyBirth[]>();

  constructor(
    private readonly prf: Prf,
    private readonly tn: string,
    readonly ttlMs: number,
  ) {
    this.slotMs = Math.max(1, Math.floor(ttlMs / SLOTS_PER_TTL));
  }

  /** The Poisson births of one slot, sorted (memoised for the life of this object). */
  private async slot(j: number): Promise<DecoyBirth[]> {
    const hit = this.slots.get(j);
    if (hit) return hit;
    const r = await this.prf(`slot|${this.tn}|${this.ttlMs}|${j}`);
    const n = poisson(unit(r, 0), (MEAN_LIVE_DECOYS * this.slotMs) / this.ttlMs, MAX_PER_SLOT);
    const births = Array.from({ length: n }, (_, i) => ({
      key: `s${j}.${i}`,
      birth: j * this.slotMs + Math.floor(unit(r, 4 + 4 * i) * this.slotMs),
    })).sort((a, b) => a.birth - b.birth);
    if (this.slots.size >= MAX_MEMO_SLOTS) this.slots.clear();
    this.slots.set(j, births);
    return births;
  }

  /** Poisson births from the last one before `lo` to the first one after `hi`, sorted. */
  private async poissonAround(lo: number, hi: number): Promise<DecoyBirth[]> {
    const first = Math.floor(lo / this.slotMs);
    const last = Math.floor(hi / this.slotMs);
    const out: DecoyBirth[] = [];
    for (let j = first; j <= last; j++) out.push(...(await this.slot(j)));
    // One anchor on each side (a gap reaching into the window needs both ends to be repaired).
    let before: DecoyBirth | undefined;
    for (let j = first; j >= first - MAX_SCAN_SLOTS && !before; j--) {
      before = (await this.slot(j)).filter((b) => b.birth < lo).at(-1);
    }
    let after: DecoyBirth | undefined;
    for (let j = last; j <= last + MAX_SCAN_SLOTS && !after; j++) {
      after = (await this.slot(j)).find((b) => b.birth > hi);
    }
    const inside = out.filter((b) => b.birth >= lo && b.birth <= hi);
    return [
      before ?? { key: "anchor-", birth: lo - MAX_SCAN_SLOTS * this.slotMs },
      ...inside,
      after ?? { key: "anchor+", birth: hi + MAX_SCAN_SLOTS * this.slotMs },
    ];
  }

  /** Filler births repairing the gap (a, b) so that no sub-gap exceeds ttlMs. */
  private async fillers(a: number, b: number): Promise<DecoyBirth[]> {
    const T = this.ttlMs;
    let k = Math.ceil((b - a) / T) - 1;
    if (k <= 0) return [];
    const r = await this.prf(`fill|${this.tn}|${T}|${a}|${b}`);
    const out: DecoyBirth[] = [];
    let prev = a;
    for (let i = 0; k > 0; i++, k--) {
      // Uniform over the places that leave the rest of the gap coverable by the k - 1 still to come.
      const from = Math.max(prev + 1, b - k * T);
      const to = prev + T;
      const u = i < 7 ? unit(r, 4 * i) : 0.5;
      const at = from + Math.floor(u * (to - from + 1));
      out.push({ key: `f${a}.${i}`, birth: at });
      prev = at;
    }
    return out;
  }

  /** Every decoy born in [lo, hi], fillers included, sorted by birth. */
  async between(lo: number, hi: number): Promise<DecoyBirth[]> {
    const anchors = await this.poissonAround(lo, hi);
    const all: DecoyBirth[] = [];
    for (let i = 0; i < anchors.length; i++) {
      const cur = anchors[i]!;
      if (!cur.key.startsWith("anchor")) all.push(cur);
      const next = anchors[i + 1];
      if (next && next.birth - cur.birth > this.ttlMs)
        all.push(...(await this.fillers(cur.birth, next.birth)));
    }
    return all.filter((d) => d.birth >= lo && d.birth <= hi).sort((x, y) => x.birth - y.birth);
  }

  /** The decoys live at `now`: born in (now - ttlMs, now]. Never empty. */
  live(now: number): Promise<DecoyBirth[]> {
    return this.between(now - this.ttlMs + 1, now);
  }

  /** The first decoy birth after `now` (there is always one within ttlMs). */
  async nextBirthAfter(now: number): Promise<number> {
    const next = await this.between(now + 1, now + this.ttlMs);
    return next[0]?.birth ?? now + this.ttlMs;
  }
}
