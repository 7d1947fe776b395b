/**
 * Decoy polling by the callee (RFC 8816 §6.2: "callees might also request PASSporTs for numbers that
 * they do not own"; §13: the CPS's dummies let "the retrieval side ... randomly request PASSporTs when
 * there are no calls in progress"). Design, measurements and what the CPS can still infer:
 * docs/cover-and-decoys.md.
 *
 * Each owned number gets a fixed pool of decoy numbers (same prefix, random last digits; fixed, so the
 * owned number is not the one that recurs). Around each real retrieval (the VerificationService's
 * `decoys` option calls {@link DecoyPoller.beforeRetrieval}) the real retrieval and one retrieval of
 * each decoy start at independent uniform times in [0, spreadMs): the order and offsets of the group
 * do not single out the real one, at a mean delay of spreadMs / 2 on the real retrieval. While started,
 * the poller also sends such groups (the owned number included) at Poisson times, so retrievals are
 * not only made when a call rings. A decoy retrieval is the real request: the same client, relay and
 * headers; its answer is read and dropped.
 *
 * The plan (which numbers, which offsets, when) is pure code with injected time and randomness, which
 * the privacy benchmark drives with exact times (bench/privacy-cover.ts).
 */
import { type CanonicalTn, canonicalTn } from "../stir/tn.js";
import { cryptoRandom } from "./cover.js";
import { CpsClient, type FetchLike } from "./cps-client.js";
import { Daemon } from "./daemon.js";
import type { Discovery } from "./discovery.js";
import type { RelayTransportOptions } from "./relay.js";

export interface DecoyPlanOptions {
  /** Numbers the callee owns (background groups poll these; each gets a decoy pool). */
  readonly own?: readonly string[];
  /** Decoy retrievals per real retrieval (default 3). */
  readonly perRetrieval?: number;
  /** Explicit decoy pools by owned number, instead of generated ones. */
  readonly pools?: Readonly<Record<string, readonly string[]>>;
  /** Trailing digits a generated decoy number draws at random (default 4). */
  readonly suffixDigits?: number;
  /** Window in which the group's retrievals start, ms (default 200). */
  readonly spreadMs?: number;
  /** Background groups per hour, Poisson (default 0: only around real retrievals). */
  readonly backgroundPerHour?: number;
  /** Uniform [0, 1) (default crypto). */
  readonly random?: () => number;
}

/** One retrieval of a group: which number, how long after the group's start. */
export interface PlannedRetrieval {
  readonly tn: CanonicalTn;
  readonly delayMs: number;
  /** The number the caller asked for (false: a decoy). */
  readonly real: boolean;
}

/** The pure part: decoy pools and the timing of each group. */
export class DecoyPlan {
  readonly #o: DecoyPlanOptions;
  readonly #random: () => number;
  readonly #pools = new Map<string, CanonicalTn[]>();
  readonly own: readonly CanonicalTn[];

  constructor(options: DecoyPlanOptions = {}) {
    this.#o = options;
    this.#random = options.random ?? cryptoRandom;
    const k = options.perRetrieval ?? 3;
    const suffix = options.suffixDigits ?? 4;
    if (!(Number.isInteger(k) && k >= 0 && k <= 64)) throw new TypeError("perRetrieval is 0 to 64");
    if (!(Number.isInteger(suffix) && suffix >= 1 && suffix <= 8))
      throw new TypeError("suffixDigits is 1 to 8");
    if (!((options.spreadMs ?? 200) >= 0)) throw new TypeError("spreadMs >= 0");
    if (!((options.backgroundPerHour ?? 0) >= 0)) throw new TypeError("backgroundPerHour >= 0");
    this.own = (options.own ?? []).map((n) => canonicalTn(n));
    for (const [n, pool] of Object.entries(options.pools ?? {}))
      this.#pools.set(
        canonicalTn(n),
        pool.map((p) => canonicalTn(p)),
      );
    for (const n of this.own) this.decoysFor(n);
  }

  /** The fixed decoy pool of a number (generated on first use: same prefix, random last digits). */
  decoysFor(tn: CanonicalTn): readonly CanonicalTn[] {
    let pool = this.#pools.get(tn);
    if (!pool) {
      const k = this.#o.perRetrieval ?? 3;
      const keep = Math.min(this.#o.suffixDigits ?? 4, tn.length - 1);
      const prefix = tn.slice(0, tn.length - keep);
      const taken = new Set<string>([tn, ...this.own]);
      pool = [];
      // At most 10^keep - 1 others exist; a short suffix with a large pool gets what there is.
      for (let tries = 0; pool.length < k && tries < 100 * (k + 1); tries++) {
        let digits = "";
        for (let i = 0; i < keep; i++) digits += String(Math.floor(this.#random() * 10));
        const d = canonicalTn(prefix + digits);
        if (taken.has(d)) continue;
        taken.add(d);
        pool.push(d);
      }
      this.#pools.set(tn, pool);
    }
    return pool;
  }

  /** A group for a retrieval of `tn`: it and its decoys, each at an independent uniform offset. */
  group(tn: CanonicalTn): PlannedRetrieval[] {
    const spread = this.#o.spreadMs ?? 200;
    return [tn, ...this.decoysFor(tn)].map((n, i) => ({
      tn: n,
      delayMs: this.#random() * spread,
      real: i === 0,
    }));
  }

  /** Time of the next background group after `fromMs` (undefined when off). */
  nextBackgroundAt(fromMs: number): number | undefined {
    const rate = (this.#o.backgroundPerHour ?? 0) / 3_600_000;
    if (!(rate > 0) || this.own.length === 0) return undefined;
    return fromMs - Math.log(1 - this.#random()) / rate;
  }

  /** The owned number a background group polls (uniform). */
  backgroundNumber(): CanonicalTn {
    return this.own[Math.floor(this.#random() * this.own.length)] as CanonicalTn;
  }
}

/** Cost so far. */
export interface DecoyStats {
  /** Real retrievals that went through `beforeRetrieval`. */
  readonly realRetrievals: number;
  /** Decoy retrievals sent around real ones. */
  readonly decoyRetrievals: number;
  /** Background groups and the retrievals they sent (owned number included). */
  readonly backgroundGroups: number;
  readonly backgroundRetrievals: number;
  /** Entries (blobs) received in decoy and background answers, and their JSON bytes (approximate). */
  readonly entries: number;
  readonly bytes: number;
  readonly failures: number;
  /** Milliseconds real retrievals were held back in total (mean spreadMs / 2 each). */
  readonly delayMs: number;
}

export interface DecoyPollerOptions extends DecoyPlanOptions, RelayTransportOptions {
  /** The CPS (as for the VS): a base URL, or discovery (every CPS it names for the decoy number, §10). */
  readonly cps?: string;
  readonly discovery?: Discovery;
  readonly fetch?: FetchLike;
  readonly onError?: (error: unknown) => void;
}

/**
 * Runs the decoy plan: give it to the VerificationService as its `decoys` option, and `start()` it
 * for background polling.
 *
 * @example
 * const decoys = new DecoyPoller({ own: ["+2 222 555 2222"], cps, perRetrieval: 3, backgroundPerHour: 6 });
 * const vs = new VerificationService({ keys, trustAnchors, cps, decoys });
 * decoys.start(); // ... await decoys.stop();
 */
export class DecoyPoller extends Daemon {
  readonly plan: DecoyPlan;
  readonly #o: DecoyPollerOptions;
  #stats = {
    realRetrievals: 0,
    decoyRetrievals: 0,
    backgroundGroups: 0,
    backgroundRetrievals: 0,
    entries: 0,
    bytes: 0,
    failures: 0,
    delayMs: 0,
  };

  constructor(options: DecoyPollerOptions) {
    super();
    if (!options.cps && !options.discovery) throw new TypeError("A decoy poller needs `cps` or `discovery`");
    this.#o = options;
    this.plan = new DecoyPlan(options);
  }

  get stats(): DecoyStats {
    return { ...this.#stats };
  }

  async #retrieve(tn: CanonicalTn): Promise<void> {
    let bases: readonly string[];
    try {
      // Every CPS of the number (§10), as the VS retrieves from each.
      bases = this.#o.cps ? [this.#o.cps] : (await this.#o.discovery!.locate(tn)).cpses;
    } catch (err) {
      this.#stats.failures++;
      this.#o.onError?.(err);
      return;
    }
    await Promise.all(
      bases.map(async (base) => {
        try {
          const client = new CpsClient({
            baseUrl: base,
            ...(this.#o.fetch ? { fetch: this.#o.fetch } : {}),
            ...(this.#o.relay ? { relay: this.#o.relay } : {}),
            ...(this.#o.requireRelay ? { requireRelay: true } : {}),
          });
          const list = await client.list(tn);
          this.#stats.entries += list.length;
          this.#stats.bytes += JSON.stringify({ passports: list }).length;
        } catch (err) {
          this.#stats.failures++;
          this.#o.onError?.(err);
        }
      }),
    );
  }

  #spawn(tn: CanonicalTn, delayMs: number): void {
    const job = new Promise<void>((r) => setTimeout(r, delayMs)).then(() => this.#retrieve(tn));
    this.track(job);
  }

  /**
   * The VS hook: schedules the decoys of `tn`'s group and resolves when the real retrieval's own
   * offset has passed (the caller then retrieves `tn` itself).
   */
  async beforeRetrieval(tn: CanonicalTn): Promise<void> {
    const group = this.plan.group(tn);
    let own = 0;
    for (const r of group) {
      if (r.real) own = r.delayMs;
      else {
        this.#stats.decoyRetrievals++;
        this.#spawn(r.tn, r.delayMs);
      }
    }
    this.#stats.realRetrievals++;
    this.#stats.delayMs += own;
    if (own > 0) await new Promise((r) => setTimeout(r, own));
  }

  protected override schedule(): void {
    if (!this.running) return;
    const now = Date.now();
    const at = this.plan.nextBackgroundAt(now);
    if (at === undefined) return;
    // setTimeout holds at most 2^31 - 1 ms; a longer wait is replanned (Poisson: memoryless).
    const wait = at - now;
    this.after(Math.min(wait, 2 ** 31 - 1), () => {
      if (wait <= 2 ** 31 - 1) {
        this.#stats.backgroundGroups++;
        for (const r of this.plan.group(this.plan.backgroundNumber())) {
          this.#stats.backgroundRetrievals++;
          this.#spawn(r.tn, r.delayMs);
        }
      }
      this.schedule();
    });
  }
}
