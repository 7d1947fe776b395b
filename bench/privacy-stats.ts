/**
 * Statistics for the privacy measurements (RFC 8816 §6.2 dummies "plausible", §7.4 traffic analysis;
 * docs/design.md invariant 2): real sealed PASSporTs vs the CPS's dummies, compared by length, byte
 * frequencies (chi-square) and two simple trained classifiers, plus the timing comparison helpers.
 *
 * Used by `npm run privacy` (bench/privacy.mjs, bundled with esbuild) and by the CI-sized test
 * test/unit/privacy-stats.test.ts. Pure code: WebCrypto only, no I/O.
 */
import { Decoys } from "../src/dummies/decoys.js";
import { encodeBase64url } from "../src/stir/base64url.js";
import { generateRecipientKeyPair, sealPassport } from "../src/stir/envelope.js";
import { createPassport } from "../src/stir/passport.js";
import { createTestPki } from "../src/stir/test-pki.js";
import { type CanonicalTn, canonicalTn } from "../src/stir/tn.js";
import { median, prng, shuffle } from "./lib/stats.mjs";

/** Shared with the other benchmarks (bench/lib/stats.mjs); prng drives shuffles and splits here, so
 * crypto randomness stays in the blobs. Re-exported for the unit test and bench/privacy.mjs. */
export { median, prng };

// ---------------------------------------------------------------------------------------------
// Populations

const digits = (rand: () => number, n: number) =>
  Array.from({ length: n }, () => Math.floor(rand() * 10)).join("");

export interface Populations {
  tn: CanonicalTn;
  real: Uint8Array[];
  dummies: Uint8Array[];
  passportLengths: { min: number; max: number };
}

/**
 * `n` real blobs (varied SHAKEN PASSporTs signed with a test PKI credential: random orig, dest, iat,
 * attestation, origid, x5u; each sealed to one of 8 callee keys) and `n` of the CPS's decoys,
 * all for one called number, as one observer of that number's retrievals would see them.
 */
export async function makePopulations(n: number, seed = 1): Promise<Populations> {
  const rand = prng(seed);
  const pki = await createTestPki();
  const tn = canonicalTn("12025550100");
  const callees = await Promise.all(
    Array.from({ length: 8 }, async () => (await generateRecipientKeyPair()).publicKey),
  );
  const real: Uint8Array[] = [];
  let min = Number.POSITIVE_INFINITY;
  let max = 0;
  const BATCH = 100;
  for (let done = 0; done < n; done += BATCH) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(BATCH, n - done) }, async () => {
        const attest = (["A", "B", "C"] as const)[Math.floor(rand() * 3)]!;
        const jws = await createPassport(
          {
            x5u: `https://cert${digits(rand, 1 + Math.floor(rand() * 3))}.sp${digits(rand, 2)}.example.net/${digits(rand, 1 + Math.floor(rand() * 12))}.pem`,
            ppt: "shaken",
            claims: {
              attest,
              dest: { tn: [`1${digits(rand, 10)}`] },
              iat: 1_700_000_000 + Math.floor(rand() * 100_000_000),
              orig: { tn: `${1 + Math.floor(rand() * 9)}${digits(rand, 7 + Math.floor(rand() * 8))}` },
              origid: crypto.randomUUID(),
            },
          },
          pki.valid.privateKey,
        );
        min = Math.min(min, jws.length);
        max = Math.max(max, jws.length);
        return sealPassport(callees[Math.floor(rand() * callees.length)]!, tn, jws);
      }),
    );
    real.push(...batch);
  }
  // The CPS's own decoys, as a server with a fresh secret seals them (src/dummies/decoys.ts: one
  // recipient per secret, a derived ephemeral key and plaintext per decoy).
  const decoys = new Decoys(encodeBase64url(crypto.getRandomValues(new Uint8Array(32))));
  const dummies: Uint8Array[] = [];
  for (let done = 0; done < n; done += BATCH) {
    const keys = Array.from({ length: Math.min(BATCH, n - done) }, (_, i) => `s${done + i}.0`);
    const sealed = await decoys.seal(
      tn,
      60_000,
      keys.map((key) => ({ key, birth: 0 })),
    );
    dummies.push(...sealed.map((d) => d.blob));
  }
  return { tn, real, dummies, passportLengths: { min, max } };
}

/** A deliberately bad dummy generator (plain random bytes): the positive control for the tests. */
export function naiveRandomDummies(n: number, length: number): Uint8Array[] {
  return Array.from({ length: n }, () => crypto.getRandomValues(new Uint8Array(length)));
}

// ---------------------------------------------------------------------------------------------
// Chi-square

/** Regularised upper tail of chi-square via the Wilson-Hilferty normal approximation (fine for dof >= 30). */
export function chiSquarePValue(stat: number, dof: number): number {
  const z = ((stat / dof) ** (1 / 3) - (1 - 2 / (9 * dof))) / Math.sqrt(2 / (9 * dof));
  return 1 - normalCdf(z);
}

export function normalCdf(z: number): number {
  // Abramowitz-Stegun 7.1.26 on erf, |error| < 1.5e-7.
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * x);
  const y =
    1 -
    ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) *
      t *
      Math.exp(-x * x);
  return z >= 0 ? (1 + y) / 2 : (1 - y) / 2;
}

export interface ChiSquare {
  stat: number;
  dof: number;
  p: number;
}

export function byteHistogram(blobs: Uint8Array[], from = 0, to = Number.POSITIVE_INFINITY): Float64Array {
  const h = new Float64Array(256);
  for (const b of blobs) for (let i = from; i < Math.min(to, b.length); i++) h[b[i]!]!++;
  return h;
}

/** Goodness of fit of a 256-cell histogram to the uniform distribution (dof 255). */
export function chiSquareUniform(h: Float64Array): ChiSquare {
  const total = h.reduce((a, b) => a + b, 0);
  const e = total / h.length;
  let stat = 0;
  for (const o of h) stat += (o - e) ** 2 / e;
  const dof = h.length - 1;
  return { stat, dof, p: chiSquarePValue(stat, dof) };
}

/** Homogeneity of two histograms (2 x k contingency table; empty cells dropped). */
export function chiSquareTwoSample(a: Float64Array, b: Float64Array): ChiSquare {
  const na = a.reduce((x, y) => x + y, 0);
  const nb = b.reduce((x, y) => x + y, 0);
  let stat = 0;
  let cells = 0;
  for (let i = 0; i < a.length; i++) {
    const col = a[i]! + b[i]!;
    if (col === 0) continue;
    cells++;
    const ea = (col * na) / (na + nb);
    const eb = (col * nb) / (na + nb);
    stat += (a[i]! - ea) ** 2 / ea + (b[i]! - eb) ** 2 / eb;
  }
  const dof = Math.max(1, cells - 1);
  return { stat, dof, p: chiSquarePValue(stat, dof) };
}

/**
 * Per byte position, two-sample chi-square of real vs dummy values; returns the most extreme position
 * (smallest p) and how many positions fall under p < 0.001 (about 1 expected by chance over 1072).
 */
export function positionalScan(
  real: Uint8Array[],
  dummies: Uint8Array[],
): { worst: { pos: number } & ChiSquare; below001: number } {
  const length = real[0]!.length;
  let worst = { pos: -1, stat: 0, dof: 1, p: 1 };
  let below001 = 0;
  for (let pos = 0; pos < length; pos++) {
    // 16 bins of the high nibble: enough counts per cell at n = 1,000, and the enc top bit lives there.
    const a = new Float64Array(16);
    const b = new Float64Array(16);
    for (const x of real) a[x[pos]! >> 4]!++;
    for (const x of dummies) b[x[pos]! >> 4]!++;
    const c = chiSquareTwoSample(a, b);
    const p = chiSquareExactish(c.stat, c.dof);
    if (p < 0.001) below001++;
    if (p < worst.p) worst = { pos, stat: c.stat, dof: c.dof, p };
  }
  return { worst, below001 };
}

/** Upper tail of chi-square for small dof (series for the regularised incomplete gamma). */
function chiSquareExactish(stat: number, dof: number): number {
  const a = dof / 2;
  const x = stat / 2;
  if (x <= 0) return 1;
  // Lower series P(a, x), then Q = 1 - P; for large x use the continued fraction.
  const lnGammaA = lnGamma(a);
  if (x < a + 1) {
    let sum = 1 / a;
    let term = sum;
    for (let k = 1; k < 500; k++) {
      term *= x / (a + k);
      sum += term;
      if (term < sum * 1e-14) break;
    }
    return Math.max(0, 1 - sum * Math.exp(-x + a * Math.log(x) - lnGammaA));
  }
  let b = x + 1 - a;
  let c = 1e300;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 500; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < 1e-300) d = 1e-300;
    c = b + an / c;
    if (Math.abs(c) < 1e-300) c = 1e-300;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-14) break;
  }
  return Math.exp(-x + a * Math.log(x) - lnGammaA) * h;
}

function lnGamma(z: number): number {
  // Lanczos, g = 7.
  const g = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
    12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  if (z < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * z)) - lnGamma(1 - z);
  const zz = z - 1;
  let x = g[0]!;
  for (let i = 1; i < 9; i++) x += g[i]! / (zz + i);
  const t = zz + 7.5;
  return 0.5 * Math.log(2 * Math.PI) + (zz + 0.5) * Math.log(t) - t + Math.log(x);
}

// ---------------------------------------------------------------------------------------------
// Classifiers (trained on 70 %, tested on 30 %)

export interface Split {
  train: { x: Uint8Array; y: 0 | 1 }[];
  test: { x: Uint8Array; y: 0 | 1 }[];
}

export function split(real: Uint8Array[], dummies: Uint8Array[], seed = 7, trainShare = 0.7): Split {
  const rand = prng(seed);
  const all = shuffle(
    [...real.map((x) => ({ x, y: 1 as const })), ...dummies.map((x) => ({ x, y: 0 as const }))],
    rand,
  );
  const cut = Math.floor(all.length * trainShare);
  return { train: all.slice(0, cut), test: all.slice(cut) };
}

/**
 * Naive Bayes on every byte position (1072 positions x 16 high-nibble bins, Laplace smoothing): it
 * sees any per-position bias, e.g. the X25519 top bit of byte 31 (shared by both populations) or a
 * structured enc, ciphertext or tag.
 */
export function naiveBayesAccuracy({ train, test }: Split): number {
  const length = train[0]!.x.length;
  const counts = [new Float64Array(length * 16), new Float64Array(length * 16)];
  const n = [0, 0];
  for (const { x, y } of train) {
    n[y]!++;
    const c = counts[y]!;
    for (let i = 0; i < length; i++) c[i * 16 + (x[i]! >> 4)]!++;
  }
  const logp = counts.map((c, y) => c.map((v) => Math.log((v + 1) / (n[y]! + 16))));
  let right = 0;
  for (const { x, y } of test) {
    let s1 = Math.log(n[1]! / (n[0]! + n[1]!));
    let s0 = Math.log(n[0]! / (n[0]! + n[1]!));
    for (let i = 0; i < length; i++) {
      const k = i * 16 + (x[i]! >> 4);
      s1 += logp[1]![k]!;
      s0 += logp[0]![k]!;
    }
    if ((s1 > s0 ? 1 : 0) === y) right++;
  }
  return right / test.length;
}

/** Features: the 256-bin byte histogram of the blob, plus the 32 enc bytes and the 16 tag bytes. */
function features(x: Uint8Array): Float64Array {
  const f = new Float64Array(256 + 32 + 16 + 1);
  for (const b of x) f[b]! += 1 / x.length;
  for (let i = 0; i < 32; i++) f[256 + i] = x[i]! / 255;
  for (let i = 0; i < 16; i++) f[288 + i] = x[x.length - 16 + i]! / 255;
  f[304] = x[31]! >> 7; // the X25519 top bit
  return f;
}

/** Logistic regression (standardised features, full-batch gradient descent, L2). */
export function logisticAccuracy({ train, test }: Split, epochs = 60, rate = 0.5, l2 = 1e-3): number {
  const xs = train.map((t) => features(t.x));
  const d = xs[0]!.length;
  const mean = new Float64Array(d);
  const sd = new Float64Array(d);
  for (const x of xs) for (let j = 0; j < d; j++) mean[j]! += x[j]! / xs.length;
  for (const x of xs) for (let j = 0; j < d; j++) sd[j]! += (x[j]! - mean[j]!) ** 2 / xs.length;
  for (let j = 0; j < d; j++) sd[j] = Math.sqrt(sd[j]!) || 1;
  const norm = (x: Float64Array) => x.map((v, j) => (v - mean[j]!) / sd[j]!);
  const X = xs.map(norm);
  const w = new Float64Array(d);
  let bias = 0;
  for (let e = 0; e < epochs; e++) {
    const g = new Float64Array(d);
    let gb = 0;
    for (let i = 0; i < X.length; i++) {
      const x = X[i]!;
      let z = bias;
      for (let j = 0; j < d; j++) z += w[j]! * x[j]!;
      const err = 1 / (1 + Math.exp(-z)) - train[i]!.y;
      for (let j = 0; j < d; j++) g[j]! += err * x[j]!;
      gb += err;
    }
    for (let j = 0; j < d; j++) w[j]! -= rate * (g[j]! / X.length + l2 * w[j]!);
    bias -= (rate * gb) / X.length;
  }
  let right = 0;
  for (const t of test) {
    const x = norm(features(t.x));
    let z = bias;
    for (let j = 0; j < d; j++) z += w[j]! * x[j]!;
    if ((z > 0 ? 1 : 0) === t.y) right++;
  }
  return right / test.length;
}

// ---------------------------------------------------------------------------------------------
// Report for part (a)

export interface BlobReport {
  n: number;
  lengths: { real: number[]; dummies: number[] };
  passportLengths: { min: number; max: number };
  chiSquare: {
    realVsUniform: ChiSquare;
    dummiesVsUniform: ChiSquare;
    realVsDummies: ChiSquare;
    /** Same, excluding byte 31 (the X25519 top bit, clear in both populations). */
    realVsDummiesNoTopBitByte: ChiSquare;
  };
  positional: ReturnType<typeof positionalScan>;
  accuracy: { naiveBayes: number; logistic: number; testSize: number };
  control: {
    naiveBayes: number;
    logistic: number;
    positionalWorst: ReturnType<typeof positionalScan>["worst"];
  };
}

export async function blobReport(n: number, seed = 1): Promise<BlobReport> {
  const pop = await makePopulations(n, seed);
  const hReal = byteHistogram(pop.real);
  const hDummy = byteHistogram(pop.dummies);
  const noTop = (blobs: Uint8Array[]) => {
    const h = byteHistogram(blobs, 0, 31);
    const rest = byteHistogram(blobs, 32);
    for (let i = 0; i < 256; i++) h[i]! += rest[i]!;
    return h;
  };
  const s = split(pop.real, pop.dummies, seed + 1);
  // Positive control: the same classifiers against plain random bytes posing as dummies.
  const naive = naiveRandomDummies(n, pop.real[0]!.length);
  const sc = split(pop.real, naive, seed + 2);
  return {
    n,
    lengths: {
      real: [...new Set(pop.real.map((b) => b.length))],
      dummies: [...new Set(pop.dummies.map((b) => b.length))],
    },
    passportLengths: pop.passportLengths,
    chiSquare: {
      realVsUniform: chiSquareUniform(hReal),
      dummiesVsUniform: chiSquareUniform(hDummy),
      realVsDummies: chiSquareTwoSample(hReal, hDummy),
      realVsDummiesNoTopBitByte: chiSquareTwoSample(noTop(pop.real), noTop(pop.dummies)),
    },
    positional: positionalScan(pop.real, pop.dummies),
    accuracy: { naiveBayes: naiveBayesAccuracy(s), logistic: logisticAccuracy(s), testSize: s.test.length },
    control: {
      naiveBayes: naiveBayesAccuracy(sc),
      logistic: logisticAccuracy(sc),
      positionalWorst: positionalScan(pop.real, naive).worst,
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Timing (part b)

/**
 * The run's own noise for a difference of medians: the permutation distribution of
 * |median(A) - median(B)| when the pooled samples are split at random into groups of the two sizes.
 * Returns its 95th and 99th percentiles and the permutation p-value of the observed difference.
 */
export function medianDifferenceNoise(
  a: readonly number[],
  b: readonly number[],
  rounds = 2000,
  seed = 11,
): { observed: number; p95: number; p99: number; p: number } {
  const rand = prng(seed);
  const observed = median(b) - median(a);
  const pooled = [...a, ...b];
  const diffs: number[] = [];
  let atLeast = 0;
  for (let r = 0; r < rounds; r++) {
    shuffle(pooled, rand);
    const d = Math.abs(median(pooled.slice(a.length)) - median(pooled.slice(0, a.length)));
    diffs.push(d);
    if (d >= Math.abs(observed)) atLeast++;
  }
  diffs.sort((x, y) => x - y);
  return {
    observed,
    p95: diffs[Math.floor(rounds * 0.95)]!,
    p99: diffs[Math.floor(rounds * 0.99)]!,
    p: (atLeast + 1) / (rounds + 1),
  };
}

// Re-exports for bench/privacy.mjs (one bundle, one copy of the sealing code).
export { encodeEnvelope, generateRecipientKeyPair, sealPassport } from "../src/stir/envelope.js";
export { canonicalTn } from "../src/stir/tn.js";
export { classify, DELTAS, featuresOf, simulatedReport } from "./privacy-observer.js";
