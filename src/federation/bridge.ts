/**
 * The bridge from the ATIS routes to RFC 8816: a PASSporT published the ATIS way (plaintext, from a
 * legacy authentication service) for a called number that has registered encryption keys in the key
 * directory (RFC 8816 §11) is also sealed to each of those keys (src/stir/envelope.ts, RFC 8816 §8.1
 * step 4) and stored in the number's RFC 8816 queue, where a verifier that speaks only RFC 8816
 * (retrieve, open, verify: §8.2) finds it among the decoys like any other blob.
 *
 * What it does not change: the CPS already saw these PASSporTs in plaintext on the ATIS route (that
 * mode cannot hide them from it; docs/threat-model.md), and a bridged blob in the RFC 8816 queue is
 * an ordinary envelope of the one length with no mark of where it came from (docs/design.md
 * invariants 1 and 2 hold for the queue). Logs carry counts and codes only (invariant 6).
 */

import { readConfig } from "../config.js";
import { keysForTn } from "../directory/key-store.js";
import { CpsError } from "../errors.js";
import { logEvent } from "../log.js";
import { decodeBase64url } from "../stir/base64url.js";
import { MAX_PASSPORT_LENGTH, sealPassport } from "../stir/envelope.js";
import type { CanonicalTn } from "../stir/tn.js";
import { numberShardForStore } from "../storage/objects.js";

/**
 * Keys one publish is sealed to, at most (distinct kids). A number's keys are registered only by
 * holders of certificates covering it (invariant 5), but one publish must not turn into an unbounded
 * number of Durable Object writes: 20 keys x 10 PASSporTs = 200 blobs at most.
 */
export const MAX_BRIDGE_KEYS = 20;

const utf8 = new TextEncoder();

/**
 * Seals every PASSporT of a publish to every live key registered for `dest` and stores each blob
 * where a store to `dest` goes (storage/objects.ts `numberShardForStore`: its index block, or a
 * shard of a hot number).
 * Returns how many blobs were stored. Never throws: a failure is logged (`atis_bridge_failed`) and the ATIS publish stands. A PASSporT too long for an envelope
 * (MAX_PASSPORT_LENGTH bytes) is skipped (`atis_bridge_skipped`); a full queue stops the bridge for
 * this publish (`atis_bridge_queue_full`).
 */
export async function bridgeToRfc8816(
  env: Env,
  dest: CanonicalTn,
  passports: readonly string[],
): Promise<number> {
  let stored = 0;
  try {
    const found = await keysForTn(env.CPS_KV, dest, Math.floor(Date.now() / 1000));
    if (found.length === 0) return 0;
    // The same key may be registered for the number and for a block containing it: seal once.
    const keys = new Map<string, Uint8Array>();
    for (const { entry } of found) {
      if (keys.size >= MAX_BRIDGE_KEYS) break;
      if (!keys.has(entry.kid)) keys.set(entry.kid, decodeBase64url(entry.x));
    }
    if (found.length > keys.size && keys.size >= MAX_BRIDGE_KEYS)
      logEvent({ event: "atis_bridge_capped", keys: keys.size });
    const sealable = passports.filter((p) => utf8.encode(p).length <= MAX_PASSPORT_LENGTH);
    if (sealable.length < passports.length) {
      logEvent({
        event: "atis_bridge_skipped",
        reason: "too_long",
        passports: passports.length - sealable.length,
      });
    }
    const config = readConfig(env);
    for (const passport of sealable) {
      for (const key of keys.values()) {
        let blob: Uint8Array;
        try {
          blob = await sealPassport(key, dest, passport);
        } catch (err) {
          // A registered key the envelope refuses (INVALID_KEY): skip that key, keep the others.
          logEvent({ event: "atis_bridge_skipped", reason: err instanceof CpsError ? err.code : "seal" });
          continue;
        }
        const result = await numberShardForStore(env, config, dest).store(blob);
        if (!result.ok) {
          logEvent({ event: "atis_bridge_queue_full", stored });
          return stored;
        }
        stored++;
      }
    }
    if (stored > 0) logEvent({ event: "atis_bridge", stored });
    return stored;
  } catch (err) {
    logEvent({ event: "atis_bridge_failed", code: err instanceof CpsError ? err.code : "internal", stored });
    return stored;
  }
}
