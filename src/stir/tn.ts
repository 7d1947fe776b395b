/**
 * Telephone numbers in the canonical form of RFC 8225 §5.2.1 (`tn`): E.164 digits only, no `+`.
 *
 * Paths also accept the dotted form RFC 8816 §9 shows (`2.222.555.2222`), a leading `+`, and `-` or
 * space between digit groups. Everything else is refused: a lenient parser here would let two spellings
 * of one number reach two different queues.
 */
import { CpsError } from "../errors.js";

/** Canonical E.164 digits, branded so a raw string cannot be passed where a checked one is needed. */
export type CanonicalTn = string & { readonly __canonicalTn: unique symbol };

export const TN_MIN_DIGITS = 3;
export const TN_MAX_DIGITS = 15; // ITU-T E.164 §6.1: at most 15 digits.

// Optional '+', then digit groups separated by single '.', '-' or ' '.
const TN_SHAPE = /^\+?[0-9]+(?:[.\- ][0-9]+)*$/;

/** Canonicalises a telephone number or throws `INVALID_TN` (400). */
export function canonicalTn(input: string): CanonicalTn {
  if (typeof input !== "string" || input.length > 64 || !TN_SHAPE.test(input)) {
    throw new CpsError("INVALID_TN", "The telephone number is not in E.164 form");
  }
  const digits = input.replace(/[^0-9]/g, "");
  if (digits.length < TN_MIN_DIGITS || digits.length > TN_MAX_DIGITS) {
    throw new CpsError("INVALID_TN", `A telephone number has ${TN_MIN_DIGITS} to ${TN_MAX_DIGITS} digits`);
  }
  return digits as CanonicalTn;
}

/** True when `value` is already canonical (digits only, 3 to 15 of them). */
export function isCanonicalTn(value: string): value is CanonicalTn {
  return /^[0-9]{3,15}$/.test(value);
}
