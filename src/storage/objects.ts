/**
 * Every Durable Object this Worker addresses, by name: the one place an object's name is formed, so
 * a route, a middleware and another object cannot drift apart. Each object reads its own name back
 * from the runtime (`ctx.id.name`). Layout and shard counts: docs/storage-schema.md.
 */
import { indexBlockOfTn } from "../stir/push-blocks.js";
import type { CanonicalTn } from "../stir/tn.js";

/** The queue of one canonical called number (RFC 8816 §9): named by the number itself. */
export function passportQueue(env: Env, tn: CanonicalTn) {
  return env.PASSPORT_QUEUE.getByName(tn);
}

/** Prefix of an index block's object name; the rest is the block's digits (stir/push-blocks.ts). */
export const BLOCK_OBJECT_PREFIX = "block:";

/** The index of one block of 10^4 numbers, given by its leading digits (`indexBlockOfTn`). */
export function blockQueue(env: Env, indexBlock: string) {
  return env.BLOCK_QUEUE.getByName(`${BLOCK_OBJECT_PREFIX}${indexBlock}`);
}

/** The index block a number's blobs are also filed in (PassportQueue.fileInBlock). */
export function blockQueueOfTn(env: Env, tn: string) {
  return blockQueue(env, indexBlockOfTn(tn));
}

/** One shard of the storage-token spend ledger (`ledgerShard` of the token id). */
export function tokenLedgerShard(env: Env, shard: number) {
  return env.TOKEN_LEDGER.getByName(`token-shard-${shard}`);
}

/** The one object counting feedback reports (routes/feedback.ts): a TokenLedger, never a token shard. */
export function feedbackRateLedger(env: Env) {
  return env.TOKEN_LEDGER.getByName("feedback-rate");
}

/** The issuance quota of one credential holder (`quotaHolder`). */
export function quotaLedger(env: Env, holder: string) {
  return env.TOKEN_LEDGER.getByName(`quota:${holder}`);
}

/** One shard of the credential-token `jti` replay guard (`replayShard` of the jti). */
export function replayGuardShard(env: Env, shard: number) {
  return env.REPLAY_GUARD.getByName(`jti-shard-${shard}`);
}

/** The one object that adds up the operator's figures (durable-objects/metrics-hub.ts). */
export function metricsHub(env: Env) {
  return env.METRICS_HUB.getByName("metrics");
}

/** Prefix of an AtisStore's object name; the rest is the canonical called number. */
export const ATIS_OBJECT_PREFIX = "atis:";

/** The ATIS publishes to one canonical called number (durable-objects/atis-store.ts). */
export function atisStore(env: Env, dest: CanonicalTn) {
  return env.ATIS_STORE.getByName(`${ATIS_OBJECT_PREFIX}${dest}`);
}
