/**
 * The claim rules of the ATIS access JWT (ATIS-1000096, ATIS-1000105, draft-wendt-stir-vesper-oob),
 * on top of the generic credential-token rules (credential-token.ts: alg, iat, aud, jti, action
 * shape). Pure code, in two steps:
 *
 * 1. `checkAtisClaims`, synchronous, run as the verifier's `checkClaims` hook: before any certificate
 *    parsing or x5u fetch (threat model #10). Action, `orig`/`dest`/`spc` against the path, the
 *    `passports` digest against the body (its accepted values are computed beforehand, async, by
 *    atis-digest.ts `acceptedPassportsDigests`), `exp` at most 60 s after `iat` (ATIS-1000105).
 * 2. `checkAtisCoverage`, after the chain validated (the `beforeSpend` hook): `spc`, `iss` and `sub`
 *    must each be covered by the certificate's TNAuthList, and it names the publisher SPC recorded
 *    with each row. `coversDestination` is the retrieve rule.
 *
 * The exact rules are in docs/atis-api.md "The access JWT".
 */
import { CpsError } from "../errors.js";
import { type AcceptedDigests, type DigestVariant, matchAcceptedDigest } from "./atis-digest.js";
import { type SpcNumberBlocks, tnAuthListCoversBlock } from "./number-blocks.js";
import { type CanonicalTn, canonicalTn, isCanonicalTn } from "./tn.js";
import { coversSpc, type TnAuthList } from "./tnauthlist.js";

export type AtisAction = "publish" | "republish" | "retrieve";

/** Actions of the publish route (POST) and of the retrieve route (GET). */
export const ATIS_PUBLISH_ACTIONS: readonly AtisAction[] = ["publish", "republish"];
export const ATIS_RETRIEVE_ACTIONS: readonly AtisAction[] = ["retrieve"];

/** ATIS-1000105: the publisher's `exp` is at most this many seconds after `iat`. */
export const ATIS_MAX_EXP_SECONDS = 60;
/** Most `dest.tn` entries a token may list (as for a PASSporT's `dest`, passport.ts). */
const MAX_DEST_TNS = 64;
// An SPC path segment (ATIS-1000105) and the shape of `spc`, `iss`, `sub` claims.
const SPC_PATH = /^[A-Za-z0-9]{1,32}$/;
const IDENTITY = /^[\x21-\x7e]{1,64}$/;

export interface AtisClaimExpectations {
  /** Actions this route accepts (`ATIS_PUBLISH_ACTIONS` or `ATIS_RETRIEVE_ACTIONS`). */
  readonly actions: readonly AtisAction[];
  /** The path's DEST and ORIG. */
  readonly dest: CanonicalTn;
  readonly orig: CanonicalTn;
  /** The path's SPC on the ATIS-1000105 paths; the token's `spc` must equal it. */
  readonly spc?: string;
  /**
   * Accepted `passports` values for the body (`acceptedPassportsDigests`); checked for publish and
   * republish. Absent on a publish: every digest is refused (fail closed).
   */
  readonly digests?: AcceptedDigests;
}

/** The ATIS claims of a token that passed `checkAtisClaims`. */
export interface AtisClaims {
  readonly action: AtisAction;
  readonly spc?: string;
  readonly iss?: string;
  readonly sub?: string;
  readonly exp?: number;
  /** The digest variant of `passports` (publish and republish). */
  readonly digestVariant?: DigestVariant;
}

/** True for an SPC path segment (ATIS-1000105 `/passports/{SPC}/{DEST}/{ORIG}`). */
export function isAtisSpc(value: string): boolean {
  return SPC_PATH.test(value);
}

function mismatch(message: string): CpsError {
  return new CpsError("ATIS_CLAIM_MISMATCH", message);
}

/** A claimed number in canonical form, or undefined when it is not a telephone number. */
function claimedTn(value: unknown): CanonicalTn | undefined {
  if (typeof value !== "string") return undefined;
  try {
    return canonicalTn(value);
  } catch {
    return undefined;
  }
}

function tnMember(value: unknown): unknown {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return undefined;
  const v = value as Record<string, unknown>;
  return Object.hasOwn(v, "tn") ? v.tn : undefined;
}

/** `orig`: `{tn: "..."}` (ATIS sample, VESPER) or `{tn: ["..."]}` with one entry (jodi prototype). */
function checkOrig(orig: unknown, path: CanonicalTn): void {
  let tn = tnMember(orig);
  if (Array.isArray(tn)) {
    if (tn.length !== 1) throw mismatch("orig names one number");
    tn = tn[0];
  }
  if (claimedTn(tn) !== path) throw mismatch("orig is not the path's ORIG");
}

/** `dest`: `{tn: "..."}` or `{tn: [...]}` (1 to 64 numbers, all valid) containing the path's DEST. */
function checkDest(dest: unknown, path: CanonicalTn): void {
  const tn = tnMember(dest);
  const list = Array.isArray(tn) ? tn : [tn];
  if (list.length === 0 || list.length > MAX_DEST_TNS) throw mismatch("dest names 1 to 64 numbers");
  const canonical = list.map(claimedTn);
  if (canonical.some((t) => t === undefined)) throw mismatch("dest holds something not a number");
  if (!canonical.includes(path)) throw mismatch("dest does not name the path's DEST");
}

function identityClaim(
  claims: Readonly<Record<string, unknown>>,
  name: "spc" | "iss" | "sub",
): string | undefined {
  const value = claims[name];
  if (value === undefined) return undefined;
  if (typeof value !== "string" || !IDENTITY.test(value)) {
    throw new CpsError("AUTH_MALFORMED", `${name} is not an SPC or a number`);
  }
  return value;
}

/**
 * The ATIS claim rules that need no certificate; throws a CpsError, first failure wins, in this order:
 * `action` (403 AUTH_ACTION); `spc`/`iss`/`sub` shape (401 AUTH_MALFORMED); `orig`, `dest`, `spc`
 * against the path (403 ATIS_CLAIM_MISMATCH); `passports` digest on publish and republish (403
 * ATIS_DIGEST_MISMATCH; ignored on retrieve); `exp` after `iat`, on publish and republish by at most
 * 60 s (400 ATIS_EXP_TOO_LONG; an `exp` already past was refused before as AUTH_EXPIRED).
 *
 * @example
 * const digests = await acceptedPassportsDigests(body);
 * verifyCredentialToken(token, { ..., checkClaims: (c) => void checkAtisClaims(c, { actions: ATIS_PUBLISH_ACTIONS, dest, orig, digests }) });
 */
export function checkAtisClaims(
  claims: Readonly<Record<string, unknown>>,
  expect: AtisClaimExpectations,
): AtisClaims {
  const action = claims.action;
  if (typeof action !== "string" || !(expect.actions as readonly string[]).includes(action)) {
    throw new CpsError("AUTH_ACTION", "The token does not allow this action");
  }
  const spc = identityClaim(claims, "spc");
  const iss = identityClaim(claims, "iss");
  const sub = identityClaim(claims, "sub");
  checkOrig(claims.orig, expect.orig);
  checkDest(claims.dest, expect.dest);
  if (expect.spc !== undefined && spc !== expect.spc) throw mismatch("spc is not the path's SPC");
  let digestVariant: DigestVariant | undefined;
  if (action === "publish" || action === "republish") {
    digestVariant = matchAcceptedDigest(claims.passports, expect.digests ?? new Map());
  }
  const exp = claims.exp;
  if (exp !== undefined) {
    const iat = claims.iat;
    if (
      typeof exp !== "number" ||
      typeof iat !== "number" ||
      !Number.isSafeInteger(exp) ||
      exp <= iat ||
      // Only a publisher's exp is its PASSporTs' deletion time (ATIS-1000105); a retrieve token's exp
      // only ends the token (VESPER's retrieve example sets iat + 300), and iat freshness bounds it anyway.
      (digestVariant !== undefined && exp > iat + ATIS_MAX_EXP_SECONDS)
    ) {
      throw new CpsError("ATIS_EXP_TOO_LONG", "exp must be after iat, on publish by at most 60 s");
    }
  }
  return {
    action: action as AtisAction,
    ...(spc === undefined ? {} : { spc }),
    ...(iss === undefined ? {} : { iss }),
    ...(sub === undefined ? {} : { sub }),
    ...(typeof exp === "number" ? { exp } : {}),
    ...(digestVariant === undefined ? {} : { digestVariant }),
  };
}

/**
 * True when the TNAuthList speaks for `identity`: an SPC it lists (exact), or a telephone number one
 * of its TN/range entries covers, or that an SPC it lists holds per the operator's SPC_NUMBER_BLOCKS.
 */
export function coversIdentity(list: TnAuthList, identity: string, spcs: SpcNumberBlocks): boolean {
  if (coversSpc(list, identity)) return true;
  const tn = claimedTn(identity);
  return tn !== undefined && tnAuthListCoversBlock(list, { digits: tn, open: 0 }, spcs);
}

/** True when the TNAuthList covers the number `dest` (a TN/range entry or a mapped SPC): retrieve. */
export function coversDestination(list: TnAuthList, dest: CanonicalTn, spcs: SpcNumberBlocks): boolean {
  return isCanonicalTn(dest) && tnAuthListCoversBlock(list, { digits: dest, open: 0 }, spcs);
}

/**
 * The certificate rules of an ATIS token (after the chain validated): `spc` must be an SPC the
 * TNAuthList lists, `iss` and `sub` each covered (`coversIdentity`), else 403 CERT_NOT_AUTHORISED.
 * Returns the publisher SPC recorded with a published row: the token's `spc`, else `iss` when it is
 * an SPC the certificate lists, else the TNAuthList's first SPC entry, else null.
 */
export function checkAtisCoverage(
  list: TnAuthList,
  claims: Pick<AtisClaims, "spc" | "iss" | "sub">,
  spcs: SpcNumberBlocks,
): { readonly publisherSpc: string | null } {
  if (claims.spc !== undefined && !coversSpc(list, claims.spc)) {
    throw new CpsError("CERT_NOT_AUTHORISED", "The certificate does not name the token's spc");
  }
  for (const id of [claims.iss, claims.sub]) {
    if (id !== undefined && !coversIdentity(list, id, spcs)) {
      throw new CpsError("CERT_NOT_AUTHORISED", "The certificate does not cover the token's iss or sub");
    }
  }
  if (claims.spc !== undefined) return { publisherSpc: claims.spc };
  if (claims.iss !== undefined && coversSpc(list, claims.iss)) return { publisherSpc: claims.iss };
  const first = list.find((e) => e.type === "spc");
  return { publisherSpc: first?.type === "spc" ? first.spc : null };
}
