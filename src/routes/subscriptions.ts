/**
 * `GET /cps/{tn}/subscribe` (WebSocket upgrade): push delivery for one number (RFC 8816 §5.5, §8.2).
 * Thin: canonicalise the number, check the optional credential, hand the upgrade to its
 * PassportQueue, which admits and accepts the socket with the hibernation API
 * (durable-objects/streaming-queue.ts). Frames and admission: docs/push-and-blocks.md.
 */
import { type Context, Hono } from "hono";
import { CpsError } from "../errors.js";
import { requireCredential } from "../http/credential-auth.js";
import { methodNotAllowed } from "../http/errors.js";
import type { AppEnv } from "../http/types.js";
import { requireCoverage } from "../stir/authority.js";
import type { NumberBlock } from "../stir/number-blocks.js";
import { canonicalTn } from "../stir/tn.js";
import { passportQueue } from "../storage/objects.js";

/** The credential token `action` of an authenticated subscription. */
export const SUBSCRIBE_ACTION = "push:subscribe";

/** Refuses anything but a WebSocket upgrade before any object is reached. */
export function requireWebSocketUpgrade(request: Request): void {
  if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket") {
    throw new CpsError("UPGRADE_REQUIRED", "Subscribe with a WebSocket upgrade");
  }
}

/**
 * An upgrade with `Authorization: Bearer <credential token>` (action `push:subscribe`, certificate
 * covering every number of `block`) is the callee's: true. Without the header: false (anonymous). A
 * header that does not verify or does not cover the numbers is refused (401/403 problem), never
 * admitted anonymously, so a client learns at once that its credential was not accepted.
 */
export async function authenticateSubscriber(c: Context<AppEnv>, block: NumberBlock): Promise<boolean> {
  if (c.req.header("Authorization") === undefined) return false;
  await requireCredential([SUBSCRIBE_ACTION])(c, async () => {});
  requireCoverage(c.get("credential"), [block], c.get("config").spcNumberBlocks);
  return true;
}

/**
 * Passes an upgrade to a Durable Object and re-wraps its answer: the object's response has immutable
 * headers, and the app's middleware must still be able to add `Cache-Control`. `callee` marks an
 * authenticated subscriber (the object is reachable only through this Worker, so the mark holds).
 */
export async function forwardUpgrade(
  stub: { fetch(req: Request): Promise<Response> },
  url: string,
  callee = false,
) {
  const target = new URL(url);
  if (callee) target.searchParams.set("auth", "callee");
  const res = await stub.fetch(new Request(target, { headers: { Upgrade: "websocket" } }));
  if (res.status === 101 && res.webSocket) {
    return new Response(null, {
      status: 101,
      webSocket: res.webSocket,
      headers: { "Cache-Control": "no-store" },
    });
  }
  return new Response(res.body, res);
}

export const subscriptionRoutes = new Hono<AppEnv>();

subscriptionRoutes.get("/:tn/subscribe", async (c) => {
  const tn = canonicalTn(c.req.param("tn"));
  // A hot number's blobs are spread over several objects (HOT_NUMBERS): a socket on one would miss
  // the others' stores. Refused before any upgrade or credential work; no number in the message.
  if (c.get("config").hotNumbers.has(tn)) {
    throw new CpsError(
      "NUMBER_SHARDED",
      "This number is spread over several queues: subscribe to a block containing it, /cps/blocks/{block}/subscribe (e.g. its last digit as x), which sees them all",
    );
  }
  requireWebSocketUpgrade(c.req.raw);
  const callee = await authenticateSubscriber(c, { digits: tn, open: 0 });
  return forwardUpgrade(passportQueue(c.env, tn), `https://passport-queue/subscribe?tn=${tn}`, callee);
});

subscriptionRoutes.all("/:tn/subscribe", methodNotAllowed("GET"));
