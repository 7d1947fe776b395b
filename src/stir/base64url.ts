/**
 * Strict base64url (RFC 4648 §5, no padding) for the wire. RFC 8816 §9 shows encrypted PASSporTs
 * folded over several lines, so ASCII whitespace is dropped before decoding; any other character
 * outside the alphabet is an error rather than something silently skipped.
 */
import { base64url } from "jose";
import { CpsError } from "../errors.js";

const ALPHABET = /^[A-Za-z0-9_-]*$/;

/**
 * The runtime's own base64 (Uint8Array.prototype.toBase64 / Uint8Array.fromBase64, ES2026) where it
 * has it, as workerd does: a blob's 1,430 characters are encoded on every answer and decoded on
 * every store, and the native code is several times faster than a JavaScript loop. Node 20 has not:
 * jose's then. Both give the same text (test/unit/base64url.test.ts runs in both runtimes).
 */
interface NativeBase64 {
  toBase64(options: { alphabet: "base64url"; omitPadding: true }): string;
}
const nativeFromBase64 = (
  Uint8Array as unknown as { fromBase64?: (text: string, options: { alphabet: "base64url" }) => Uint8Array }
).fromBase64;
const native = typeof nativeFromBase64 === "function" && "toBase64" in Uint8Array.prototype;

/** True where the runtime's own base64 is used (tests say which path they ran). */
export const NATIVE_BASE64 = native;

export function encodeBase64url(bytes: Uint8Array): string {
  return native
    ? (bytes as unknown as NativeBase64).toBase64({ alphabet: "base64url", omitPadding: true })
    : base64url.encode(bytes);
}

/** Standard base64 with padding (RFC 4648 §4): x5c certificates, the ATIS `passports` digests. */
export function encodeBase64(bytes: Uint8Array): string {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

/** Decodes base64url text, ignoring ASCII whitespace; throws `BLOB_ENCODING` on anything else. */
export function decodeBase64url(text: string): Uint8Array {
  const compact = text.replace(/[ \t\r\n]/g, "");
  // A length of 1 mod 4 cannot come from any byte string.
  if (!ALPHABET.test(compact) || compact.length % 4 === 1) {
    throw new CpsError("BLOB_ENCODING", "The body is not base64url text");
  }
  // The alphabet was checked above, so neither decoder meets a character it would refuse.
  const bytes = native ? nativeFromBase64!(compact, { alphabet: "base64url" }) : base64url.decode(compact);
  // Canonical only (RFC 4648 §3.5): unused bits of the last character must be zero, so one byte
  // string has exactly one text form ("AB" and "AC" would otherwise both decode to 0x00).
  if (encodeBase64url(bytes) !== compact) {
    throw new CpsError("BLOB_ENCODING", "The body is not canonical base64url text");
  }
  return bytes;
}
