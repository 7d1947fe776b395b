/**
 * Number blocks for block retrieval and block subscriptions (RFC 8816 §5.5 call centres, §6.2 "a
 * range or prefix of numbers"). Pure code, shared by the CPS and the client library. The block type
 * is the directory's `NumberBlock` (number-blocks.ts); only the parser's limits and codes differ.
 *
 * A block query is leading digits plus one lowercase `x` per open trailing digit: `120255501xx` is the
 * 100 eleven-digit numbers 12025550100..12025550199. At most {@link MAX_BLOCK_OPEN_DIGITS} digits may
 * be open (10,000 numbers); the numbers a block holds have 3..15 digits like any number.
 *
 * Storage side: every number belongs to exactly one **index block** of 10^4 numbers, named by its
 * digits minus the last four (numbers of fewer than 5 digits share one index block per length). Any
 * query with 1..4 open digits lies inside exactly one index block, so it is answered by one object.
 */
import { CpsError } from "../errors.js";
import { blockLength, type NumberBlock } from "./number-blocks.js";
import { TN_MAX_DIGITS, TN_MIN_DIGITS } from "./tn.js";

/** Open digits a block query may leave (10^4 numbers); the index block size is the same. */
export const MAX_BLOCK_OPEN_DIGITS = 4;

const BLOCK_SHAPE = /^([0-9]+)(x+)$/;

/**
 * Parses `120255501xx` into a block of 1..4 open digits. Throws `INVALID_BLOCK` (400) for anything but
 * digits then `x`s, or numbers outside 3..15 digits, and `BLOCK_TOO_LARGE` (400) for more than 4 open
 * digits. (The directory's `parseBlock` takes the same text with other limits and `INVALID_PREFIX`.)
 */
export function parseBlockQuery(text: string): NumberBlock {
  const m = typeof text === "string" && text.length <= 32 ? BLOCK_SHAPE.exec(text) : null;
  if (!m?.[1] || !m[2]) {
    throw new CpsError("INVALID_BLOCK", "A number block is digits followed by one 'x' per open digit");
  }
  const block = { digits: m[1], open: m[2].length };
  const length = blockLength(block);
  if (length < TN_MIN_DIGITS || length > TN_MAX_DIGITS) {
    throw new CpsError(
      "INVALID_BLOCK",
      `A number block holds numbers of ${TN_MIN_DIGITS} to ${TN_MAX_DIGITS} digits`,
    );
  }
  if (block.open > MAX_BLOCK_OPEN_DIGITS) {
    throw new CpsError(
      "BLOCK_TOO_LARGE",
      `A number block leaves at most ${MAX_BLOCK_OPEN_DIGITS} digits open`,
    );
  }
  return block;
}

function indexKeyFor(length: number, digits: string): string {
  return length > MAX_BLOCK_OPEN_DIGITS ? digits.slice(0, length - MAX_BLOCK_OPEN_DIGITS) : `short${length}`;
}

/** Name of the index block (BlockQueue) a canonical number is filed under. */
export function indexBlockOfTn(tn: string): string {
  return indexKeyFor(tn.length, tn);
}

/** Name of the one index block that contains every number of the block (1..4 open digits). */
export function indexBlockOfQuery(block: NumberBlock): string {
  return indexKeyFor(blockLength(block), block.digits);
}
