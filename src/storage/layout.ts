/**
 * Every storage key and table name the CPS uses, in one place: the SQLite tables of each Durable
 * Object class and the Workers KV key names. docs/storage-schema.md describes what each holds and
 * when it is forgotten; the names and formats here are what stored data is found by, so a change is
 * a migration. (Object names, e.g. `block:{indexBlock}`, are formed in storage/objects.ts.)
 */
import { blockLength, formatBlock, type NumberBlock } from "../stir/number-blocks.js";

// ---- Durable Objects (SQLite) ----

/**
 * `meta`: the few facts a streaming object keeps across hibernation (durable-objects/streaming-queue.ts).
 * Its rows, by key: {@link META_DECOY_AT}, {@link META_DECOYS_FROM} and {@link META_WATCH_UNTIL}.
 */
export const META_SCHEMA = "CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);";
/** `meta` row: when the decoy stream's next decoy is born (ms), while a socket is attached. */
export const META_DECOY_AT = "dummyAt";
/** `meta` row: when the decoy stream last pushed (ms): decoys born after it are still to push. */
export const META_DECOYS_FROM = "decoysFrom";
/** `meta` row (PassportQueue): when the number's watch on its index block ends (ms), while subscribed. */
export const META_WATCH_UNTIL = "watchUntil";

/**
 * PassportQueue: the live blobs of one shard of a hot number (HOT_NUMBERS; other numbers' blobs live
 * in their index block's `blobs`, and an object made by an earlier version may still hold some until
 * they expire); `digest` is the store's retry key (NULL if untokened).
 * One index, on `expires_at`: every read and the live count go by it, and a retry-key lookup scans the
 * few live rows it yields. No primary key (ids are 128 random bits, so no uniqueness to enforce, and
 * a number holds few rows to scan for one): a store writes two rows (row and index) instead of four,
 * and rows written are what Durable Object storage bills (docs/capacity.md). A rowid table, whose
 * cells hold the ~1.1 KB blob in the page (a WITHOUT ROWID table would spill each into an overflow
 * page: three times the disk, and an extra page read per row scanned). `ppts_has_digest` holds no
 * entries (`WHERE 0`) and so costs no write: it names the digest column, so creating it fails on a
 * table made before that column, which is how `createPassportQueueTables` finds an old table. Objects
 * made by earlier versions keep their table with its primary key and digest index; every query works on
 * both.
 */
export const PASSPORT_QUEUE_SCHEMA = `
  CREATE TABLE IF NOT EXISTS ppts (
    id TEXT NOT NULL,
    blob BLOB NOT NULL,
    expires_at INTEGER NOT NULL,
    digest BLOB
  );
  CREATE INDEX IF NOT EXISTS ppts_expires_at ON ppts (expires_at);
  CREATE INDEX IF NOT EXISTS ppts_has_digest ON ppts (digest) WHERE 0;
  ${META_SCHEMA}
`;

/**
 * Creates PassportQueue's tables, or brings a `ppts` table made before the digest column (retried
 * stores) up to date. The common start runs the schema alone: only when its `ppts_has_digest` index
 * fails on an old table is the column added, so a cold object (most numbers) pays nothing for the
 * migration, and an object that never stored keeps no rows at all.
 */
export function createPassportQueueTables(sql: SqlStorage): void {
  createWithDigest(sql, "ppts", PASSPORT_QUEUE_SCHEMA);
}

/** Runs `schema`; if it fails on a `table` made before the digest column, adds the column and runs it again. */
function createWithDigest(sql: SqlStorage, table: "ppts" | "blobs", schema: string): void {
  try {
    sql.exec(schema);
  } catch {
    const columns = sql.exec<{ name: string }>(`PRAGMA table_info(${table})`).toArray();
    if (!columns.some((c) => c.name === "digest")) sql.exec(`ALTER TABLE ${table} ADD COLUMN digest BLOB`);
    sql.exec(schema);
  }
}

/**
 * BlockQueue: the live blobs of every number of one index block, with their number: each number's
 * own store (the number's blobs live here, `digest` its retry key, as in `ppts`) and a copy of every
 * blob a hot number's shard holds (digest NULL). The primary key makes a retried copy a no-op
 * (`INSERT OR IGNORE`); a rowid table keeps each ~1.1 KB blob in its page. `watched`: numbers whose
 * PassportQueue has push subscribers, until when (ms): a store to one is forwarded to it.
 * `blobs_has_digest` holds no entries (`WHERE 0`: no write): creating it fails on a table made before
 * the digest column, which is how `createBlockQueueTables` finds an old table.
 */
export const BLOCK_QUEUE_SCHEMA = `
  CREATE TABLE IF NOT EXISTS blobs (
    id TEXT PRIMARY KEY,
    tn TEXT NOT NULL,
    blob BLOB NOT NULL,
    expires_at INTEGER NOT NULL,
    digest BLOB
  );
  CREATE INDEX IF NOT EXISTS blobs_expires_at ON blobs (expires_at);
  CREATE INDEX IF NOT EXISTS blobs_tn ON blobs (tn, expires_at);
  CREATE INDEX IF NOT EXISTS blobs_has_digest ON blobs (digest) WHERE 0;
  CREATE TABLE IF NOT EXISTS watched (tn TEXT PRIMARY KEY, until INTEGER NOT NULL) WITHOUT ROWID;
  ${META_SCHEMA}
`;

/**
 * Creates BlockQueue's tables, or brings a `blobs` table made before the digest column up to date (its
 * rows, copies filed by the numbers' own queues, keep a NULL digest). As `createPassportQueueTables`:
 * the common start runs the schema alone.
 */
export function createBlockQueueTables(sql: SqlStorage): void {
  createWithDigest(sql, "blobs", BLOCK_QUEUE_SCHEMA);
}

/**
 * TokenLedger: spend counts per token (`tokens`), one row per counted store (`spends`), and issued
 * tokens per issuer key of one credential holder (`quota`). `number_uses` was an older table.
 * Feedback (RFC 8816 §7.5, docs/tokens.md "Feedback"): `tags` maps the feedback tag a tokened store
 * sent to the token that paid, with the store time, until the token's expiry; `revoked` holds tokens a
 * report made worthless, until their expiry; `report_rate` counts reports per window (in the one
 * `feedback-rate` object only). All three are new tables (`CREATE TABLE IF NOT EXISTS`), so an object
 * made before them gains them empty on its next start, with no change to the older tables' rows.
 * Tables with a primary key are WITHOUT ROWID (the row is its key's tree: one write fewer per row, and
 * rows written are what storage bills; their rows are small); objects made before keep rowid tables,
 * which work the same.
 */
export const TOKEN_LEDGER_SCHEMA = `
  CREATE TABLE IF NOT EXISTS tokens (
    token TEXT PRIMARY KEY,
    uses INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE INDEX IF NOT EXISTS tokens_expires_at ON tokens (expires_at);
  CREATE TABLE IF NOT EXISTS spends (
    receipt TEXT PRIMARY KEY,
    pair TEXT NOT NULL,
    at INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE INDEX IF NOT EXISTS spends_pair ON spends (pair, at);
  CREATE INDEX IF NOT EXISTS spends_at ON spends (at);
  DROP TABLE IF EXISTS number_uses;
  CREATE TABLE IF NOT EXISTS quota (
    key_id TEXT PRIMARY KEY,
    count INTEGER NOT NULL,
    counts_until INTEGER NOT NULL
  );
  CREATE TABLE IF NOT EXISTS tags (
    tag TEXT NOT NULL,
    token TEXT NOT NULL,
    spent_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (tag, token)
  ) WITHOUT ROWID;
  CREATE INDEX IF NOT EXISTS tags_expires_at ON tags (expires_at);
  CREATE TABLE IF NOT EXISTS revoked (
    token TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS report_rate (
    k TEXT NOT NULL,
    at INTEGER NOT NULL
  );
  CREATE INDEX IF NOT EXISTS report_rate_k ON report_rate (k, at);
`;

/** ReplayGuard: single-use credential-token `jti`s until their token expires. */
export const REPLAY_GUARD_SCHEMA =
  "CREATE TABLE IF NOT EXISTS jtis (jti TEXT PRIMARY KEY, expires_at INTEGER NOT NULL)";

/**
 * MetricsHub (docs/metrics.md): one row per 5-second interval of the last hour (`sample` is the
 * interval's counts as JSON, `subscribers` the push gauge at its end), and `totals` rows `sample`,
 * `created`, `subscribers`. Counts under labels from closed sets only (src/metrics/sample.ts).
 */
export const METRICS_HUB_SCHEMA = `
  CREATE TABLE IF NOT EXISTS intervals (
    start INTEGER PRIMARY KEY,
    sample TEXT NOT NULL,
    subscribers INTEGER NOT NULL
  );
  CREATE TABLE IF NOT EXISTS totals (k TEXT PRIMARY KEY, v TEXT NOT NULL);
`;

/**
 * AtisStore (durable-objects/atis-store.ts), one object per called number: the ATIS publishes to it
 * (ATIS-1000096, ATIS-1000105), in plaintext as those APIs require. `passports`: one row per PASSporT
 * and calling number, with the publisher's SPC (NULL when its credential names none) for ATIS-1000105
 * retrievals by agreement, in arrival order (`seq`). `idempotency`: the Idempotency-Key records of
 * publishes (`scope` = credential holder and key, `fingerprint` = the request's hash) for 600 s.
 */
export const ATIS_STORE_SCHEMA = `
  CREATE TABLE IF NOT EXISTS passports (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    orig TEXT NOT NULL,
    publisher_spc TEXT,
    passport TEXT NOT NULL,
    expires_at INTEGER NOT NULL
  );
  CREATE INDEX IF NOT EXISTS passports_orig ON passports (orig, expires_at);
  CREATE INDEX IF NOT EXISTS passports_expires_at ON passports (expires_at);
  CREATE TABLE IF NOT EXISTS idempotency (
    scope TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    expires_at INTEGER NOT NULL
  );
  CREATE INDEX IF NOT EXISTS idempotency_expires_at ON idempotency (expires_at);
`;

// ---- Workers KV (CPS_KV) ----

/** The key directory: `key:{length}:{block}:{holder}` (directory/key-store.ts). */
export const KEY_PREFIX = "key:";

/** `key:{length}:{block}:`: every holder's entry for exactly this block. */
export function keyBlockPrefix(block: NumberBlock): string {
  return `${KEY_PREFIX}${blockLength(block)}:${formatBlock(block)}:`;
}

/** One holder's entry for one block. */
export function keyEntryName(block: NumberBlock, holder: string): string {
  return `${keyBlockPrefix(block)}${holder}`;
}

/**
 * `key:{length}:{digits}`: the entries of every block of the same length inside `block` (its
 * prefetch); the length first keeps longer numbers that share the digits out.
 */
export function keyPrefetchPrefix(block: NumberBlock): string {
  return `${KEY_PREFIX}${blockLength(block)}:${block.digits}`;
}

/** The block and holder of a key-directory entry name, or undefined if it is not one. */
export function parseKeyEntryName(name: string): { block: string; holder: string } | undefined {
  const [tag, length, block, holder, extra] = name.split(":");
  if (`${tag}:` !== KEY_PREFIX || !block || !holder || extra !== undefined) return;
  if (String(block.length) !== length) return;
  return { block, holder };
}

/** Discovery records: `disc:{block}` (directory/discovery-store.ts). */
export const DISCOVERY_PREFIX = "disc:";

/** The discovery record of one registered block. */
export function discoveryEntryName(block: NumberBlock): string {
  return `${DISCOVERY_PREFIX}${formatBlock(block)}`;
}
