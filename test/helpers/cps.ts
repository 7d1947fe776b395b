/** Shared helpers for tests that talk to the CPS app (in workerd or over HTTP). */

import { encodeEnvelope, generateRecipientKeyPair, sealPassport } from "../../src/stir/envelope.js";
import { canonicalTn } from "../../src/stir/tn.js";

/** RFC 8816 §9's example (dummy-valued) PASSporT for a call to 2.222.555.2222. */
export const RFC8816_EXAMPLE_PASSPORT =
  "eyJhbGciOiJFUzI1NiIsInR5cCI6InBhc3Nwb3J0IiwieDV1IjoiaHR0cHM6Ly9jZXJ0LmV4YW1wbGUub3JnL3Bhc3Nwb3J0LmNlciJ9." +
  "eyJkZXN0Ijp7InRuIjpbIjIyMjI1NTUyMjIyIl19LCJpYXQiOiIxNTgzMjUxODEwIiwib3JpZyI6eyJ0biI6IjExMTE1NTUxMTExIn19." +
  "pnij4IlLHoR4vxID0u3CT1e9Hq4xLngZUTv45Vbxmd3IVyZug4KOSa378yfP4x6twY0KTdiDypsereS438ZHaQ";

export interface ListBody {
  passports: { id: string; blob: string }[];
}

/** A callee key pair and a blob of `passport` sealed to it for `tn`, as base64url text. */
/**
 * A PASSporT sealed to a fresh callee key for `tn`, as envelope text. `another()` seals it again to
 * the same key: a distinct blob, since storing identical bytes again is a retry (same id).
 */
export async function sealedFor(tn: string, passport = RFC8816_EXAMPLE_PASSPORT) {
  const callee = await generateRecipientKeyPair();
  const another = async () => encodeEnvelope(await sealPassport(callee.publicKey, canonicalTn(tn), passport));
  return { callee, text: await another(), another };
}

export function storeRequest(
  base: string,
  tn: string,
  body: string,
  contentType = "application/passport",
): Request {
  return new Request(`${base}/cps/${tn}/ppts`, {
    method: "POST",
    headers: { "Content-Type": contentType },
    body,
  });
}
