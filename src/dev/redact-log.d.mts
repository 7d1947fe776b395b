/** Types for redact-log.mjs: telephone numbers masked out of `wrangler dev` output. */
import type { Transform } from "node:stream";

/** One line (no newline) with the digits of URL paths and queries, and any 6+ digit run, masked. */
export declare function redactLine(line: string): string;
/** A Transform applying redactLine line by line (a partial line is held until its newline). */
export declare function lineRedactor(): Transform;
