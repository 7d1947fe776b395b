/**
 * Exact storage-token spend counts (RFC 8816 §7.5: "counting how many times K_temp appears").
 * A Durable Object, not KV: KV is eventually consistent with no compare-and-set, so 50 concurrent
 * spends could all read "0 uses". A DO is single-threaded and its SQLite calls are synchronous, so
 * the read-check-write in `spend` cannot interleave. Sharded by a hash of the token
 * (`ledgerShard`) so no single object (about 1k requests/s each) carries every token.
 *
 * What it holds: a hash of K_temp's SPKI with a use count until the issuer key's `notAfter`, and one
 * row per counted spend for one TTL window: a hash of (token, number) for the per-number limit and a
 * receipt, a hash of the K_temp signature that paid. Never the token, the signatures, the number in
 * clear, a blob or a blob id (DESIGN.md invariant 3).
 *
 * Retries (docs/tokens.md "Retried stores"): the same request sent again (a client retrying after a
 * lost answer) finds its receipt and passes without a second use. The signature itself is dropped,
 * so stored state cannot recompute a receipt from a blob: receipts link no blob to a token.
 */
import { DurableObject } from "cloudflare:workers";
import { readConfig } from "../config.js";

export const LEDGER_SHARDS = 64;

export type SpendResult =
  | { ok: true; uses: number }
  | { ok: false; code: "TOKEN_SPENT" }
  | { ok: false; code: "TOKEN_RATE_LIMITED"; retryAfterSeconds: number };

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS tokens (
    token TEXT PRIMARY KEY,
    uses INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
  );
  CREATE INDEX IF NOT EXISTS tokens_expires_at ON tokens (expires_at);
  CREATE TABLE IF NOT EXISTS spends (
    receipt TEXT PRIMARY KEY,
    pair TEXT NOT NULL,
    at INTEGER NOT NULL
  );
  CREATE INDEX IF NOT EXISTS spends_pair ON spends (pair, at);
  CREATE INDEX IF NOT EXISTS spends_at ON spends (at);
  DROP TABLE IF EXISTS number_uses;
`;

export class TokenLedger extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private alarmAt: number | null = null;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    void ctx.blockConcurrencyWhile(async () => {
      this.sql.exec(SCHEMA);
      this.alarmAt = await ctx.storage.getAlarm();
    });
  }

  /**
   * Counts one store by `token` under number-pair `pair`, unless that would pass the limits:
   * TOKEN_MAX_USES in total (remembered until `tokenExpiresAt`, ms) and TOKEN_MAX_USES_PER_NUMBER
   * per sliding TTL window. A `receipt` already counted within the window is a retry: ok, not counted.
   */
  async spend(token: string, pair: string, tokenExpiresAt: number, receipt: string): Promise<SpendResult> {
    const { tokenMaxUses, tokenMaxUsesPerNumber, ttlSeconds } = readConfig(this.env);
    const now = Date.now();
    const windowMs = ttlSeconds * 1000;
    const row = this.sql
      .exec<{ uses: number }>("SELECT uses FROM tokens WHERE token = ?", token)
      .toArray()[0];
    const seen = this.sql
      .exec("SELECT 1 FROM spends WHERE receipt = ? AND at > ?", receipt, now - windowMs)
      .toArray().length;
    if (seen > 0) return { ok: true, uses: row?.uses ?? 0 }; // a retry: counted before, not again
    if (row && row.uses >= tokenMaxUses) return { ok: false, code: "TOKEN_SPENT" };
    const recent = this.sql
      .exec<{ n: number; first: number | null }>(
        "SELECT count(*) AS n, min(at) AS first FROM spends WHERE pair = ? AND at > ?",
        pair,
        now - windowMs,
      )
      .one();
    if (recent.n >= tokenMaxUsesPerNumber) {
      const retry = Math.max(1, Math.ceil(((recent.first ?? now) + windowMs - now) / 1000));
      return { ok: false, code: "TOKEN_RATE_LIMITED", retryAfterSeconds: retry };
    }
    const uses = (row?.uses ?? 0) + 1;
    this.sql.exec(
      "INSERT INTO tokens (token, uses, expires_at) VALUES (?, 1, ?) ON CONFLICT (token) DO UPDATE SET uses = uses + 1",
      token,
      tokenExpiresAt,
    );
    // A receipt past its window (not `seen` above) is simply renewed.
    this.sql.exec(
      "INSERT INTO spends (receipt, pair, at) VALUES (?, ?, ?) ON CONFLICT (receipt) DO UPDATE SET pair = excluded.pair, at = excluded.at",
      receipt,
      pair,
      now,
    );
    await this.scheduleAt(Math.min(now + windowMs, tokenExpiresAt));
    return { ok: true, uses };
  }

  private async scheduleAt(at: number): Promise<void> {
    if (this.alarmAt !== null && this.alarmAt <= at) return;
    this.alarmAt = at;
    await this.ctx.storage.setAlarm(at);
  }

  /** Forgets per-number windows past their TTL and tokens past their issuer key's notAfter. */
  override async alarm(): Promise<void> {
    const { ttlSeconds } = readConfig(this.env);
    const now = Date.now();
    const windowMs = ttlSeconds * 1000;
    this.sql.exec("DELETE FROM spends WHERE at <= ?", now - windowMs);
    this.sql.exec("DELETE FROM tokens WHERE expires_at <= ?", now);
    this.alarmAt = null;
    const nextUse = this.sql.exec<{ a: number | null }>("SELECT min(at) AS a FROM spends").one().a;
    const nextToken = this.sql.exec<{ e: number | null }>("SELECT min(expires_at) AS e FROM tokens").one().e;
    const candidates = [nextUse === null ? null : nextUse + windowMs, nextToken].filter(
      (t): t is number => t !== null,
    );
    if (candidates.length > 0) await this.scheduleAt(Math.max(now, Math.min(...candidates)));
  }
}

/** Shard of a token id (bytes of a SHA-256): stable across isolates. */
export function ledgerShard(tokenId: Uint8Array): number {
  return (((tokenId[0] ?? 0) << 8) | (tokenId[1] ?? 0)) % LEDGER_SHARDS;
}
