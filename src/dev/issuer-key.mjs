/**
 * Local storage-token issuer keys for `npm start` (docs/tokens.md "Issuer keys"), and the other local
 * secrets (DECOY_SECRET, OHTTP_KEYS). In production
 * TOKEN_ISSUER_KEYS is a Worker secret; locally this makes one RSA-2048 key (RFC 9474
 * RSABSSA-SHA384-PSS-Randomized) plus the next one, persists them in .wrangler/dev-issuer-keys.json
 * (git-ignored) and returns the JSON string to pass as the TOKEN_ISSUER_KEYS secret, in a 0600 env
 * file (never `--var`, which any local user reads in `ps`).
 *
 *   import { ensureLocalIssuerKeys } from "./issuer-key.mjs";
 *   const keys = await ensureLocalIssuerKeys(join(REPO_ROOT, ".wrangler"));
 *   await writeEnvFile(file, { TOKEN_ISSUER_KEYS: keys }); // wrangler dev ... --env-file <file>
 *
 * Plain Node ESM (Node >= 20, WebCrypto only). Types: issuer-key.d.mts. DEVELOPMENT KEYS ONLY.
 */
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";

const DAY = 86_400_000;
export const DEV_KEYS_FILE = "dev-issuer-keys.json";
export const DEV_DECOY_SECRET_FILE = "dev-decoy-secret";

/** One TOKEN_ISSUER_KEYS entry: a fresh RSA-PSS/SHA-384 key valid from notBefore to notAfter (ms). */
export async function generateIssuerKeyEntry(id, notBefore, notAfter, modulusLength = 2048) {
  const pair = await crypto.subtle.generateKey(
    { name: "RSA-PSS", hash: "SHA-384", modulusLength, publicExponent: new Uint8Array([1, 0, 1]) },
    true,
    ["sign", "verify"],
  );
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", pair.privateKey));
  return {
    id,
    privateKeyPkcs8: Buffer.from(pkcs8).toString("base64"),
    notBefore: new Date(notBefore).toISOString(),
    notAfter: new Date(notAfter).toISOString(),
  };
}

/** Writes `text` to `file` (mode 0600) through a temporary file renamed over it, so a crash never
 * leaves half a file behind. */
async function writeFileAtomic0600(file, text) {
  await writeFile(`${file}.tmp`, text, { mode: 0o600 });
  await rename(`${file}.tmp`, file);
}

function usable(keys, now) {
  return (
    Array.isArray(keys) &&
    keys.some((k) => Date.parse(k?.notBefore) <= now && now + DAY < Date.parse(k?.notAfter))
  );
}

/** TOKEN_ISSUER_KEYS JSON of one fresh key `id`, valid from an hour ago for a day (tests, benches). */
export async function oneIssuerKeyVar(id) {
  const now = Date.now();
  return JSON.stringify([await generateIssuerKeyEntry(id, now - 3_600_000, now + 86_400_000)]);
}

/**
 * Returns the TOKEN_ISSUER_KEYS JSON for local development, creating `<dir>/dev-issuer-keys.json`
 * when it is missing or holds no key valid for at least another day. A current key (valid 30 days)
 * and the next one (from day 25 to day 60) let the rotation path be seen locally.
 */
export async function ensureLocalIssuerKeys(dir, now = Date.now()) {
  const file = join(dir, DEV_KEYS_FILE);
  try {
    const text = await readFile(file, "utf8");
    if (usable(JSON.parse(text), now)) return JSON.stringify(JSON.parse(text));
  } catch (err) {
    if (err?.code !== "ENOENT" && !(err instanceof SyntaxError)) throw err;
  }
  const stamp = new Date(now).toISOString().slice(0, 10);
  const keys = [
    await generateIssuerKeyEntry(`dev-${stamp}`, now - 60_000, now + 30 * DAY),
    await generateIssuerKeyEntry(`dev-${stamp}-next`, now + 25 * DAY, now + 60 * DAY),
  ];
  const json = JSON.stringify(keys);
  await mkdir(dir, { recursive: true });
  await writeFileAtomic0600(file, json);
  return json;
}

/**
 * Returns the DECOY_SECRET for local development (32 random bytes, base64url), creating
 * `<dir>/dev-decoy-secret` (mode 0600, git-ignored with .wrangler/) the first time, so decoys keep
 * their schedule across restarts as they would in production. DEVELOPMENT SECRET ONLY.
 */
export async function ensureLocalDecoySecret(dir) {
  const file = join(dir, DEV_DECOY_SECRET_FILE);
  try {
    const text = (await readFile(file, "utf8")).trim();
    if (/^[A-Za-z0-9_-]{43}$/.test(text)) return text;
  } catch (err) {
    if (err?.code !== "ENOENT") throw err;
  }
  const secret = randomDecoySecret();
  await mkdir(dir, { recursive: true });
  await writeFileAtomic0600(file, `${secret}\n`);
  return secret;
}

/** File name, under .wrangler/, of the local OHTTP_KEYS. */
export const DEV_OHTTP_KEYS_FILE = "dev-ohttp-keys.json";

/**
 * One OHTTP_KEYS entry (docs/ohttp.md): key id 0..255 and a fresh X25519 private key, 32 random bytes
 * as base64url (RFC 7748 §5: any 32 bytes are a private key; the scalar is clamped when used), with
 * an optional window in ms since the epoch.
 */
export function generateOhttpKeyEntry(id, window = {}) {
  const entry = {
    id,
    privateKey: Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64url"),
  };
  if (window.notBefore !== undefined) entry.notBefore = window.notBefore;
  if (window.notAfter !== undefined) entry.notAfter = window.notAfter;
  return entry;
}

/** OHTTP_KEYS JSON of one fresh key (id 1, no window), e.g. for a throwaway server. */
export function randomOhttpKeys() {
  return JSON.stringify([generateOhttpKeyEntry(1)]);
}

/**
 * Returns the OHTTP_KEYS for local development, creating `<dir>/dev-ohttp-keys.json` (mode 0600,
 * git-ignored with .wrangler/) the first time, so clients' cached key configurations stay valid
 * across restarts. DEVELOPMENT KEY ONLY.
 */
export async function ensureLocalOhttpKeys(dir) {
  const file = join(dir, DEV_OHTTP_KEYS_FILE);
  try {
    const keys = JSON.parse(await readFile(file, "utf8"));
    const ok = (k) => Number.isInteger(k?.id) && /^[A-Za-z0-9_-]{43}$/.test(k?.privateKey ?? "");
    if (Array.isArray(keys) && keys.length > 0 && keys.every(ok)) return JSON.stringify(keys);
  } catch (err) {
    if (err?.code !== "ENOENT" && !(err instanceof SyntaxError)) throw err;
  }
  const json = randomOhttpKeys();
  await mkdir(dir, { recursive: true });
  await writeFileAtomic0600(file, json);
  return json;
}

/** A fresh random DECOY_SECRET (32 bytes, base64url), e.g. for a throwaway server. */
export function randomDecoySecret() {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64url");
}
