/**
 * The opaque `cursor` of `GET /keys?prefix=` (docs/key-directory.md "Prefetch"): base64url of
 * `v1 {block} {KV list cursor}`. It names its block so that a cursor is only ever continued under the
 * prefix that made it; anything else is 400 `INVALID_PAGE`. Not signed: a forged inner cursor can at
 * most make KV list another part of the same block's public entries (or refuse, also `INVALID_PAGE`).
 */
import { CpsError } from "../errors.js";
import { decodeBase64url, encodeBase64url } from "../stir/base64url.js";
import { formatBlock, type NumberBlock } from "../stir/number-blocks.js";

/** Longest cursor accepted (KV's own cursors are a few hundred characters). */
const MAX_CURSOR_CHARS = 2048;
const VERSION = "v1";
const utf8 = new TextEncoder();

function invalid(): CpsError {
  return new CpsError("INVALID_PAGE", "This cursor does not continue this prefix; start again without it");
}

export function encodeCursor(block: NumberBlock, kvCursor: string): string {
  return encodeBase64url(utf8.encode(`${VERSION} ${formatBlock(block)} ${kvCursor}`));
}

/** The KV cursor inside `text`, or `INVALID_PAGE` unless it is a cursor of this very block. */
export function decodeCursor(text: string, block: NumberBlock): string {
  if (text.length === 0 || text.length > MAX_CURSOR_CHARS || !/^[A-Za-z0-9_-]+$/.test(text)) throw invalid();
  let plain: string;
  try {
    plain = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(decodeBase64url(text));
  } catch {
    throw invalid();
  }
  const [version, blockText, kvCursor, extra] = plain.split(" ");
  if (
    version !== VERSION ||
    blockText !== formatBlock(block) ||
    !kvCursor ||
    extra !== undefined ||
    !/^[\x21-\x7e]+$/.test(kvCursor)
  ) {
    throw invalid();
  }
  return kvCursor;
}
