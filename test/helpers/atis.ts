/**
 * TEST ONLY builders for the ATIS out-of-band routes inside workerd (ATIS-1000096, ATIS-1000105,
 * draft-wendt-stir-vesper-oob; docs/atis-api.md): access tokens with any header and claims, signed by
 * a test PKI credential (or deliberately not: `alg` none, HS256, ES384), naming the certificate by
 * `x5c` or by an `x5u` the integration Worker's outboundService serves (test/helpers/atis-x5u.ts); real
 * SHAKEN PASSporTs (RFC 8225, RFC 8588) signed by a test credential whose x5u is served the same way;
 * the `passports` digest in every variant deployed clients send, computed here independently of
 * src/stir/atis-digest.ts so the tests check that code rather than repeat it; and the checks every
 * ATIS error answer must pass.
 */
import { runInDurableObject } from "cloudflare:test";
import { expect } from "vitest";
import { createPassport } from "../../src/stir/passport.js";
import { canonicalTn } from "../../src/stir/tn.js";
import type { TnAuthList } from "../../src/stir/tnauthlist.js";
import { atisStore } from "../../src/storage/objects.js";
import { chainX5u, TEST_X5U_ORIGIN } from "./atis-x5u.js";
import { TEST_CPS_ORIGIN } from "./origin.js";
import type { CredentialName, WorkerCredential, WorkerTestPki } from "./pki.js";

export { chainX5u, TEST_X5U_ORIGIN };

/** What a TransNexus/VESPER client puts in `aud`: the CPS host (with its port here). */
export const ATIS_AUDIENCE = new URL(TEST_CPS_ORIGIN).host;

/** The served x5u of a serialised test PKI credential (its chain, PEM). */
export function x5uOf(name: CredentialName): string {
  return `${TEST_X5U_ORIGIN}/${name}.pem`;
}

export const nowSeconds = () => Math.floor(Date.now() / 1000);

// ---------------------------------------------------------------------------------------------
// Encoding

const encoder = new TextEncoder();

function b64(bytes: Uint8Array): string {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

export function b64url(input: Uint8Array | string): string {
  const bytes = typeof input === "string" ? encoder.encode(input) : input;
  return b64(bytes).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

async function sha256(text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(text)));
}

/** RFC 8785 JCS for what a publish body holds (objects, arrays, strings, safe integers). */
export function jcs(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(jcs).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const obj = value as Record<string, unknown>;
    // JCS sorts by UTF-16 code units, which is what the default sort compares.
    const keys = Object.keys(obj)
      .filter((k) => obj[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${jcs(obj[k])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/** Python's json.dumps default text of a list of ASCII strings (separators ", "). */
function pythonJson(passports: readonly string[]): string {
  return `[${passports.map((p) => JSON.stringify(p)).join(", ")}]`;
}

// ---------------------------------------------------------------------------------------------
// The `passports` digest (../shared/reference/atis-oob-facts.md, docs/atis-api.md)

/**
 * A: `sha256-` + base64 of SHA-256 over JSON.stringify(passports) (ATIS / TransNexus sample client);
 * A-nopad: the same without base64 padding; A-py: over Python's json.dumps text.
 * B: `sha256-` + base64 of the digest's lowercase hex text (a research prototype); B-py: Python text.
 * C: base64url (no padding) of SHA-256 over the JCS of the whole body (VESPER); C-prefixed: with `sha256-`.
 */
export type DigestVariant = "A" | "A-nopad" | "A-py" | "B" | "B-py" | "C" | "C-prefixed";
export const DIGEST_VARIANTS: readonly DigestVariant[] = [
  "A",
  "A-nopad",
  "A-py",
  "B",
  "B-py",
  "C",
  "C-prefixed",
];

export async function passportsDigest(
  passports: readonly string[],
  variant: DigestVariant = "A",
  body: Record<string, unknown> = { passports },
): Promise<string> {
  switch (variant) {
    case "A":
      return `sha256-${b64(await sha256(JSON.stringify(passports)))}`;
    case "A-nopad":
      return `sha256-${b64(await sha256(JSON.stringify(passports))).replace(/=+$/, "")}`;
    case "A-py":
      return `sha256-${b64(await sha256(pythonJson(passports)))}`;
    case "B":
    case "B-py": {
      const digest = await sha256(variant === "B" ? JSON.stringify(passports) : pythonJson(passports));
      const hex = [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
      return `sha256-${btoa(hex)}`;
    }
    case "C":
      return b64url(await sha256(jcs(body)));
    case "C-prefixed":
      return `sha256-${b64url(await sha256(jcs(body)))}`;
  }
}

/** Changes one character of `text` at `index` (default: the last) into another valid base64(url) one. */
export function tamper(text: string, index = text.length - 1): string {
  const i = index < 0 ? text.length + index : index;
  const c = text[i];
  // Skip a padding '=' at the end: tamper the character before it.
  if (c === "=") return tamper(text, i - 1);
  const next = c === "A" ? "B" : "A";
  return text.slice(0, i) + next + text.slice(i + 1);
}

// ---------------------------------------------------------------------------------------------
// Access tokens

export type TokenAlg = "ES256" | "ES384" | "HS256" | "none";

export interface AtisTokenInput {
  /** Signs the token (ES256) and, unless `x5u` is given, goes in `x5c`. */
  readonly credential: WorkerCredential;
  /** Name the certificate by this URL instead of `x5c`. */
  readonly x5u?: string;
  readonly action: string;
  readonly dest: string;
  readonly orig: string;
  readonly spc?: string;
  readonly iss?: string;
  readonly sub?: string;
  /** The body's PASSporTs: the `passports` claim is their digest in `digestVariant` (default A). */
  readonly passports?: readonly string[];
  readonly digestVariant?: DigestVariant;
  /** Default: now. */
  readonly iat?: number;
  readonly exp?: number;
  /** Default: a UUID (ATIS-1000096). */
  readonly jti?: string;
  /** Default: ATIS_AUDIENCE. */
  readonly aud?: unknown;
  /** Header members merged last; `undefined` removes one. */
  readonly header?: Readonly<Record<string, unknown>>;
  /** Claims merged last; `undefined` removes one. */
  readonly claims?: Readonly<Record<string, unknown>>;
  /** How it is signed (default ES256 with the credential's key). */
  readonly alg?: TokenAlg;
}

export interface AtisToken {
  readonly token: string;
  readonly jti: string;
  readonly header: Record<string, unknown>;
  readonly claims: Record<string, unknown>;
  /** `Bearer <token>`. */
  readonly authorization: string;
}

function merge(base: Record<string, unknown>, over: Readonly<Record<string, unknown>> = {}) {
  const out = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) delete out[k];
    else out[k] = v;
  }
  return out;
}

/**
 * Builds an access token in the TransNexus / VESPER shape: header `{alg, typ, x5u | x5c}`, claims
 * `iat`, `exp` (if given), `action`, `aud`, `jti`, `orig: {tn}`, `dest: {tn: [..]}`, `spc`/`iss`/`sub`
 * (if given), `passports` (the digest, if `passports` given).
 */
export async function atisToken(input: AtisTokenInput): Promise<AtisToken> {
  const alg = input.alg ?? "ES256";
  const jti = input.jti ?? crypto.randomUUID();
  const header = merge(
    {
      alg,
      typ: "JWT",
      ...(input.x5u === undefined ? { x5c: input.credential.der.map(b64) } : { x5u: input.x5u }),
    },
    input.header,
  );
  const base: Record<string, unknown> = {
    iat: input.iat ?? nowSeconds(),
    action: input.action,
    aud: input.aud ?? ATIS_AUDIENCE,
    jti,
    orig: { tn: input.orig },
    dest: { tn: [input.dest] },
  };
  if (input.exp !== undefined) base.exp = input.exp;
  if (input.spc !== undefined) base.spc = input.spc;
  if (input.iss !== undefined) base.iss = input.iss;
  if (input.sub !== undefined) base.sub = input.sub;
  if (input.passports !== undefined) {
    base.passports = await passportsDigest(input.passports, input.digestVariant ?? "A");
  }
  const claims = merge(base, input.claims);
  // Signed here with WebCrypto, not jose: a test must be free to send what jose would refuse to
  // sign (an unknown `crit`, a mismatched `alg`). ECDSA in WebCrypto gives r||s, the JWS form (RFC 7518 §3.4).
  const input64 = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  let signature = "";
  if (alg === "ES256") {
    signature = b64url(
      new Uint8Array(
        await crypto.subtle.sign(
          { name: "ECDSA", hash: "SHA-256" },
          input.credential.privateKey,
          encoder.encode(input64),
        ),
      ),
    );
  } else if (alg === "ES384") {
    const pair = (await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-384" }, false, [
      "sign",
      "verify",
    ])) as CryptoKeyPair;
    signature = b64url(
      new Uint8Array(
        await crypto.subtle.sign(
          { name: "ECDSA", hash: "SHA-384" },
          pair.privateKey,
          encoder.encode(input64),
        ),
      ),
    );
  } else if (alg === "HS256") {
    // The classic confusion: an HMAC "signature" whose secret an attacker chose.
    const key = await crypto.subtle.importKey(
      "raw",
      crypto.getRandomValues(new Uint8Array(32)),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign"],
    );
    signature = b64url(new Uint8Array(await crypto.subtle.sign("HMAC", key, encoder.encode(input64))));
  }
  const token = `${input64}.${signature}`;
  return { token, jti, header, claims, authorization: `Bearer ${token}` };
}

// ---------------------------------------------------------------------------------------------
// PASSporTs

export interface ShakenInput {
  readonly orig: string;
  readonly dest: string | readonly string[];
  readonly iat?: number;
  readonly attest?: "A" | "B" | "C";
  /** Default: a fresh UUID, so two PASSporTs of one call pair differ. */
  readonly origid?: string;
  /** Default: the served chain of the `valid` credential. */
  readonly x5u?: string;
}

/** A full-form SHAKEN PASSporT (`ppt: shaken`) signed with `signer` (by default the `valid` leaf's key). */
export async function shakenPassport(signer: WorkerCredential, input: ShakenInput): Promise<string> {
  return createPassport(
    {
      x5u: input.x5u ?? x5uOf("valid"),
      ppt: "shaken",
      claims: {
        attest: input.attest ?? "A",
        dest: { tn: typeof input.dest === "string" ? [input.dest] : [...input.dest] },
        iat: input.iat ?? nowSeconds(),
        orig: { tn: input.orig },
        origid: input.origid ?? crypto.randomUUID(),
      },
    },
    signer.privateKey,
  );
}

/**
 * A JWS of exactly these header and claims, ES256-signed with `signer`'s key (WebCrypto, r||s): for
 * PASSporTs that are correctly signed yet break a claim or header rule createPassport would not let pass.
 */
export async function signedJws(
  signer: WorkerCredential,
  header: Record<string, unknown>,
  claims: Record<string, unknown>,
): Promise<string> {
  const input64 = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  const sig = await crypto.subtle.sign(
    { name: "ECDSA", hash: "SHA-256" },
    signer.privateKey,
    encoder.encode(input64),
  );
  return `${input64}.${b64url(new Uint8Array(sig))}`;
}

/** A JWS from raw parts: header and claims JSON as given, the signature segment as given. */
export function rawJws(
  header: Record<string, unknown>,
  claims: Record<string, unknown>,
  signature = "",
): string {
  return `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}.${signature}`;
}

/** The full-form PASSporT with its signature segment changed in one character. */
export function badSignature(jws: string): string {
  const [h, p, s] = jws.split(".") as [string, string, string];
  return `${h}.${p}.${tamper(s, 3)}`;
}

/** The compact form (RFC 8225 §7): the payload segment dropped. */
export function compactForm(jws: string): string {
  const [h, , s] = jws.split(".") as [string, string, string];
  return `${h}..${s}`;
}

// ---------------------------------------------------------------------------------------------
// Requests and answers

export function atisPath(dest: string, orig: string, spc?: string): string {
  return spc === undefined ? `/passports/${dest}/${orig}` : `/passports/${spc}/${dest}/${orig}`;
}

export function atisUrl(dest: string, orig: string, spc?: string): string {
  return `${TEST_CPS_ORIGIN}${atisPath(dest, orig, spc)}`;
}

/** A publish request: JSON body `{passports}` (or `body` as given), the token as bearer. */
export function publishInit(
  authorization: string | undefined,
  body: readonly string[] | string,
  headers: Readonly<Record<string, string>> = {},
): RequestInit {
  return {
    method: "POST",
    headers: {
      "Content-Type": "application/json",
      ...(authorization === undefined ? {} : { Authorization: authorization }),
      ...headers,
    },
    body: typeof body === "string" ? body : JSON.stringify({ passports: body }),
  };
}

export function retrieveInit(authorization: string | undefined): RequestInit {
  return { method: "GET", headers: authorization === undefined ? {} : { Authorization: authorization } };
}

/** A stack trace or a source location in a body (never in an answer: COMMON16 standards). */
export const STACK = /^\s*at \S|\bat \S+ \(|\.[cm]?[jt]s:\d+:\d+|Error:/m;

export interface AtisErrorBody {
  status: number;
  message: string;
  code: string;
  type: string;
  title: string;
}

/**
 * Asserts the ATIS error format of the plan (VESPER/ATIS clients read `status` + `message`, ours read
 * `code`): the status, `application/json` (not problem+json), `no-store`, no stack trace, and the body
 * `{status, message, code, type, title}`.
 */
export async function expectAtisError(res: Response, status: number, code: string): Promise<AtisErrorBody> {
  const text = await res.text();
  expect({ status: res.status, text }).toMatchObject({ status });
  const type = res.headers.get("content-type") ?? "";
  expect(type.split(";")[0]?.trim()).toBe("application/json");
  expect(res.headers.get("cache-control")).toBe("no-store");
  expect(text).not.toMatch(STACK);
  const body = JSON.parse(text) as AtisErrorBody;
  expect(body).toMatchObject({ status, code });
  expect(typeof body.message).toBe("string");
  expect(body.message.length).toBeGreaterThan(0);
  expect(typeof body.type).toBe("string");
  expect(body.title).toBe(body.message);
  if (status === 429 || status === 503) expect(res.headers.get("retry-after")).toMatch(/^\d+$/);
  return body;
}

/** What the AtisStore of `dest` holds for `orig`, every publisher (straight from the Durable Object). */
export async function storedFor(env: Env, dest: string, orig: string): Promise<string[]> {
  return atisStore(env, canonicalTn(dest)).retrieve(canonicalTn(orig), null);
}

let counter = Math.floor(Math.random() * 5000);
/** A number of the block 1303555xxxx that no earlier call in this isolate returned. */
export function freshTn(): string {
  counter = (counter + 1) % 10_000;
  return `1303555${String(counter).padStart(4, "0")}`;
}

/**
 * Rows of every table of the AtisStore of `dest` (schema-agnostic: read from sqlite_master), for "a
 * refusal changes nothing" (docs/design.md invariant 7): the PASSporTs and the Idempotency-Key records.
 */
export async function storeRowCounts(env: Env, dest: string): Promise<Record<string, number>> {
  return runInDurableObject(atisStore(env, canonicalTn(dest)), (_obj, state) => {
    const sql = state.storage.sql;
    const tables = sql
      .exec<{ name: string }>(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%' ORDER BY name",
      )
      .toArray()
      .map((r) => r.name);
    const out: Record<string, number> = {};
    for (const t of tables) {
      out[t] = sql.exec<{ n: number }>(`SELECT count(*) AS n FROM "${t}"`).one().n;
    }
    return out;
  });
}

/** The SPC and number block the test publishers and retrievers speak for (`atisCredential`). */
export const TEST_SPC = "SPCW";
export const TEST_BLOCK = { start: "13035550000", count: 10_000 } as const;

/**
 * A fresh leaf under the trusted intermediate with its own subject, so its own credential holder
 * (src/stir/authority.ts `holderId`): each test gets its own ATIS rate-limit bucket (vitest.config.ts:
 * 100 requests per 10 s per holder) and Idempotency-Key scope. Default TNAuthList: TEST_SPC and TEST_BLOCK.
 */
export async function atisCredential(
  pki: WorkerTestPki,
  tnAuthList: TnAuthList = [
    { type: "spc", spc: TEST_SPC },
    { type: "range", start: TEST_BLOCK.start, count: TEST_BLOCK.count },
  ],
  label = "ATIS publisher",
): Promise<WorkerCredential> {
  return pki.issue({ tnAuthList, subject: `${label} ${crypto.randomUUID()}` });
}
