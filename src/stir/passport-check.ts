/**
 * The checks a CPS makes of a full-form SHAKEN PASSporT it holds without the call: the ATIS publish
 * check (atis-passports.ts) and the feedback judgement (feedback.ts) both run `checkCpsPassport`.
 * Pure code; the signer is resolved through an injected function (x5u fetch and chain validation).
 *
 * Steps, the claim checks in the caller's order: shape (`decodePassport`, `ppt` absent or `shaken`),
 * claims (`iat` fresh, RFC 8224 §6.2.2; `orig.tn` a given number; a given number among `dest.tn`),
 * then the signer, then (when the signer has a TNAuthList with numbers) that it covers `orig.tn`,
 * then the ES256 signature. The claim checks come before the signer, so a PASSporT that is already
 * wrong never makes the CPS fetch its x5u (threat model #10). The result names the failed step and
 * carries the error it threw, so each caller keeps its own error codes.
 */
import {
  checkFreshness,
  type DecodedPassport,
  decodePassport,
  type PassportHeader,
  verifyPassportSignature,
} from "./passport.js";
import type { CanonicalTn } from "./tn.js";
import { coversTn, type TnAuthList } from "./tnauthlist.js";

/** A claim check, run in the order the caller lists them. */
export type PassportClaimCheck = "fresh" | "orig" | "dest";

/** The step a PASSporT failed. */
export type PassportCheckStep = "shape" | PassportClaimCheck | "signer" | "authority" | "signature";

/** The signer of a PASSporT: its key and, for the authority check, its certificate's TNAuthList. */
export interface PassportSigner {
  readonly publicKey: CryptoKey;
  /** When given and it lists numbers (not only an SPC), it must cover `orig.tn`. */
  readonly tnAuthList?: TnAuthList;
}

export interface CpsPassportCheckOptions {
  /** The claim checks, in order; the first that fails is the one reported. */
  readonly claims: readonly PassportClaimCheck[];
  /** For "dest": a number `dest.tn` must name. */
  readonly dest?: CanonicalTn;
  /** For "orig": the number `orig.tn` must be. */
  readonly orig?: CanonicalTn;
  /** For "fresh": seconds since the epoch (default: clock) and the window (default 60 s). */
  readonly now?: number;
  readonly freshnessSeconds?: number;
  /** The signer for the (shape-checked) header; called only when every claim check passed. */
  readonly resolveSigner: (header: PassportHeader) => Promise<PassportSigner>;
}

export type CpsPassportCheck =
  | { readonly ok: true; readonly decoded: DecodedPassport }
  | {
      readonly ok: false;
      readonly step: PassportCheckStep;
      /** What the step threw (absent for "orig", "dest" and "authority", which are plain comparisons). */
      readonly error?: unknown;
    };

function claimHolds(
  check: PassportClaimCheck,
  decoded: DecodedPassport,
  o: CpsPassportCheckOptions,
): boolean {
  const { orig, dest, iat } = decoded.claims;
  switch (check) {
    case "orig":
      return "tn" in orig && orig.tn === o.orig;
    case "dest":
      return o.dest !== undefined && (dest.tn ?? []).includes(o.dest);
    case "fresh":
      checkFreshness(iat, {
        ...(o.now === undefined ? {} : { now: o.now }),
        ...(o.freshnessSeconds === undefined ? {} : { freshnessSeconds: o.freshnessSeconds }),
      });
      return true;
  }
}

/**
 * Checks one PASSporT as a CPS can (see the module comment); never throws.
 *
 * @example
 * const r = await checkCpsPassport(jws, { claims: ["fresh", "dest"], dest, resolveSigner });
 * if (!r.ok) console.log(r.step);
 */
export async function checkCpsPassport(
  jws: string,
  options: CpsPassportCheckOptions,
): Promise<CpsPassportCheck> {
  let decoded: DecodedPassport;
  try {
    decoded = decodePassport(jws, { supportedPpt: ["shaken"] });
  } catch (error) {
    return { ok: false, step: "shape", error };
  }
  for (const step of options.claims) {
    try {
      if (!claimHolds(step, decoded, options)) return { ok: false, step };
    } catch (error) {
      return { ok: false, step, error };
    }
  }
  let signer: PassportSigner;
  try {
    signer = await options.resolveSigner(decoded.header);
  } catch (error) {
    return { ok: false, step: "signer", error };
  }
  const list = signer.tnAuthList;
  if (list?.some((e) => e.type !== "spc")) {
    const { orig } = decoded.claims;
    if (!("tn" in orig) || !coversTn(list, orig.tn)) return { ok: false, step: "authority" };
  }
  try {
    await verifyPassportSignature(jws, signer.publicKey);
  } catch (error) {
    return { ok: false, step: "signature", error };
  }
  return { ok: true, decoded };
}
