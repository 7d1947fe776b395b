/**
 * The body of an ATIS publish and the PASSporTs in it (ATIS-1000096, ATIS-1000105,
 * draft-wendt-stir-vesper-oob): `{"passports": ["<PASSporT>", ...]}`. Pure code; the key of each
 * PASSporT is resolved through an injected function (the route's x5u fetcher and chain validator).
 *
 * Every PASSporT is verified before anything is stored, so the CPS never serves a forged one
 * (docs/atis-api.md "What a publish must carry"): ES256 over its x5u certificate, `ppt` none or
 * `shaken` (RFC 8588), `iat` fresh (RFC 8224 §6.2.2, 60 s), `orig.tn` the path's ORIG and the path's
 * DEST among `dest.tn`. Only the full form is accepted: a compact-form PASSporT (`header..signature`,
 * RFC 8225 §7) cannot be verified without the SIP headers its claims come from.
 */
import { CpsError } from "../errors.js";
import { parseJsonObject } from "./json-body.js";
import { type DecodedPassport, MAX_PASSPORT_LENGTH, type PassportHeader } from "./passport.js";
import { checkCpsPassport } from "./passport-check.js";
import type { CanonicalTn } from "./tn.js";

/** An Idempotency-Key (draft-wendt-stir-vesper-oob): 1..255 printable ASCII characters, no space. */
export const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

/** Most PASSporTs one publish may carry (a call has one per `ppt`: shaken, div, rcd...). */
export const MAX_PUBLISH_PASSPORTS = 10;

/** A publish body after the shape checks. */
export interface AtisPublishBody {
  /** Full-form PASSporTs, in the order sent. */
  readonly passports: string[];
  /** The whole body object (other members are ignored, but the VESPER digest covers them). */
  readonly object: Readonly<Record<string, unknown>>;
}

/**
 * Deepest nesting of a publish body (the body object is level 1). JSON.parse takes any depth, but the
 * recursive canonical JSON of the VESPER digest (RFC 8785) and of the Idempotency-Key fingerprint
 * would overflow the stack on a 64 KiB body of nested brackets: a 5xx from input (docs/design.md
 * invariant 7). A real body is two levels deep.
 */
export const MAX_BODY_DEPTH = 32;

/** Depth of a parsed JSON value, iteratively (no recursion to overflow), stopping past `limit`. */
function depthExceeds(value: unknown, limit: number): boolean {
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [v, d] = stack.pop() as [unknown, number];
    if (v === null || typeof v !== "object") continue;
    if (d > limit) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) stack.push([child, d + 1]);
  }
  return false;
}

// Full form only: three non-empty base64url segments (RFC 7515 §7.1).
const FULL_FORM_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

function invalid(message: string): CpsError {
  return new CpsError("ATIS_PASSPORTS_INVALID", message);
}

/**
 * Parses a publish body: a JSON object (else `INVALID_BODY`) whose `passports` is an array of 1 to
 * 10 full-form JWS strings of at most 8192 characters each (else `ATIS_PASSPORTS_INVALID`), nested
 * at most `MAX_BODY_DEPTH` levels (else `INVALID_BODY`). The
 * route checks media type and size (415, 413) before calling this.
 */
export function parsePublishBody(text: string): AtisPublishBody {
  const object = parseJsonObject(text);
  if (depthExceeds(object, MAX_BODY_DEPTH))
    throw new CpsError("INVALID_BODY", "The body is nested too deeply");
  const passports = Object.hasOwn(object, "passports") ? object.passports : undefined;
  if (!Array.isArray(passports)) throw invalid("passports is not an array");
  if (passports.length === 0 || passports.length > MAX_PUBLISH_PASSPORTS) {
    throw invalid(`passports has 1 to ${MAX_PUBLISH_PASSPORTS} entries`);
  }
  for (const p of passports) {
    if (typeof p !== "string") throw invalid("passports holds a non-string");
    if (p.length > MAX_PASSPORT_LENGTH) throw invalid("A PASSporT is too long");
    if (!FULL_FORM_JWS.test(p)) throw invalid("A PASSporT is not a full-form JWS");
  }
  return { passports: passports as string[], object };
}

export interface VerifyPublishedPassportOptions {
  /** The path's DEST and ORIG. */
  readonly dest: CanonicalTn;
  readonly orig: CanonicalTn;
  /** Seconds since the epoch (default: clock). */
  readonly now?: number;
  /**
   * The verification key for the (already shape-checked) header: the x5u certificate, its chain
   * validated to the trust anchors. Called only for a PASSporT whose cheap checks passed.
   */
  readonly resolveKey: (header: PassportHeader) => Promise<CryptoKey>;
}

/**
 * Verifies one published PASSporT against the path. Cheapest first, so a PASSporT that is already
 * wrong never makes the CPS fetch its x5u (threat model #10): shape (`PASSPORT_*`), freshness
 * (`PASSPORT_STALE`), path match (`ATIS_PASSPORT_MISMATCH`), then the key (`CERT_*`,
 * `X5U_FETCH_FAILED` from the resolver) and the signature (`PASSPORT_SIGNATURE`). The certificate's
 * TNAuthList is not checked against `orig` (SHAKEN certificates list an SPC, not numbers). The checks
 * are `checkCpsPassport`'s (passport-check.ts), which the feedback judgement runs too.
 *
 * @example
 * const { claims } = await verifyPublishedPassport(jws, { dest, orig, resolveKey: (h) => keyFor(h.x5u) });
 */
export async function verifyPublishedPassport(
  jws: string,
  options: VerifyPublishedPassportOptions,
): Promise<DecodedPassport> {
  const r = await checkCpsPassport(jws, {
    claims: ["fresh", "orig", "dest"],
    dest: options.dest,
    orig: options.orig,
    ...(options.now === undefined ? {} : { now: options.now }),
    resolveSigner: async (header) => ({ publicKey: await options.resolveKey(header) }),
  });
  if (r.ok) return r.decoded;
  if (r.step === "orig") {
    throw new CpsError("ATIS_PASSPORT_MISMATCH", "A PASSporT's orig is not the path's ORIG");
  }
  if (r.step === "dest") {
    throw new CpsError("ATIS_PASSPORT_MISMATCH", "A PASSporT's dest does not name the path's DEST");
  }
  throw r.error;
}
