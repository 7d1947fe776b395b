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

/**
 * Follows a diversion PASSporT (`end`, already decoded, `orig`/`dest` already matched to the call)
 * back to its original: through `opt` for `div-o`, through `pool` for `div` (each PASSporT there that
 * it follows is tried in turn). Every link is checked with `check`; the chain is `ok` when every link
 * passes and it ends in a non-diversion PASSporT within `maxDiversions`. A failure names its link
 * (0 = `end`) with the step and code of the first failing check.
 *
 * @example
 * const r = await verifyChain({ passport, decoded, kind: "div-o" }, { decode, pool, check });
 */
export async function verifyChain(end: ChainLink, options: ChainOptions): Promise<ChainResult> {
  const asked = options.maxDiversions ?? DEFAULT_MAX_DIVERSIONS;
  // A bound that is not a whole number (NaN, Infinity) would leave only the pool to end the walk.
  const max = Number.isInteger(asked) ? Math.min(Math.max(asked, 0), MAX_DIVERSIONS) : DEFAULT_MAX_DIVERSIONS;
  const walk = async (link: ChainLink, index: number, seen: ReadonlySet<string>): Promise<ChainResult> => {
    const fail = (f: LinkFailure, at = index): ChainResult => ({ ok: false, failure: { ...f, link: at } });
    const div = divOf(link.decoded);
    const covers =
      link.kind === "original"
        ? "tn" in link.decoded.claims.orig
          ? link.decoded.claims.orig.tn
          : ""
        : div && "tn" in div
          ? div.tn
          : "";
    if (covers === "") return fail(fromError(3, unlinked("The link names no telephone number to cover")));
    const failed = await options.check({ ...link, covers, index });
    if (failed) return fail(failed);
    if (link.kind === "original") return { ok: true, links: [link] };
    if (index + 1 > max) return fail(fromError(3, new CpsError("DIVERSION_TOO_LONG", "Too many diversions")));

    // Candidates for the PASSporT before this one.
    let previous: string[];
    if (link.kind === DIV_O_PPT) previous = [link.decoded.claims.opt as string];
    else previous = options.pool.filter((p) => !seen.has(p));
    let firstFailure: ChainResult | undefined;
    for (const passport of previous) {
      let decoded: DecodedPassport;
      try {
        decoded = options.decode(passport);
      } catch (err) {
        // A malformed `opt` breaks the chain; a malformed pool entry is just not the predecessor.
        if (link.kind === DIV_O_PPT) return fail(fromError(2, err), index + 1);
        continue;
      }
      const problem = linkProblem(link.decoded, decoded);
      if (problem) {
        if (link.kind === DIV_O_PPT) return fail(fromError(3, problem), index);
        continue;
      }
      const rest = await walk(
        { passport, decoded, kind: kindOf(decoded) },
        index + 1,
        new Set([...seen, passport]),
      );
      if (rest.ok) return { ok: true, links: [link, ...rest.links] };
      firstFailure ??= rest;
    }
    return firstFailure ?? fail(fromError(3, unlinked("No PASSporT opened that this diversion follows")));
  };
  return walk(end, 0, new Set([end.passport]));
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
