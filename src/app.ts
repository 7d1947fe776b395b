/**
 * Builds the CPS Hono app: middleware order, routes, error and not-found handling.
 * Order matters: config first (a misconfigured deployment fails loudly on every route), then the
 * no-store default, then routes; errors of every route pass through `errorToResponse`.
 */
import { Hono } from "hono";
import { errorToResponse, notFound } from "./http/errors.js";
import { noStoreByDefault, withConfig } from "./http/middleware.js";
import type { AppEnv } from "./http/types.js";
import { benchBaselineRoutes } from "./routes/bench-baseline.js";
import { blockRoutes } from "./routes/blocks.js";
import { discoveryRoutes } from "./routes/discovery.js";
import { healthRoutes } from "./routes/health.js";
import { keyRoutes } from "./routes/keys.js";
import { openApiRoutes } from "./routes/openapi.js";
import { passportRoutes } from "./routes/passports.js";
import { subscriptionRoutes } from "./routes/subscriptions.js";
import { tokenRoutes } from "./routes/tokens.js";

export function buildApp(): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.use("*", noStoreByDefault());
  app.use("*", withConfig());
  app.use("/_bench/*", async (c, next) => {
    if (!c.get("config").benchBaseline) return notFound();
    await next();
  });

  app.route("/cps/blocks", blockRoutes);
  app.route("/cps", subscriptionRoutes);
  app.route("/cps", passportRoutes);
  app.route("/keys", keyRoutes);
  app.route("/", discoveryRoutes);
  app.route("/tokens", tokenRoutes);
  app.route("/health", healthRoutes);
  app.route("/openapi.json", openApiRoutes);
  app.route("/_bench/baseline", benchBaselineRoutes);

  app.onError(errorToResponse);
  app.notFound(notFound);
  return app;
}

export const app = buildApp();
