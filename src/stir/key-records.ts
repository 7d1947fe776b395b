/**
 * Key-directory records (RFC 8816 §11): X25519 public encryption keys as JWKs (RFC 8037 OKP), their
 * key ids (RFC 7638 thumbprints), registration bodies, and the record one holder keeps for one number
 * block. Pure code: the KV side is src/directory/key-store.ts.
 */
import { CpsError } from "../errors.js";
import { decodeBase64url, encodeBase64url } from "./base64url.js";

/** One registered key as stored (inside the holder's record for one block). */
export interface KeyEntry {
  /** RFC 7638 JWK thumbprint (SHA-256, base64url): the same key always has the same id. */
  readonly kid: string;
  /** Raw X25519 public key, base64url (RFC 8037 `x`). */
  readonly x: string;
  readonly label: string;
  /** Expiry, seconds since the epoch. */
  readonly exp: number;
}

/**
 * What one holder has registered for one block: stored as the KV value and as its list metadata
 * (so a lookup needs only `list`), hence the size cap.
 */
export interface HolderBlockRecord {
  readonly v: 1;
  readonly keys: readonly KeyEntry[];
}

/** Public JWK of the key directory: an X25519 key for HPKE (envelope v1). */
export interface DirectoryJwk {
  kty: "OKP";
  crv: "X25519";
  x: string;
  kid: string;
  use: "enc";
  /** Non-registered members (RFC 7517 §4 allows them): the registrant's label, expiry, block. */
  label: string;
  exp: number;
  block: string;
}

/** KV list metadata is limited to 1,024 bytes; five keys per holder per block stay well below it. */
export const MAX_KEYS_PER_HOLDER_BLOCK = 5;
export const MAX_METADATA_BYTES = 1024;
export const MIN_KEY_TTL_SECONDS = 60; // KV expirationTtl minimum
export const MAX_KEY_TTL_SECONDS = 400 * 86_400;
export const DEFAULT_KEY_TTL_SECONDS = 30 * 86_400;
const LABEL = /^[A-Za-z0-9 ._:@-]{1,32}$/;

function bad(message: string): CpsError {
  return new CpsError("INVALID_BODY", message);
}

/** Raw 32-byte X25519 public key from an OKP JWK; throws `INVALID_KEY`. */
export function x25519FromJwk(jwk: unknown): Uint8Array {
  if (jwk === null || typeof jwk !== "object" || Array.isArray(jwk)) {
    throw new CpsError("INVALID_KEY", "The key is not a JWK object");
  }
  const { kty, crv, x, d } = jwk as Record<string, unknown>;
  if (kty !== "OKP" || crv !== "X25519" || typeof x !== "string") {
    throw new CpsError("INVALID_KEY", "The key is not an OKP X25519 JWK");
  }
  if (d !== undefined) throw new CpsError("INVALID_KEY", "Never send a private key");
  let raw: Uint8Array;
  try {
    raw = decodeBase64url(x);
  } catch (cause) {
    throw new CpsError("INVALID_KEY", "x is not base64url", { cause });
  }
  if (raw.length !== 32) throw new CpsError("INVALID_KEY", "An X25519 public key has 32 bytes");
  if (raw.every((b) => b === 0)) throw new CpsError("INVALID_KEY", "The X25519 public key is not valid");
  return raw;
}

export function jwkFromX25519(raw: Uint8Array): { kty: "OKP"; crv: "X25519"; x: string } {
  if (raw.length !== 32) throw new CpsError("INVALID_KEY", "An X25519 public key has 32 bytes");
  return { kty: "OKP", crv: "X25519", x: encodeBase64url(raw) };
}

/** RFC 7638 §3: SHA-256 over `{"crv","kty","x"}` in that order, base64url. */
export async function jwkThumbprint(raw: Uint8Array): Promise<string> {
  const { x } = jwkFromX25519(raw);
  const canonical = `{"crv":"X25519","kty":"OKP","x":"${x}"}`;
  return encodeBase64url(
    new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(canonical))),
  );
}

/** A parsed `PUT /keys/{tn}` body. */
export interface KeyRegistration {
  readonly publicKey: Uint8Array;
  readonly label: string;
  readonly ttlSeconds: number;
  /** Present when the path names the first number of a start+count range. */
  readonly count: number | undefined;
}

/** Parses `{ "jwk": {...}, "label": "...", "ttl": seconds, "count"?: n }`. */
export function parseKeyRegistration(body: unknown): KeyRegistration {
  if (body === null || typeof body !== "object" || Array.isArray(body))
    throw bad("The body is a JSON object");
  const { jwk, label, ttl, count, ...rest } = body as Record<string, unknown>;
  if (Object.keys(rest).length > 0) throw bad("Unknown members in the body");
  const publicKey = x25519FromJwk(jwk);
  if (typeof label !== "string" || !LABEL.test(label)) {
    throw bad("label is 1-32 characters of letters, digits, space and ._:@-");
  }
  const ttlSeconds = ttl === undefined ? DEFAULT_KEY_TTL_SECONDS : ttl;
  if (
    typeof ttlSeconds !== "number" ||
    !Number.isInteger(ttlSeconds) ||
    ttlSeconds < MIN_KEY_TTL_SECONDS ||
    ttlSeconds > MAX_KEY_TTL_SECONDS
  ) {
    throw bad(`ttl is a whole number of seconds from ${MIN_KEY_TTL_SECONDS} to ${MAX_KEY_TTL_SECONDS}`);
  }
  if (count !== undefined && (typeof count !== "number" || !Number.isSafeInteger(count) || count < 1)) {
    throw bad("count is a whole number of at least 1");
  }
  return { publicKey, label, ttlSeconds, count: count as number | undefined };
}

/** Reads a stored record defensively: anything unexpected counts as empty, never as a 500. */
export function parseHolderRecord(value: unknown): HolderBlockRecord {
  if (value === null || typeof value !== "object") return { v: 1, keys: [] };
  const keys = (value as { keys?: unknown }).keys;
  if (!Array.isArray(keys)) return { v: 1, keys: [] };
  return {
    v: 1,
    keys: keys.filter(
      (k): k is KeyEntry =>
        k !== null &&
        typeof k === "object" &&
        typeof k.kid === "string" &&
        typeof k.x === "string" &&
        typeof k.label === "string" &&
        typeof k.exp === "number",
    ),
  };
}

/** Keys still alive at `now` (seconds). */
export function liveKeys(record: HolderBlockRecord, now: number): KeyEntry[] {
  return record.keys.filter((k) => k.exp > now);
}

/**
 * The holder's record after adding `entry` at `now`: dead keys dropped, the same kid replaced (a
 * re-registration renews label and expiry). Throws `KEY_LIMIT` past the per-holder cap.
 */
export function withKey(record: HolderBlockRecord, entry: KeyEntry, now: number): HolderBlockRecord {
  const keys = [...liveKeys(record, now).filter((k) => k.kid !== entry.kid), entry];
  if (keys.length > MAX_KEYS_PER_HOLDER_BLOCK) {
    throw new CpsError(
      "KEY_LIMIT",
      `At most ${MAX_KEYS_PER_HOLDER_BLOCK} live keys per holder per number block; delete one first`,
    );
  }
  const next: HolderBlockRecord = { v: 1, keys };
  if (new TextEncoder().encode(JSON.stringify(next)).length > MAX_METADATA_BYTES) {
    throw new CpsError("KEY_LIMIT", "The keys for this block do not fit one record");
  }
  return next;
}

/** Latest expiry in a record (the KV entry's own expiration), or 0 when empty. */
export function recordExpiry(record: HolderBlockRecord): number {
  return record.keys.reduce((max, k) => Math.max(max, k.exp), 0);
}

export function toDirectoryJwk(entry: KeyEntry, block: string): DirectoryJwk {
  return {
    kty: "OKP",
    crv: "X25519",
    x: entry.x,
    kid: entry.kid,
    use: "enc",
    label: entry.label,
    exp: entry.exp,
    block,
  };
}

function openDigits(block: string): number {
  const i = block.indexOf("x");
  return i < 0 ? 0 : block.length - i;
}

/**
 * A JWK Set (RFC 7517 §5) from (block, entry) pairs: live keys only, one per kid per block, most
 * specific block first, then by kid for a stable order.
 */
export function jwkSet(
  found: readonly { block: string; entry: KeyEntry }[],
  now: number,
): { keys: DirectoryJwk[] } {
  const seen = new Set<string>();
  const keys: DirectoryJwk[] = [];
  const sorted = [...found].sort(
    (a, b) =>
      openDigits(a.block) - openDigits(b.block) ||
      (a.block < b.block ? -1 : a.block > b.block ? 1 : 0) ||
      (a.entry.kid < b.entry.kid ? -1 : a.entry.kid > b.entry.kid ? 1 : 0),
  );
  for (const { block, entry } of sorted) {
    const id = `${block}/${entry.kid}`;
    if (entry.exp <= now || seen.has(id)) continue;
    seen.add(id);
    keys.push(toDirectoryJwk(entry, block));
  }
  return { keys };
}
