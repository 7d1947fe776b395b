/**
 * A per-isolate pool of pre-sealed dummies, keyed by canonical called number (a dummy is sealed with
 * that number's HPKE `info`, so it can only ever serve that number).
 *
 * Why: in workerd a dummy costs two X25519 key generations, one DH, the HKDF key schedule and a 1 KiB
 * AES-GCM seal (~0.4 ms); a retrieval needs 1-3, and that is most of the Worker's own CPU for a
 * retrieval of an empty number (BENCHMARKS.md "Dummy cost"). The pool moves that work off the request
 * path: the route takes what it needs and the refill runs after the answer (`ctx.waitUntil`).
 *
 * Rules, each one tested (test/integration/privacy-stats.test.ts, "dummy pool"):
 * - Used at most once: `take` removes the blobs it returns synchronously (no `await` between looking
 *   and removing, and JavaScript runs one turn at a time), so two concurrent retrievals can never get
 *   the same dummy. Nothing ever puts a served blob back.
 * - Same indistinguishability: pool blobs come from `makeDummy`, the same code as inline dummies.
 * - No CPU amplification: a number gets a pool only from its second retrieval within IDLE_MS in this
 *   isolate, and a refill replaces what was used up to TARGET. A scan over distinct numbers therefore
 *   costs what it did without a pool (no speculative sealing); a repeated poll costs the same number
 *   of seals as before, just not on the request path. The waste is bounded: at most TARGET dummies per
 *   number that stops being polled.
 * - Bounded memory: at most MAX_NUMBERS numbers (least recently used evicted) x TARGET blobs of 1072
 *   bytes (about 0.8 MB), and a number idle for IDLE_MS loses its pool.
 *
 * Trade-off, not hidden: whether a number's pool is warm depends on whether it was retrieved recently
 * in this isolate, which shows as ~0.4-1 ms of latency. The Durable Object of a recently touched number
 * is warm too (a cold object costs far more), so the pool adds no new kind of signal, and IDLE_MS keeps
 * its window short. A pool in the number's Durable Object instead would put all sealing for a hot
 * number on that object's single thread, in competition with real stores; the isolate pool spreads it.
 */
import { makeDummy } from "../stir/envelope.js";
import type { CanonicalTn } from "../stir/tn.js";

export interface DummyPoolOptions {
  /** Blobs kept ready per number (default 3: one retrieval's maximum). */
  target?: number;
  /** Numbers with a pool at once; the least recently used one is dropped beyond it. */
  maxNumbers?: number;
  /** A number not retrieved for this long loses its pool and its history (ms). */
  idleMs?: number;
  /** The sealer (default `makeDummy`); tests substitute a counter. */
  seal?: (tn: CanonicalTn) => Promise<Uint8Array>;
  /** Clock (ms). */
  now?: () => number;
}

interface Entry {
  blobs: Uint8Array[];
  /** Seals under way for this number (not yet in `blobs`). */
  filling: number;
  /** Retrievals seen within the idle window. */
  seen: number;
  touched: number;
}

export class DummyPool {
  readonly target: number;
  readonly maxNumbers: number;
  readonly idleMs: number;
  private readonly seal: (tn: CanonicalTn) => Promise<Uint8Array>;
  private readonly now: () => number;
  /** Map iteration order is insertion order: re-inserting on use makes it an LRU list. */
  private readonly entries = new Map<CanonicalTn, Entry>();

  constructor(options: DummyPoolOptions = {}) {
    this.target = options.target ?? 3;
    this.maxNumbers = options.maxNumbers ?? 256;
    this.idleMs = options.idleMs ?? 30_000;
    this.seal = options.seal ?? makeDummy;
    this.now = options.now ?? Date.now;
  }

  /**
   * Removes and returns up to `count` ready dummies for `tn` (possibly none) and records the
   * retrieval. Synchronous on purpose: what it returns is gone from the pool before anyone else runs.
   */
  take(tn: CanonicalTn, count: number): Uint8Array[] {
    const now = this.now();
    let entry = this.entries.get(tn);
    if (entry && now - entry.touched > this.idleMs) {
      this.entries.delete(tn);
      entry = undefined;
    }
    if (!entry) entry = { blobs: [], filling: 0, seen: 0, touched: now };
    const taken = entry.blobs.splice(0, Math.max(0, count));
    entry.seen++;
    entry.touched = now;
    this.entries.delete(tn);
    this.entries.set(tn, entry);
    while (this.entries.size > this.maxNumbers) {
      const oldest = this.entries.keys().next().value as CanonicalTn;
      this.entries.delete(oldest);
    }
    return taken;
  }

  /**
   * Seals what `tn` needs to be back at `target`, if it has been retrieved at least twice recently.
   * Meant to run off the request path (`ctx.waitUntil`). Never throws: a failed seal just leaves the
   * pool short, and the next retrieval seals inline as before.
   */
  async refill(tn: CanonicalTn): Promise<number> {
    const entry = this.entries.get(tn);
    if (!entry || entry.seen < 2) return 0;
    const need = this.target - entry.blobs.length - entry.filling;
    if (need <= 0) return 0;
    entry.filling += need;
    let added = 0;
    try {
      const fresh = await Promise.allSettled(Array.from({ length: need }, () => this.seal(tn)));
      // Only into the same entry, and only if it is still the live one (not evicted or expired).
      if (this.entries.get(tn) !== entry) return 0;
      for (const r of fresh) {
        if (r.status === "fulfilled" && entry.blobs.length < this.target) {
          entry.blobs.push(r.value);
          added++;
        }
      }
      return added;
    } finally {
      entry.filling -= need;
    }
  }

  /** Ready blobs for `tn` (for tests and metrics; reveals nothing a caller could not time). */
  size(tn: CanonicalTn): number {
    return this.entries.get(tn)?.blobs.length ?? 0;
  }

  /** Numbers currently holding an entry. */
  get numbers(): number {
    return this.entries.size;
  }

  /** Ready blobs over all numbers. */
  get totalBlobs(): number {
    let n = 0;
    for (const e of this.entries.values()) n += e.blobs.length;
    return n;
  }
}
