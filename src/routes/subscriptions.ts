/**
 * `GET /cps/{tn}/subscribe` (WebSocket upgrade): push delivery for one number (RFC 8816 §5.5, §8.2).
 * Thin: canonicalise the number, hand the upgrade to its PassportQueue, which accepts the socket with
 * the hibernation API (durable-objects/push.ts). Frames: docs/push-and-blocks.md.
 */
import { Hono } from "hono";
import type { PassportQueue } from "../durable-objects/passport-queue.js";
import { CpsError } from "../errors.js";
import { methodNotAllowed } from "../http/errors.js";
import type { AppEnv } from "../http/types.js";
import { canonicalTn } from "../stir/tn.js";

/** Refuses anything but a WebSocket upgrade before any object is reached. */
export function requireWebSocketUpgrade(request: Request): void {
  if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket") {
    throw new CpsError("UPGRADE_REQUIRED", "Subscribe with a WebSocket upgrade");
  }
}

/**
 * Passes an upgrade to a Durable Object and re-wraps its answer: the object's response has immutable
 * headers, and the app's middleware must still be able to add `Cache-Control`.
 */
export async function forwardUpgrade(stub: { fetch(req: Request): Promise<Response> }, url: string) {
  const res = await stub.fetch(new Request(url, { headers: { Upgrade: "websocket" } }));
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
  requireWebSocketUpgrade(c.req.raw);
  const ns = c.env.PASSPORT_QUEUE as DurableObjectNamespace<PassportQueue>;
  return forwardUpgrade(ns.get(ns.idFromName(tn)), `https://passport-queue/subscribe?tn=${tn}`);
});

subscriptionRoutes.all("/:tn/subscribe", methodNotAllowed("GET"));
