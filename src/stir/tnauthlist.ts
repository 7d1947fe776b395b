/**
 * TNAuthList (RFC 8226 §9): the certificate extension that says which telephone numbers, number
 * ranges or service provider codes (SPC) a STIR certificate speaks for.
 *
 * Decoding goes through @peculiar/asn1-rfc8226 (the module is EXPLICIT TAGS, as the library models it);
 * every library failure becomes a `CpsError`. Coverage uses BigInt arithmetic: a range is a start and a
 * count (RFC 8226 §9, `count INTEGER (2..MAX)`), and covers numbers of the start's length only.
 */
import "reflect-metadata";
import { TelephoneNumberRange, TNAuthorizationList, TNEntry } from "@peculiar/asn1-rfc8226";
import { AsnConvert } from "@peculiar/asn1-schema";
import { CpsError } from "../errors.js";

/** OID of the TNAuthList extension, id-pe 26 (RFC 8226 §9). */
export const TN_AUTH_LIST_OID = "1.3.6.1.5.5.7.1.26";

/** One entry of a TNAuthList, as plain data. */
export type TnAuthEntry =
  | { readonly type: "spc"; readonly spc: string }
  | { readonly type: "range"; readonly start: string; readonly count: number }
  | { readonly type: "one"; readonly tn: string };

export type TnAuthList = readonly TnAuthEntry[];

// RFC 8226 §9: TelephoneNumber ::= IA5String (SIZE (1..15)) (FROM ("0123456789#*")).
const TELEPHONE_NUMBER = /^[0-9#*]{1,15}$/;
// ServiceProviderCode ::= IA5String; we also refuse control characters and absurd lengths.
const SPC = /^[\x21-\x7e]{1,64}$/;

function checkEntry(entry: TnAuthEntry): TnAuthEntry {
  const bad = (): never => {
    throw new CpsError("CERT_MALFORMED", "The TNAuthList has an invalid entry");
  };
  switch (entry.type) {
    case "spc":
      if (!SPC.test(entry.spc)) bad();
      break;
    case "one":
      if (!TELEPHONE_NUMBER.test(entry.tn)) bad();
      break;
    case "range":
      // A range of digits only: '#' and '*' have no arithmetic.
      if (!/^[0-9]{1,15}$/.test(entry.start) || !Number.isSafeInteger(entry.count) || entry.count < 2) bad();
      break;
  }
  return entry;
}

/** Decodes the DER value of a TNAuthList extension; throws `CERT_MALFORMED`. */
export function decodeTnAuthList(der: Uint8Array | ArrayBuffer): TnAuthList {
  let parsed: TNAuthorizationList;
  try {
    parsed = AsnConvert.parse(der, TNAuthorizationList);
  } catch (cause) {
    throw new CpsError("CERT_MALFORMED", "The TNAuthList extension is not valid DER", { cause });
  }
  if (parsed.length === 0) throw new CpsError("CERT_MALFORMED", "The TNAuthList is empty");
  return parsed.map((e): TnAuthEntry => {
    if (e.spc !== undefined) return checkEntry({ type: "spc", spc: e.spc });
    if (e.one !== undefined) return checkEntry({ type: "one", tn: e.one });
    if (e.range !== undefined) {
      return checkEntry({ type: "range", start: e.range.start, count: Number(e.range.count) });
    }
    throw new CpsError("CERT_MALFORMED", "The TNAuthList has an empty entry");
  });
}

/** Encodes a TNAuthList to DER (used by the test PKI and by anyone minting STIR certificates). */
export function encodeTnAuthList(list: TnAuthList): Uint8Array {
  if (list.length === 0) throw new CpsError("CERT_MALFORMED", "The TNAuthList is empty");
  const entries = list.map((raw) => {
    const e = checkEntry(raw);
    if (e.type === "spc") return new TNEntry({ spc: e.spc });
    if (e.type === "one") return new TNEntry({ one: e.tn });
    const range = new TelephoneNumberRange();
    range.start = e.start;
    range.count = e.count;
    return new TNEntry({ range });
  });
  return new Uint8Array(AsnConvert.serialize(new TNAuthorizationList(entries)));
}

/** True when `tn` (canonical digits) lies in `start .. start+count-1`, same number of digits. */
export function rangeCoversTn(start: string, count: number, tn: string): boolean {
  if (tn.length !== start.length || !/^[0-9]+$/.test(tn)) return false;
  const n = BigInt(tn);
  const s = BigInt(start);
  return n >= s && n < s + BigInt(count);
}

/** True when a TNAuthList entry covers the telephone number `tn` (canonical digits). */
export function coversTn(list: TnAuthList, tn: string): boolean {
  return list.some((e) =>
    e.type === "one" ? e.tn === tn : e.type === "range" ? rangeCoversTn(e.start, e.count, tn) : false,
  );
}

/**
 * True when the whole range `start .. start+count-1` is covered by one entry. Ranges are not stitched
 * together from several entries: a certificate that wants to speak for a block names the block.
 */
export function coversRange(list: TnAuthList, start: string, count: number): boolean {
  if (!/^[0-9]{1,15}$/.test(start) || !Number.isSafeInteger(count) || count < 1) return false;
  if (count === 1) return coversTn(list, start);
  const s = BigInt(start);
  const last = (s + BigInt(count) - 1n).toString().padStart(start.length, "0");
  if (last.length !== start.length) return false;
  return list.some(
    (e) =>
      e.type === "range" && rangeCoversTn(e.start, e.count, start) && rangeCoversTn(e.start, e.count, last),
  );
}

/** True when the TNAuthList names the service provider code `spc` (exact, case-sensitive match). */
export function coversSpc(list: TnAuthList, spc: string): boolean {
  return list.some((e) => e.type === "spc" && e.spc === spc);
}

/**
 * Says whether an SPC of a parent certificate speaks for every number of the range `start ..
 * start+count-1`. The certificate does not say which numbers an SPC holds (RFC 8226 §9), so only an
 * outside source can (at the CPS: the operator's SPC_NUMBER_BLOCKS).
 */
export type SpcRangeCheck = (spc: string, start: string, count: number) => boolean;

function entryWithin(entry: TnAuthEntry, parent: TnAuthList, spcCovers: SpcRangeCheck | undefined): boolean {
  if (entry.type === "spc") return coversSpc(parent, entry.spc);
  // A number with '#' or '*' has no arithmetic: only the same number in the parent encompasses it.
  if (entry.type === "one" && !/^[0-9]+$/.test(entry.tn)) {
    return parent.some((p) => p.type === "one" && p.tn === entry.tn);
  }
  const [start, count] = entry.type === "one" ? [entry.tn, 1] : [entry.start, entry.count];
  if (coversRange(parent, start, count)) return true;
  if (spcCovers === undefined) return false;
  return parent.some((p) => p.type === "spc" && spcCovers(p.spc, start, count));
}

/**
 * RFC 9060 §4: a delegate certificate's TNAuthList must be "encompassed" by its parent's (equal to or
 * a subset of it). Entry by entry, each covered by ONE parent entry (as `coversRange`: no stitching):
 * a number by the same number or a range holding it; a range by a range holding all of it; an SPC by
 * the same SPC (exact, case-sensitive). Numbers under a parent SPC only through `spcCovers`; an SPC
 * under a numbers-only parent never (an SPC names a whole carrier, not a set of numbers).
 *
 * @example
 * tnAuthListWithin([{ type: "one", tn: "12025550142" }], [{ type: "range", start: "12025550100", count: 100 }]); // true
 */
export function tnAuthListWithin(child: TnAuthList, parent: TnAuthList, spcCovers?: SpcRangeCheck): boolean {
  return child.length > 0 && child.every((e) => entryWithin(e, parent, spcCovers));
}
