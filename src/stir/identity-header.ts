/**
 * SIP Identity header (RFC 8224 §4.1):
 *
 *   Identity = "Identity" HCOLON signed-identity-digest SEMI ident-info *( SEMI ident-info-params )
 *   signed-identity-digest = 1*(base64-char / ".")
 *   ident-info = "info" EQUAL ident-info-uri ; ident-info-uri = LAQUOT absoluteURI RAQUOT
 *   ident-info-params = ident-info-alg / ident-type / ident-info-extension  ; alg=, ppt=, generic-param
 *
 * A request may carry several Identity headers, as separate header lines or comma-joined into one
 * (RFC 3261 §7.3.1). Parameter values may be tokens or quoted strings (RFC 3261 §25.1 generic-param);
 * unknown parameters are kept aside and otherwise ignored, as RFC 8224 §4.1 asks. Every malformation is
 * an `IDENTITY_HEADER_MALFORMED` CpsError.
 */
import { CpsError } from "../errors.js";

export interface IdentityHeader {
  /** The PASSporT, full form (`h.p.s`) or compact form (`h..s`, RFC 8224 §5). */
  readonly passport: string;
  /** The `info` URI (without angle brackets): where the certificate is (RFC 8224 §7.3). */
  readonly info: string;
  /** `alg` parameter when present (RFC 8224 §4.1 keeps it for backward compatibility). */
  readonly alg?: string;
  /** `ppt` parameter when present (RFC 8225 §8.1), for example `shaken`. */
  readonly ppt?: string;
  /** Other parameters, lowercased names, unquoted values; ignored by this code. */
  readonly extensions: Readonly<Record<string, string>>;
}

/** Longest header value we parse; SHAKEN headers are under 1 KiB. */
export const MAX_IDENTITY_HEADER_LENGTH = 16_384;

const DIGEST = /^[A-Za-z0-9+/_=-]+(?:\.[A-Za-z0-9+/_=-]*){2}$/;
const TOKEN = /^[A-Za-z0-9.!%*_+`'~-]+$/; // RFC 3261 §25.1 token
const ABSOLUTE_URI = /^[A-Za-z][A-Za-z0-9+.-]*:[^\s<>"]+$/;

function malformed(message: string): CpsError {
  return new CpsError("IDENTITY_HEADER_MALFORMED", message);
}

/** Splits on `sep` outside quoted strings and angle brackets. */
function splitOutside(value: string, sep: string): string[] {
  const parts: string[] = [];
  let start = 0;
  let quoted = false;
  let angle = false;
  for (let i = 0; i < value.length; i++) {
    const ch = value[i];
    if (quoted) {
      if (ch === "\\") i++;
      else if (ch === '"') quoted = false;
    } else if (angle) {
      if (ch === ">") angle = false;
    } else if (ch === '"') quoted = true;
    else if (ch === "<") angle = true;
    else if (ch === sep) {
      parts.push(value.slice(start, i));
      start = i + 1;
    }
  }
  if (quoted || angle) throw malformed("Unterminated quoted string or URI");
  parts.push(value.slice(start));
  return parts;
}

function unquote(raw: string): string {
  if (raw.startsWith('"')) {
    if (raw.length < 2 || !raw.endsWith('"')) throw malformed("Bad quoted string");
    return raw.slice(1, -1).replace(/\\(.)/g, "$1");
  }
  if (!TOKEN.test(raw)) throw malformed("A parameter value is not a token");
  return raw;
}

/** Parses one Identity header value (an optional `Identity:` or compact `y:` name is accepted). */
export function parseIdentityHeader(value: string): IdentityHeader {
  if (typeof value !== "string" || value.length > MAX_IDENTITY_HEADER_LENGTH) {
    throw malformed("The Identity header is missing or too long");
  }
  // Unfold continuation lines (RFC 3261 §7.3.1) and drop an optional header name.
  const text = value
    .replace(/\r?\n[ \t]+/g, " ")
    .trim()
    .replace(/^(?:identity|y)[ \t]*:[ \t]*/i, "");
  const [digestRaw, ...paramsRaw] = splitOutside(text, ";").map((p) => p.trim());
  if (digestRaw === undefined || !DIGEST.test(digestRaw))
    throw malformed("The signed identity digest is invalid");
  let info: string | undefined;
  let alg: string | undefined;
  let ppt: string | undefined;
  const extensions: Record<string, string> = {};
  for (const param of paramsRaw) {
    const eq = param.indexOf("=");
    const name = (eq === -1 ? param : param.slice(0, eq)).trim().toLowerCase();
    const rawValue = eq === -1 ? "" : param.slice(eq + 1).trim();
    if (!TOKEN.test(name)) throw malformed("A parameter name is not a token");
    if (name === "info") {
      if (info !== undefined) throw malformed("info appears twice");
      // RFC 8224 §4.1: LAQUOT absoluteURI RAQUOT. A quoted URI is tolerated, a bare one is not.
      const m = /^<([^<>]*)>$/.exec(rawValue);
      const uri = m ? m[1] : rawValue.startsWith('"') ? unquote(rawValue) : undefined;
      if (uri === undefined || !ABSOLUTE_URI.test(uri)) throw malformed("info is not an <absoluteURI>");
      info = uri;
    } else if (name === "alg" || name === "ppt") {
      if (eq === -1 || rawValue.length === 0) throw malformed(`${name} has no value`);
      const v = unquote(rawValue);
      if (name === "alg") {
        if (alg !== undefined) throw malformed("alg appears twice");
        alg = v;
      } else {
        if (ppt !== undefined) throw malformed("ppt appears twice");
        ppt = v;
      }
    } else if (!(name in extensions)) {
      // RFC 8224 §4.1: unknown parameters are ignored (kept for the caller, never interpreted).
      extensions[name] = eq === -1 ? "" : rawValue.startsWith("<") ? rawValue : unquote(rawValue);
    }
  }
  if (info === undefined) throw malformed("The info parameter is required");
  return {
    passport: digestRaw,
    info,
    ...(alg === undefined ? {} : { alg }),
    ...(ppt === undefined ? {} : { ppt }),
    extensions,
  };
}

/** Parses every Identity header of a request: several values, each possibly comma-joined. */
export function parseIdentityHeaders(values: string | readonly string[]): IdentityHeader[] {
  const list = typeof values === "string" ? [values] : values;
  if (!Array.isArray(list)) throw malformed("Identity headers must be strings");
  const out: IdentityHeader[] = [];
  for (const v of list) {
    if (typeof v !== "string") throw malformed("Identity headers must be strings");
    for (const part of splitOutside(v, ",")) {
      if (part.trim().length > 0) out.push(parseIdentityHeader(part));
    }
    if (out.length > 32) throw malformed("Too many Identity headers");
  }
  if (out.length === 0) throw malformed("No Identity header");
  return out;
}

/** Formats an Identity header value: `<jws>;info=<x5u>;alg=ES256;ppt=shaken` (RFC 8224 §4.1, RFC 8588 §5). */
export function formatIdentityHeader(header: {
  passport: string;
  info: string;
  alg?: string;
  ppt?: string;
}): string {
  if (!DIGEST.test(header.passport)) throw malformed("The PASSporT is not a JWS");
  if (!ABSOLUTE_URI.test(header.info)) throw malformed("info is not an absolute URI");
  const alg = header.alg ?? "ES256";
  if (!TOKEN.test(alg) || (header.ppt !== undefined && !TOKEN.test(header.ppt))) {
    throw malformed("alg and ppt must be tokens");
  }
  return `${header.passport};info=<${header.info}>;alg=${alg}${header.ppt === undefined ? "" : `;ppt=${header.ppt}`}`;
}
