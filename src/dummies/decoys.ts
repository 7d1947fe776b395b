/**
 * Stateless decoy blobs (RFC 8816 §6.2 dummies) that behave like stored blobs: each has an id, lives
 * exactly one TTL, shows in every list, greeting and push of its number while live, and answers
 * `GET /cps/{tn}/ppts/{id}` with the same bytes. Nothing is stored: a decoy's birth comes from the
 * schedule (schedule.ts) and its id and blob from a PRF keyed by DECOY_SECRET, so every isolate and
 * Durable Object produces the same decoy, and one that has died is never produced again.
 *
 * Why not random dummies per answer (the old design): a dummy that changes between two polls, or
 * whose id GETs 404, is told apart from a real blob at once (issue 13, findings 4 and 6).
 *
 * Cost: an HMAC per schedule slot (~6 per look) and one deterministic seal per decoy (~0.4 ms),
 * memoised in a bounded per-isolate cache keyed by (number, decoy): a number polled again within a
 * TTL costs HMACs only. The cache is at most CACHE_ENTRIES sealed decoys (~1.1 kB each, ~4.5 MB).
 */
import { MIN_DECOY_SECRET_LENGTH, readConfig } from "../config.js";
import { CpsError } from "../errors.js";
import { decoyRecipientKey, makeDecoy } from "../stir/envelope.js";
import type { CanonicalTn } from "../stir/tn.js";
import { type DecoyBirth, DecoySchedule, type Prf } from "./schedule.js";

/** Sealed decoys kept per isolate (least recently used dropped beyond it). */
const CACHE_ENTRIES = 4096;

export interface Decoy {
  id: string;
  blob: Uint8Array;
  birth: number;
  expiresAt: number;
}

const utf8 = new TextEncoder();

const hex = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

/** HMAC-SHA256 PRF of one secret (the CryptoKey is imported once). */
export function hmacPrf(secret: string): Prf {
  const key = crypto.subtle.importKey("raw", utf8.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
  return async (label) => new Uint8Array(await crypto.subtle.sign("HMAC", await key, utf8.encode(label)));
}

/** A decoy's id and blob from its (number, key): the same in every isolate. */
export async function sealDecoy(
  prf: Prf,
  tn: CanonicalTn,
  key: string,
  recipient?: Promise<CryptoKey>,
): Promise<{ id: string; blob: Uint8Array }> {
  const [idBytes, seed, to] = await Promise.all([
    prf(`id|${tn}|${key}`),
    prf(`seal|${tn}|${key}`),
    recipient,
  ]);
  return { id: hex(idBytes.subarray(0, 16)), blob: await makeDecoy(tn, seed, to) };
}

/** Schedules kept per isolate, so a number looked at again reuses its slot draws (LRU). */
const SCHEDULE_ENTRIES = 4096;

/** The decoys of one secret, with this isolate's cache of sealed ones. */
export class Decoys {
  private readonly prf: Prf;
  /** Map order is insertion order: re-inserting on use makes it an LRU list. */
  private readonly sealed = new Map<string, Promise<{ id: string; blob: Uint8Array }>>();
  private readonly schedules = new Map<string, DecoySchedule>();
  /** The one recipient all this secret's decoys are sealed to, derived from the secret (nobody holds it). */
  private readonly recipient: Promise<CryptoKey>;

  /** `maxSealed`: the seal cache's bound (CACHE_ENTRIES; smaller only in tests of the bound). */
  constructor(
    secret: string,
    private readonly maxSealed = CACHE_ENTRIES,
  ) {
    this.prf = hmacPrf(secret);
    this.recipient = this.prf("recipient").then(decoyRecipientKey);
  }

  /** The PRF itself (32 bytes per label), for choices derived from the same secret. */
  prfOf(label: string): Promise<Uint8Array> {
    return this.prf(label);
  }

  schedule(tn: CanonicalTn, ttlMs: number): DecoySchedule {
    const name = `${tn}|${ttlMs}`;
    let s = this.schedules.get(name);
    if (s) this.schedules.delete(name);
    else s = new DecoySchedule(this.prf, tn, ttlMs);
    this.schedules.set(name, s);
    if (this.schedules.size > SCHEDULE_ENTRIES) {
      this.schedules.delete(this.schedules.keys().next().value as string);
    }
    return s;
  }

  /** Seals (or finds) the decoys of `births` for `tn`. */
  async seal(tn: CanonicalTn, ttlMs: number, births: DecoyBirth[]): Promise<Decoy[]> {
    return Promise.all(
      births.map(async (b) => {
        const { id, blob } = await this.sealOne(tn, ttlMs, b.key);
        return { id, blob, birth: b.birth, expiresAt: b.birth + ttlMs };
      }),
    );
  }

  /**
   * The decoys of `tn` born in (from, now] and still live at `now`, sealed: what a stream pushes at
   * `now` when it last pushed at `from` (empty if none was born).
   */
  async bornIn(tn: CanonicalTn, ttlMs: number, from: number, now: number): Promise<Decoy[]> {
    const born = await this.schedule(tn, ttlMs).between(Math.max(from + 1, now - ttlMs + 1), now);
    return born.length === 0 ? [] : this.seal(tn, ttlMs, born);
  }

  /** The decoys of `tn` live at `now` (at least one). */
  async live(tn: CanonicalTn, ttlMs: number, now = Date.now()): Promise<Decoy[]> {
    return this.seal(tn, ttlMs, await this.schedule(tn, ttlMs).live(now));
  }

  private sealOne(tn: CanonicalTn, ttlMs: number, key: string) {
    const name = `${tn}|${ttlMs}|${key}`;
    let hit = this.sealed.get(name);
    if (hit) {
      this.sealed.delete(name);
    } else {
      hit = sealDecoy(this.prf, tn, key, this.recipient);
      // A failed seal is not kept: the next look tries again.
      hit.catch(() => this.sealed.delete(name));
    }
    this.sealed.set(name, hit);
    while (this.sealed.size > this.maxSealed) this.sealed.delete(this.sealed.keys().next().value as string);
    return hit;
  }

  /** Sealed decoys held in this isolate's cache now (never more than the bound). */
  get cachedSeals(): number {
    return this.sealed.size;
  }
}

const bySecret = new Map<string, Decoys>();

/**
 * This isolate's decoys for the configured DECOY_SECRET. Throws MISCONFIGURED (500) without one: a
 * CPS must not serve dummies an observer could predict.
 */
export function decoysFor(env: Env): Decoys {
  const secret = readConfig(env).decoySecret;
  if (secret === null) {
    throw new CpsError(
      "MISCONFIGURED",
      `Set DECOY_SECRET to a random secret of at least ${MIN_DECOY_SECRET_LENGTH} characters (wrangler secret put DECOY_SECRET)`,
    );
  }
  let d = bySecret.get(secret);
  if (!d) {
    d = new Decoys(secret);
    bySecret.set(secret, d);
  }
  return d;
}

/** A decoy's lifetime: the configured TTL of a stored blob, in ms. */
export function decoyTtlMs(env: Env): number {
  return readConfig(env).ttlSeconds * 1000;
}

/** The live decoys of `tn` at `now` (at least one), for the configured secret and TTL. */
export function liveDecoys(env: Env, tn: CanonicalTn, now = Date.now()): Promise<Decoy[]> {
  return decoysFor(env).live(tn, decoyTtlMs(env), now);
}

/** Most distinct numbers one block answer carries decoys for; further numbers' real rows come without. */
export const MAX_BLOCK_DECOY_NUMBERS = 256;

/**
 * The block's cover number: one number of the block, fixed by the secret, whose decoys every block
 * answer, greeting and block stream carries, so a block holding no call still answers with dummies
 * that are some number's live decoys (GETtable under that number, like every item of the answer).
 */
export async function coverTn(env: Env, digits: string, open: number): Promise<CanonicalTn> {
  const r = await decoysFor(env).prfOf(`cover|${digits}|${open}`);
  let tail = "";
  for (let i = 0; i < open; i++) tail += String(r[i]! % 10); // 256 % 10 bias: immaterial here
  return (digits + tail) as CanonicalTn;
}

/**
 * The decoys a block answer carries (issue 13 finding 6 for blocks): all live decoys of every number
 * that has a real blob in it, plus the cover number's, each labelled with its number. So every item a
 * block answer shows for a number is an item of that number's own list, and a number's real blobs
 * never show in a block answer without its decoys. `tns`: the numbers of the real rows, in order;
 * decoys come for the first MAX_BLOCK_DECOY_NUMBERS of them, which bounds the sealing one answer
 * costs; the real rows of further numbers are still served, without their decoys. `cover` is the
 * block's cover number (coverTn), returned so a caller need not derive it again.
 */
export async function blockDecoys(
  env: Env,
  digits: string,
  open: number,
  tns: Iterable<string>,
  now = Date.now(),
): Promise<{ decoys: (Decoy & { tn: string })[]; cover: CanonicalTn }> {
  const kept = new Set<string>();
  for (const tn of tns) {
    if (kept.size >= MAX_BLOCK_DECOY_NUMBERS) break;
    kept.add(tn);
  }
  const cover = await coverTn(env, digits, open);
  const all = new Set(kept).add(cover);
  const lists = await Promise.all(
    [...all].map(async (tn) => (await liveDecoys(env, tn as CanonicalTn, now)).map((d) => ({ ...d, tn }))),
  );
  return { decoys: lists.flat(), cover };
}
