/**
 * Typed configuration from the Worker's vars and secrets, checked once per isolate. The only reader of
 * them: everything else reads `readConfig(env)` (bindings of Durable Objects and KV excepted). A
 * missing or malformed var is a deployment mistake, so the message says exactly what to set (in
 * wrangler.toml `[vars]`).
 *
 * `deploymentProblem` is the serving guard (src/http/middleware.ts): the Worker refuses every request
 * without a CPS_ORIGIN or a DECOY_SECRET, and with a development switch (DEV_SWITCHES) unless
 * CPS_ORIGIN is loopback.
 */
import { CpsError } from "./errors.js";
import { type Candidate, parseProvisionedRecords, parseServedPrefixes } from "./stir/discovery.js";
import { parseHotNumbers } from "./stir/hot-numbers.js";
import { type NumberPattern, parseSpcNumberBlocks, type SpcNumberBlocks } from "./stir/number-blocks.js";
import type { CanonicalTn } from "./stir/tn.js";
import { isLoopback } from "./stir/urls.js";

export interface CpsConfig {
  /** Lifetime of a stored blob (RFC 8816 §7.5: no longer than the 60 s iat freshness window). */
  ttlSeconds: number;
  /** Live blobs allowed per called number (per shard of a hot number: `hotNumbers`). */
  maxLivePerNumber: number;
  /**
   * Hot numbers (HOT_NUMBERS, `<number>:<shards>,...`; src/stir/hot-numbers.ts): number -> how many
   * PassportQueue objects its queue is spread over (2..16). Empty by default: every number one object.
   */
  hotNumbers: ReadonlyMap<CanonicalTn, number>;
  /**
   * This CPS's public origin (CPS_ORIGIN, e.g. `https://cps.example.net`): the audience credential
   * tokens must name and the origin discovery answers give. Never taken from the request (Host).
   * "" only when unset or malformed, and then the serving guard answers every request first.
   */
  cpsOrigin: string;
  /** Stores one storage token may pay for in total (docs/tokens.md). */
  tokenMaxUses: number;
  /** Stores one token may pay for under one called number per TTL window. */
  tokenMaxUsesPerNumber: number;
  /**
   * Storage tokens one credential holder may obtain that are spendable within any one day: each counts
   * from issuance until its issuer key's notAfter + 1 day + TTL (exact, src/tokens/quota.ts).
   */
  tokenDailyQuota: number;
  /**
   * Local development only: stores without token headers are accepted (logged once per isolate).
   * True only with a loopback CPS_ORIGIN, whatever ALLOW_UNTOKENED_STORES says.
   */
  allowUntokenedStores: boolean;
  /**
   * Local development only: x5u and CRL distribution points over plain http to loopback
   * (ALLOW_LOOPBACK_X5U, loopback origin only).
   */
  allowLoopbackX5u: boolean;
  /**
   * Certificate repository hosts x5u URLs may name (X5U_ALLOWED_HOSTS, comma-separated; `*.example.net`
   * for names below). Empty: any public name passing the x5u rules (src/stir/x5u.ts `checkX5uUrl`).
   * CRL distribution points are held to the same list (src/stir/crl.ts).
   */
  x5uAllowedHosts: readonly string[];
  /** SPC -> number prefixes it speaks for, for key and discovery registration (SPC_NUMBER_BLOCKS). */
  spcNumberBlocks: SpcNumberBlocks;
  /** Provisioned discovery records (DISCOVERY_RECORDS, RFC 8816 §10 closed deployments). */
  discoveryRecords: readonly Candidate[];
  /** Prefixes this CPS serves (SERVED_PREFIXES); `null` = every number. */
  servedPrefixes: readonly NumberPattern[] | null;
  /** max-age of key-directory answers (KEYS_CACHE_SECONDS). */
  keysCacheSeconds: number;
  /** Open digits `GET /keys?prefix=` may leave (KEYS_PREFETCH_MAX_OPEN_DIGITS). */
  keysPrefetchMaxOpenDigits: number;
  /**
   * Key of the decoy PRF (DECOY_SECRET, a secret of at least 32 characters; src/dummies/decoys.ts).
   * `null` when unset; the serving guard (`deploymentProblem`) then refuses every request first.
   */
  decoySecret: string | null;
  /**
   * PEM of the STIR trust anchors (TRUST_ANCHORS_PEM, a secret), as set: "" when unset. Parsed by the
   * credential check when a route needs it (src/http/credential-auth.ts), once per distinct value, so
   * a deployment without it still serves the routes that need no credential.
   */
  trustAnchorsPem: string;
  /**
   * Storage-token issuer keys (TOKEN_ISSUER_KEYS, a secret), as set: "" when unset. Parsed and imported
   * by src/tokens/issuer-keys.ts when a token route needs them, once per distinct value.
   */
  tokenIssuerKeys: string;
  /**
   * Oblivious HTTP gateway keys (OHTTP_KEYS, a secret), as set: "" when unset, and then the gateway
   * routes answer 404 (feature off). Parsed and imported by src/http/ohttp-gateway.ts when a gateway
   * route needs them, once per distinct value, so a malformed value fails those routes only.
   */
  ohttpKeys: string;
  /**
   * The relays the gateway accepts (OHTTP_RELAYS, a secret), as set: "" when unset, and then the
   * gateway is open to any sender. Parsed by src/http/ohttp-gateway.ts once per distinct value, so a
   * malformed value fails the gateway routes only.
   */
  ohttpRelays: string;
  /**
   * Whether requests are counted for the operator's figures (METRICS, "on" by default; "off" only to
   * measure what counting costs, bench/metrics.mjs). docs/metrics.md.
   */
  metricsEnabled: boolean;
  /**
   * SHA-256 of the operator's bearer token for `GET /metrics` and `GET /console/data`
   * (METRICS_TOKEN_SHA256, a secret: base64url or hex), as set: "" when unset, and then both routes
   * answer 404. Parsed by src/http/metrics.ts when one of them is asked, so a malformed value fails
   * those routes only.
   */
  metricsTokenSha256: string;
  /**
   * TEST-ONLY demo credentials for the /demo page (DEMO_CREDENTIALS, made by `npm start`,
   * src/dev/demo-credentials.mjs), as set, and only with a loopback CPS_ORIGIN: "" otherwise, and then
   * the demo routes answer 404 (src/routes/demo.ts). Set with another origin, the Worker refuses to serve.
   */
  demoCredentials: string;
  /**
   * Whether the ATIS out-of-band routes are served (ATIS_API "on", the default, or "off"):
   * `/passports/{DEST}/{ORIG}` (ATIS-1000096, VESPER) and `/passports/{SPC}/{DEST}/{ORIG}`
   * (ATIS-1000105). Off, they answer like an unknown path (docs/atis-api.md).
   */
  atisApi: boolean;
  /**
   * ATIS-1000105 agreements (ATIS_AGREEMENTS, JSON `[["SPC1","SPC2"], ...]`): SPC -> the SPCs that
   * agreed to exchange with it through this CPS. Symmetric: a pair is listed under both SPCs.
   */
  atisAgreements: ReadonlyMap<string, ReadonlySet<string>>;
  /** Peer CPSes this CPS re-publishes to and accepts `republish` from (ATIS_PEERS, ATIS-1000096 mesh). */
  atisPeers: readonly AtisPeer[];
  /**
   * This CPS's own credential for re-publishing (ATIS_CPS_CREDENTIAL, a secret), as set: "" when unset.
   * Parsed by src/federation/republish.ts when a re-publish needs it, so a malformed value fails
   * re-publishing only.
   */
  atisCredential: string;
}

/** A peer CPS of the ATIS mesh (ATIS_PEERS). */
export interface AtisPeer {
  /** Its origin: https (plain http only to loopback, with a loopback CPS_ORIGIN: local tests). */
  url: string;
  /** The SPC its republish credential covers; a `republish` must come from a credential covering it. */
  spc: string;
  /** The `aud` its access tokens name: the host of `url` (with the port, if any). */
  audience: string;
}

/** An ATIS service provider code, in paths and config (ATIS-1000105 `{SPC}`): letters and digits. */
export const ATIS_SPC = /^[A-Za-z0-9]{1,32}$/;

function positiveInt(env: Env, name: keyof Env & string, fallback: number, max: number): number {
  const raw = (env as unknown as Record<string, unknown>)[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1 || value > max) {
    throw new CpsError(
      "MISCONFIGURED",
      `Set ${name} to a whole number from 1 to ${max} in wrangler.toml [vars]`,
    );
  }
  return value;
}

/** Parses a JSON or list var with `parse`; any failure is MISCONFIGURED naming the var. */
function structured<T>(env: Env, name: keyof Env & string, fallback: string, parse: (raw: string) => T): T {
  const raw = (env as unknown as Record<string, unknown>)[name];
  try {
    return parse(typeof raw === "string" ? raw : fallback);
  } catch (cause) {
    const why = cause instanceof Error ? cause.message : "invalid";
    throw new CpsError("MISCONFIGURED", `Fix ${name} in wrangler.toml [vars]: ${why}`);
  }
}

/** Shortest DECOY_SECRET accepted (characters). */
export const MIN_DECOY_SECRET_LENGTH = 32;

/** DECOY_SECRET: unset is null (the serving guard refuses every request first); too short is a mistake. */
function decoySecret(env: Env): string | null {
  const raw = env.DECOY_SECRET;
  if (raw === undefined || raw === "") return null;
  if (typeof raw !== "string" || raw.length < MIN_DECOY_SECRET_LENGTH) {
    throw new CpsError(
      "MISCONFIGURED",
      `Set DECOY_SECRET to a random secret of at least ${MIN_DECOY_SECRET_LENGTH} characters`,
    );
  }
  return raw;
}

/**
 * Switches for local development only. Each is honoured only when CPS_ORIGIN is a loopback origin;
 * set with any other origin, the Worker refuses to serve (`deploymentProblem`). A new dev-only var
 * goes in this list.
 */
const DEV_SWITCHES = ["ALLOW_UNTOKENED_STORES", "ALLOW_LOOPBACK_X5U"] as const;

/** A parsed CPS_ORIGIN; `loopback` = this machine (local development). */
interface CpsOrigin {
  origin: string;
  loopback: boolean;
}

/**
 * CPS_ORIGIN as an origin (`scheme://host[:port]`, no path, query or credentials): https, or plain
 * http to a loopback host (local development). Throws with the reason otherwise.
 */
function parseCpsOrigin(raw: unknown): CpsOrigin {
  if (typeof raw !== "string" || raw === "") throw new Error("it is not set");
  const url = parseOrigin(raw, "it", true);
  return { origin: url.origin, loopback: isLoopback(url.hostname) };
}

/**
 * `raw` as an origin (`scheme://host[:port]`, no path, query or credentials): https, or plain http to
 * a loopback host when `loopbackHttp` allows it. Throws an Error naming `what` otherwise.
 */
function parseOrigin(raw: string, what: string, loopbackHttp: boolean): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new Error(`${what} is not a URL`);
  }
  if (
    url.username ||
    url.password ||
    url.search ||
    url.hash ||
    (url.pathname !== "/" && url.pathname !== "")
  ) {
    throw new Error(`${what} must be an origin only, with no path, query or credentials`);
  }
  if (url.protocol !== "https:" && !(url.protocol === "http:" && loopbackHttp && isLoopback(url.hostname))) {
    throw new Error(`${what} must be https (plain http only to a loopback host, for local development)`);
  }
  return url;
}

/** CPS_ORIGIN parsed, or an empty non-loopback origin when unset or malformed. */
function originOrEmpty(raw: unknown): CpsOrigin {
  try {
    return parseCpsOrigin(raw);
  } catch {
    return { origin: "", loopback: false };
  }
}

/**
 * Why this Worker must not serve at all, or null. Checked before every route: the reason is an
 * operator's message (logged once), never shown to clients.
 */
export function deploymentProblem(env: Env): string | null {
  let origin: CpsOrigin;
  try {
    origin = parseCpsOrigin(env.CPS_ORIGIN);
  } catch (err) {
    const why = err instanceof Error ? err.message : "invalid";
    return `Set CPS_ORIGIN to this CPS's public origin, e.g. https://cps.example.net (${why})`;
  }
  const secret = env.DECOY_SECRET;
  if (typeof secret !== "string" || secret.length < MIN_DECOY_SECRET_LENGTH) {
    // Without it no retrieval can be answered (every answer carries decoys), and a per-isolate
    // fallback would make decoys differ between isolates, which tells them from real blobs.
    return `Set the DECOY_SECRET secret to a random value of at least ${MIN_DECOY_SECRET_LENGTH} characters (wrangler secret put DECOY_SECRET)`;
  }
  const on: string[] = DEV_SWITCHES.filter((name) => env[name] === "true");
  // The demo's TEST-ONLY private keys are served to any visitor: local development only, like a switch.
  if (env.DEMO_CREDENTIALS) on.push("DEMO_CREDENTIALS");
  if (on.length > 0 && !origin.loopback) {
    return `${on.join(", ")} ${on.length > 1 ? "are" : "is"} for local development only (a loopback CPS_ORIGIN); turn ${on.length > 1 ? "them" : "it"} off`;
  }
  return null;
}

/** X5U_ALLOWED_HOSTS: comma-separated DNS names, each optionally `*.`-prefixed. Throws a plain Error. */
export function parseHostList(raw: string): string[] {
  const hosts = raw
    .split(",")
    .map((h) => h.trim().toLowerCase().replace(/\.$/, ""))
    .filter((h) => h !== "");
  for (const h of hosts) {
    if (!/^(\*\.)?([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$/.test(h)) {
      throw new Error(`"${h}" is not a host name (or *.name)`);
    }
  }
  return hosts;
}

/** METRICS: "on" (or unset) counts, "off" does not; anything else is a mistake. */
function metricsSwitch(env: Env): boolean {
  const raw = (env as unknown as Record<string, unknown>).METRICS;
  if (raw === undefined || raw === "" || raw === "on") return true;
  if (raw === "off") return false;
  throw new CpsError("MISCONFIGURED", 'Set METRICS to "on" or "off" in wrangler.toml [vars]');
}

/** ATIS_API: "on" (or unset) serves the ATIS routes, "off" does not; anything else is a mistake. */
function atisSwitch(env: Env): boolean {
  const raw = (env as unknown as Record<string, unknown>).ATIS_API;
  if (raw === undefined || raw === "" || raw === "on") return true;
  if (raw === "off") return false;
  throw new CpsError("MISCONFIGURED", 'Set ATIS_API to "on" or "off" in wrangler.toml [vars]');
}

/** ATIS_AGREEMENTS: JSON `[["SPC1","SPC2"], ...]` -> symmetric partner map. Throws a plain Error. */
export function parseAtisAgreements(raw: string): ReadonlyMap<string, ReadonlySet<string>> {
  const value: unknown = JSON.parse(raw === "" ? "[]" : raw);
  if (!Array.isArray(value)) throw new Error("it must be a JSON array of SPC pairs");
  const map = new Map<string, Set<string>>();
  for (const pair of value) {
    if (
      !Array.isArray(pair) ||
      pair.length !== 2 ||
      !pair.every((s) => typeof s === "string" && ATIS_SPC.test(s))
    ) {
      throw new Error('each agreement is a pair of SPCs (letters and digits), e.g. ["SPC1","SPC2"]');
    }
    const [a, b] = pair as [string, string];
    if (a === b) throw new Error(`an agreement pairs two different SPCs, not "${a}" with itself`);
    for (const [x, y] of [
      [a, b],
      [b, a],
    ] as const) {
      const partners = map.get(x) ?? new Set<string>();
      partners.add(y);
      map.set(x, partners);
    }
  }
  return map;
}

/**
 * ATIS_PEERS: JSON `[{"url": "https://cps-b.example", "spc": "SPCB"}, ...]`. A peer URL is an origin,
 * https; plain http only to loopback and only when this CPS's own origin is loopback (local tests).
 * Throws a plain Error.
 */
export function parseAtisPeers(raw: string, loopbackOrigin: boolean): AtisPeer[] {
  const value: unknown = JSON.parse(raw === "" ? "[]" : raw);
  if (!Array.isArray(value)) throw new Error("it must be a JSON array of {url, spc}");
  return value.map((entry): AtisPeer => {
    if (entry === null || typeof entry !== "object" || Array.isArray(entry)) {
      throw new Error("each peer is an object {url, spc}");
    }
    const { url: rawUrl, spc } = entry as Record<string, unknown>;
    if (typeof spc !== "string" || !ATIS_SPC.test(spc)) throw new Error("a peer's spc is letters and digits");
    const url = parseOrigin(typeof rawUrl === "string" ? rawUrl : "", "a peer's url", loopbackOrigin);
    return { url: url.origin, spc, audience: url.host };
  });
}

const cache = new WeakMap<object, CpsConfig>();

export function readConfig(env: Env): CpsConfig {
  const hit = cache.get(env);
  if (hit) return hit;
  const { origin, loopback: local } = originOrEmpty(env.CPS_ORIGIN);
  const config: CpsConfig = {
    ttlSeconds: positiveInt(env, "PASSPORT_TTL_SECONDS", 60, 86_400),
    maxLivePerNumber: positiveInt(env, "MAX_LIVE_PER_NUMBER", 1000, 1_000_000),
    hotNumbers: structured(env, "HOT_NUMBERS", "", parseHotNumbers),
    cpsOrigin: origin,
    spcNumberBlocks: structured(env, "SPC_NUMBER_BLOCKS", "{}", parseSpcNumberBlocks),
    discoveryRecords: structured(env, "DISCOVERY_RECORDS", "[]", parseProvisionedRecords),
    servedPrefixes: structured(env, "SERVED_PREFIXES", "", parseServedPrefixes),
    keysCacheSeconds: positiveInt(env, "KEYS_CACHE_SECONDS", 60, 86_400),
    keysPrefetchMaxOpenDigits: positiveInt(env, "KEYS_PREFETCH_MAX_OPEN_DIGITS", 4, 6),
    // One credential's quota x uses x TTL / MAX_LIVE_PER_NUMBER bounds how long it can hold one number's
    // queue full: 1,000 x 1 x 60 s / 1,000 = one minute a day (docs/tokens.md).
    tokenMaxUses: positiveInt(env, "TOKEN_MAX_USES", 1, 1_000_000),
    tokenMaxUsesPerNumber: positiveInt(env, "TOKEN_MAX_USES_PER_NUMBER", 1, 1_000_000),
    tokenDailyQuota: positiveInt(env, "TOKEN_DAILY_QUOTA", 1000, 100_000_000),
    // Defence in depth behind the serving guard: a dev switch is off unless the origin is loopback.
    allowUntokenedStores: env.ALLOW_UNTOKENED_STORES === "true" && local,
    allowLoopbackX5u: env.ALLOW_LOOPBACK_X5U === "true" && local,
    x5uAllowedHosts: structured(env, "X5U_ALLOWED_HOSTS", "", parseHostList),
    decoySecret: decoySecret(env),
    trustAnchorsPem: env.TRUST_ANCHORS_PEM ?? "",
    tokenIssuerKeys: env.TOKEN_ISSUER_KEYS ?? "",
    ohttpKeys: env.OHTTP_KEYS ?? "",
    ohttpRelays: env.OHTTP_RELAYS ?? "",
    metricsEnabled: metricsSwitch(env),
    metricsTokenSha256: env.METRICS_TOKEN_SHA256 ?? "",
    demoCredentials: local ? (env.DEMO_CREDENTIALS ?? "") : "",
    atisApi: atisSwitch(env),
    atisAgreements: structured(env, "ATIS_AGREEMENTS", "[]", parseAtisAgreements),
    atisPeers: structured(env, "ATIS_PEERS", "[]", (raw) => parseAtisPeers(raw, local)),
    atisCredential: env.ATIS_CPS_CREDENTIAL ?? "",
  };
  cache.set(env, config);
  return config;
}
