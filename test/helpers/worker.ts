/** Helpers for tests that run inside workerd against the app and its PassportQueue objects. */
import { env } from "cloudflare:test";
import { exports } from "cloudflare:workers";
import { expect } from "vitest";
import { canonicalTn } from "../../src/stir/tn.js";
import { passportQueue } from "../../src/storage/objects.js";
import type { ListBody } from "./cps.js";
import { TEST_CPS_ORIGIN } from "./origin.js";

export const BASE = TEST_CPS_ORIGIN;

export const fetchApp = (req: Request | string, init?: RequestInit) =>
  exports.default.fetch(new Request(req, init));

export function queueFor(tn: string) {
  return passportQueue(env, canonicalTn(tn));
}

/** `GET /cps/{tn}/ppts`, asserting a 200. */
export async function list(tn: string): Promise<ListBody> {
  const res = await fetchApp(`${BASE}/cps/${tn}/ppts`);
  expect(res.status).toBe(200);
  return res.json();
}
