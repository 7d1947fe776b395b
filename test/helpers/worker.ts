/** Helpers for tests that run inside workerd against the app and its Durable Objects. */
import { env } from "cloudflare:test";
import { exports } from "cloudflare:workers";
import { expect } from "vitest";
import { canonicalTn } from "../../src/stir/tn.js";
import { blockQueueOfTn, passportQueue } from "../../src/storage/objects.js";
import type { ListBody } from "./cps.js";
import { TEST_CPS_ORIGIN } from "./origin.js";

export const BASE = TEST_CPS_ORIGIN;

export const fetchApp = (req: Request | string, init?: RequestInit) =>
  exports.default.fetch(new Request(req, init));

/** The number's PassportQueue: its push subscribers (its blobs are in `blockFor(tn)`). */
export function queueFor(tn: string) {
  return passportQueue(env, canonicalTn(tn));
}

/** The index block's BlockQueue holding the number's blobs (table `blobs`, column `tn`). */
export function blockFor(tn: string) {
  return blockQueueOfTn(env, canonicalTn(tn));
}

/** The number's live blobs, counted where they are (its index block). */
export function liveCountOf(tn: string): Promise<number> {
  return blockFor(tn).numberLiveCount(canonicalTn(tn));
}

/** `GET /cps/{tn}/ppts`, asserting a 200. */
export async function list(tn: string): Promise<ListBody> {
  const res = await fetchApp(`${BASE}/cps/${tn}/ppts`);
  expect(res.status).toBe(200);
  return res.json();
}
