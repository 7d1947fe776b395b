/**
 * The two-poll, GET-any-id observer of issue 13 finding 6 (`npm run privacy`, parts c and d).
 *
 * The observer looks at one number twice, at t1 and t2 = t1 + delta (delta of its choice), and may GET
 * any id it has seen at any time, so it learns whether each blob persists, and when it dies; since
 * every blob, real or decoy, lives exactly the TTL, the death gives the birth. From that it builds,
 * per blob: the poll pattern (first only, both, second only), the age at first sight, the gaps to the
 * previous and next births among what it saw of the number, whether the blob was ever the only one
 * it knew live (a lone blob must be a decoy: RFC 8816 §6.2 wants one in every answer), whether its
 * birth falls on another's death (a decoy lane born back to back would), and the list sizes.
 * Then the best lookup table over those features (each alone, in pairs, and all together, trained on
 * one half, tested on the other) must be within 50 % +- 2 points on 10,000 real vs 10,000 decoys.
 *
 * Part c simulates the observer with exact times on the server's own decoy code (src/dummies), with
 * real stores as a Poisson process of the same mean live count; part d runs it against the Worker.
 */
import { Decoys } from "../src/dummies/decoys.js";
import { MEAN_LIVE_DECOYS } from "../src/dummies/schedule.js";
import { type CanonicalTn, canonicalTn } from "../src/stir/tn.js";
import { prng, shuffle } from "./lib/stats.mjs";

export interface SeenBlob {
  real: boolean;
  inPoll1: boolean;
  inPoll2: boolean;
  /** Birth as the observer learns it (death - TTL; exact in part c, to its GET resolution in d). */
  birth: number;
}

export interface NumberView {
  ttlMs: number;
  t1: number;
  t2: number;
  blobs: SeenBlob[];
  count1: number;
  count2: number;
}

export interface Sample {
  real: boolean;
  features: Record<string, number>;
}

const bin = (x: number, edges: number[]) => {
  let i = 0;
  while (i < edges.length && x >= edges[i]!) i++;
  return i;
};

/** The observer's features for every blob it saw of one number. */
export function featuresOf(view: NumberView): Sample[] {
  const { ttlMs: T, t1, t2, blobs } = view;
  const births = blobs.map((b) => b.birth).sort((a, b) => a - b);
  const delta = t2 - t1;
  return blobs.map((b) => {
    const death = b.birth + T;
    const firstSight = b.inPoll1 ? t1 : t2;
    const i = births.indexOf(b.birth);
    const prev = i > 0 ? b.birth - births[i - 1]! : Number.POSITIVE_INFINITY;
    const next = i < births.length - 1 ? births[i + 1]! - b.birth : Number.POSITIVE_INFINITY;
    // Alone: some moment of [t1, t2] in its life with no other seen blob live.
    let alone = 0;
    const from = Math.max(t1, b.birth);
    const to = Math.min(t2, death);
    if (to > from) {
      const others = blobs
        .filter((o) => o !== b)
        .map((o) => [Math.max(from, o.birth), Math.min(to, o.birth + T)] as const)
        .filter(([s, e]) => e > s)
        .sort((x, y) => x[0] - y[0]);
      let covered = from;
      for (const [s, e] of others) {
        if (s > covered) break;
        covered = Math.max(covered, e);
      }
      alone = covered < to ? 1 : 0;
    }
    const abut = blobs.some((o) => o !== b && Math.abs(o.birth + T - b.birth) <= T / 200) ? 1 : 0;
    return {
      real: b.real,
      features: {
        delta: bin(delta / T, [0.375, 0.75, 1.25]),
        pattern: b.inPoll1 && b.inPoll2 ? 0 : b.inPoll1 ? 1 : 2,
        age: Math.min(7, Math.floor(((firstSight - b.birth) / T) * 8)),
        prevGap: bin(prev / T, [0.1, 0.25, 0.5, 1]),
        nextGap: bin(next / T, [0.1, 0.25, 0.5, 1]),
        alone,
        abut,
        count: Math.min(6, b.inPoll1 ? view.count1 : view.count2),
      },
    };
  });
}

/** Accuracy on the test half of a lookup table over `keys` trained on the other half. */
export function lookupAccuracy(train: Sample[], test: Sample[], keys: string[]): number {
  const cell = (s: Sample) => keys.map((k) => s.features[k]).join(",");
  const votes = new Map<string, [number, number]>();
  for (const s of train) {
    const v = votes.get(cell(s)) ?? [0, 0];
    v[s.real ? 1 : 0]++;
    votes.set(cell(s), v);
  }
  const realShare = train.filter((s) => s.real).length / train.length;
  let right = 0;
  for (const s of test) {
    const v = votes.get(cell(s));
    const guessReal = v ? (v[1] === v[0] ? realShare >= 0.5 : v[1] > v[0]) : realShare >= 0.5;
    if (guessReal === s.real) right++;
  }
  return right / test.length;
}

/** Up to `n` real and up to `n` other samples, each drawn at random (`rand`) from its kind. */
export function drawEach<S extends Sample>(samples: S[], n: number, rand: () => number): [S[], S[]] {
  const draw = (real: boolean) =>
    shuffle(
      samples.filter((s) => s.real === real),
      rand,
    ).slice(0, n);
  return [draw(true), draw(false)];
}

/** The feature set whose accuracy is farthest from chance (0.5), either way. */
export function mostTelling(accuracy: Record<string, number>): { features: string; accuracy: number } {
  const [features, acc] = Object.entries(accuracy).reduce((b, e) =>
    Math.abs(e[1] - 0.5) > Math.abs(b[1] - 0.5) ? e : b,
  );
  return { features, accuracy: acc };
}

export interface ObserverReport {
  real: number;
  decoys: number;
  numbers: number;
  testSize: number;
  /** Accuracy per feature set (held-out half). */
  accuracy: Record<string, number>;
  best: { features: string; accuracy: number };
  /** Positive control: the same tables against the old design (fresh dummies on every look). */
  control?: Record<string, number>;
}

/** Balances to n real and n decoys, splits in halves at random, and scores every feature set. */
export function classify(samples: Sample[], n: number, seed = 5): Omit<ObserverReport, "numbers"> {
  const rand = prng(seed);
  const [real, decoys] = drawEach(samples, n, rand);
  const all = shuffle([...real, ...decoys], rand);
  const half = Math.floor(all.length / 2);
  const [train, test] = [all.slice(0, half), all.slice(half)];
  const names = Object.keys(all[0]!.features).filter((k) => k !== "delta");
  const sets: string[][] = [];
  for (const a of names) sets.push(["delta", a]);
  for (let i = 0; i < names.length; i++) {
    for (let j = i + 1; j < names.length; j++) sets.push(["delta", names[i]!, names[j]!]);
  }
  sets.push(["delta", ...names]);
  const accuracy: Record<string, number> = {};
  for (const keys of sets) accuracy[keys.join("+")] = lookupAccuracy(train, test, keys);
  const { features, accuracy: acc } = mostTelling(accuracy);
  return {
    real: real.length,
    decoys: decoys.length,
    testSize: test.length,
    accuracy,
    best: { features, accuracy: acc },
  };
}

/** Observer choices of delta, in TTLs. */
export const DELTAS = [0.25, 0.5, 1, 1.5];

/**
 * Part c: the observer with exact times against the server's decoy code, on numbers whose real
 * stores arrive as a Poisson process with the decoys' mean live count (so real and decoy items are
 * about equally many). `oldDesign`: decoys fresh on every look (the positive control).
 */
export async function simulate(
  n: number,
  ttlMs = 60_000,
  seed = 3,
  oldDesign = false,
): Promise<{ samples: Sample[]; numbers: number }> {
  const rand = prng(seed);
  const decoys = new Decoys(`sim-secret-${seed}-0123456789abcdef0123456789`);
  const samples: Sample[] = [];
  let reals = 0;
  let numbers = 0;
  const exp = () => -Math.log(1 - rand());
  while (reals < n || samples.length - reals < n) {
    numbers++;
    const tn = canonicalTn(`1555${String(numbers).padStart(7, "0")}`) as CanonicalTn;
    const t1 = 1_800_000_000_000 + Math.floor(rand() * 1e9);
    const delta = DELTAS[Math.floor(rand() * DELTAS.length)]! * ttlMs;
    const t2 = t1 + delta;
    const blobs: SeenBlob[] = [];
    // Real stores: Poisson, mean MEAN_LIVE_DECOYS live; those born in (t1 - T, t2] are seen.
    for (
      let t = t1 - ttlMs + exp() * (ttlMs / MEAN_LIVE_DECOYS);
      t <= t2;
      t += exp() * (ttlMs / MEAN_LIVE_DECOYS)
    ) {
      const birth = Math.floor(t);
      blobs.push({
        real: true,
        inPoll1: birth <= t1 && birth + ttlMs > t1,
        inPoll2: birth + ttlMs > t2,
        birth,
      });
    }
    if (oldDesign) {
      // Fresh dummies per look, 1-3 each; a GET of one answers 404, i.e. it "died" at once.
      for (const at of [t1, t2]) {
        const k = 1 + Math.floor(rand() * 3);
        for (let i = 0; i < k; i++) {
          blobs.push({ real: false, inPoll1: at === t1, inPoll2: at === t2, birth: at - ttlMs + 1 });
        }
      }
    } else {
      const sched = decoys.schedule(tn, ttlMs);
      for (const d of await sched.between(t1 - ttlMs + 1, t2)) {
        blobs.push({
          real: false,
          inPoll1: d.birth <= t1 && d.birth + ttlMs > t1,
          inPoll2: d.birth + ttlMs > t2,
          birth: d.birth,
        });
      }
    }
    const seen = blobs.filter((b) => b.inPoll1 || b.inPoll2);
    const count1 = seen.filter((b) => b.inPoll1).length;
    const count2 = seen.filter((b) => b.inPoll2).length;
    for (const s of featuresOf({ ttlMs, t1, t2, blobs: seen, count1, count2 })) {
      samples.push(s);
      if (s.real) reals++;
    }
  }
  return { samples, numbers };
}

/** Part c in one call: the report for n vs n, with the old design as the positive control. */
export async function simulatedReport(n: number, ttlMs = 60_000, seed = 3): Promise<ObserverReport> {
  const { samples, numbers } = await simulate(n, ttlMs, seed);
  const report = { ...classify(samples, n, seed + 1), numbers };
  const old = await simulate(Math.min(n, 2000), ttlMs, seed + 7, true);
  const c = classify(old.samples, Math.min(n, 2000), seed + 8);
  return { ...report, control: { [c.best.features]: c.best.accuracy } };
}
