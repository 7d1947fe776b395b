/**
 * Binary HTTP messages (RFC 9292), known-length form only, with the padding the project puts on every
 * inner message so the relay cannot tell one kind of call from another by length (issue 19 item 4).
 *
 * Known-length request (§3): framing indicator 0, control data (method, scheme, authority, path, each a
 * varint length and bytes, §3.4), header section (varint length, then name/value pairs, §3.6), content
 * (varint length and bytes, §3.7), trailer section, then padding: zero bytes only (§3.8). A response has
 * framing indicator 1, any informational (1xx) responses, then the final status code (§3.5).
 * §3.8 also lets a sender stop early when the rest is empty: after the control data or final status
 * (RFC 9458 Appendix A does), after the header section, or after the content.
 *
 * Decoding treats its input as hostile (RFC 9292 §7): a total length limit first, then every length is
 * checked against what is left before anything is copied, field sections have a count limit, and every
 * name and value is checked to be something `Headers` accepts, so the only error that escapes is a
 * MALFORMED or TOO_LARGE OhttpError.
 */
import { concatBytes, encodeVarint, Reader } from "./bytes.js";
import { OhttpError } from "./errors.js";

export type Field = [name: string, value: string];

export interface BhttpRequest {
  method: string;
  scheme: string;
  authority: string;
  path: string;
  headers: Field[];
  body: Uint8Array;
  trailers?: Field[];
}

export interface BhttpResponse {
  /** The final status, 200..599; informational responses are dropped on decode. */
  status: number;
  headers: Field[];
  body: Uint8Array;
  trailers?: Field[];
}

/** Largest inner request a gateway decodes: the padded 64 KiB bucket (a 32 KiB token batch fits). */
export const MAX_BHTTP_REQUEST_LENGTH = 64 * 1024;
/** Largest inner response a client decodes. */
export const MAX_BHTTP_RESPONSE_LENGTH = 1024 * 1024;
/** Padding buckets (issue 19 item 4): max(minimum, next power of two of the unpadded length). */
export const REQUEST_PAD_MIN = 8 * 1024;
export const RESPONSE_PAD_MIN = 16 * 1024;

const MAX_FIELDS_PER_SECTION = 256;
const MAX_FIELD_LENGTH = 8 * 1024;
const MAX_CONTROL_LENGTH = 8 * 1024;
const MAX_INFORMATIONAL = 16;

const REQUEST_FRAMING = 0;
const RESPONSE_FRAMING = 1;

/** max(minimum, the smallest power of two >= length). */
export function paddedLength(length: number, minimum: number): number {
  if (length <= minimum) return minimum;
  let size = 1;
  while (size < length) size *= 2;
  return size;
}

function malformed(what: string): OhttpError {
  return new OhttpError("MALFORMED", `The Binary HTTP message has a bad ${what}`);
}

// Field and control-data text is carried as bytes; JavaScript strings here are "byte strings" (each char
// one byte, as `Headers` returns them), so the mapping is 1:1 both ways.
function toBytes(text: string, what: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0xff) throw malformed(what);
    out[i] = c;
  }
  return out;
}

function fromBytes(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return s;
}

// RFC 9110 §5.6.2 token: field names and methods.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// RFC 9110 §5.5: a field value never holds NUL, CR or LF.
const FIELD_VALUE = /^[^\0\r\n]*$/;
// RFC 3986 §3.1.
const SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*$/;
// Authority and path: visible ASCII only, no spaces (they come from a URL in percent-encoded form).
const VISIBLE = /^[\x21-\x7e]*$/;

function checked(text: string, pattern: RegExp, what: string): string {
  if (!pattern.test(text)) throw malformed(what);
  return text;
}

function lengthPrefixed(bytes: Uint8Array): Uint8Array {
  return concatBytes(encodeVarint(bytes.length), bytes);
}

function encodeFieldSection(fields: readonly Field[], what: string): Uint8Array {
  const lines = fields.map(([name, value]) =>
    concatBytes(
      lengthPrefixed(toBytes(checked(name, TOKEN, what).toLowerCase(), what)),
      lengthPrefixed(toBytes(checked(value, FIELD_VALUE, what), what)),
    ),
  );
  return lengthPrefixed(concatBytes(...lines));
}

function pad(message: Uint8Array, padTo: number): Uint8Array {
  if (padTo === 0 || padTo === message.length) return message;
  if (!Number.isSafeInteger(padTo) || padTo < message.length) {
    throw new OhttpError("TOO_LARGE", "The message is longer than the padded length asked for");
  }
  const out = new Uint8Array(padTo); // §3.8: padding is zero bytes
  out.set(message);
  return out;
}

/** Known-length request; pads to `padTo` (default: the request bucket; 0: no padding). */
export function encodeRequest(req: BhttpRequest, options: { padTo?: number } = {}): Uint8Array {
  const message = concatBytes(
    encodeVarint(REQUEST_FRAMING),
    lengthPrefixed(toBytes(checked(req.method, TOKEN, "method"), "method")),
    lengthPrefixed(toBytes(checked(req.scheme, SCHEME, "scheme"), "scheme")),
    lengthPrefixed(toBytes(checked(req.authority, VISIBLE, "authority"), "authority")),
    lengthPrefixed(toBytes(checked(req.path, VISIBLE, "path"), "path")),
    encodeFieldSection(req.headers, "header field"),
    lengthPrefixed(req.body),
    encodeFieldSection(req.trailers ?? [], "trailer field"),
  );
  return pad(message, options.padTo ?? paddedLength(message.length, REQUEST_PAD_MIN));
}

/** Known-length response; pads to `padTo` (default: the response bucket; 0: no padding). */
export function encodeResponse(res: BhttpResponse, options: { padTo?: number } = {}): Uint8Array {
  if (!Number.isInteger(res.status) || res.status < 200 || res.status > 599) throw malformed("status code");
  const message = concatBytes(
    encodeVarint(RESPONSE_FRAMING),
    encodeVarint(res.status),
    encodeFieldSection(res.headers, "header field"),
    lengthPrefixed(res.body),
    encodeFieldSection(res.trailers ?? [], "trailer field"),
  );
  return pad(message, options.padTo ?? paddedLength(message.length, RESPONSE_PAD_MIN));
}

function readText(r: Reader, pattern: RegExp, what: string, max = MAX_CONTROL_LENGTH): string {
  // A length past the end is MALFORMED (take); one within the message but over the limit TOO_LARGE.
  const bytes = r.take(r.varint());
  if (bytes.length > max) throw new OhttpError("TOO_LARGE", `The Binary HTTP ${what} is too long`);
  return checked(fromBytes(bytes), pattern, what);
}

function readFieldSection(r: Reader, what: string): Field[] {
  const section = new Reader(r.take(r.varint()), "Binary HTTP message");
  const fields: Field[] = [];
  while (section.remaining > 0) {
    if (fields.length === MAX_FIELDS_PER_SECTION) throw new OhttpError("TOO_LARGE", `Too many ${what}s`);
    const name = readText(section, TOKEN, what, MAX_FIELD_LENGTH).toLowerCase();
    const value = readText(section, FIELD_VALUE, what, MAX_FIELD_LENGTH);
    fields.push([name, value]);
  }
  return fields;
}

/** Header section, content, trailers and padding: the common tail of requests and responses. */
function readTail(r: Reader): { headers: Field[]; body: Uint8Array; trailers: Field[] } {
  // §3.8: a message may end at any of these section boundaries when everything after it is empty.
  const headers = r.remaining === 0 ? [] : readFieldSection(r, "header field");
  const body = r.remaining === 0 ? new Uint8Array(0) : r.take(r.varint()).slice();
  const trailers = r.remaining === 0 ? [] : readFieldSection(r, "trailer field");
  for (const b of r.rest()) if (b !== 0) throw malformed("padding");
  return { headers, body, trailers };
}

function start(bytes: Uint8Array, maxLength: number, framing: number): Reader {
  if (bytes.length > maxLength) throw new OhttpError("TOO_LARGE", "The Binary HTTP message is too large");
  const r = new Reader(bytes, "Binary HTTP message");
  // Only the known-length form: indeterminate-length (2, 3) is not something our peers send.
  if (r.varint() !== framing) throw malformed("framing indicator");
  return r;
}

export function decodeRequest(bytes: Uint8Array, options: { maxLength?: number } = {}): BhttpRequest {
  const r = start(bytes, options.maxLength ?? MAX_BHTTP_REQUEST_LENGTH, REQUEST_FRAMING);
  const method = readText(r, TOKEN, "method");
  const scheme = readText(r, SCHEME, "scheme");
  const authority = readText(r, VISIBLE, "authority");
  const path = readText(r, VISIBLE, "path");
  const { headers, body, trailers } = readTail(r);
  return { method, scheme, authority, path, headers, body, trailers };
}

export function decodeResponse(bytes: Uint8Array, options: { maxLength?: number } = {}): BhttpResponse {
  const r = start(bytes, options.maxLength ?? MAX_BHTTP_RESPONSE_LENGTH, RESPONSE_FRAMING);
  let status = r.varint();
  // §3.5.1: informational responses come first, each with its own header section; we drop them.
  for (let n = 0; status >= 100 && status <= 199; n++) {
    if (n === MAX_INFORMATIONAL) throw new OhttpError("TOO_LARGE", "Too many informational responses");
    readFieldSection(r, "header field");
    status = r.varint();
  }
  if (status < 200 || status > 599) throw malformed("status code");
  const { headers, body, trailers } = readTail(r);
  return { status, headers, body, trailers };
}

/** A fetch `Request` as a Binary HTTP request: target from its URL, its headers and body as they are. */
export async function requestFromFetch(request: Request): Promise<BhttpRequest> {
  const url = new URL(request.url);
  const body =
    request.method === "GET" || request.method === "HEAD"
      ? new Uint8Array(0)
      : new Uint8Array(await request.arrayBuffer());
  return {
    method: request.method,
    scheme: url.protocol.slice(0, -1),
    authority: url.host,
    path: url.pathname + url.search,
    headers: [...request.headers],
    body,
  };
}

/**
 * A decoded request as a fetch `Request` to `url` (the caller decides the URL: the gateway never takes
 * the inner authority on trust). A body on GET/HEAD cannot be expressed: MALFORMED.
 */
export function requestToFetch(req: BhttpRequest, url: string | URL): Request {
  const noBody = req.method === "GET" || req.method === "HEAD";
  if (noBody && req.body.length > 0) throw malformed("body on a GET or HEAD request");
  try {
    return new Request(url, {
      method: req.method,
      headers: req.headers,
      body: noBody ? null : req.body,
    });
  } catch (cause) {
    throw new OhttpError("MALFORMED", "The Binary HTTP request cannot be made into a fetch Request", {
      cause,
    });
  }
}

export async function responseFromFetch(response: Response): Promise<BhttpResponse> {
  return {
    status: response.status,
    headers: [...response.headers],
    body: new Uint8Array(await response.arrayBuffer()),
  };
}

/** Statuses whose fetch `Response` must have a null body (Fetch standard "null body status"). */
const NULL_BODY_STATUS = new Set([101, 103, 204, 205, 304]);

export function responseToFetch(res: BhttpResponse): Response {
  try {
    return new Response(NULL_BODY_STATUS.has(res.status) ? null : res.body, {
      status: res.status,
      headers: res.headers,
    });
  } catch (cause) {
    throw new OhttpError("MALFORMED", "The Binary HTTP response cannot be made into a fetch Response", {
      cause,
    });
  }
}
