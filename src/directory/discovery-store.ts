/**
 * Discovery records in Workers KV (docs/storage-schema.md, `disc:`; names formed in
 * storage/layout.ts), merged with the CPS's own served prefixes and the operator's provisioned
 * records (RFC 8816 §10).
 *
 * One entry per registered block, `disc:{block}`, last writer wins among holders that cover the
 * block (each has authority over those numbers, RFC 8816 §6.1); only the registrant may delete it.
 * A lookup reads the (at most 15) blocks that can contain the number, in parallel, and picks the
 * longest match among those, the served prefixes and the provisioned records (in memory).
 * A record may name several CPSes (§10); a provisioned record for exactly a served prefix that names
 * this CPS among them takes the served answer's place, so every CPS of the group answers with all of
 * them (docs/key-directory.md "Several CPSes per number").
 */
import { CpsError } from "../errors.js";
import {
  type Candidate,
  cpsMembers,
  type DiscoveryRecord,
  type DiscoveryRegistration,
  parseStoredRecord,
  recordCpses,
  type StoredDiscoveryRecord,
  selectRecord,
} from "../stir/discovery.js";
import type { NumberPattern } from "../stir/number-blocks.js";
import { blocksContaining, formatBlock, type NumberBlock } from "../stir/number-blocks.js";
import { discoveryEntryName } from "../storage/layout.js";

/** TTL of the answers that name this CPS itself. */
export const SELF_RECORD_TTL = 300;

export interface SelfDescription {
  /** Base URL of this CPS: CPS_ORIGIN, never the request's Host. */
  readonly origin: string;
  readonly served: readonly NumberPattern[] | null;
  readonly provisioned: readonly Candidate[];
}

/** The discovery answer for `tn`, or `undefined` when nothing matches. */
export async function discover(
  kv: KVNamespace,
  self: SelfDescription,
  tn: string,
  now: number,
): Promise<DiscoveryRecord | undefined> {
  const own = (prefix: string) => ({
    prefix,
    cps: self.origin,
    keys: `${self.origin}/keys`,
    ttl: SELF_RECORD_TTL,
    source: "served" as const,
  });
  // The operator's record for exactly a served prefix, naming this CPS among several, is the fuller
  // statement of the same thing: it replaces the served one-CPS answer.
  const grouped = new Set(
    self.provisioned.filter((c) => recordCpses(c.record).includes(self.origin)).map((c) => c.record.prefix),
  );
  const served: Candidate[] = (
    self.served === null
      ? [{ pattern: { kind: "prefix", digits: "" } as NumberPattern, record: own("") }]
      : self.served.map((pattern) => ({
          pattern,
          record: own(pattern.kind === "prefix" ? pattern.digits : formatBlock(pattern.block)),
        }))
  ).filter((c) => !grouped.has(c.record.prefix));
  const blocks = blocksContaining(tn);
  const stored = await Promise.all(blocks.map((b) => kv.get(discoveryEntryName(b), "json")));
  const registered: Candidate[] = [];
  blocks.forEach((block, i) => {
    const r = parseStoredRecord(stored[i], now);
    if (!r) return;
    registered.push({
      pattern: { kind: "block", block },
      record: {
        prefix: formatBlock(block),
        ...cpsMembers(recordCpses(r)),
        keys: r.keys,
        ttl: r.ttl,
        source: "registered",
      },
    });
  });
  return selectRecord([...served, ...self.provisioned, ...registered], tn);
}

/** Registers (or replaces) the record for `block`; the KV entry expires with the record. */
export async function putRecord(
  kv: KVNamespace,
  block: NumberBlock,
  holder: string,
  reg: DiscoveryRegistration,
  now: number,
): Promise<StoredDiscoveryRecord> {
  const record: StoredDiscoveryRecord = {
    v: 1,
    prefix: formatBlock(block),
    ...cpsMembers(recordCpses(reg)),
    keys: reg.keys,
    ttl: reg.ttl,
    exp: now + reg.lifetime,
    holder,
  };
  await kv.put(discoveryEntryName(block), JSON.stringify(record), { expiration: record.exp });
  return record;
}

/** Deletes the record for `block` if `holder` registered it: else NOT_OWNER (403) or NOT_FOUND. */
export async function deleteRecord(
  kv: KVNamespace,
  block: NumberBlock,
  holder: string,
  now: number,
): Promise<void> {
  const current = parseStoredRecord(await kv.get(discoveryEntryName(block), "json"), now);
  if (!current) throw new CpsError("NOT_FOUND", "No discovery record for this block");
  if (current.holder !== holder) {
    throw new CpsError("NOT_OWNER", "This record was registered by another certificate holder");
  }
  await kv.delete(discoveryEntryName(block));
}
