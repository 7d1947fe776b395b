/** Cross-cutting middleware, in the order app.ts mounts them. */
import type { MiddlewareHandler } from "hono";
import { readConfig } from "../config.js";
import type { AppEnv } from "./types.js";

/** Checks the vars once and exposes the typed config to routes. */
export function withConfig(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    c.set("config", readConfig(c.env));
    await next();
  };
}

/**
 * `Cache-Control: no-store` unless a route chose a caching policy itself: blobs, dummies and errors
 * must never sit in a shared cache.
 */
export function noStoreByDefault(): MiddlewareHandler {
  return async (c, next) => {
    await next();
    if (!c.res.headers.has("Cache-Control")) c.res.headers.set("Cache-Control", "no-store");
  };
}
