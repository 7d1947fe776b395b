/**
 * CPS discovery records (RFC 8816 §10): which CPS and key directory serve a number prefix, for how
 * long a client may reuse the answer, and longest-prefix selection among the records a CPS knows
 * (the prefixes it serves itself, operator-provisioned records, authenticated registrations).
 * A provisioned or registered record may name several CPSes for its numbers (§10: "a carrier operates
 * one or more CPS instances"; a number served by a carrier and a third party at once): `cps` is then
 * a list, and the answer carries `cpses` beside `cps` (its first entry), so a client that only reads
 * `cps` still finds one of them. Pure code: the KV side is src/directory/discovery-store.ts.
 */
import { CpsError } from "../errors.js";
import {
  formatPattern,
  type NumberPattern,
  parsePattern,
  patternMatchesTn,
  patternSpecificity,
} from "./number-blocks.js";
import { parseBaseUrl } from "./urls.js";

export type DiscoverySource = "served" | "provisioned" | "registered";

/** A discovery record as clients see it (`GET /.well-known/stir-oob?tn=`). */
export interface DiscoveryRecord {
  /** The prefix or block the record is for (bare digits, or digits plus one `x` per open digit). */
  readonly prefix: string;
  /** Base URL of the CPS: stores go to `${cps}/cps/{tn}/ppts`. The first of `cpses` when there are several. */
  readonly cps: string;
  /**
   * Every CPS of the record, `cps` first, when it names more than one (§10); absent otherwise, so a
   * single-CPS answer is what it always was. Clients store to and retrieve from each.
   */
  readonly cpses?: readonly string[];
  /** Base URL of the key directory: keys are at `${keys}/{tn}`. */
  readonly keys: string;
  /** Seconds a client may reuse this answer. */
  readonly ttl: number;
  readonly source: DiscoverySource;
}

/** A record with its parsed pattern, as the selector works on it. */
export interface Candidate {
  readonly pattern: NumberPattern;
  readonly record: DiscoveryRecord;
}

export const MIN_RECORD_TTL = 0;
export const MAX_RECORD_TTL = 86_400;
export const DEFAULT_RECORD_TTL = 300;
export const MIN_RECORD_LIFETIME = 60; // KV expirationTtl minimum
export const MAX_RECORD_LIFETIME = 400 * 86_400;
export const DEFAULT_RECORD_LIFETIME = 30 * 86_400;
const SOURCE_RANK: Record<DiscoverySource, number> = { served: 2, provisioned: 1, registered: 0 };
/** Most CPSes one record names: each costs every caller a store (and a token) and every callee a retrieval. */
export const MAX_CPSES_PER_RECORD = 8;

/**
 * `cps` of a record or registration: one base URL or a list of 1-8 distinct ones (§10, several CPSes
 * per number). `undefined` when it is neither. The list keeps its order: the first is `cps`.
 */
export function parseCpsList(value: unknown, allowLoopbackHttp: boolean): string[] | undefined {
  const raw = typeof value === "string" ? [value] : value;
  if (!Array.isArray(raw) || raw.length === 0 || raw.length > MAX_CPSES_PER_RECORD) return undefined;
  const out: string[] = [];
  for (const item of raw) {
    const url = parseBaseUrl(item, allowLoopbackHttp);
    // A CPS named twice would make the AS pay for and store the same call twice at it.
    if (url === undefined || out.includes(url)) return undefined;
    out.push(url);
  }
  return out;
}

/** `cps` and, for more than one CPS, `cpses`: the members a record or an answer carries. */
export function cpsMembers(cpses: readonly string[]): { cps: string; cpses?: readonly string[] } {
  const [cps = ""] = cpses;
  return cpses.length > 1 ? { cps, cpses: [...cpses] } : { cps };
}

/** Every CPS a record names, `cps` first. */
export function recordCpses(record: { readonly cps: string; readonly cpses?: readonly string[] }): string[] {
  return record.cpses && record.cpses.length > 0 ? [...record.cpses] : [record.cps];
}

function wholeInRange(value: unknown, min: number, max: number): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= min && value <= max;
}

/**
 * Parses `DISCOVERY_RECORDS`: JSON list of `{prefix, cps, keys, ttl}`, `cps` one URL or a list of up
 * to 8 (several CPSes for the prefix; `keys` defaults to the first's). Throws a plain Error.
 */
export function parseProvisionedRecords(json: string): Candidate[] {
  const value: unknown = JSON.parse(json === "" ? "[]" : json);
  if (!Array.isArray(value)) throw new Error("not a JSON list of {prefix, cps, keys, ttl}");
  return value.map((item, i) => {
    const r = (item ?? {}) as Record<string, unknown>;
    if (typeof r.prefix !== "string") throw new Error(`record ${i}: prefix is missing`);
    const pattern = parsePattern(r.prefix);
    // Operator configuration is trusted: loopback http is allowed here for local federations.
    const cpses = parseCpsList(r.cps, true);
    const cps = cpses?.[0];
    const keys = r.keys === undefined && cps ? `${cps}/keys` : parseBaseUrl(r.keys, true);
    if (!cpses || !keys) {
      throw new Error(
        `record ${i}: cps is an https base URL or a list of 1-${MAX_CPSES_PER_RECORD} distinct ones, keys one`,
      );
    }
    const ttl = r.ttl === undefined ? DEFAULT_RECORD_TTL : r.ttl;
    if (!wholeInRange(ttl, MIN_RECORD_TTL, MAX_RECORD_TTL)) {
      throw new Error(`record ${i}: ttl is 0-${MAX_RECORD_TTL} seconds`);
    }
    return {
      pattern,
      record: { prefix: formatPattern(pattern), ...cpsMembers(cpses), keys, ttl, source: "provisioned" },
    };
  });
}

/** Parses `SERVED_PREFIXES` (comma or space separated); `null` = this CPS serves every number. */
export function parseServedPrefixes(text: string): NumberPattern[] | null {
  const parts = text.split(/[\s,]+/).filter((p) => p !== "");
  return parts.length === 0 ? null : parts.map((p) => parsePattern(p));
}

/** True when this CPS serves `tn`. */
export function servesTn(served: readonly NumberPattern[] | null, tn: string): boolean {
  return served === null || served.some((p) => patternMatchesTn(p, tn));
}

/** A parsed discovery registration body. */
export interface DiscoveryRegistration {
  readonly cps: string;
  /** Every CPS registered for the block, `cps` first, when more than one. */
  readonly cpses?: readonly string[];
  readonly keys: string;
  readonly ttl: number;
  readonly lifetime: number;
}

/**
 * Parses `{ "cps": url | [url, ...], "keys"?: url, "ttl"?: s, "lifetime"?: s }` of
 * `PUT /discovery/{block}` (a list: several CPSes serve the block, §10).
 */
export function parseDiscoveryRegistration(body: unknown, allowLoopbackHttp: boolean): DiscoveryRegistration {
  const bad = (m: string) => new CpsError("INVALID_BODY", m);
  if (body === null || typeof body !== "object" || Array.isArray(body))
    throw bad("The body is a JSON object");
  const {
    cps: rawCps,
    keys: rawKeys,
    ttl = DEFAULT_RECORD_TTL,
    lifetime = DEFAULT_RECORD_LIFETIME,
    ...rest
  } = body as Record<string, unknown>;
  if (Object.keys(rest).length > 0) throw bad("Unknown members in the body");
  const cpses = parseCpsList(rawCps, allowLoopbackHttp);
  const cps = cpses?.[0];
  if (!cpses || !cps) {
    throw bad(`cps is an https base URL or a list of 1-${MAX_CPSES_PER_RECORD} distinct ones`);
  }
  const keys = rawKeys === undefined ? `${cps}/keys` : parseBaseUrl(rawKeys, allowLoopbackHttp);
  if (!keys) throw bad("keys is an https base URL");
  if (!wholeInRange(ttl, MIN_RECORD_TTL, MAX_RECORD_TTL)) throw bad(`ttl is 0-${MAX_RECORD_TTL} seconds`);
  if (!wholeInRange(lifetime, MIN_RECORD_LIFETIME, MAX_RECORD_LIFETIME)) {
    throw bad(`lifetime is ${MIN_RECORD_LIFETIME}-${MAX_RECORD_LIFETIME} seconds`);
  }
  return { ...cpsMembers(cpses), keys, ttl, lifetime };
}

/** A registered record as stored in KV (`disc:{block}`). */
export interface StoredDiscoveryRecord {
  readonly v: 1;
  readonly prefix: string;
  readonly cps: string;
  /** Every CPS, `cps` first, when more than one (records written before this member have only `cps`). */
  readonly cpses?: readonly string[];
  readonly keys: string;
  readonly ttl: number;
  /** Seconds since the epoch after which the record is gone. */
  readonly exp: number;
  /** Registrant (docs/key-directory.md "Holders"): only it may delete the record. */
  readonly holder: string;
}

/** Reads a stored record defensively; `undefined` for anything malformed or expired at `now`. */
export function parseStoredRecord(value: unknown, now: number): StoredDiscoveryRecord | undefined {
  if (value === null || typeof value !== "object") return undefined;
  const r = value as Record<string, unknown>;
  if (
    typeof r.prefix !== "string" ||
    typeof r.cps !== "string" ||
    typeof r.keys !== "string" ||
    typeof r.ttl !== "number" ||
    typeof r.exp !== "number" ||
    typeof r.holder !== "string" ||
    r.exp <= now ||
    (r.cpses !== undefined &&
      !(Array.isArray(r.cpses) && r.cpses.length > 0 && r.cpses.every((c) => typeof c === "string")))
  ) {
    return undefined;
  }
  return r as unknown as StoredDiscoveryRecord;
}

/**
 * Longest-prefix match: the matching candidate with the most fixed digits; at equal specificity the
 * CPS's own served prefixes, then provisioned records, then registrations.
 */
export function selectRecord(candidates: readonly Candidate[], tn: string): DiscoveryRecord | undefined {
  let best: Candidate | undefined;
  let bestScore = -1;
  for (const c of candidates) {
    if (!patternMatchesTn(c.pattern, tn)) continue;
    const score = patternSpecificity(c.pattern) * 4 + SOURCE_RANK[c.record.source];
    if (score > bestScore) {
      best = c;
      bestScore = score;
    }
  }
  return best?.record;
}
