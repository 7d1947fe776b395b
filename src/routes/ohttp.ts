/**
 * The Oblivious HTTP gateway (RFC 9458, docs/ohttp.md) at the RFC 9540 §4 well-known path:
 * - GET  /.well-known/ohttp-gateway: the key configuration (`application/ohttp-keys`, RFC 9458 §3.2),
 *   every key live now;
 * - POST /.well-known/ohttp-gateway (`message/ohttp-req`): decapsulates, runs the inner request
 *   through the same app (every route, token check and error unchanged inside), and answers
 *   `message/ohttp-res`, 200 whatever the inner status (RFC 9458 §4.4, §5.2).
 * Without OHTTP_KEYS both answer 404 (the feature is off); a malformed OHTTP_KEYS or OHTTP_RELAYS is
 * 503 here only. With OHTTP_RELAYS, a POST from a sender not on it is 403 before decapsulation.
 *
 * The app is passed in (`dispatch`), since routes sit below the app in the layers.
 */
import type { Context, MiddlewareHandler } from "hono";
import { Hono } from "hono";
import { CpsError, problemResponse } from "../errors.js";
import { limitBody, requireContentType } from "../http/body.js";
import { methodNotAllowed } from "../http/errors.js";
import {
  GATEWAY_PATH,
  type GatewayRelay,
  gatewayKeys,
  gatewayRelays,
  innerRequest,
  isInnerRequest,
  isListedRelay,
  outerErrorResponse,
  RELAY_TOKEN_HEADER,
} from "../http/ohttp-gateway.js";
import type { AppEnv } from "../http/types.js";
import {
  decapsulateRequest,
  decodeRequest,
  encodeKeyConfigs,
  encodeResponse,
  type GatewayKey,
  isOhttpError,
  liveKeys,
  MAX_ENCAPSULATED_REQUEST_LENGTH,
  MEDIA_TYPE_KEYS,
  MEDIA_TYPE_REQUEST,
  MEDIA_TYPE_RESPONSE,
  responseFromFetch,
} from "../ohttp/index.js";

/** How the gateway runs an inner request: the app's own fetch. */
export type Dispatch = (req: Request, env: Env, ctx: ExecutionContext | undefined) => Promise<Response>;

/**
 * How long clients and relays may cache the key configuration (RFC 9540 §4 leaves it to HTTP
 * caching). A retired key must stay in OHTTP_KEYS at least this long after its successor is live
 * (docs/ohttp.md "Key rotation").
 */
export const KEY_CONFIG_MAX_AGE_SECONDS = 3600;

type GatewayEnv = AppEnv & { Variables: { ohttpKeys: GatewayKey[]; ohttpRelays: GatewayRelay[] | null } };

/**
 * 404 without OHTTP_KEYS (off), 503 with a malformed OHTTP_KEYS or OHTTP_RELAYS; else the live keys
 * and the relay list (null: open to any sender) for what follows.
 */
function requireGateway(): MiddlewareHandler<GatewayEnv> {
  return async function requireGateway(c, next) {
    let keys: GatewayKey[] | null;
    let relays: GatewayRelay[] | null;
    try {
      keys = await gatewayKeys(c.get("config").ohttpKeys);
      relays = keys === null ? null : gatewayRelays(c.get("config").ohttpRelays);
    } catch (err) {
      // Answered here, not thrown: gatewayKeys / gatewayRelays logged it once; the error handler
      // would log every one.
      if (err instanceof CpsError) return problemResponse(err);
      throw err;
    }
    if (keys === null) throw new CpsError("NOT_FOUND", "No such resource");
    // An inner request to the gateway never gets here (innerRequest refuses the path); if one did,
    // it is refused rather than nested.
    if (isInnerRequest(c.req.raw))
      throw new CpsError("OHTTP_REFUSED", "The gateway does not forward to itself");
    c.set("ohttpKeys", liveKeys(keys, Date.now()));
    c.set("ohttpRelays", relays);
    await next();
  };
}

/**
 * With OHTTP_RELAYS set, a POST whose OHTTP-Relay-Token is not a listed relay's is refused first:
 * 403 OHTTP_RELAY_UNKNOWN before the body is read, typed or decapsulated, so an unlisted sender costs
 * no HPKE work and reaches no route (docs/ohttp.md "Which relays may send").
 */
function requireListedRelay(): MiddlewareHandler<GatewayEnv> {
  return async function requireListedRelay(c, next) {
    const relays = c.get("ohttpRelays");
    if (relays !== null && !(await isListedRelay(relays, c.req.header(RELAY_TOKEN_HEADER) ?? null))) {
      throw new CpsError("OHTTP_RELAY_UNKNOWN", "The gateway accepts requests only from its relays");
    }
    await next();
  };
}

function executionCtxOf(c: Context): ExecutionContext | undefined {
  try {
    return c.executionCtx as ExecutionContext;
  } catch {
    return undefined;
  }
}

export function ohttpRoutes(dispatch: Dispatch): Hono<GatewayEnv> {
  const routes = new Hono<GatewayEnv>();

  routes.get(GATEWAY_PATH, requireGateway(), (c) => {
    const live = c.get("ohttpKeys");
    if (live.length === 0) {
      throw new CpsError("MISCONFIGURED", "The OHTTP gateway has no live key (see OHTTP_KEYS)", {
        status: 503,
      });
    }
    return new Response(encodeKeyConfigs(live.map((k) => k.config)), {
      headers: {
        "Content-Type": MEDIA_TYPE_KEYS,
        "Cache-Control": `public, max-age=${KEY_CONFIG_MAX_AGE_SECONDS}`,
      },
    });
  });

  routes.post(
    GATEWAY_PATH,
    requireGateway(),
    requireListedRelay(),
    requireContentType(MEDIA_TYPE_REQUEST),
    limitBody(MAX_ENCAPSULATED_REQUEST_LENGTH),
    async (c) => {
      const body = new Uint8Array(await c.req.arrayBuffer());
      let opened: Awaited<ReturnType<typeof decapsulateRequest>>;
      try {
        opened = await decapsulateRequest(c.get("ohttpKeys"), body);
      } catch (err) {
        if (isOhttpError(err)) return outerErrorResponse(err);
        throw err;
      }
      // From here on every answer, refusals included, goes back sealed (RFC 9458 §5.2).
      let inner: Response;
      try {
        const req = innerRequest(decodeRequest(opened.request), c.get("config").cpsOrigin);
        inner = await dispatch(req, c.env, executionCtxOf(c));
      } catch (err) {
        inner = problemResponse(
          err instanceof CpsError
            ? err
            : !isOhttpError(err)
              ? new CpsError("INTERNAL", "Internal error")
              : err.code === "TOO_LARGE"
                ? new CpsError("BODY_TOO_LARGE", "The inner request is too large")
                : new CpsError("OHTTP_MALFORMED", "The inner request is not a Binary HTTP request"),
        );
      }
      // Padded to its size bucket (docs/ohttp.md "Padding"), so an empty list looks like a full one.
      const sealed = await opened.context.encapsulateResponse(encodeResponse(await responseFromFetch(inner)));
      return new Response(sealed, {
        status: 200,
        headers: { "Content-Type": MEDIA_TYPE_RESPONSE, "Cache-Control": "no-store" },
      });
    },
  );

  routes.all(GATEWAY_PATH, methodNotAllowed("GET, POST"));
  return routes;
}
