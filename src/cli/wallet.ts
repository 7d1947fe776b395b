/**
 * The CLI's persistent storage-token wallet (RFC 8816 §7.5, docs/tokens.md): `tokens fetch` fills it
 * ahead of calls, `place` and `gateway store` spend one token per store, across processes. Tokens and
 * their K_temp private keys live in `<home>/wallet/<cps>.json` (mode 0600).
 *
 * It uses the shared protocol code of src/stir/storage-token.ts directly, because the in-memory
 * TokenWallet (src/client/token-wallet.ts) keeps its tokens private and cannot be saved to disk; once
 * it can export and import its tokens, this file should become a thin wrapper around it.
 */
import { join } from "node:path";
import { CpsClient } from "../client/cps-client.js";
import type { StoreTokenSource } from "../client/store-tokens.js";
import { CpsError } from "../errors.js";
import { decodeBase64url, encodeBase64url } from "../stir/base64url.js";
import {
  blindTokenRequest,
  encodeStorageToken,
  finalizeToken,
  importIssuerPublicKey,
  signStore,
  TOKEN_HEADER,
  TOKEN_SIGNATURE_HEADER,
} from "../stir/storage-token.js";
import type { CanonicalTn } from "../stir/tn.js";
import { readJson, writeFileSafe } from "./common.js";

interface SavedToken {
  /** The `CPS-Token` header value. */
  token: string;
  /** K_temp private key, PKCS#8, base64url. */
  kTemp: string;
  alg: "Ed25519" | "P-256";
  /** Issuer key notAfter, ms since the epoch. */
  notAfter: number;
  usesLeft: number;
}

interface WalletFile {
  cps: string;
  tokens: SavedToken[];
}

interface IssuerKeysDocument {
  keys: { id: string; publicKey: string; notAfter: string; status: string }[];
  limits: { maxUses: number; batchMax: number };
}

/** `<home>/wallet/<host>_<port>.json` for a CPS base URL. */
export function walletPath(home: string, cps: string): string {
  const u = new URL(cps);
  return join(
    home,
    "wallet",
    `${u.hostname.replace(/[^A-Za-z0-9.-]/g, "_")}_${u.port || (u.protocol === "https:" ? "443" : "80")}.json`,
  );
}

const KEY_ALG = { Ed25519: { name: "Ed25519" }, "P-256": { name: "ECDSA", namedCurve: "P-256" } } as const;

/**
 * A file-backed wallet for one CPS.
 * @example
 * const wallet = new FileWallet(home, cps, () => bearer(cred, cps, "tokens:issue"));
 * await wallet.refill(10, (done, total) => bar.update(done, total));
 */
export class FileWallet implements StoreTokenSource {
  constructor(
    readonly home: string,
    readonly cps: string,
    readonly authorization: (() => Promise<string>) | undefined,
    readonly batch = 10,
  ) {}

  async #load(): Promise<WalletFile> {
    const file = await readJson<WalletFile>(walletPath(this.home, this.cps), { cps: this.cps, tokens: [] });
    const now = Date.now();
    return { cps: this.cps, tokens: (file.tokens ?? []).filter((t) => t.notAfter > now && t.usesLeft > 0) };
  }

  async #save(file: WalletFile): Promise<void> {
    await writeFileSafe(walletPath(this.home, this.cps), `${JSON.stringify(file)}\n`, true);
  }

  /** Unspent tokens held. */
  async size(): Promise<number> {
    return (await this.#load()).tokens.length;
  }

  /** Obtains `count` tokens from the CPS in batches (blinded, so the CPS cannot link them to stores). */
  async refill(count: number, onProgress?: (done: number, total: number) => void): Promise<number> {
    if (!this.authorization)
      throw new CpsError("TOKEN_MISSING", "No credential to obtain storage tokens with");
    const client = new CpsClient({ baseUrl: this.cps });
    const { body: doc } = await client.getJson<IssuerKeysDocument>("/tokens/keys");
    const current = doc.keys.find((k) => k.status === "current");
    if (!current) throw new CpsError("TOKEN_UNKNOWN_KEY", "The CPS publishes no current issuer key");
    const publicKey = await importIssuerPublicKey(decodeBase64url(current.publicKey));
    const notAfter = Date.parse(current.notAfter);
    let added = 0;
    onProgress?.(0, count);
    while (added < count) {
      const n = Math.min(count - added, doc.limits.batchMax);
      const pending = [];
      for (let i = 0; i < n; i++) {
        pending.push(await blindTokenRequest(publicKey, current.id, "Ed25519"));
        onProgress?.(added + (i + 1) / 2, count);
      }
      const res = await client.request("/tokens", {
        method: "POST",
        headers: { "content-type": "application/json", authorization: await this.authorization() },
        body: JSON.stringify({
          keyId: current.id,
          blindedMessages: pending.map((p) => encodeBase64url(p.blindedMessage)),
        }),
      });
      const { blindSignatures } = (await res.json()) as { blindSignatures: string[] };
      if (blindSignatures.length !== n)
        throw new CpsError("TOKEN_INVALID", "Wrong number of blind signatures");
      const fresh: SavedToken[] = [];
      for (const [i, p] of pending.entries()) {
        const token = await finalizeToken(publicKey, p, decodeBase64url(blindSignatures[i] ?? ""));
        fresh.push({
          token: encodeStorageToken(token),
          kTemp: encodeBase64url(
            new Uint8Array((await crypto.subtle.exportKey("pkcs8", p.kTempPrivateKey)) as ArrayBuffer),
          ),
          alg: "Ed25519",
          notAfter,
          usesLeft: 1, // one store per token: two stores cannot be linked by their token
        });
        onProgress?.(added + n / 2 + (i + 1) / 2, count);
      }
      const file = await this.#load();
      file.tokens.push(...fresh);
      await this.#save(file);
      added += n;
    }
    return added;
  }

  async prefetch(_cps: string, count: number): Promise<void> {
    const have = await this.size();
    if (have >= count || !this.authorization) return;
    await this.refill(Math.max(this.batch, count - have));
  }

  /** Spends one token: written to disk as spent before its headers are returned. */
  async headersForStore(_cps: string, tn: CanonicalTn, blob: Uint8Array): Promise<Record<string, string>> {
    const file = await this.#load();
    const held = file.tokens[0];
    if (!held) throw new CpsError("TOKEN_MISSING", "The token wallet is empty: run `stir-oob tokens fetch`");
    held.usesLeft -= 1;
    if (held.usesLeft <= 0) file.tokens.shift();
    await this.#save(file);
    const key = await crypto.subtle.importKey(
      "pkcs8",
      decodeBase64url(held.kTemp),
      KEY_ALG[held.alg],
      false,
      ["sign"],
    );
    return {
      [TOKEN_HEADER]: held.token,
      [TOKEN_SIGNATURE_HEADER]: encodeBase64url(await signStore(key, tn, blob)),
    };
  }
}
