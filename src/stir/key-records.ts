/**
 * Key-directory records (RFC 8816 §11): X25519 public encryption keys as JWKs (RFC 8037 OKP), their
 * key ids (RFC 7638 thumbprints), registration bodies, and the record one holder keeps for one number
 * block. Pure code: the KV side is src/directory/key-store.ts, the signed record format
 * src/stir/signed-key-record.ts.
 *
 * Stored shape of one holder's entry for one block (docs/storage-schema.md `key:`): the value is
 * `{"v":2,"keys":[{kid,x,label,exp,record}]}` (each `record` the signed JWS exactly as registered,
 * up to 16 KiB), the list metadata only `{"v":2,"keys":[{kid,exp}]}` so that it stays far below
 * KV's 1,024 bytes and a lookup can skip dead entries without reading them. Entries written before
 * signed records (`v` 1: the whole record in the metadata, no `record`) are still read and served as
 * unsigned keys, which clients skip unless told otherwise.
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
  /** Expiry, seconds since the epoch (the signed record's `exp`). */
  readonly exp: number;
  /** The signed key record (JWS compact) as registered; absent on entries from before signed records. */
  readonly record?: string;
}

/** What one holder has registered for one block (the KV value). */
export interface HolderBlockRecord {
  readonly v: 1 | 2;
  readonly keys: readonly KeyEntry[];
}

/** The list metadata of an entry: enough to tell live entries from dead ones without a `get`. */
export interface HolderBlockSummary {
  readonly v: 2;
  readonly keys: readonly { readonly kid: string; readonly exp: number }[];
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
  /**
   * The signed key record, unchanged: the only part a client trusts (docs/key-directory.md). Absent
   * on keys registered before signed records ("unsigned").
   */
  record?: string;
}

/** KV list metadata is limited to 1,024 bytes; the summary of five keys stays well below it. */
export const MAX_KEYS_PER_HOLDER_BLOCK = 5;
export const MAX_METADATA_BYTES = 1024;
/** A key's label: 1-32 characters of letters, digits, space and `._:@-`. */
export const KEY_LABEL = /^[A-Za-z0-9 ._:@-]{1,32}$/;

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

/**
 * The body of `PUT /keys/{tn}`: `{"record": "<JWS>"}` and nothing else. A body in the unsigned shape
 * of earlier versions (`jwk`, `label`, `ttl`, `count`) is `KEY_RECORD_REQUIRED`: the directory takes
 * only keys their holder signed (RFC 8816 §11). The record itself is checked by `verifyKeyRecord`.
 */
export function parseKeyRegistration(body: unknown): { readonly record: unknown } {
  if (body === null || typeof body !== "object" || Array.isArray(body))
    throw bad("The body is a JSON object");
  const { record, ...rest } = body as Record<string, unknown>;
  if (record === undefined) {
    throw new CpsError("KEY_RECORD_REQUIRED", 'Register a signed key record: {"record": "<JWS>"}');
  }
  if (Object.keys(rest).length > 0) throw bad("The body has only the member record");
  return { record };
}

/** Reads a stored record defensively: anything unexpected counts as empty, never as a 500. */
export function parseHolderRecord(value: unknown): HolderBlockRecord {
  if (value === null || typeof value !== "object") return { v: 2, keys: [] };
  const { v, keys } = value as { v?: unknown; keys?: unknown };
  if (!Array.isArray(keys) || (v !== 1 && v !== 2)) return { v: 2, keys: [] };
  return {
    v,
    keys: keys.filter(
      (k): k is KeyEntry =>
        k !== null &&
        typeof k === "object" &&
        typeof k.kid === "string" &&
        typeof k.x === "string" &&
        typeof k.label === "string" &&
        typeof k.exp === "number" &&
        (k.record === undefined || typeof k.record === "string"),
    ),
  };
}

/** The list metadata of a record (kid and exp of each key). */
export function summarise(record: HolderBlockRecord): HolderBlockSummary {
  return { v: 2, keys: record.keys.map((k) => ({ kid: k.kid, exp: k.exp })) };
}

/**
 * What a lookup learns from an entry's list metadata: the live kids, and for a `v` 1 entry from
 * before signed records (whose whole record is the metadata) the keys themselves; a `v` 2 entry with
 * live kids must be read (`get`) for its keys. Anything else has no live kid: skipped, never a 500.
 */
export function readSummary(metadata: unknown, now: number): { kids: string[]; keys?: KeyEntry[] } {
  if (metadata === null || typeof metadata !== "object") return { kids: [] };
  const { v, keys } = metadata as { v?: unknown; keys?: unknown };
  if (v === 1) {
    const live = liveKeys(parseHolderRecord(metadata), now).filter((k) => k.record === undefined);
    return { kids: live.map((k) => k.kid), keys: live };
  }
  if (v !== 2 || !Array.isArray(keys)) return { kids: [] };
  const kids: string[] = [];
  for (const k of keys as unknown[]) {
    if (k === null || typeof k !== "object") continue;
    const { kid, exp } = k as { kid?: unknown; exp?: unknown };
    if (typeof kid === "string" && typeof exp === "number" && exp > now) kids.push(kid);
  }
  return { kids };
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
  const next: HolderBlockRecord = { v: 2, keys };
  if (new TextEncoder().encode(JSON.stringify(summarise(next))).length > MAX_METADATA_BYTES) {
    throw new CpsError("KEY_LIMIT", "The keys for this block do not fit one record");
  }
  return next;
}

/** Latest expiry in a record (the KV entry's own expiration), or 0 when empty. */
export function recordExpiry(record: HolderBlockRecord): number {
  return record.keys.reduce((max, k) => Math.max(max, k.exp), 0);
}

export function toDirectoryJwk(entry: KeyEntry, block: string): DirectoryJwk {
  const jwk: DirectoryJwk = {
    kty: "OKP",
    crv: "X25519",
    x: entry.x,
    kid: entry.kid,
    use: "enc",
    label: entry.label,
    exp: entry.exp,
    block,
  };
  if (entry.record !== undefined) jwk.record = entry.record;
  return jwk;
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
