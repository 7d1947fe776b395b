/**
 * The key directory in Workers KV (docs/storage-schema.md, `key:`).
 *
 * One entry per (number block, holder): `key:{block}:{holder}`, value and list metadata both the
 * holder's `HolderBlockRecord` (at most 5 keys, < 1 KiB, so `list` alone answers a lookup). Holders
 * never share an entry, so one holder's write cannot overwrite another's even though KV has no
 * compare-and-set. A lookup for a number lists the (at most 15) blocks that can contain it, in
 * parallel.
 *
 * KV facts relied on: eventually consistent (a write shows elsewhere within about 60 s), no
 * compare-and-set (a holder racing itself on one block may lose one of its own writes), 60 s minimum
 * expiration (entries expire at their last key's expiry, at least 60 s ahead), metadata <= 1,024 bytes.
 */
import { CpsError } from "../errors.js";
import {
  type HolderBlockRecord,
  type KeyEntry,
  liveKeys,
  parseHolderRecord,
  recordExpiry,
  withKey,
} from "../stir/key-records.js";
import {
  blockLength,
  blocksContaining,
  blockWithin,
  formatBlock,
  type NumberBlock,
  parseBlock,
} from "../stir/number-blocks.js";

export const KEY_PREFIX = "key:";
/** Pages of 1,000 names a prefetch may read before it stops and says `truncated`. */
export const MAX_PREFETCH_PAGES = 10;

const entryName = (block: NumberBlock, holder: string) => `${KEY_PREFIX}${formatBlock(block)}:${holder}`;

/** A key found by a lookup, with the block it was registered for. */
export interface FoundKey {
  readonly block: string;
  readonly entry: KeyEntry;
}

function parseName(name: string): { block: string; holder: string } | undefined {
  const [tag, block, holder] = name.split(":");
  return tag === "key" && block && holder ? { block, holder } : undefined;
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

function collect(keys: readonly KVNamespaceListKey<unknown>[], now: number, out: FoundKey[]): void {
  for (const k of keys) {
    const name = parseName(k.name);
    if (!name) continue;
    for (const entry of liveKeys(parseHolderRecord(k.metadata), now)) out.push({ block: name.block, entry });
  }
}

/** Every live key that applies to `tn`: its own and those of every block containing it. */
export async function keysForTn(kv: KVNamespace, tn: string, now: number): Promise<FoundKey[]> {
  const lists = await Promise.all(
    blocksContaining(tn).map((b) => listAll(kv, `${KEY_PREFIX}${formatBlock(b)}:`, 2)),
  );
  const out: FoundKey[] = [];
  for (const l of lists) collect(l.keys, now, out);
  return out;
}

/**
 * Prefetch: every live key for numbers of `block` (blocks inside it, and blocks containing it).
 * Cost: one list per containing block plus one paged list of the block's own names.
 */
export async function keysForBlock(
  kv: KVNamespace,
  block: NumberBlock,
  now: number,
): Promise<{ keys: FoundKey[]; truncated: boolean }> {
  const outer: NumberBlock[] = [];
  for (let j = 1; j < block.digits.length; j++) {
    outer.push({ digits: block.digits.slice(0, block.digits.length - j), open: block.open + j });
  }
  const [inner, ...containing] = await Promise.all([
    listAll(kv, `${KEY_PREFIX}${block.digits}`, MAX_PREFETCH_PAGES),
    ...outer.map((b) => listAll(kv, `${KEY_PREFIX}${formatBlock(b)}:`, 2)),
  ]);
  const out: FoundKey[] = [];
  for (const l of containing) collect(l.keys, now, out);
  // The block's own prefix also lists blocks of other lengths: keep those inside the block.
  const length = blockLength(block);
  collect(
    (inner?.keys ?? []).filter((k) => {
      const name = parseName(k.name);
      if (!name) return false;
      try {
        const b = parseBlock(name.block);
        return blockLength(b) === length && blockWithin(b, block);
      } catch {
        return false;
      }
    }),
    now,
    out,
  );
  return { keys: out, truncated: inner?.truncated ?? false };
}

async function readOwn(kv: KVNamespace, block: NumberBlock, holder: string): Promise<HolderBlockRecord> {
  return parseHolderRecord(await kv.get(entryName(block, holder), "json"));
}

async function writeOwn(
  kv: KVNamespace,
  block: NumberBlock,
  holder: string,
  record: HolderBlockRecord,
  now: number,
): Promise<void> {
  const name = entryName(block, holder);
  if (record.keys.length === 0) {
    await kv.delete(name);
    return;
  }
  // KV refuses expirations less than 60 s ahead.
  const expiration = Math.max(recordExpiry(record), now + 60);
  await kv.put(name, JSON.stringify(record), { expiration, metadata: record });
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
    return { v: 1, keys: kept };
  });
  if (removed === 0) {
    const others = await Promise.all(blocks.map((b) => listAll(kv, `${KEY_PREFIX}${formatBlock(b)}:`, 2)));
    const found: FoundKey[] = [];
    for (const l of others) collect(l.keys, now, found);
    if (found.some((f) => kid === undefined || f.entry.kid === kid)) {
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
