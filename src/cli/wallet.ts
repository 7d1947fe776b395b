/**
 * The CLI's persistent storage-token wallet (RFC 8816 §7.5, docs/tokens.md): `tokens fetch` fills it
 * ahead of calls, `place`, `gateway store` and `cover` spend one token per store, across processes.
 * Tokens and their K_temp private keys live in `<home>/wallet/<cps>.json` (mode 0600). A thin file
 * layer over the client's TokenWallet, whose exported tokens are what the file holds.
 */
import { chmod, mkdir, open, rename, stat, unlink, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { StirClientError } from "../client/errors.js";
import type { RelayTransportOptions } from "../client/relay.js";
import type { StoreTokenSource } from "../client/store-tokens.js";
import { type ExportedToken, TokenWallet } from "../client/token-wallet.js";
import type { CanonicalTn } from "../stir/tn.js";
import { readJson } from "./common.js";

interface WalletFile {
  cps: string;
  tokens: ExportedToken[];
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

/** A lock file older than this was left by a process that died inside its few-ms critical section. */
const STALE_LOCK_MS = 10_000;
/** Longest a spend or a refill's save waits for the wallet file. */
const LOCK_WAIT_MS = 30_000;

/** Per wallet file, the tail of this process's queue of read-modify-writes. */
const queues = new Map<string, Promise<unknown>>();
/** Per wallet file, this process's refill in flight (overlapping prefetches share it). */
const refills = new Map<string, Promise<unknown>>();

/**
 * Runs `fn` (a read-modify-write of the wallet file at `path`) alone: after this process's earlier
 * ones (a queue per file, so two FileWallets for one CPS and overlapping cover calls take turns), and
 * holding `<path>.lock` against other processes (created exclusively; one left by a crashed process
 * is taken over after STALE_LOCK_MS: only then, after such a crash, can two takers race). Without
 * it two spends read the same first token and both send it: the second store is a new store with a
 * spent token, which the CPS refuses (TOKEN_SPENT); and a refill saving its batch over a spend's
 * write brings the spent token back.
 */
async function exclusive<T>(path: string, fn: () => Promise<T>): Promise<T> {
  const run = (queues.get(path) ?? Promise.resolve()).then(() => withLockFile(path, fn));
  const tail = run.catch(() => undefined);
  queues.set(path, tail);
  try {
    return await run;
  } finally {
    if (queues.get(path) === tail) queues.delete(path);
  }
}

async function withLockFile<T>(path: string, fn: () => Promise<T>): Promise<T> {
  const lock = `${path}.lock`;
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      const handle = await open(lock, "wx", 0o600);
      await handle.close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    const since = await stat(lock).then(
      (s) => Date.now() - s.mtimeMs,
      () => 0, // gone meanwhile: try again
    );
    if (since > STALE_LOCK_MS) await unlink(lock).catch(() => undefined);
    else if (Date.now() > deadline) {
      throw new Error(`The token wallet ${path} stays locked (${lock}); is another stir-oob stuck?`);
    } else await new Promise((r) => setTimeout(r, 5 + Math.random() * 20));
  }
  try {
    return await fn();
  } finally {
    await unlink(lock).catch(() => undefined);
  }
}

/**
 * A file-backed wallet for one CPS. Safe to use from overlapping calls and from several processes:
 * each spend and each saved batch is one locked read-modify-write, and the file is replaced whole
 * (written aside, then renamed), so a reader never sees half a file.
 * @example
 * const wallet = new FileWallet(home, cps, () => bearer(cred, cps, "tokens:issue"));
 * await wallet.refill(10, (done, total) => bar.update(done, total));
 */
export class FileWallet implements StoreTokenSource {
  constructor(
    readonly home: string,
    readonly cps: string,
    readonly authorization: (() => Promise<string>) | undefined,
    /** `--relay` / `--require-relay`: token fetches go through the relay too. */
    readonly transport: RelayTransportOptions = {},
    readonly batch = 10,
  ) {}

  async #load(): Promise<WalletFile> {
    const file = await readJson<WalletFile>(walletPath(this.home, this.cps), { cps: this.cps, tokens: [] });
    const now = Date.now();
    return { cps: this.cps, tokens: (file.tokens ?? []).filter((t) => t.notAfter > now && t.usesLeft > 0) };
  }

  /** Replaces the file whole (mode 0600): written aside, then renamed over it. Call inside `exclusive`. */
  async #save(file: WalletFile): Promise<void> {
    const path = walletPath(this.home, this.cps);
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    const aside = `${path}.${process.pid}.${crypto.randomUUID()}.tmp`;
    try {
      await writeFile(aside, `${JSON.stringify(file)}\n`, { mode: 0o600 });
      await chmod(aside, 0o600);
      await rename(aside, path);
    } catch (err) {
      await unlink(aside).catch(() => undefined);
      throw err;
    }
  }

  /** Unspent tokens held. */
  async size(): Promise<number> {
    return (await this.#load()).tokens.length;
  }

  /**
   * Obtains `count` tokens from the CPS in batches (blinded, so the CPS cannot link them to stores),
   * one store per token so two stores cannot be linked by their token. Each batch is saved as it
   * arrives, so an interrupted refill keeps what it got. Without a credential: `NO_CREDENTIAL`.
   */
  async refill(count: number, onProgress?: (done: number, total: number) => void): Promise<number> {
    const wallet = new TokenWallet({
      cpsUrl: this.cps,
      ...(this.authorization ? { authorization: this.authorization } : {}),
      usesPerToken: 1,
      ...this.transport,
    });
    onProgress?.(0, count);
    const path = walletPath(this.home, this.cps);
    return wallet.refill(count, async (added) => {
      const fresh = await wallet.exportTokens();
      wallet.clear();
      // Read, add, write as one step: a spend in between would otherwise be undone by this write.
      await exclusive(path, async () => {
        const file = await this.#load();
        file.tokens.push(...fresh);
        await this.#save(file);
      });
      onProgress?.(added, count);
    });
  }

  /** Overlapping prefetches (overlapping cover calls) wait for one refill instead of each starting one. */
  async prefetch(_cps: string, count: number): Promise<void> {
    if (!this.authorization) return;
    const path = walletPath(this.home, this.cps);
    const inflight = refills.get(path);
    if (inflight) await inflight.catch(() => undefined);
    const have = await this.size();
    if (have >= count) return;
    if (refills.has(path)) return this.prefetch(_cps, count);
    const refill = this.refill(Math.max(this.batch, count - have));
    refills.set(path, refill);
    try {
      await refill;
    } finally {
      if (refills.get(path) === refill) refills.delete(path);
    }
  }

  /**
   * Spends one token: taken off the file (one locked read-modify-write, so no other spend gets it)
   * and written to disk as spent before its headers are returned.
   */
  async headersForStore(_cps: string, tn: CanonicalTn, blob: Uint8Array): Promise<Record<string, string>> {
    const held = await exclusive(walletPath(this.home, this.cps), async () => {
      const file = await this.#load();
      const first = file.tokens[0];
      if (!first) {
        throw new StirClientError("WALLET_EMPTY", "The token wallet is empty: run `stir-oob tokens fetch`");
      }
      first.usesLeft -= 1;
      if (first.usesLeft <= 0) file.tokens.shift();
      await this.#save(file);
      return first;
    });
    const one = new TokenWallet({ cpsUrl: this.cps });
    await one.importTokens([{ ...held, usesLeft: 1 }]);
    return one.storeHeaders(tn, blob);
  }
}
