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
 * clear, a blob or a blob id (docs/design.md invariant 3).
 *
 * Retries (docs/tokens.md "Retried stores"): the same request sent again (a client retrying after a
 * lost answer) finds its receipt and passes without a second use. The receipt is a hash of (token,
 * number, blob, K_temp signature), so a store is a retry only when it is the very same request. The
 * signature itself is dropped, so stored state cannot recompute a receipt from a blob: receipts link
 * no blob to a token.
 *
 * Feedback (RFC 8816 §7.5, docs/tokens.md "Feedback"): a tokened store may carry a feedback tag,
 * an HPKE export only the blob's sender and recipient can derive; the shard keeps tag -> token beside
 * the token's row (never the blob), until the token expires. A report that proves a blob bogus finds
 * the tag in every shard (`feedbackLookup`, a fan-out: reports are rare) and `revoke`s the token that
 * paid, whose further stores are refused (TOKEN_REVOKED). The `feedback-rate` object counts reports.
 *
 * Issuance quota (src/tokens/quota.ts): the same class, in one object per credential holder
 * (`quota:{holder}`, never a `token-shard-*` object), holds that holder's issued-token counts per
 * issuer key, exactly (no KV overshoot). These objects see holders and counts, never a token.
 */
import { DurableObject } from "cloudflare:workers";
import { readConfig } from "../config.js";
import { TOKEN_LEDGER_SCHEMA } from "../storage/layout.js";

export const LEDGER_SHARDS = 64;
/** Window of the feedback report rate limits (`admitReport`), and how long the alarm keeps a count. */
export const FEEDBACK_RATE_WINDOW_MS = 60_000;
/** Retry-After of a quota refusal that no expiry can lift (a batch larger than the whole quota). */
const QUOTA_FALLBACK_RETRY_MS = 86_400_000;

export type QuotaResult = { ok: true; counted: number } | { ok: false; retryAfterSeconds: number };

export type SpendResult =
  | { ok: true; uses: number }
  | { ok: false; code: "TOKEN_SPENT" }
  | { ok: false; code: "TOKEN_REVOKED" }
  | { ok: false; code: "TOKEN_RATE_LIMITED"; retryAfterSeconds: number };

/** One tokened store a feedback tag names: the token (base64url of its id), when it paid (ms), revoked. */
export interface TaggedSpend {
  readonly token: string;
  readonly spentAt: number;
  readonly revoked: boolean;
}

export class TokenLedger extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private alarmAt: number | null = null;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    void ctx.blockConcurrencyWhile(async () => {
      this.sql.exec(TOKEN_LEDGER_SCHEMA);
      this.alarmAt = await ctx.storage.getAlarm();
    });
  }

  /**
   * Counts one store by `token` under number-pair `pair`, unless that would pass the limits:
   * TOKEN_MAX_USES in total (remembered until `tokenExpiresAt`, ms) and TOKEN_MAX_USES_PER_NUMBER
   * per sliding TTL window. A `receipt` already counted within the window is a retry: ok, not counted.
   * A token a feedback report revoked is refused first, retries included. `tag` (a feedback tag) of a
   * counted store is kept with the token until `tokenExpiresAt`, unless this shard already holds that
   * tag; a retry keeps the first store's tag and adds none (its tag header is not in the receipt).
   */
  async spend(
    token: string,
    pair: string,
    tokenExpiresAt: number,
    receipt: string,
    tag?: string,
  ): Promise<SpendResult> {
    const { tokenMaxUses, tokenMaxUsesPerNumber, ttlSeconds } = readConfig(this.env);
    const now = Date.now();
    const windowMs = ttlSeconds * 1000;
    if (this.sql.exec("SELECT 1 FROM revoked WHERE token = ?", token).toArray().length > 0) {
      return { ok: false, code: "TOKEN_REVOKED" };
    }
    const row = this.sql
      .exec<{ uses: number }>("SELECT uses FROM tokens WHERE token = ?", token)
      .toArray()[0];
    const seen = this.sql
      .exec("SELECT 1 FROM spends WHERE receipt = ? AND at > ?", receipt, now - windowMs)
      .toArray().length;
    if (seen > 0) {
      // A retry: counted before, not again. The receipt does not cover the tag header, so a tag here
      // could be anything: adding it would let one paid store plant unlimited tag rows.
      return { ok: true, uses: row?.uses ?? 0 };
    }
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
    if (tag !== undefined) this.#keepTag(tag, token, now, tokenExpiresAt);
    await this.scheduleAt(Math.min(now + windowMs, tokenExpiresAt));
    return { ok: true, uses };
  }

  /**
   * Tag -> token of one store, unless this shard holds the tag already (unexpired): one row per tag
   * per shard, the earliest, so one report reaches at most one token per shard (LEDGER_SHARDS in all).
   */
  #keepTag(tag: string, token: string, now: number, expiresAt: number): void {
    this.sql.exec(
      "INSERT INTO tags (tag, token, spent_at, expires_at) SELECT ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM tags WHERE tag = ? AND expires_at > ?)",
      tag,
      token,
      now,
      expiresAt,
      tag,
      now,
    );
  }

  /**
   * The earliest unexpired store of this shard that sent feedback tag `tag`, if any (at most one row:
   * `#keepTag` adds no second, and rows an older version left are read earliest first, LIMIT 1).
   */
  async feedbackLookup(tag: string): Promise<TaggedSpend[]> {
    return this.sql
      .exec<{ token: string; spent_at: number; revoked: number }>(
        "SELECT t.token, t.spent_at, r.token IS NOT NULL AS revoked FROM tags t LEFT JOIN revoked r ON r.token = t.token WHERE t.tag = ? AND t.expires_at > ? ORDER BY t.spent_at, t.token LIMIT 1",
        tag,
        Date.now(),
      )
      .toArray()
      .map((r) => ({ token: r.token, spentAt: r.spent_at, revoked: r.revoked === 1 }));
  }

  /**
   * Revokes `token`, but only if this shard holds a store of it that sent `tag` (a report proved that
   * store's blob bogus): its remaining uses are refused until it expires. True if newly revoked.
   */
  async revoke(tag: string, token: string): Promise<boolean> {
    const row = this.sql
      .exec<{ expires_at: number }>(
        "SELECT expires_at FROM tags WHERE tag = ? AND token = ? AND expires_at > ?",
        tag,
        token,
        Date.now(),
      )
      .toArray()[0];
    if (!row) return false;
    const before = this.sql.exec("SELECT 1 FROM revoked WHERE token = ?", token).toArray().length;
    if (before > 0) return false;
    this.sql.exec("INSERT INTO revoked (token, expires_at) VALUES (?, ?)", token, row.expires_at);
    await this.scheduleAt(row.expires_at);
    return true;
  }

  /**
   * Counts one report under each key of `limits` (the `feedback-rate` object), unless one of them
   * already has `limit` reports within the last FEEDBACK_RATE_WINDOW_MS: then nothing is counted and the answer is
   * the seconds until that key frees a report. The alarm deletes rows past the window, so a key (a
   * number's hash) is kept about one window after its last report, not until the next report.
   */
  async admitReport(
    limits: readonly { key: string; limit: number }[],
  ): Promise<{ ok: true } | { ok: false; retryAfterSeconds: number }> {
    const now = Date.now();
    const windowMs = FEEDBACK_RATE_WINDOW_MS;
    for (const { key, limit } of limits) {
      const r = this.sql
        .exec<{ n: number; first: number | null }>(
          "SELECT count(*) AS n, min(at) AS first FROM report_rate WHERE k = ? AND at > ?",
          key,
          now - windowMs,
        )
        .one();
      if (r.n >= limit) {
        return {
          ok: false,
          retryAfterSeconds: Math.max(1, Math.ceil(((r.first ?? now) + windowMs - now) / 1000)),
        };
      }
    }
    for (const { key } of limits) this.sql.exec("INSERT INTO report_rate (k, at) VALUES (?, ?)", key, now);
    this.sql.exec("DELETE FROM report_rate WHERE at <= ?", now - windowMs);
    await this.scheduleAt(now + windowMs);
    return { ok: true };
  }

  /**
   * Issuance quota of this object's holder (src/tokens/quota.ts): counts `n` more tokens of issuer key
   * `keyId`, each counting until `countsUntil` (ms), unless the tokens still counting under the
   * configured keys `liveKeyIds` plus `n` would pass `limit`. Then it answers when enough stop counting.
   */
  async chargeQuota(
    keyId: string,
    countsUntil: number,
    liveKeyIds: readonly string[],
    n: number,
    limit: number,
    now = Date.now(),
  ): Promise<QuotaResult> {
    const live = new Set(liveKeyIds);
    const rows = this.sql
      .exec<{ key_id: string; count: number; counts_until: number }>(
        "SELECT key_id, count, counts_until FROM quota WHERE counts_until > ? ORDER BY counts_until",
        now,
      )
      .toArray()
      .filter((r) => live.has(r.key_id));
    const counted = rows.reduce((sum, r) => sum + r.count, 0);
    if (counted + n > limit) {
      // The earliest time enough counted tokens have stopped counting (a day if n alone is too many).
      let left = counted;
      let at = now + QUOTA_FALLBACK_RETRY_MS;
      for (const r of rows) {
        left -= r.count;
        if (left + n <= limit) {
          at = r.counts_until;
          break;
        }
      }
      return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil((at - now) / 1000)) };
    }
    this.sql.exec(
      "INSERT INTO quota (key_id, count, counts_until) VALUES (?, ?, ?) ON CONFLICT (key_id) DO UPDATE SET count = count + excluded.count, counts_until = max(counts_until, excluded.counts_until)",
      keyId,
      n,
      countsUntil,
    );
    await this.scheduleAt(countsUntil);
    return { ok: true, counted: counted + n };
  }

  private async scheduleAt(at: number): Promise<void> {
    if (this.alarmAt !== null && this.alarmAt <= at) return;
    this.alarmAt = at;
    await this.ctx.storage.setAlarm(at);
  }

  /**
   * Forgets per-number windows past their TTL, tokens (and their feedback tags and revocations) past
   * their key's notAfter, quota rows past counting, report counts past the feedback-rate window.
   */
  override async alarm(): Promise<void> {
    const { ttlSeconds } = readConfig(this.env);
    const now = Date.now();
    const windowMs = ttlSeconds * 1000;
    this.sql.exec("DELETE FROM spends WHERE at <= ?", now - windowMs);
    this.sql.exec("DELETE FROM tokens WHERE expires_at <= ?", now);
    this.sql.exec("DELETE FROM quota WHERE counts_until <= ?", now);
    this.sql.exec("DELETE FROM tags WHERE expires_at <= ?", now);
    this.sql.exec("DELETE FROM revoked WHERE expires_at <= ?", now);
    this.sql.exec("DELETE FROM report_rate WHERE at <= ?", now - FEEDBACK_RATE_WINDOW_MS);
    this.alarmAt = null;
    const nextUse = this.sql.exec<{ a: number | null }>("SELECT min(at) AS a FROM spends").one().a;
    const nextToken = this.sql.exec<{ e: number | null }>("SELECT min(expires_at) AS e FROM tokens").one().e;
    const nextQuota = this.sql.exec<{ q: number | null }>("SELECT min(counts_until) AS q FROM quota").one().q;
    const nextTag = this.sql
      .exec<{ e: number | null }>(
        "SELECT min(e) AS e FROM (SELECT min(expires_at) AS e FROM tags UNION ALL SELECT min(expires_at) FROM revoked)",
      )
      .one().e;
    const nextReport = this.sql.exec<{ a: number | null }>("SELECT min(at) AS a FROM report_rate").one().a;
    const candidates = [
      nextUse === null ? null : nextUse + windowMs,
      nextToken,
      nextQuota,
      nextTag,
      nextReport === null ? null : nextReport + FEEDBACK_RATE_WINDOW_MS,
    ].filter((t): t is number => t !== null);
    if (candidates.length > 0) await this.scheduleAt(Math.max(now, Math.min(...candidates)));
  }
}

/** Shard of a token id (bytes of a SHA-256): stable across isolates. */
export function ledgerShard(tokenId: Uint8Array): number {
  return (((tokenId[0] ?? 0) << 8) | (tokenId[1] ?? 0)) % LEDGER_SHARDS;
}
