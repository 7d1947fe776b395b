/**
 * The key directory in Workers KV (docs/storage-schema.md, `key:`; names formed in storage/layout.ts).
 *
 * One entry per (number block, holder): `key:{length}:{block}:{holder}`. Its value is the holder's
 * `HolderBlockRecord` (at most 5 keys, each with its signed record, a few KiB each); its list
 * metadata only the kid and expiry of each key (`HolderBlockSummary`, far below KV's 1,024 bytes, which
 * a record with its x5c chain alone would exceed). A lookup lists, skips entries with no live key by
 * their metadata, and reads the rest with bulk `get`s of up to 100 names (one KV operation each
 * against the 1,000 a Worker invocation may make), at most MAX_VALUE_READS names an answer. Entries
 * written before signed records (metadata `v` 1) are answered from their metadata alone, unsigned.
 * Holders never share an entry, so one holder's write cannot overwrite another's even though KV has no
 * compare-and-set. A lookup for a number lists the (at most 15) blocks that can contain it, in
 * parallel. The length of the block's numbers leads the name so that a prefetch lists only blocks of
 * its own length: `key:11:1202555` holds exactly the entries inside `1202555xxxx`, never the subtree
 * of longer numbers that share its digits (issue 13 finding 15), so its work is bounded by its answer.
 *
 * KV facts relied on: eventually consistent (a write shows elsewhere within about 60 s), no
 * compare-and-set (a holder racing itself on one block may lose one of its own writes), 60 s minimum
 * expiration (entries expire at their last key's expiry, at least 60 s ahead), metadata <= 1,024 bytes,
 * `list` by prefix in name order, at most 1,000 names a call, continued with an opaque cursor.
 */
import { CpsError } from "../errors.js";
import {
  type HolderBlockRecord,
  type KeyEntry,
  liveKeys,
  parseHolderRecord,
  readSummary,
  recordExpiry,
  summarise,
  withKey,
} from "../stir/key-records.js";
import { blocksContaining, blockWithin, type NumberBlock, parseBlock } from "../stir/number-blocks.js";
import { keyBlockPrefix, keyEntryName, keyPrefetchPrefix, parseKeyEntryName } from "../storage/layout.js";

/** Most entries (holder records, 1-5 keys each) one prefetch answer carries: one KV list page. */
export const PREFETCH_PAGE_ENTRIES = 1000;
/**
 * Most `list` calls one prefetch answer makes for the block's own entries. KV may return a short or
 * even empty page before the end (names expiring under it); a few more calls keep an answer from
 * coming back empty while entries remain, and the cap keeps the work bounded.
 */
const PREFETCH_MAX_LISTS = 3;
/** Pages of holders listed for one exact block (lookups, containing blocks): 2,000 holders. */
const BLOCK_LIST_PAGES = 2;
/** Names one bulk `get` reads (the KV binding's limit). */
const BULK_GET_NAMES = 100;
/**
 * Most entries whose values one answer reads: 20 bulk gets. A prefetch page's own entries (at most
 * 1,000) are always read in full, so paging loses nothing; this caps the rest (the blocks containing
 * the number or prefix, most specific first), which only a number registered by thousands of
 * certificate holders could reach.
 */
export const MAX_VALUE_READS = 2000;

/** A key found by a lookup, with the block it was registered for. */
export interface FoundKey {
  readonly block: string;
  readonly entry: KeyEntry;
}

async function listAll(
  kv: KVNamespace,
  prefix: string,
  maxPages: number,
): Promise<{ keys: KVNamespaceListKey<unknown>[]; truncated: boolean }> {
  const keys: KVNamespaceListKey<unknown>[] = [];
  let cursor: string | undefined;
  for (let page = 0; page < maxPages; page++) {
    const res = await kv.list({ prefix, ...(cursor ? { cursor } : {}) });
    keys.push(...res.keys);
    if (res.list_complete) return { keys, truncated: false };
    cursor = res.cursor;
  }
  return { keys, truncated: true };
}

/** A listed entry with a live key, by its metadata: its keys (unsigned v1) or a name to read. */
interface Listed {
  readonly block: string;
  readonly name: string;
  readonly keys?: readonly KeyEntry[];
}

function gather(
  keys: readonly KVNamespaceListKey<unknown>[],
  now: number,
  out: Listed[],
  within?: NumberBlock,
): void {
  for (const k of keys) {
    const name = parseKeyEntryName(k.name);
    if (!name) continue;
    if (within) {
      // Defensive: the prefix already selects these; a malformed name is skipped, never a 500.
      try {
        if (!blockWithin(parseBlock(name.block), within)) continue;
      } catch {
        continue;
      }
    }
    const summary = readSummary(k.metadata, now);
    if (summary.kids.length === 0) continue;
    out.push({ block: name.block, name: k.name, ...(summary.keys ? { keys: summary.keys } : {}) });
  }
}

/**
 * The live keys of listed entries: unsigned v1 entries from their metadata, the others read with
 * bulk gets, at most `maxReads` of them in the order given. An entry gone or unreadable since it was
 * listed is skipped.
 */
async function resolve(
  kv: KVNamespace,
  listed: readonly Listed[],
  now: number,
  maxReads: number,
): Promise<FoundKey[]> {
  const out: FoundKey[] = [];
  const toRead: Listed[] = [];
  for (const l of listed) {
    if (l.keys) for (const entry of l.keys) out.push({ block: l.block, entry });
    else if (toRead.length < maxReads) toRead.push(l);
  }
  const chunks: Listed[][] = [];
  for (let i = 0; i < toRead.length; i += BULK_GET_NAMES) chunks.push(toRead.slice(i, i + BULK_GET_NAMES));
  const values = await Promise.all(
    chunks.map((c) =>
      kv.get(
        c.map((l) => l.name),
        "text",
      ),
    ),
  );
  chunks.forEach((chunk, i) => {
    const map = values[i];
    for (const l of chunk) {
      const text = map?.get(l.name);
      if (typeof text !== "string") continue;
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        continue;
      }
      for (const entry of liveKeys(parseHolderRecord(value), now)) out.push({ block: l.block, entry });
    }
  });
  return out;
}

/** Every live key that applies to `tn`: its own and those of every block containing it. */
export async function keysForTn(kv: KVNamespace, tn: string, now: number): Promise<FoundKey[]> {
  const lists = await Promise.all(
    blocksContaining(tn).map((b) => listAll(kv, keyBlockPrefix(b), BLOCK_LIST_PAGES)),
  );
  const listed: Listed[] = [];
  for (const l of lists) gather(l.keys, now, listed);
  return resolve(kv, listed, now, MAX_VALUE_READS);
}

/** One prefetch answer: its keys, and the KV cursor to continue from when more entries remain. */
export interface PrefetchPage {
  readonly keys: FoundKey[];
  /** Present when the block has entries beyond this answer: pass it back to continue. */
  readonly next?: string;
}

/**
 * Prefetch: every live key for numbers of `block`, one bounded page at a time.
 *
 * The first page (`cursor` undefined) carries the keys of the blocks containing `block` (d-1 exact
 * lists) and then the block's own entries (blocks of its length inside it) in name order; a later
 * page continues the block's own entries from the cursor. So every key comes exactly once over the
 * pages. Work per page: at most `PREFETCH_MAX_LISTS` lists reading at most `pageEntries` names of
 * the block's own entries, plus on the first page the containing blocks' lists.
 */
export async function keysForBlock(
  kv: KVNamespace,
  block: NumberBlock,
  now: number,
  options: { cursor?: string; pageEntries?: number } = {},
): Promise<PrefetchPage> {
  const pageEntries = Math.min(
    Math.max(1, options.pageEntries ?? PREFETCH_PAGE_ENTRIES),
    PREFETCH_PAGE_ENTRIES,
  );
  const outer: NumberBlock[] = [];
  if (options.cursor === undefined) {
    for (let j = 1; j < block.digits.length; j++) {
      outer.push({ digits: block.digits.slice(0, block.digits.length - j), open: block.open + j });
    }
  }
  const [inner, containing] = await Promise.all([
    listOwnEntries(kv, block, now, pageEntries, options.cursor),
    Promise.all(outer.map((b) => listAll(kv, keyBlockPrefix(b), BLOCK_LIST_PAGES))),
  ]);
  const listed: Listed[] = [];
  for (const l of containing) gather(l.keys, now, listed);
  // The own entries (at most PREFETCH_PAGE_ENTRIES) were read in full; the containing blocks get the rest.
  const out = await resolve(kv, listed, now, MAX_VALUE_READS - PREFETCH_PAGE_ENTRIES);
  out.push(...inner.keys);
  return inner.next === undefined ? { keys: out } : { keys: out, next: inner.next };
}

/** The block's own entries (`key:{length}:{digits}`), at most `limit` names and PREFETCH_MAX_LISTS lists. */
async function listOwnEntries(
  kv: KVNamespace,
  block: NumberBlock,
  now: number,
  limit: number,
  cursor: string | undefined,
): Promise<{ keys: FoundKey[]; next?: string }> {
  const prefix = keyPrefetchPrefix(block);
  const out: FoundKey[] = [];
  let names = 0;
  let next = cursor;
  for (let call = 0; call < PREFETCH_MAX_LISTS && names < limit; call++) {
    let res: KVNamespaceListResult<unknown>;
    try {
      res = await kv.list({ prefix, limit: limit - names, ...(next ? { cursor: next } : {}) });
    } catch (err) {
      // Only a cursor from the client can make KV refuse a list: say so. Otherwise it is ours.
      if (call === 0 && cursor !== undefined) {
        throw new CpsError("INVALID_PAGE", "This cursor cannot be continued; start again without it");
      }
      throw err;
    }
    names += res.keys.length;
    const listed: Listed[] = [];
    gather(res.keys, now, listed, block);
    out.push(...(await resolve(kv, listed, now, PREFETCH_PAGE_ENTRIES)));
    if (res.list_complete) return { keys: out };
    next = res.cursor;
    // An answer with keys is worth sending; only an empty one is worth another list.
    if (out.length > 0) break;
  }
  return next === undefined ? { keys: out } : { keys: out, next };
}

/** The holder's own entry; one that does not parse counts as empty (rewritten), never a 500. */
async function readOwn(kv: KVNamespace, block: NumberBlock, holder: string): Promise<HolderBlockRecord> {
  const text = await kv.get(keyEntryName(block, holder), "text");
  try {
    return parseHolderRecord(text === null ? null : JSON.parse(text));
  } catch {
    return parseHolderRecord(null);
  }
}

async function writeOwn(
  kv: KVNamespace,
  block: NumberBlock,
  holder: string,
  record: HolderBlockRecord,
  now: number,
): Promise<void> {
  const name = keyEntryName(block, holder);
  if (record.keys.length === 0) {
    await kv.delete(name);
    return;
  }
  // KV refuses expirations less than 60 s ahead. The entry lives as long as its last record.
  const expiration = Math.max(recordExpiry(record), now + 60);
  await kv.put(name, JSON.stringify({ v: 2, keys: record.keys }), {
    expiration,
    metadata: summarise(record),
  });
}

/**
 * Adds `entry` to the holder's record of every block. Every record is read and checked (KEY_LIMIT)
 * before the first write, so a refused registration writes nothing.
 */
export async function putKey(
  kv: KVNamespace,
  blocks: readonly NumberBlock[],
  holder: string,
  entry: KeyEntry,
  now: number,
): Promise<void> {
  const current = await Promise.all(blocks.map((b) => readOwn(kv, b, holder)));
  const next = current.map((r) => withKey(r, entry, now));
  await Promise.all(blocks.map((b, i) => writeOwn(kv, b, holder, next[i] as HolderBlockRecord, now)));
}

/**
 * Removes the holder's keys (all, or the one `kid`) from every block. Nothing of other holders is
 * touched. When the holder has nothing to remove: `NOT_OWNER` (403) if another holder has a matching
 * key there, else `NOT_FOUND`; in both cases nothing is written.
 */
export async function deleteKeys(
  kv: KVNamespace,
  blocks: readonly NumberBlock[],
  holder: string,
  kid: string | undefined,
  now: number,
): Promise<number> {
  const current = await Promise.all(blocks.map((b) => readOwn(kv, b, holder)));
  let removed = 0;
  const changed: boolean[] = [];
  const next = current.map((r): HolderBlockRecord => {
    const live = liveKeys(r, now);
    const kept = live.filter((k) => kid !== undefined && k.kid !== kid);
    removed += live.length - kept.length;
    changed.push(kept.length !== r.keys.length);
    return { v: 2, keys: kept };
  });
  if (removed === 0) {
    // Other holders' live kids are in the list metadata: no value is read.
    const others = await Promise.all(blocks.map((b) => listAll(kv, keyBlockPrefix(b), BLOCK_LIST_PAGES)));
    const kids = others.flatMap((l) => l.keys.flatMap((k) => readSummary(k.metadata, now).kids));
    if (kids.some((k) => kid === undefined || k === kid)) {
      throw new CpsError("NOT_OWNER", "These keys were registered by another certificate holder");
    }
    throw new CpsError("NOT_FOUND", "No such key for these numbers");
  }
  await Promise.all(
    blocks.map((b, i) =>
      changed[i] ? writeOwn(kv, b, holder, next[i] as HolderBlockRecord, now) : undefined,
    ),
  );
  return removed;
}
