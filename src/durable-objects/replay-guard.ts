/**
 * Single-use `jti`s of STIR credential tokens (ATIS-1000096 style bearer tokens): a token is accepted
 * once. A Durable Object, not KV, because the check-and-set must be exact: KV is eventually
 * consistent and has no compare-and-set. Sharded by a hash of the jti (see `replayGuardFor`) so one
 * object never carries every token; each shard forgets a jti once the token could no longer pass its
 * freshness check anyway.
 */
import { DurableObject } from "cloudflare:workers";
import { REPLAY_GUARD_SCHEMA } from "../storage/layout.js";

export const REPLAY_SHARDS = 32;

export class ReplayGuard extends DurableObject<Env> {
  private alarmAt: number | null = null;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    void ctx.blockConcurrencyWhile(async () => {
      ctx.storage.sql.exec(REPLAY_GUARD_SCHEMA);
      this.alarmAt = await ctx.storage.getAlarm();
    });
  }

  /** True the first time `jti` is seen (remembered until `expiresAtSeconds`), false afterwards. */
  async claim(jti: string, expiresAtSeconds: number): Promise<boolean> {
    const sql = this.ctx.storage.sql;
    const expiresAt = expiresAtSeconds * 1000;
    const seen = sql.exec("SELECT 1 FROM jtis WHERE jti = ?", jti).toArray().length > 0;
    if (seen) return false;
    sql.exec("INSERT INTO jtis (jti, expires_at) VALUES (?, ?)", jti, expiresAt);
    if (this.alarmAt === null || this.alarmAt > expiresAt) {
      // Slack of a minute: batching deletions beats an alarm per token.
      const at = Math.max(expiresAt, Date.now()) + 60_000;
      await this.ctx.storage.setAlarm(at);
      this.alarmAt = at;
    }
    return true;
  }

  override async alarm(): Promise<void> {
    const sql = this.ctx.storage.sql;
    sql.exec("DELETE FROM jtis WHERE expires_at <= ?", Date.now());
    this.alarmAt = null;
    const next = sql.exec<{ e: number | null }>("SELECT min(expires_at) AS e FROM jtis").one().e;
    if (next !== null) {
      this.alarmAt = next + 60_000;
      await this.ctx.storage.setAlarm(this.alarmAt);
    }
  }
}

/** FNV-1a over the jti picks its shard: cheap, and stable across isolates. */
export function replayShard(jti: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < jti.length; i++) h = Math.imul(h ^ jti.charCodeAt(i), 0x01000193);
  return (h >>> 0) % REPLAY_SHARDS;
}
