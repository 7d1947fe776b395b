/**
 * Cover traffic by the authentication service (RFC 8816 §7.4 last paragraph, §13: "Authentication
 * services could store dummy PASSporTs at the CPS at random intervals in order to make it more
 * difficult for an eavesdropper to use traffic analysis to determine that a call was about to be
 * placed"). Design and measurements: docs/cover-and-decoys.md.
 *
 * A cover call is made by the code that makes a real one: `sealAndStore` seals a blob per "key" (here
 * throwaway X25519 keys whose private halves are dropped at once, so nobody can open them), pays one
 * storage token per blob from the same token source, and stores through the same client, relay and
 * headers. The CPS therefore sees the same bytes (length, format, HPKE structure) and the same request.
 *
 * What makes cover hard to tell from real calls is where and when it goes, decided by the pure
 * {@link CoverPlanner}:
 * - when: a Poisson process whose rate is `perCall` times the AS's own real-call rate at that time of
 *   day (a daily profile learned from the days before, interpolated between slots), so the share of
 *   cover is the same at every hour and no single real call changes when cover is sent (a cover rate
 *   that reacted to each call would cluster cover after real calls); or a fixed `perHour` rate;
 * - where: the destinations of a second, imaginary caller with the real caller's habits: with the
 *   learned probability it calls again a number it called before (at a recency rank drawn from the
 *   real calls' repeat ranks), else a new number with the prefix of a recent real destination and
 *   random last digits, with the copy count (keys) seen for such numbers; or an explicit number source.
 */
import { generateRecipientKeyPair } from "../stir/envelope.js";
import { type CanonicalTn, canonicalTn } from "../stir/tn.js";
import type { FetchLike } from "./cps-client.js";
import { Daemon } from "./daemon.js";
import type { Discovery } from "./discovery.js";
import { sealAndStore } from "./placement.js";
import type { RelayTransportOptions } from "./relay.js";
import { type StoreTokenSource, untokenedStores } from "./store-tokens.js";

const DAY_MS = 86_400_000;
/** The planner treats the rate as constant over steps of this length (exact for a piecewise rate). */
const STEP_MS = 60_000;
/** How far ahead the daemon plans before asking the planner again. */
const REPLAN_MS = 1000;
/** Bound of every learned sample (destinations, ranks, prefixes): memory stays constant. */
const MEMORY = 1000;

/** What the AS tells the cover planner about one real call it placed. */
export interface CoverObservation {
  readonly to: CanonicalTn;
  /** The CPSes the call was stored at (§10: one or more). */
  readonly cpses: readonly string[];
  /** Blobs stored at each CPS for the call (one per destination key). */
  readonly copies: number;
}

/** One cover call: `copies` blobs to `tn` at each of `cpses`. */
export interface CoverTarget {
  readonly tn: CanonicalTn;
  readonly cpses: readonly string[];
  readonly copies: number;
}

export interface CoverPlannerOptions {
  /** Cover calls per real call (default 1: half of what the CPS sees from this AS is cover). */
  readonly perCall?: number;
  /** A fixed rate instead (cover calls per hour, Poisson), e.g. for an AS that learns no calls. */
  readonly perHour?: number;
  /** Trailing digits of a learned destination replaced by random digits (default 4). */
  readonly suffixDigits?: number;
  /**
   * On the first day (no profile yet) the rate is the real calls since start over at least this long
   * (default 10 minutes), so the first call does not set off a burst of cover right after it.
   */
  readonly learnMs?: number;
  /** Slots of the daily profile (default 24) and days it remembers (default 7). */
  readonly profileSlots?: number;
  readonly profileDays?: number;
  /** Uniform [0, 1) (default crypto). */
  readonly random?: () => number;
}

/** Uniform [0, 1) from the platform's CSPRNG. */
export function cryptoRandom(): number {
  return (crypto.getRandomValues(new Uint32Array(1))[0] as number) / 2 ** 32;
}

/** A bounded sample: the latest `max` values, drawn uniformly. */
class Recent<T> {
  readonly #items: T[] = [];
  #next = 0;
  constructor(readonly max = MEMORY) {}
  push(x: T): void {
    if (this.#items.length < this.max) this.#items.push(x);
    else this.#items[this.#next] = x;
    this.#next = (this.#next + 1) % this.max;
  }
  draw(random: () => number): T | undefined {
    return this.#items.length ? this.#items[Math.floor(random() * this.#items.length)] : undefined;
  }
  get size(): number {
    return this.#items.length;
  }
}

/** Distinct destinations, most recent last; `touch` returns the recency rank a number had (0 = latest). */
class RecencyList<T extends { tn: string }> {
  readonly #items: T[] = [];
  rankOf(tn: string): number {
    const i = this.#items.findIndex((x) => x.tn === tn);
    return i < 0 ? -1 : this.#items.length - 1 - i;
  }
  atRank(rank: number): T | undefined {
    return this.#items[this.#items.length - 1 - rank];
  }
  touch(item: T): void {
    const i = this.#items.findIndex((x) => x.tn === item.tn);
    if (i >= 0) this.#items.splice(i, 1);
    this.#items.push(item);
    if (this.#items.length > MEMORY) this.#items.shift();
  }
}

/**
 * When and where cover goes (pure: times are given in ms, randomness by `random`), so the privacy
 * benchmark drives exactly this code with exact times (bench/privacy-cover.ts).
 */
export class CoverPlanner {
  readonly #perCall: number;
  readonly #perHour: number | undefined;
  readonly #suffix: number;
  readonly #slots: number;
  readonly #days: number;
  readonly #random: () => number;
  readonly #startedAt: number;
  readonly #learnMs: number;
  /** counts[(day % days) * slots + slot], rows stamped with their day. */
  readonly #counts: Float64Array;
  readonly #rowDay: Float64Array;
  #total = 0;
  #repeats = 0;
  readonly #real = new RecencyList<{ tn: string }>();
  readonly #ranks = new Recent<number>();
  readonly #fresh = new Recent<{
    prefix: string;
    digits: number;
    cpses: readonly string[];
    copies: number;
    // A larger sample of prefixes: the mix of prefixes cover draws from then strays less from the real one.
  }>(10 * MEMORY);
  readonly #cover = new RecencyList<CoverTarget>();

  constructor(startedAtMs: number, options: CoverPlannerOptions = {}) {
    this.#perCall = options.perCall ?? 1;
    this.#perHour = options.perHour;
    this.#suffix = options.suffixDigits ?? 4;
    this.#slots = options.profileSlots ?? 24;
    this.#days = options.profileDays ?? 7;
    this.#random = options.random ?? cryptoRandom;
    if (!(this.#perCall >= 0) || (this.#perHour !== undefined && !(this.#perHour >= 0)))
      throw new TypeError("perCall and perHour are rates >= 0");
    if (!(Number.isInteger(this.#suffix) && this.#suffix >= 1 && this.#suffix <= 8))
      throw new TypeError("suffixDigits is 1 to 8");
    if (!(Number.isInteger(this.#slots) && this.#slots >= 1 && DAY_MS % this.#slots === 0))
      throw new TypeError("profileSlots divides a day into whole milliseconds");
    if (!(Number.isInteger(this.#days) && this.#days >= 1)) throw new TypeError("profileDays >= 1");
    this.#startedAt = startedAtMs;
    this.#learnMs = options.learnMs ?? 600_000;
    if (!(this.#learnMs >= 0)) throw new TypeError("learnMs >= 0");
    this.#counts = new Float64Array(this.#days * this.#slots);
    this.#rowDay = new Float64Array(this.#days).fill(-1);
  }

  #row(day: number): number {
    const r = day % this.#days;
    if (this.#rowDay[r] !== day) {
      this.#counts.fill(0, r * this.#slots, (r + 1) * this.#slots);
      this.#rowDay[r] = day;
    }
    return r;
  }

  /** A real call placed at `atMs`: learn its time, destination and copy count. */
  observe(call: CoverObservation, atMs: number): void {
    const day = Math.floor(atMs / DAY_MS);
    const slot = Math.floor((atMs - day * DAY_MS) / (DAY_MS / this.#slots));
    this.#counts[this.#row(day) * this.#slots + slot]! += 1;
    this.#total++;
    const rank = this.#real.rankOf(call.to);
    if (rank >= 0) {
      this.#repeats++;
      this.#ranks.push(rank);
    } else {
      const keep = Math.min(this.#suffix, call.to.length - 1);
      this.#fresh.push({
        prefix: call.to.slice(0, call.to.length - keep),
        digits: keep,
        cpses: call.cpses,
        copies: call.copies,
      });
    }
    this.#real.touch({ tn: call.to });
  }

  /** Real calls per ms in one slot of the profile (days before `day` fully observed), or undefined. */
  #slotRate(day: number, slot: number): number | undefined {
    const slotMs = DAY_MS / this.#slots;
    let calls = 0;
    let days = 0;
    for (let d = day - this.#days; d < day; d++) {
      if (d < 0 || d * DAY_MS + slot * slotMs < this.#startedAt) continue; // not watched in full
      const r = d % this.#days;
      calls += this.#rowDay[r] === d ? this.#counts[r * this.#slots + slot]! : 0;
      days++;
    }
    return days ? calls / (days * slotMs) : undefined;
  }

  /** Cover calls per ms at `atMs`. */
  rateAt(atMs: number): number {
    if (this.#perHour !== undefined) return this.#perHour / 3_600_000;
    const slotMs = DAY_MS / this.#slots;
    // Linear between slot centres: a step profile would leave a lag within each slot.
    const x = atMs / slotMs - 0.5;
    const i = Math.floor(x);
    const w = x - i;
    const at = (k: number) => {
      const day = Math.floor((k * slotMs) / DAY_MS);
      return this.#slotRate(day, ((k % this.#slots) + this.#slots) % this.#slots);
    };
    const a = at(i);
    const b = at(i + 1);
    let real: number;
    if (a !== undefined && b !== undefined) real = a * (1 - w) + b * w;
    else {
      // The first day: no profile yet, the mean rate since start (over at least learnMs).
      const elapsed = Math.max(atMs - this.#startedAt, this.#learnMs);
      real = elapsed > 0 ? this.#total / elapsed : 0;
    }
    return real * this.#perCall;
  }

  /** Time of the next cover call after `fromMs`, or undefined when none is due by `untilMs`. */
  nextAt(fromMs: number, untilMs: number): number | undefined {
    let t = fromMs;
    while (t < untilMs) {
      const stepEnd = Math.min(untilMs, (Math.floor(t / STEP_MS) + 1) * STEP_MS);
      const rate = this.rateAt(t);
      const dt = rate > 0 ? -Math.log(1 - this.#random()) / rate : Number.POSITIVE_INFINITY;
      // Memoryless: an event past the step's end is redrawn at the next step's rate.
      if (t + dt < stepEnd) return t + dt;
      t = stepEnd;
    }
    return undefined;
  }

  /** Where the next cover call goes (learned destinations), or undefined before any real call. */
  target(): CoverTarget | undefined {
    if (this.#total > 0 && this.#random() < this.#repeats / this.#total) {
      const rank = this.#ranks.draw(this.#random);
      const again = rank === undefined ? undefined : this.#cover.atRank(rank);
      if (again) {
        this.#cover.touch(again);
        return again;
      }
    }
    const f = this.#fresh.draw(this.#random);
    if (!f) return undefined;
    let digits = "";
    for (let i = 0; i < f.digits; i++) digits += String(Math.floor(this.#random() * 10));
    const t: CoverTarget = {
      tn: canonicalTn(f.prefix + digits),
      cpses: f.cpses,
      copies: f.copies,
    };
    this.#cover.touch(t);
    return t;
  }

  /** Real calls observed so far. */
  get observed(): number {
    return this.#total;
  }
}

/** What cover cost so far (RFC 8816 §7.5: every blob is paid with a token, like a real store). */
export interface CoverStats {
  readonly realCalls: number;
  readonly coverCalls: number;
  /** Cover blobs stored (= tokens spent = store requests). */
  readonly blobs: number;
  readonly failures: number;
  /** Cover calls skipped because nothing was learned yet and no number source was given. */
  readonly skipped: number;
}

export interface CoverTrafficOptions extends CoverPlannerOptions, RelayTransportOptions {
  /** The AS's token source: cover is paid exactly like real stores (default untokened). */
  readonly tokens?: StoreTokenSource;
  readonly fetch?: FetchLike;
  /**
   * Explicit destinations instead of learned ones (e.g. numbers known to have keys); each call's
   * CPSes then come from `discovery` (by prefix, as for a real call) or are `cps`.
   */
  readonly numbers?: () => string | Promise<string>;
  readonly discovery?: Discovery;
  readonly cps?: string;
  /** Copies per cover call with `numbers` (default 1). */
  readonly copies?: number;
  /**
   * With `discovery`: each new cover number is replaced by a number of its key-lookup block that has
   * keys (the directory's prefix answer: the lookup a real call to it makes), with one copy per key,
   * kept for that cover number so repeats stay repeats; with none in the block the random number stays.
   * Real calls only go to numbers with keys, which a CPS that also runs the key directory can check.
   * Works best with `suffixDigits` equal to discovery's `lookupOpenDigits` (the blocks of real calls).
   */
  readonly keyedNumbers?: boolean;
  /** Milliseconds since the epoch (default Date.now). */
  readonly now?: () => number;
  /** After each cover call (for status lines); errors go to `onError`, the daemon goes on. */
  readonly onCover?: (target: CoverTarget, stats: CoverStats) => void;
  readonly onError?: (error: unknown) => void;
}

/**
 * Stores cover calls at random times while started; give it to the AS as its `cover` option so it
 * learns from real calls, or give it `numbers` and `perHour` to run alone (`stir-oob cover`).
 *
 * @example
 * const cover = new CoverTraffic({ tokens, perCall: 1 });
 * const as = new AuthenticationService({ credential, discovery, tokens, trustAnchors, cover });
 * cover.start(); // ... cover.stop();
 */
export class CoverTraffic extends Daemon {
  readonly planner: CoverPlanner;
  readonly #options: CoverTrafficOptions;
  readonly #now: () => number;
  #stats = { realCalls: 0, coverCalls: 0, blobs: 0, failures: 0, skipped: 0 };
  /** Cover number -> the keyed number that stands for it (`keyedNumbers`), oldest first. */
  readonly #keyed = new Map<string, CoverTarget>();

  constructor(options: CoverTrafficOptions = {}) {
    super();
    this.#options = options;
    this.#now = options.now ?? Date.now;
    if (options.numbers && !options.cps && !options.discovery)
      throw new TypeError("Cover with `numbers` needs `cps` or `discovery`");
    if (options.numbers && options.perHour === undefined)
      throw new TypeError("Cover with `numbers` learns no calls: give `perHour`");
    this.planner = new CoverPlanner(this.#now(), options);
  }

  /** The AS hook: one real call was placed now. */
  observe(call: CoverObservation): void {
    this.#stats.realCalls++;
    this.planner.observe(call, this.#now());
  }

  get stats(): CoverStats {
    return { ...this.#stats };
  }

  protected override schedule(): void {
    if (!this.running) return;
    const now = this.#now();
    // Plan a second ahead; with nothing due the planner is asked again then (Poisson: memoryless),
    // so a rate learned from the first calls takes effect at once.
    const at = this.planner.nextAt(now, now + REPLAN_MS);
    this.after(Math.max(0, (at ?? now + REPLAN_MS) - now), () => {
      if (at !== undefined) {
        this.track(
          this.coverCall().then(
            () => undefined,
            () => undefined,
          ),
        );
      }
      this.schedule();
    });
  }

  async #target(): Promise<CoverTarget | undefined> {
    const o = this.#options;
    if (!o.numbers) {
      const t = this.planner.target();
      return t && o.keyedNumbers && o.discovery ? this.#keyedFor(t, o.discovery) : t;
    }
    const tn = canonicalTn(await o.numbers());
    const cpses = o.cps ? [o.cps] : (await o.discovery!.locate(tn)).cpses;
    return { tn, cpses, copies: o.copies ?? 1 };
  }

  async #keyedFor(t: CoverTarget, discovery: Discovery): Promise<CoverTarget> {
    const known = this.#keyed.get(t.tn);
    if (known) return known;
    const keys = new Map<string, number>();
    for (const e of (await discovery.keyAnswer(t.tn)).entries) {
      const block = (e as { block?: unknown } | null)?.block;
      // Entries for one number only (a record for a whole range says nothing about its numbers).
      if (typeof block === "string" && /^[0-9]+$/.test(block) && block.length === t.tn.length)
        keys.set(block, (keys.get(block) ?? 0) + 1);
    }
    const numbers = [...keys.keys()];
    const random = this.#options.random ?? cryptoRandom;
    const tn = numbers[Math.floor(random() * numbers.length)];
    const out = tn ? { tn: canonicalTn(tn), cpses: t.cpses, copies: Math.min(8, keys.get(tn) ?? 1) } : t;
    this.#keyed.set(t.tn, out);
    if (this.#keyed.size > MEMORY) this.#keyed.delete(this.#keyed.keys().next().value as string);
    return out;
  }

  /**
   * One cover call now (the daemon's timer calls this): sealAndStore with throwaway keys, paid from
   * the token source. Resolves to the target, or undefined when there is nowhere to send it yet.
   */
  async coverCall(): Promise<CoverTarget | undefined> {
    const o = this.#options;
    let target: CoverTarget | undefined;
    try {
      target = await this.#target();
      if (!target) {
        this.#stats.skipped++;
        return undefined;
      }
      const keys = await Promise.all(
        Array.from({ length: target.copies }, async (_, i) => ({
          kid: `cover-${i}`,
          publicKey: (await generateRecipientKeyPair()).publicKey,
        })),
      );
      this.#stats.coverCalls++;
      const tn = target.tn;
      // As the AS does: one sealAndStore per CPS (fresh seals), all at once.
      const results = await Promise.allSettled(
        target.cpses.map((cps) =>
          sealAndStore({
            cps,
            tn,
            // Sealed to keys nobody holds: the plaintext never leaves this process readable.
            passports: [""],
            keys,
            tokens: o.tokens ?? untokenedStores,
            ...(o.fetch ? { fetch: o.fetch } : {}),
            ...(o.relay ? { relay: o.relay } : {}),
            ...(o.requireRelay ? { requireRelay: true } : {}),
          }),
        ),
      );
      for (const r of results) if (r.status === "fulfilled") this.#stats.blobs += r.value.stored.length;
      const failed = results.find((r) => r.status === "rejected");
      if (failed) throw failed.reason;
      o.onCover?.(target, this.stats);
      return target;
    } catch (err) {
      this.#stats.failures++;
      o.onError?.(err);
      throw err;
    }
  }
}
