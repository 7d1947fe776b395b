/**
 * One AtisStore per canonical called number, named `atis:{dest}` (storage/objects.ts): the PASSporTs
 * published to it through the ATIS out-of-band APIs (ATIS-1000096, ATIS-1000105, VESPER), in plaintext
 * as those APIs require (docs/threat-model.md says what this reveals), kept apart from the RFC 8816
 * sealed queue (PassportQueue), which never holds plaintext (docs/design.md invariant 1).
 *
 * A row lives until the publish's expiry (the route computes it: the CPS policy time, the access
 * token's `exp`, and each PASSporT's iat + 60 s, whichever is first), and the alarm deletes it then.
 * Retrievals filter expired rows themselves, so a late alarm never serves stale data.
 *
 * Idempotency-Key (draft-wendt-stir-vesper-oob): a publish's key is kept for 600 s with the request's
 * fingerprint under `scope` (credential holder + key). The same scope with the same fingerprint is the
 * same publish sent again: it stores nothing and gets the original answer (always 201 Created, the
 * only answer kept: a publish stored but then not answered 201 forgets its record); with another
 * fingerprint it is refused (IDEMPOTENCY_KEY_MISMATCH).
 *
 * A Durable Object is single-threaded and SQLite calls are synchronous: each method's checks and
 * writes cannot interleave with another request's.
 */
import { DurableObject } from "cloudflare:workers";
import { readConfig } from "../config.js";
import { ATIS_STORE_SCHEMA } from "../storage/layout.js";

/** How long an Idempotency-Key is remembered, ms. */
export const IDEMPOTENCY_TTL_MS = 600_000;

export interface AtisIdempotency {
  /** Credential holder and key (src/http/atis-auth.ts `idempotencyScope`). */
  scope: string;
  /** SHA-256 of the request (method, path, canonical body), base64url. */
  fingerprint: string;
}

export interface AtisPublishInput {
  /** Canonical calling number. */
  orig: string;
  /** The publisher's SPC (token `spc`, else an SPC `iss` its certificate lists, else its first SPC). */
  publisherSpc: string | null;
  /** Full-form PASSporTs, each verified by the route. */
  passports: string[];
  /** Deletion time, ms since the epoch. */
  expiresAt: number;
  idempotency?: AtisIdempotency;
}

export type AtisPublishResult =
  /**
   * `repeat`: the same request under the same Idempotency-Key was stored before; nothing stored now.
   * `added`: the PASSporTs this publish stored anew (not those already live from the same publisher),
   * the only ones to pass on to peers and to the RFC 8816 queue.
   */
  | { ok: true; repeat: boolean; added: string[] }
  | { ok: false; code: "IDEMPOTENCY_KEY_MISMATCH" }
  | { ok: false; code: "QUEUE_FULL"; retryAfterSeconds: number };

export type IdempotencyState = "new" | "repeat" | "mismatch";

export class AtisStore extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private alarmAt: number | null = null;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    void ctx.blockConcurrencyWhile(async () => {
      this.sql.exec(ATIS_STORE_SCHEMA);
      this.alarmAt = await ctx.storage.getAlarm();
    });
  }

  /** What an Idempotency-Key says about a request, without recording it (checked before any spend). */
  async idempotencyState(idempotency: AtisIdempotency): Promise<IdempotencyState> {
    return this.idempotencyOf(idempotency, Date.now());
  }

  private idempotencyOf({ scope, fingerprint }: AtisIdempotency, now: number): IdempotencyState {
    const row = this.sql
      .exec<{ fingerprint: string }>(
        "SELECT fingerprint FROM idempotency WHERE scope = ? AND expires_at > ?",
        scope,
        now,
      )
      .toArray()[0];
    if (row === undefined) return "new";
    return row.fingerprint === fingerprint ? "repeat" : "mismatch";
  }

  /**
   * Stores the PASSporTs of one publish for `orig` until `expiresAt`, unless its Idempotency-Key was
   * seen (then nothing is stored) or the number already holds MAX_LIVE_PER_NUMBER live PASSporTs.
   */
  async publish(input: AtisPublishInput): Promise<AtisPublishResult> {
    const now = Date.now();
    if (input.idempotency !== undefined) {
      // Checked again here: two copies of one publish may both have passed the route's check.
      const state = this.idempotencyOf(input.idempotency, now);
      if (state === "repeat") return { ok: true, repeat: true, added: [] };
      if (state === "mismatch") return { ok: false, code: "IDEMPOTENCY_KEY_MISMATCH" };
    }
    const { maxLivePerNumber } = readConfig(this.env);
    const live = this.sql
      .exec<{ n: number }>("SELECT count(*) AS n FROM passports WHERE expires_at > ?", now)
      .one().n;
    if (live + input.passports.length > maxLivePerNumber) {
      const oldest = this.sql
        .exec<{ e: number | null }>("SELECT min(expires_at) AS e FROM passports WHERE expires_at > ?", now)
        .one().e;
      return {
        ok: false,
        code: "QUEUE_FULL",
        retryAfterSeconds: Math.max(1, Math.ceil(((oldest ?? now) - now) / 1000)),
      };
    }
    const added: string[] = [];
    for (const passport of input.passports) {
      // The same PASSporT from the same publisher again (a resend, a peer's republish of ours) is one
      // row whose life is the longer of the two, not a second copy.
      const same = this.sql
        .exec<{ seq: number; expires_at: number }>(
          "SELECT seq, expires_at FROM passports WHERE orig = ? AND passport = ? AND publisher_spc IS ? AND expires_at > ?",
          input.orig,
          passport,
          input.publisherSpc,
          now,
        )
        .toArray()[0];
      if (same !== undefined) {
        if (same.expires_at < input.expiresAt) {
          this.sql.exec("UPDATE passports SET expires_at = ? WHERE seq = ?", input.expiresAt, same.seq);
        }
        continue;
      }
      this.sql.exec(
        "INSERT INTO passports (orig, publisher_spc, passport, expires_at) VALUES (?, ?, ?, ?)",
        input.orig,
        input.publisherSpc,
        passport,
        input.expiresAt,
      );
      added.push(passport);
    }
    let next = input.expiresAt;
    if (input.idempotency !== undefined) {
      const keptUntil = now + IDEMPOTENCY_TTL_MS;
      this.sql.exec(
        "INSERT OR REPLACE INTO idempotency (scope, fingerprint, expires_at) VALUES (?, ?, ?)",
        input.idempotency.scope,
        input.idempotency.fingerprint,
        keptUntil,
      );
      next = Math.min(next, keptUntil);
    }
    await this.scheduleAlarm(next);
    return { ok: true, repeat: false, added };
  }

  /**
   * Removes the rows one publish `added` (and nothing older): its answer is not 201 (queuing for the
   * peers failed), so the client's retry must find nothing of it and be done in full.
   */
  async withdraw(orig: string, publisherSpc: string | null, passports: readonly string[]): Promise<void> {
    for (const passport of passports) {
      this.sql.exec(
        "DELETE FROM passports WHERE orig = ? AND passport = ? AND publisher_spc IS ?",
        orig,
        passport,
        publisherSpc,
      );
    }
  }

  /**
   * Forgets an Idempotency-Key record of this exact request: its publish was stored but not answered
   * 201 (queuing for the peers failed), and only 201 answers are kept, so the client's retry under the
   * same key is done again rather than answered as a repeat.
   */
  async forgetIdempotency({ scope, fingerprint }: AtisIdempotency): Promise<void> {
    this.sql.exec("DELETE FROM idempotency WHERE scope = ? AND fingerprint = ?", scope, fingerprint);
  }

  /**
   * The live PASSporTs published for `orig`, oldest first, each once; only those whose publisher SPC
   * is one of `publisherSpcs` unless it is null (every row).
   */
  async retrieve(orig: string, publisherSpcs: readonly string[] | null): Promise<string[]> {
    if (publisherSpcs !== null && publisherSpcs.length === 0) return [];
    const now = Date.now();
    const filter =
      publisherSpcs === null ? "" : ` AND publisher_spc IN (${publisherSpcs.map(() => "?").join(", ")})`;
    return this.sql
      .exec<{ passport: string }>(
        `SELECT passport, min(seq) AS first FROM passports WHERE orig = ? AND expires_at > ?${filter} GROUP BY passport ORDER BY first`,
        orig,
        now,
        ...(publisherSpcs ?? []),
      )
      .toArray()
      .map((r) => r.passport);
  }

  /** Count of live rows (tests: "nothing stored"). */
  async liveCount(): Promise<number> {
    return this.sql
      .exec<{ n: number }>("SELECT count(*) AS n FROM passports WHERE expires_at > ?", Date.now())
      .one().n;
  }

  private async scheduleAlarm(at: number): Promise<void> {
    if (this.alarmAt !== null && this.alarmAt <= at) return;
    this.alarmAt = at;
    await this.ctx.storage.setAlarm(at);
  }

  override async alarm(): Promise<void> {
    const now = Date.now();
    this.sql.exec("DELETE FROM passports WHERE expires_at <= ?", now);
    this.sql.exec("DELETE FROM idempotency WHERE expires_at <= ?", now);
    this.alarmAt = null;
    const next = this.sql
      .exec<{ e: number | null }>(
        "SELECT min(e) AS e FROM (SELECT min(expires_at) AS e FROM passports UNION ALL SELECT min(expires_at) AS e FROM idempotency)",
      )
      .one().e;
    if (next !== null) await this.scheduleAlarm(next);
  }
}
