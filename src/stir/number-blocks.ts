/**
 * Number blocks and prefixes for the key directory and discovery (RFC 8816 §10, §11), and the block
 * type of block retrieval and subscriptions (push-blocks.ts parses those). Pure code.
 *
 * A **block** is leading digits plus a count of open digits, written with one `x` per open digit:
 * `120255501xx` is the 100 eleven-digit numbers 12025550100..12025550199, `12155551212` is one
 * number. Blocks have an exact length, like TNAuthList ranges (RFC 8226 §9), so a certificate's
 * coverage of a block is exact. A **prefix pattern** (operator configuration only) is either a block
 * or bare digits meaning "every number starting with these digits, whatever its length".
 */
import { CpsError } from "../errors.js";
import { TN_MAX_DIGITS } from "./tn.js";
import { coversRange, coversSpc, type TnAuthList } from "./tnauthlist.js";

export interface NumberBlock {
  /** Fixed leading digits, at least one. */
  readonly digits: string;
  /** Open trailing digits (0 = a single number). */
  readonly open: number;
}

export type NumberPattern =
  | { readonly kind: "prefix"; readonly digits: string }
  | { readonly kind: "block"; readonly block: NumberBlock };

const BLOCK_TEXT = /^([0-9]+)([xX]*)$/;
/** Most blocks one start+count range may decompose into. */
export const MAX_RANGE_BLOCKS = 64;

function invalid(message: string): CpsError {
  return new CpsError("INVALID_PREFIX", message);
}

/** Parses `120255501xx` (or `12155551212`); total 3..15 digits as for numbers. Throws `INVALID_PREFIX`. */
export function parseBlock(text: string): NumberBlock {
  const m = typeof text === "string" && text.length <= TN_MAX_DIGITS ? BLOCK_TEXT.exec(text) : null;
  if (!m?.[1]) throw invalid("A number block is digits followed by one 'x' per open digit");
  const block = { digits: m[1], open: (m[2] ?? "").length };
  if (blockLength(block) < 3) throw invalid("A number block spans numbers of 3 to 15 digits");
  return block;
}

export function formatBlock(block: NumberBlock): string {
  return block.digits + "x".repeat(block.open);
}

/** Length of the numbers a block holds. */
export function blockLength(block: NumberBlock): number {
  return block.digits.length + block.open;
}

export function blockContainsTn(block: NumberBlock, tn: string): boolean {
  return tn.length === blockLength(block) && tn.startsWith(block.digits);
}

/** True when every number of `inner` lies in `outer`. */
export function blockWithin(inner: NumberBlock, outer: NumberBlock): boolean {
  return blockLength(inner) === blockLength(outer) && inner.digits.startsWith(outer.digits);
}

/**
 * Every block that can contain `tn` (canonical digits), most specific first: the number itself, then
 * one more open digit each step, down to one fixed digit. At most 15.
 */
export function blocksContaining(tn: string): NumberBlock[] {
  const out: NumberBlock[] = [];
  for (let open = 0; open < tn.length; open++) out.push({ digits: tn.slice(0, tn.length - open), open });
  return out;
}

/** The block as a TNAuthList-style range (start, count). */
export function blockRange(block: NumberBlock): { start: string; count: number } {
  return { start: block.digits + "0".repeat(block.open), count: 10 ** block.open };
}

/**
 * Splits the range `start .. start+count-1` (numbers of start's length) into the fewest aligned
 * blocks, like CIDR for digits. Throws `INVALID_PREFIX` for a bad range or more than
 * `MAX_RANGE_BLOCKS` blocks.
 */
export function rangeToBlocks(start: string, count: number): NumberBlock[] {
  if (!/^[0-9]{3,15}$/.test(start) || !Number.isSafeInteger(count) || count < 1) {
    throw invalid("A range is a start number and a count of at least 1");
  }
  const n = start.length;
  let cur = BigInt(start);
  const end = cur + BigInt(count) - 1n;
  if (end.toString().length > n) throw invalid("The range runs past the last number of its length");
  const out: NumberBlock[] = [];
  while (cur <= end) {
    let open = 0;
    // Grow while aligned and inside the range; keep at least one fixed digit.
    while (open + 1 < n) {
      const size = 10n ** BigInt(open + 1);
      if (cur % size !== 0n || cur + size - 1n > end) break;
      open++;
    }
    const text = cur.toString().padStart(n, "0");
    out.push({ digits: text.slice(0, n - open), open });
    if (out.length > MAX_RANGE_BLOCKS)
      throw invalid(`A range may split into at most ${MAX_RANGE_BLOCKS} blocks`);
    cur += 10n ** BigInt(open);
  }
  return out;
}

/** Parses a configured pattern: bare digits (a prefix of any length) or a block with `x`s. */
export function parsePattern(text: string): NumberPattern {
  if (/^[0-9]{1,15}$/.test(text)) return { kind: "prefix", digits: text };
  if (/^[0-9]+[xX]+$/.test(text)) return { kind: "block", block: parseBlock(text) };
  throw invalid("A number prefix is 1-15 digits, optionally followed by one 'x' per open digit");
}

export function formatPattern(p: NumberPattern): string {
  return p.kind === "prefix" ? p.digits : formatBlock(p.block);
}

export function patternMatchesTn(p: NumberPattern, tn: string): boolean {
  return p.kind === "prefix" ? tn.startsWith(p.digits) : blockContainsTn(p.block, tn);
}

/** True when every number of `block` matches the pattern. */
export function patternCoversBlock(p: NumberPattern, block: NumberBlock): boolean {
  return p.kind === "prefix" ? block.digits.startsWith(p.digits) : blockWithin(block, p.block);
}

/**
 * Specificity for longest-prefix match: more fixed digits wins; at equal digits a block (exact
 * length) beats a bare prefix.
 */
export function patternSpecificity(p: NumberPattern): number {
  return p.kind === "prefix" ? p.digits.length * 2 : p.block.digits.length * 2 + 1;
}

/** Operator map SPC -> number prefixes (RFC 8226 SPC entries carry no numbers of their own). */
export type SpcNumberBlocks = ReadonlyMap<string, readonly NumberPattern[]>;

/** Parses `SPC_NUMBER_BLOCKS`: a JSON object of SPC -> list of prefixes or blocks. Throws a plain Error. */
export function parseSpcNumberBlocks(json: string): SpcNumberBlocks {
  const value: unknown = JSON.parse(json === "" ? "{}" : json);
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new Error("not a JSON object of SPC -> list of number prefixes");
  }
  const map = new Map<string, NumberPattern[]>();
  for (const [spc, list] of Object.entries(value)) {
    if (!/^[\x21-\x7e]{1,64}$/.test(spc)) throw new Error("an SPC is 1-64 printable characters");
    if (!Array.isArray(list) || !list.every((p) => typeof p === "string")) {
      throw new Error(`SPC ${spc}: not a list of number prefixes`);
    }
    map.set(
      spc,
      (list as string[]).map((p) => parsePattern(p)),
    );
  }
  return map;
}

/**
 * True when a certificate's TNAuthList speaks for every number of `block`: one TN or range entry
 * covers it (RFC 8226 §9), or one of its SPCs is mapped by the operator to a prefix containing it.
 */
export function tnAuthListCoversBlock(list: TnAuthList, block: NumberBlock, spcs: SpcNumberBlocks): boolean {
  const { start, count } = blockRange(block);
  if (coversRange(list, start, count)) return true;
  for (const [spc, patterns] of spcs) {
    if (coversSpc(list, spc) && patterns.some((p) => patternCoversBlock(p, block))) return true;
  }
  return false;
}
