/**
 * Number blocks for block retrieval and block subscriptions (RFC 8816 §5.5 call centres, §6.2 "a
 * range or prefix of numbers"). Pure code, shared by the CPS and the client library.
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
import { TN_MAX_DIGITS, TN_MIN_DIGITS } from "./tn.js";

/** Open digits a block query may leave (10^4 numbers); the index block size is the same. */
export const MAX_BLOCK_OPEN_DIGITS = 4;

export interface BlockQuery {
  /** Fixed leading digits (at least one). */
  readonly digits: string;
  /** Open trailing digits, 1..MAX_BLOCK_OPEN_DIGITS. */
  readonly open: number;
}

const BLOCK_SHAPE = /^([0-9]+)(x+)$/;

/**
 * Parses `120255501xx`. Throws `INVALID_BLOCK` (400) for anything but digits then `x`s, or numbers
 * outside 3..15 digits, and `BLOCK_TOO_LARGE` (400) for more than 4 open digits.
 */
export function parseBlockQuery(text: string): BlockQuery {
  const m = typeof text === "string" && text.length <= 32 ? BLOCK_SHAPE.exec(text) : null;
  if (!m?.[1] || !m[2]) {
    throw new CpsError("INVALID_BLOCK", "A number block is digits followed by one 'x' per open digit");
  }
  const query = { digits: m[1], open: m[2].length };
  const length = blockNumberLength(query);
  if (length < TN_MIN_DIGITS || length > TN_MAX_DIGITS) {
    throw new CpsError(
      "INVALID_BLOCK",
      `A number block holds numbers of ${TN_MIN_DIGITS} to ${TN_MAX_DIGITS} digits`,
    );
  }
  if (query.open > MAX_BLOCK_OPEN_DIGITS) {
    throw new CpsError(
      "BLOCK_TOO_LARGE",
      `A number block leaves at most ${MAX_BLOCK_OPEN_DIGITS} digits open`,
    );
  }
  return query;
}

export function formatBlockQuery(query: BlockQuery): string {
  return query.digits + "x".repeat(query.open);
}

/** Digits of every number in the block. */
export function blockNumberLength(query: BlockQuery): number {
  return query.digits.length + query.open;
}

export function blockHoldsTn(query: BlockQuery, tn: string): boolean {
  return tn.length === blockNumberLength(query) && tn.startsWith(query.digits);
}

function indexKeyFor(length: number, digits: string): string {
  return length > MAX_BLOCK_OPEN_DIGITS ? digits.slice(0, length - MAX_BLOCK_OPEN_DIGITS) : `short${length}`;
}

/** Name of the index block (BlockQueue) a canonical number is filed under. */
export function indexBlockOfTn(tn: string): string {
  return indexKeyFor(tn.length, tn);
}

/** Name of the one index block that contains every number of the query. */
export function indexBlockOfQuery(query: BlockQuery): string {
  return indexKeyFor(blockNumberLength(query), query.digits);
}
