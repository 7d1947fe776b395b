/**
 * Diverted calls (RFC 8946) for out-of-band STIR (RFC 8816 §6.2, last paragraph): building `div` and
 * `div-o` claims, and the rules that link a chain of them back to the original PASSporT.
 *
 * A call from A to C, forwarded by C's service to B, carries two PASSporTs: the original (orig A,
 * dest C, signed by a credential covering A) and a diversion PASSporT signed by C's service (orig A,
 * dest B, `div` {tn: C}; RFC 8946 §3). A VS at B accepts the pair when each link holds:
 * - the diversion's `orig` is the original's `orig`, unchanged (§3: orig is copied);
 * - its `div` is one of the `dest` numbers of the PASSporT before it (§3);
 * - its signer's credential covers its `div` number (§3: the retargeting entity picks a `div` within
 *   the scope of its own credential), the original's signer covers `orig` (RFC 8224 §6.2);
 * - every link is fresh and correctly signed.
 * `div-o` (§5) nests the PASSporT before it in `opt`: out of band that is what lets B see the original
 * at all, since it was sealed to C's keys (RFC 8816 §6.2 says a retargeting storer SHOULD use it). A
 * plain `div` is stored with the earlier PASSporTs beside it instead, each sealed to B.
 *
 * Pure: no I/O. Verifying one link's credential and signature is the caller's (`LinkCheck`).
 */
import { CpsError } from "../errors.js";
import {
  canonicalJson,
  type DecodedPassport,
  type PassportClaims,
  type PassportDiv,
  type PassportOrig,
} from "./passport.js";
import type { CanonicalTn } from "./tn.js";

/** The `ppt` of a diversion PASSporT (RFC 8946 §3) and of one nesting its predecessor (§5). */
export const DIV_PPT = "div";
export const DIV_O_PPT = "div-o";
export type DiversionPpt = typeof DIV_PPT | typeof DIV_O_PPT;

/**
 * Diversions a verifier follows by default. RFC 8946 sets no bound; a verifier needs one, since each
 * link may cost a certificate fetch. Forwarding more than three times is rare.
 */
export const DEFAULT_MAX_DIVERSIONS = 3;
/** Hard cap on `maxDiversions`. */
export const MAX_DIVERSIONS = 8;

export function isDiversionPpt(ppt: string | undefined): ppt is DiversionPpt {
  return ppt === DIV_PPT || ppt === DIV_O_PPT;
}

/** The `div` claim of a decoded diversion PASSporT (shape checked by passport.ts). */
export function divOf(decoded: DecodedPassport): PassportDiv | undefined {
  return decoded.claims.div as PassportDiv | undefined;
}

function unlinked(message: string): CpsError {
  return new CpsError("DIVERSION_UNLINKED", message);
}

function sameOrig(a: PassportOrig, b: PassportOrig): boolean {
  return canonicalJson(a) === canonicalJson(b);
}

/**
 * Why `next` (a diversion PASSporT) does not follow `previous`, or undefined when it does: same
 * `orig`, and its `div` number among `previous`'s `dest` numbers (RFC 8946 §3). Out of band only a
 * telephone number can be diverted from: a `div` URI cannot be matched to a credential here.
 */
export function linkProblem(next: DecodedPassport, previous: DecodedPassport): CpsError | undefined {
  const div = divOf(next);
  if (div === undefined || !("tn" in div)) return unlinked("div does not name a telephone number");
  if (!sameOrig(next.claims.orig, previous.claims.orig)) return unlinked("orig changed along the diversion");
  if (!(previous.claims.dest.tn ?? []).includes(div.tn)) {
    return unlinked("div is not a destination of the PASSporT it follows");
  }
  return undefined;
}

export interface DivClaimsInput {
  /** The number the call is diverted from: a `dest` of the previous PASSporT, covered by the signer. */
  readonly from: CanonicalTn;
  /** The new destination. */
  readonly to: CanonicalTn;
  readonly iat: number;
  /** For `div-o` (RFC 8946 §5): the previous PASSporT in full form, nested in `opt`. */
  readonly opt?: string;
}

/**
 * The claims of a diversion PASSporT following `previous` (RFC 8946 §3): `orig` copied, `dest` the new
 * target, `div` the number diverted from, a fresh `iat`, and `opt` for `div-o`. Throws
 * `DIVERSION_UNLINKED` when `from` is not a destination of `previous` or the target does not change
 * (§3: no diversion PASSporT when the canonical destination stays the same).
 *
 * @example
 * const claims = divClaims(original.claims, { from: carol, to: bob, iat: now, opt: originalJws });
 */
export function divClaims(previous: PassportClaims, input: DivClaimsInput): PassportClaims {
  if (!(previous.dest.tn ?? []).includes(input.from)) {
    throw unlinked("The number diverted from is not a destination of the PASSporT");
  }
  if (input.to === input.from) throw unlinked("A diversion changes the destination");
  return {
    orig: previous.orig,
    dest: { tn: [input.to] },
    div: { tn: input.from },
    iat: input.iat,
    ...(input.opt === undefined ? {} : { opt: input.opt }),
  };
}

/** One PASSporT of a verified chain. */
export interface ChainLink {
  readonly passport: string;
  readonly decoded: DecodedPassport;
  /** `div`, `div-o`, or `original` (the PASSporT the chain starts from). */
  readonly kind: DiversionPpt | "original";
}

/** What the caller checks for one link: credential covering `covers`, freshness, signature. */
export interface LinkCheckInput extends ChainLink {
  /** The number the signer must cover: `div.tn` for a diversion, `orig.tn` for the original. */
  readonly covers: string;
  /** Position in the chain: 0 is the PASSporT for the called number, counting back to the original. */
  readonly index: number;
}

/** A failed check: the §8.2 step and stable code, as the VS reports them. */
export interface LinkFailure {
  readonly step: 2 | 3 | 4 | 5 | 6;
  readonly code: string;
  readonly message: string;
}

export type LinkCheck = (link: LinkCheckInput) => Promise<LinkFailure | undefined>;

export interface ChainOptions {
  /** Decodes a PASSporT found in `opt` or `pool` (throws a CpsError when malformed or unsupported). */
  readonly decode: (jws: string) => DecodedPassport;
  /** The other PASSporTs opened for the called number: where a plain `div` finds its predecessor. */
  readonly pool: readonly string[];
  readonly check: LinkCheck;
  /** Diversions followed at most (default DEFAULT_MAX_DIVERSIONS, at most MAX_DIVERSIONS). */
  readonly maxDiversions?: number;
}

/**
 * Link checks one chain search spends at most (each costs the caller a certificate validation and a
 * signature check unless it memoises them). A genuine chain needs maxDiversions + 1; the bound only
 * stops a pool of PASSporTs that all link to each other (a storer with a credential for two numbers
 * can make any number of them) from costing the verifier more than a fixed amount per candidate.
 */
export const MAX_CHAIN_CHECKS = 64;

export type ChainResult =
  | { readonly ok: true; readonly links: readonly ChainLink[] }
  | { readonly ok: false; readonly failure: LinkFailure & { readonly link: number } };

function fromError(step: LinkFailure["step"], err: unknown): LinkFailure {
  if (err instanceof CpsError) return { step, code: err.code, message: err.message };
  return { step, code: "INTERNAL", message: err instanceof Error ? err.message : "Unexpected failure" };
}

function kindOf(decoded: DecodedPassport): ChainLink["kind"] {
  const ppt = decoded.header.ppt;
  return isDiversionPpt(ppt) ? ppt : "original";
}

/** The number a link's signer must cover: `div.tn` for a diversion, `orig.tn` for the original. */
function coveredBy(link: ChainLink): string {
  if (link.kind === "original") return "tn" in link.decoded.claims.orig ? link.decoded.claims.orig.tn : "";
  const div = divOf(link.decoded);
  return div && "tn" in div ? div.tn : "";
}

/** Index of a pool: `orig` (canonical JSON) and one `dest` number -> the PASSporTs naming both. */
type PoolIndex = ReadonlyMap<string, readonly ChainLink[]>;
const indexKey = (orig: PassportOrig, tn: string) => `${canonicalJson(orig)} ${tn}`;
/** One index per pool array and decoder: a VS judging many candidates over one pool builds it once. */
const poolIndexes = new WeakMap<readonly string[], { decode: ChainOptions["decode"]; index: PoolIndex }>();

function poolIndex(pool: readonly string[], decode: ChainOptions["decode"]): PoolIndex {
  const cached = poolIndexes.get(pool);
  if (cached?.decode === decode) return cached.index;
  const index = new Map<string, ChainLink[]>();
  const originals: ChainLink[] = [];
  const diversions: ChainLink[] = [];
  for (const passport of new Set(pool)) {
    try {
      const decoded = decode(passport);
      const link: ChainLink = { passport, decoded, kind: kindOf(decoded) };
      (link.kind === "original" ? originals : diversions).push(link);
    } catch {
      // A malformed pool entry is just not anyone's predecessor.
    }
  }
  // Originals first: the one that ends a chain is found before any diversion is followed.
  for (const link of [...originals, ...diversions]) {
    for (const tn of new Set(link.decoded.claims.dest.tn ?? [])) {
      const key = indexKey(link.decoded.claims.orig, tn);
      const list = index.get(key);
      if (list) list.push(link);
      else index.set(key, [link]);
    }
  }
  poolIndexes.set(pool, { decode, index });
  return index;
}

/**
 * Follows a diversion PASSporT (`end`, already decoded, `orig`/`dest` already matched to the call)
 * back to its original: through `opt` for `div-o`, through `pool` for `div`. Breadth first: the
 * shortest chain is found, each PASSporT is checked (with `check`) at most once per search and appears
 * at most once in a chain, originals are tried before diversions at each step, and the search stops
 * after MAX_CHAIN_CHECKS checks (`DIVERSION_TOO_COMPLEX`). A diversion whose `div` number is among its
 * own `dest` is refused unchecked (RFC 8946 §3: a diversion changes the destination). The chain is
 * `ok` when every link passes and it ends in a non-diversion PASSporT within `maxDiversions`. A
 * failure names its link (0 = `end`) with the step and code of the first failing check, in search
 * order.
 *
 * @example
 * const r = await verifyChain({ passport, decoded, kind: "div-o" }, { decode, pool, check });
 */
export async function verifyChain(end: ChainLink, options: ChainOptions): Promise<ChainResult> {
  const asked = options.maxDiversions ?? DEFAULT_MAX_DIVERSIONS;
  // A bound that is not a whole number (NaN, Infinity) would leave only the pool to end the walk.
  const max = Number.isInteger(asked) ? Math.min(Math.max(asked, 0), MAX_DIVERSIONS) : DEFAULT_MAX_DIVERSIONS;
  const fail = (f: LinkFailure, link: number): ChainResult => ({ ok: false, failure: { ...f, link } });
  let firstFailure: ChainResult | undefined;
  const record = (f: LinkFailure, link: number) => {
    firstFailure ??= fail(f, link);
  };
  // Each PASSporT reached -> the link it precedes (toward `end`), to rebuild the chain found.
  const next = new Map<string, ChainLink>();
  const reached = new Set<string>([end.passport]);
  let checks = 0;
  let truncated = false;
  const tooComplex = (link: number) =>
    fail(fromError(3, new CpsError("DIVERSION_TOO_COMPLEX", "Too many links to check")), link);
  let layer: ChainLink[] = [end];
  for (let index = 0; layer.length > 0; index++) {
    const following: ChainLink[] = [];
    for (const link of layer) {
      const covers = coveredBy(link);
      if (covers === "") {
        record(fromError(3, unlinked("The link names no telephone number to cover")), index);
        continue;
      }
      if (link.kind !== "original" && (link.decoded.claims.dest.tn ?? []).includes(covers)) {
        record(fromError(3, unlinked("A diversion names the number diverted from as a destination")), index);
        continue;
      }
      if (checks >= MAX_CHAIN_CHECKS) return tooComplex(index);
      checks++;
      const failed = await options.check({ ...link, covers, index });
      if (failed) {
        record(failed, index);
        continue;
      }
      if (link.kind === "original") {
        const links = [link];
        for (let at = next.get(link.passport); at; at = next.get(at.passport)) links.push(at);
        return { ok: true, links: links.reverse() };
      }
      if (index + 1 > max) {
        record(fromError(3, new CpsError("DIVERSION_TOO_LONG", "Too many diversions")), index);
        continue;
      }
      // Candidates for the PASSporT before this one.
      let previous: readonly ChainLink[];
      if (link.kind === DIV_O_PPT) {
        const opt = link.decoded.claims.opt as string;
        let decoded: DecodedPassport;
        try {
          decoded = options.decode(opt);
        } catch (err) {
          // A malformed `opt` breaks the chain.
          record(fromError(2, err), index + 1);
          continue;
        }
        const problem = linkProblem(link.decoded, decoded);
        if (problem) {
          record(fromError(3, problem), index);
          continue;
        }
        previous = [{ passport: opt, decoded, kind: kindOf(decoded) }];
      } else {
        previous =
          poolIndex(options.pool, options.decode).get(indexKey(link.decoded.claims.orig, covers)) ?? [];
      }
      // The index holds only PASSporTs with L's `orig` naming L's `div` number: each one links.
      const linked = previous.length > 0;
      for (const p of previous) {
        if (reached.has(p.passport)) continue;
        // Nothing past what the remaining checks can examine is worth queueing.
        if (following.length >= MAX_CHAIN_CHECKS - checks) {
          truncated = true;
          break;
        }
        reached.add(p.passport);
        next.set(p.passport, link);
        following.push(p);
      }
      if (!linked) record(fromError(3, unlinked("No PASSporT opened that this diversion follows")), index);
    }
    layer = following;
  }
  // Links left unexamined: the search did not end, whatever failed before.
  if (truncated) return tooComplex(0);
  return firstFailure ?? fail(fromError(3, unlinked("No PASSporT opened that this diversion follows")), 0);
}

/**
 * Which PASSporTs a diverting service must store (besides its own new one) so the next VS can rebuild
 * the chain: those not already nested in a `div-o`'s `opt`. `chain` runs from the PASSporT being
 * diverted (first) back to the original; `nested` says whether the new PASSporT is a `div-o`.
 */
export function passportsToStore(chain: readonly ChainLink[], newKind: DiversionPpt): string[] {
  const out: string[] = [];
  let nested = newKind === DIV_O_PPT;
  for (const link of chain) {
    if (!nested) out.push(link.passport);
    nested = link.kind === DIV_O_PPT;
  }
  return out;
}

/** The numbers a verified chain was diverted from, in call order (the original's `dest` first). */
export function divertedFrom(links: readonly ChainLink[]): string[] {
  const out: string[] = [];
  for (const link of [...links].reverse()) {
    const div = divOf(link.decoded);
    if (link.kind !== "original" && div && "tn" in div) out.push(div.tn);
  }
  return out;
}
