/**
 * The CLI's state directory (default `./.stir-oob/`, `--home`, `STIR_OOB_HOME`):
 *
 *   config.json                       { cps, x5u: {url: file}, trust: [file] }
 *   ca/root.pem                       DEMO root certificate: `npm start` and the VS trust it
 *   ca/{root,intermediate}.key.pem    DEMO CA keys (PKCS#8), so `ca issue` can add credentials later
 *   ca/intermediate.pem
 *   credentials/<name>/chain.pem      STIR certificate chain, leaf first (what its x5u serves)
 *   credentials/<name>/key.pem        its ES256 private key (PKCS#8, mode 0600)
 *   credentials/<name>/meta.json      { x5u, numbers }
 *   keys/<tn>/<kid>.json              callee X25519 key pairs (mode 0600)
 *   wallet/<cps host>.json            storage tokens (mode 0600)
 */
import "reflect-metadata";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { PemConverter, type X509Certificate } from "@peculiar/x509";
import type { CalleeKey } from "../client/vs.js";
import { CpsError } from "../errors.js";
import { decodeBase64url, encodeBase64url } from "../stir/base64url.js";
import {
  type CertificateChain,
  certificateTnAuthList,
  parseCertificate,
  parseCertificateChain,
} from "../stir/cert-parse.js";
import { issueCredentialToken } from "../stir/credential-token.js";
import { importRecipientPrivateKey } from "../stir/envelope.js";
import type { CanonicalTn } from "../stir/tn.js";
import { coversTn, type TnAuthList } from "../stir/tnauthlist.js";
import { X5uFetcher } from "../stir/x5u.js";
import { type GlobalOptions, listDir, readJson, showTn, UsageError, writeFileSafe } from "./common.js";

export const ROOT_PEM = "ca/root.pem";
const ES256 = { name: "ECDSA", namedCurve: "P-256" } as const;

export interface LocalCredential {
  readonly name: string;
  readonly privateKey: CryptoKey;
  readonly x5u: string;
  readonly chainPem: string;
  readonly chain: CertificateChain;
  readonly tnAuthList: TnAuthList;
}

export function pkcs8Pem(der: ArrayBuffer): string {
  return PemConverter.encode(der, "PRIVATE KEY");
}

export async function importSigningKey(pem: string): Promise<CryptoKey> {
  const der = PemConverter.decode(pem)[0];
  if (!der) throw new UsageError("A key file holds no PRIVATE KEY block");
  return crypto.subtle.importKey("pkcs8", der, ES256, true, ["sign"]);
}

export async function loadCredentials(home: string): Promise<LocalCredential[]> {
  const out: LocalCredential[] = [];
  for (const name of await listDir(join(home, "credentials"))) {
    const dir = join(home, "credentials", name);
    try {
      const chainPem = await readFile(join(dir, "chain.pem"), "utf8");
      const meta = await readJson<{ x5u?: string }>(join(dir, "meta.json"), {});
      const chain = await parseCertificateChain(chainPem);
      const leaf = chain.certificates[0] as X509Certificate;
      out.push({
        name,
        privateKey: await importSigningKey(await readFile(join(dir, "key.pem"), "utf8")),
        x5u: meta.x5u ?? "",
        chainPem,
        chain,
        tnAuthList: certificateTnAuthList(leaf) ?? [],
      });
    } catch {
      // an incomplete credential directory is skipped, not fatal
    }
  }
  return out;
}

/** The credential named `name`, or the first one whose TNAuthList covers `tn`. */
export async function credentialFor(
  home: string,
  tn: CanonicalTn | undefined,
  name?: string,
): Promise<LocalCredential> {
  const all = await loadCredentials(home);
  if (all.length === 0) {
    throw new UsageError(
      `No credentials in ${join(home, "credentials")}: run \`stir-oob ca init --issue name=+number\``,
    );
  }
  const found = name
    ? all.find((c) => c.name === name)
    : tn === undefined
      ? all[0]
      : all.find((c) => coversTn(c.tnAuthList, tn));
  if (!found) {
    throw new UsageError(
      name
        ? `No credential named ${name} (have: ${all.map((c) => c.name).join(", ")})`
        : `No credential covers +${tn} (have: ${all.map((c) => c.name).join(", ")}); use --as or \`stir-oob ca issue\``,
    );
  }
  return found;
}

/** `Authorization` value: a single-use STIR credential token (x5c) for `action` at `cps`. */
export async function bearer(cred: LocalCredential, cps: string, action: string): Promise<string> {
  const token = await issueCredentialToken({
    privateKey: cred.privateKey,
    x5c: cred.chain.certificates.map((c) => new Uint8Array(c.rawData)),
    audience: new URL(cps).origin,
    action,
  });
  return `Bearer ${token}`;
}

// ---------------------------------------------------------------------------------------------
// Callee keys

export interface StoredCalleeKey {
  kid: string;
  label: string;
  /** Raw X25519 public key, base64url. */
  publicKey: string;
  /** Raw X25519 private scalar, base64url. */
  privateKey: string;
  created: string;
  /**
   * Set by `keys rotate` / `keys remove`: when this key stops being needed (ISO time). Until then it
   * still opens PASSporTs sealed to it; `keys prune` then deletes it from the directory and here.
   */
  retireAt?: string;
}

export function keyPath(home: string, tn: CanonicalTn, kid: string): string {
  return join(home, "keys", tn, `${kid}.json`);
}

export async function saveCalleeKey(home: string, tn: CanonicalTn, key: StoredCalleeKey): Promise<string> {
  const path = keyPath(home, tn, key.kid);
  await writeFileSafe(path, `${JSON.stringify(key, null, 2)}\n`, true);
  return path;
}

export async function loadCalleeKeys(
  home: string,
  tn: CanonicalTn,
): Promise<(StoredCalleeKey & { key: CalleeKey; raw: Uint8Array })[]> {
  const out = [];
  for (const file of await listDir(join(home, "keys", tn))) {
    if (!file.endsWith(".json")) continue;
    const stored = await readJson<StoredCalleeKey | null>(join(home, "keys", tn, file), null);
    if (!stored?.privateKey || !stored.publicKey) continue;
    const privateKey = await importRecipientPrivateKey(decodeBase64url(stored.privateKey));
    out.push({ ...stored, key: { kid: stored.kid, privateKey }, raw: decodeBase64url(stored.publicKey) });
  }
  return out;
}

/** The keys of `tn` for commands that open its blobs (verify, divert, watch): none is a usage error. */
export async function requireCalleeKeys(home: string, tn: CanonicalTn): ReturnType<typeof loadCalleeKeys> {
  const keys = await loadCalleeKeys(home, tn);
  if (keys.length === 0)
    throw new UsageError(`No local key for ${showTn(tn)}: run \`stir-oob keygen --tn ${showTn(tn)}\``);
  return keys;
}

/** RFC 7638 thumbprint of an X25519 public key: the key id the directory uses too. */
export async function x25519Thumbprint(raw: Uint8Array): Promise<string> {
  const canonical = `{"crv":"X25519","kty":"OKP","x":"${encodeBase64url(raw)}"}`;
  return encodeBase64url(
    new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(canonical))),
  );
}

// ---------------------------------------------------------------------------------------------
// Trust and x5u

/** Trust anchors: ca/root.pem (if present), config `trust` files, and `--trust` files. */
export async function trustAnchors(
  g: GlobalOptions,
  extra: readonly string[] = [],
): Promise<X509Certificate[]> {
  const files = [join(g.home, ROOT_PEM), ...(g.config.trust ?? []).map((f) => join(g.home, f)), ...extra];
  const out: X509Certificate[] = [];
  for (const [i, file] of files.entries()) {
    let pem: string;
    try {
      pem = await readFile(file, "utf8");
    } catch {
      if (i >= files.length - extra.length) throw new UsageError(`Cannot read trust anchor file ${file}`);
      continue;
    }
    for (const der of PemConverter.decode(pem)) out.push(parseCertificate(der));
  }
  if (out.length === 0) {
    throw new UsageError(`No trust anchors: run \`stir-oob ca init\` or pass --trust root.pem`);
  }
  return out;
}

/**
 * Resolves a PASSporT's x5u: DEMO map entries (config.json `x5u`, written by `ca`) from local files,
 * everything else over https with the cached X5uFetcher, as a real VS does.
 */
export function x5uResolver(g: GlobalOptions): (url: string) => Promise<CertificateChain> {
  const fetcher = new X5uFetcher();
  return async (url) => {
    const file = g.config.x5u?.[url];
    if (file === undefined) return fetcher.fetchChain(url);
    try {
      return await parseCertificateChain(await readFile(join(g.home, file), "utf8"));
    } catch (cause) {
      if (cause instanceof CpsError) throw cause;
      throw new CpsError("X5U_FETCH_FAILED", "The demo certificate file cannot be read", { cause });
    }
  };
}
