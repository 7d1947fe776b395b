/**
 * TEST ONLY: an ATIS out-of-band client written from the PUBLIC descriptions alone, the way a carrier's
 * authentication or verification service would talk to this CPS: ATIS-1000096 as publicly described,
 * ATIS-1000105's SPC paths, draft-wendt-stir-vesper-oob (VESPER) and the behaviour of the published
 * TransNexus sti-oobs-sample client (its README), as summarised in the shared facts sheet
 * (atis-oob-facts.md). Issue 16 "must show": it must not reuse this repository's code, so it imports
 * nothing from src/ (not the client library, not src/stir/*): only node:crypto, fetch and JSON.
 * Keys and certificates come from the caller (the tests make them with the test PKI).
 *
 * What it sends:
 * - SHAKEN PASSporTs (RFC 8225, RFC 8588): header {alg ES256, typ passport, ppt shaken, x5u}, claims
 *   attest, dest {tn: [called]}, iat, orig {tn: calling}, origid; full form (header.payload.signature).
 * - Access JWTs in `Authorization: Bearer`: header {alg ES256} plus x5u (the certificate URL, as the
 *   ATIS sample client) or x5c (the chain, base64 DER, as VESPER); claims iat, exp (publish; at most
 *   60 s after iat, ATIS-1000105), action, spc and iss (the SPC) on the SPC path form, iss alone on
 *   the DEST/ORIG form (ATIS-1000096), sub when given (VESPER), aud (the CPS host), jti (a UUID,
 *   single use), dest {tn: [called]},
 *   orig {tn: calling}, and on publish the `passports` digest that binds the token to the body, in
 *   one of the variants the facts sheet lists (`DIGEST_VARIANTS`).
 * - Paths: /passports/{DEST}/{ORIG} (ATIS-1000096, VESPER) or /passports/{SPC}/{DEST}/{ORIG}
 *   (ATIS-1000105); publish is POST with {"passports": [...]} as application/json, retrieve is GET.
 */
import { createHash, createPrivateKey, KeyObject, randomUUID, sign } from "node:crypto";

/** base64url without padding (RFC 7515 §2). */
export function base64url(bytes) {
  return Buffer.from(bytes).toString("base64url");
}

function b64urlJson(value) {
  return base64url(Buffer.from(JSON.stringify(value), "utf8"));
}

/** A Node private key from a KeyObject, a WebCrypto CryptoKey or PKCS #8 / SEC1 PEM text. */
export function toPrivateKey(key) {
  if (key instanceof KeyObject) return key;
  if (typeof key === "string") return createPrivateKey(key);
  return KeyObject.from(key);
}

/**
 * A compact JWS (RFC 7515 §7.1) signed with ES256 (RFC 7518 §3.4: ECDSA P-256 with SHA-256, the
 * signature as R || S, 64 bytes, not DER).
 */
export function signEs256(header, claims, privateKey) {
  const input = `${b64urlJson(header)}.${b64urlJson(claims)}`;
  const signature = sign("sha256", Buffer.from(input, "ascii"), {
    key: toPrivateKey(privateKey),
    dsaEncoding: "ieee-p1363",
  });
  return `${input}.${base64url(signature)}`;
}

/** The DER certificates of a PEM chain, as standard base64 (the `x5c` form, RFC 7515 §4.1.6). */
export function pemToX5c(pem) {
  const blocks = [...pem.matchAll(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g)];
  if (blocks.length === 0) throw new Error("pemToX5c: no CERTIFICATE block in the PEM");
  // Re-encode so that whatever line breaks the PEM had, the value is plain base64 of the DER.
  return blocks.map((m) => Buffer.from(m[1].replace(/\s+/g, ""), "base64").toString("base64"));
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

/**
 * A SHAKEN PASSporT (RFC 8588; the shape of the ATIS sample client's): header {alg, ppt, typ, x5u},
 * claims {attest, dest: {tn: [dest]}, iat, orig: {tn: orig}, origid}.
 */
export function shakenPassport({ privateKey, x5u, orig, dest, attest = "A", iat = nowSeconds(), origid }) {
  return signEs256(
    { alg: "ES256", ppt: "shaken", typ: "passport", x5u },
    { attest, dest: { tn: [dest] }, iat, orig: { tn: orig }, origid: origid ?? randomUUID() },
    privateKey,
  );
}

/**
 * JSON Canonicalization Scheme (RFC 8785) of a JSON value: object members sorted by their names'
 * UTF-16 code units (§3.2.3), no whitespace, strings and numbers serialised as ECMAScript's
 * JSON.stringify does (§3.2.2.2, §3.2.2.3 name exactly that serialisation).
 */
export function jcs(value) {
  if (value === null || typeof value !== "object") {
    if (typeof value === "number" && !Number.isFinite(value)) throw new Error("jcs: not a JSON number");
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(jcs).join(",")}]`;
  // Default sort compares UTF-16 code units, which is what RFC 8785 §3.2.3 asks for.
  const names = Object.keys(value)
    .filter((k) => value[k] !== undefined)
    .sort();
  return `{${names.map((k) => `${JSON.stringify(k)}:${jcs(value[k])}`).join(",")}}`;
}

/**
 * Python's `json.dumps` with its default separators (", " between items, ": " after names): the
 * JSON text a Python client hashes when it does not ask for compact separators. ASCII text only
 * (Python escapes other characters, JSON.stringify does not; PASSporTs are ASCII).
 */
export function pythonJsonDumps(value) {
  if (value === null || typeof value !== "object") {
    const text = JSON.stringify(value);
    if (!/^[\x20-\x7e]*$/.test(text)) throw new Error("pythonJsonDumps: ASCII values only");
    return text;
  }
  if (Array.isArray(value)) return `[${value.map(pythonJsonDumps).join(", ")}]`;
  return `{${Object.keys(value)
    .map((k) => `${JSON.stringify(k)}: ${pythonJsonDumps(value[k])}`)
    .join(", ")}}`;
}

const sha256 = (text) => createHash("sha256").update(text, "utf8").digest();

/**
 * The `passports` digest variants of the facts sheet ("How the digest variants differ"):
 * - `atis`: ATIS sample client: "sha256-" + base64 of SHA-256 over JSON.stringify(passports).
 * - `prototype`: the research prototype's ATIS baseline: "sha256-" + base64 of the digest's
 *   lowercase hex TEXT, over the same JSON text.
 * - `prototype-python`: the same with the JSON text of Python's json.dumps (", " separators).
 * - `vesper`: VESPER binding: base64url (no padding) of SHA-256 over the JCS of the whole body, no
 *   prefix (the draft's rule).
 * - `vesper-prefixed`: the same with "sha256-" in front (the draft's examples).
 */
export const DIGEST_VARIANTS = ["atis", "prototype", "prototype-python", "vesper", "vesper-prefixed"];

/** The `passports` claim for a publish of `body` (`{passports: [...]}`) in `variant`. */
export function passportsDigest(body, variant = "atis") {
  switch (variant) {
    case "atis":
      return `sha256-${sha256(JSON.stringify(body.passports)).toString("base64")}`;
    case "prototype":
      return `sha256-${Buffer.from(sha256(JSON.stringify(body.passports)).toString("hex")).toString("base64")}`;
    case "prototype-python":
      return `sha256-${Buffer.from(sha256(pythonJsonDumps(body.passports)).toString("hex")).toString("base64")}`;
    case "vesper":
      return base64url(sha256(jcs(body)));
    case "vesper-prefixed":
      return `sha256-${base64url(sha256(jcs(body)))}`;
    default:
      throw new Error(`passportsDigest: unknown variant ${variant}`);
  }
}

/**
 * An access JWT. `credential`: {privateKey, x5u?, chainPem?}; `via`: "x5u" (header x5u = credential.x5u)
 * or "x5c" (header x5c = the chain of credential.chainPem). `claims` are added last and override
 * (a test's way to send a token that disagrees with its request).
 */
export function accessToken({
  credential,
  via = "x5u",
  action,
  audience,
  orig,
  dest,
  spc,
  iss,
  sub,
  passports,
  iat = nowSeconds(),
  exp,
  jti = randomUUID(),
  claims = {},
  header = {},
}) {
  const h = { alg: "ES256" };
  if (via === "x5u") {
    if (!credential.x5u) throw new Error("accessToken: x5u token without credential.x5u");
    h.x5u = credential.x5u;
  } else if (via === "x5c") {
    if (!credential.chainPem) throw new Error("accessToken: x5c token without credential.chainPem");
    h.x5c = pemToX5c(credential.chainPem);
  } else {
    throw new Error(`accessToken: via must be "x5u" or "x5c", not ${via}`);
  }
  const c = { iat };
  if (exp !== undefined) c.exp = exp;
  c.action = action;
  if (spc !== undefined) c.spc = spc;
  if (iss !== undefined) c.iss = iss;
  if (sub !== undefined) c.sub = sub;
  c.aud = audience;
  c.jti = jti;
  c.dest = { tn: [dest] };
  c.orig = { tn: orig };
  if (passports !== undefined) c.passports = passports;
  return signEs256({ ...h, ...header }, { ...c, ...claims }, credential.privateKey);
}

/** The ATIS path: /passports/{DEST}/{ORIG}, or /passports/{SPC}/{DEST}/{ORIG} when `spc` is given. */
export function passportsPath({ spc, dest, orig }) {
  const parts = spc === undefined ? [dest, orig] : [spc, dest, orig];
  return `/passports/${parts.map(encodeURIComponent).join("/")}`;
}

/** The CPS host name as the ATIS sample client and VESPER put it in `aud` (host, with port if any). */
export function cpsHost(cps) {
  return new URL(cps).host;
}

/**
 * Who the token says signs it: on the SPC form `spc` and `iss` both the SPC (ATIS-1000105, as the
 * sample client sends them); on the DEST/ORIG form `iss` the SPC (ATIS-1000096) and no `spc`;
 * `sub` only when asked (VESPER sends iss and sub).
 */
function identityClaims(onSpcPath, spc, sub) {
  const claims = {};
  if (spc !== undefined) {
    if (onSpcPath) claims.spc = spc;
    claims.iss = spc;
  }
  if (sub !== undefined) claims.sub = sub;
  return claims;
}

async function answer(res) {
  const text = await res.text();
  let json;
  try {
    json = text === "" ? undefined : JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/**
 * Publishes `passports` for dest/orig. Options: cps (base URL), credential, via ("x5u" | "x5c"),
 * pathForm ("dest-orig" | "spc"), spc (the SPC: the path's on the SPC form; the claims as
 * `identityClaims` says), sub, digest (a DIGEST_VARIANTS name), expSeconds (exp = iat + this;
 * default 60; null = no exp), audience (default the CPS host), idempotencyKey, tokenClaims and
 * tokenHeader (extra or overriding claims / header members), path (overrides the path built from
 * the parameters).
 */
export async function publish({
  cps,
  credential,
  via = "x5u",
  pathForm = "dest-orig",
  spc,
  dest,
  orig,
  passports,
  digest = "atis",
  expSeconds = 60,
  audience,
  idempotencyKey,
  sub,
  tokenClaims = {},
  tokenHeader = {},
  path,
}) {
  const body = { passports };
  const iat = nowSeconds();
  const onSpcPath = pathForm === "spc";
  if (onSpcPath && spc === undefined) throw new Error("publish: the SPC path form needs spc");
  const token = accessToken({
    credential,
    via,
    action: "publish",
    audience: audience ?? cpsHost(cps),
    orig,
    dest,
    ...identityClaims(onSpcPath, spc, sub),
    passports: passportsDigest(body, digest),
    iat,
    ...(expSeconds === null ? {} : { exp: iat + expSeconds }),
    claims: tokenClaims,
    header: tokenHeader,
  });
  const url = `${cps}${path ?? passportsPath({ spc: onSpcPath ? spc : undefined, dest, orig })}`;
  const headers = { Authorization: `Bearer ${token}`, "Content-Type": "application/json" };
  if (idempotencyKey !== undefined) headers["Idempotency-Key"] = idempotencyKey;
  return answer(await fetch(url, { method: "POST", headers, body: JSON.stringify(body) }));
}

/** Retrieves what is published for dest/orig; the options as for `publish` (no passports/digest). */
export async function retrieve({
  cps,
  credential,
  via = "x5u",
  pathForm = "dest-orig",
  spc,
  dest,
  orig,
  audience,
  sub,
  tokenClaims = {},
  tokenHeader = {},
  path,
}) {
  const onSpcPath = pathForm === "spc";
  if (onSpcPath && spc === undefined) throw new Error("retrieve: the SPC path form needs spc");
  const token = accessToken({
    credential,
    via,
    action: "retrieve",
    audience: audience ?? cpsHost(cps),
    orig,
    dest,
    ...identityClaims(onSpcPath, spc, sub),
    claims: tokenClaims,
    header: tokenHeader,
  });
  const url = `${cps}${path ?? passportsPath({ spc: onSpcPath ? spc : undefined, dest, orig })}`;
  return answer(await fetch(url, { method: "GET", headers: { Authorization: `Bearer ${token}` } }));
}
