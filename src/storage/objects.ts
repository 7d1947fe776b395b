/**
 * Every Durable Object this Worker addresses, by name: the one place an object's name is formed, so
 * a route, a middleware and another object cannot drift apart. Each object reads its own name back
 * from the runtime (`ctx.id.name`). Layout and shard counts: docs/storage-schema.md.
 */
import type { CpsConfig } from "../config.js";
import { storeShard } from "../stir/hot-numbers.js";
import { indexBlockOfTn } from "../stir/push-blocks.js";
import type { CanonicalTn } from "../stir/tn.js";
import type { StoredBlob, StoreResult } from "./stored-blobs.js";

/**
 * The PassportQueue of one canonical called number, named by the number itself: its push subscribers
 * (durable-objects/passport-queue.ts). Its blobs live in its index block (`blockQueueOfTn`).
 */
export function passportQueue(env: Env, tn: CanonicalTn) {
  return env.PASSPORT_QUEUE.getByName(tn);
}

/**
 * Between a hot number and its shard index in a shard's object name (`12025550100~3`): a canonical
 * number is digits only, so no number's own object can take a shard's name.
 */
export const SHARD_SEPARATOR = "~";

/**
 * The object name of shard `shard` of a hot number (HOT_NUMBERS): shard 0 is the number's own
 * PassportQueue (free for it: a hot number takes no number subscriptions), the others `{tn}~{k}`.
 */
export function passportQueueName(tn: CanonicalTn, shard: number): string {
  return shard === 0 ? tn : `${tn}${SHARD_SEPARATOR}${shard}`;
}

/** The number a PassportQueue serves, from its object name (`passportQueueName`). */
export function tnOfPassportQueueName(name: string): CanonicalTn {
  const cut = name.indexOf(SHARD_SEPARATOR);
  return (cut < 0 ? name : name.slice(0, cut)) as CanonicalTn;
}

/** Where some of one number's blobs are: its index block, or one shard of a hot number. */
export interface NumberShard {
  store(blob: Uint8Array, retryKey?: string): Promise<StoreResult>;
  listAt(): Promise<{ at: number; rows: StoredBlob[] }>;
  getAt(id: string): Promise<{ at: number; blob: Uint8Array | null }>;
}

/** A normal number's blobs: its rows in its index block. */
function inBlock(env: Env, tn: CanonicalTn): NumberShard {
  const block = blockQueueOfTn(env, tn);
  return {
    store: (blob, retryKey) => block.storeNumber(tn, blob, retryKey),
    listAt: () => block.listNumberAt(tn),
    getAt: (id) => block.getNumberAt(tn, id),
  };
}

/**
 * Shard `shard` of a hot number: a PassportQueue, which files a copy of each blob in the index block
 * for block queries and block sockets. A hot number's retrievals read its shards only, so per call
 * its block takes one request (the copy), and the number's ceiling is its shards', not the block's.
 */
function hotShard(env: Env, tn: CanonicalTn, shard: number): NumberShard {
  const queue = env.PASSPORT_QUEUE.getByName(passportQueueName(tn, shard));
  return {
    store: (blob, retryKey) => queue.store(blob, retryKey, tn),
    listAt: () => queue.listAt(),
    getAt: (id) => queue.getAt(id),
  };
}

/**
 * Every place holding the number's blobs, for a retrieval to ask: its index block, or each shard of a
 * hot number. A normal number pays one map lookup for this.
 */
export function numberShards(
  env: Env,
  config: Pick<CpsConfig, "hotNumbers">,
  tn: CanonicalTn,
): NumberShard[] {
  const shards = config.hotNumbers.get(tn);
  if (shards === undefined) return [inBlock(env, tn)];
  return Array.from({ length: shards }, (_, k) => hotShard(env, tn, k));
}

/**
 * Where a store goes: the number's index block, or for a hot number one shard (`storeShard`: by the
 * store's retry key, so a retry meets its first attempt, else at random).
 */
export function numberShardForStore(
  env: Env,
  config: Pick<CpsConfig, "hotNumbers">,
  tn: CanonicalTn,
  retryKey?: string,
): NumberShard {
  const shards = config.hotNumbers.get(tn);
  return shards === undefined ? inBlock(env, tn) : hotShard(env, tn, storeShard(shards, retryKey));
}

/** Prefix of an index block's object name; the rest is the block's digits (stir/push-blocks.ts). */
export const BLOCK_OBJECT_PREFIX = "block:";

/** The index of one block of 10^4 numbers, given by its leading digits (`indexBlockOfTn`). */
export function blockQueue(env: Env, indexBlock: string) {
  return env.BLOCK_QUEUE.getByName(`${BLOCK_OBJECT_PREFIX}${indexBlock}`);
}

/** The index block holding a number's blobs (durable-objects/block-queue.ts). */
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
