/**
 * Builds the CPS Hono app: middleware order, routes, error and not-found handling.
 * Order matters: the no-store default, then the serving guard (a deployment without CPS_ORIGIN or
 * DECOY_SECRET, or with a dev switch outside local development, answers 503 on every route), then
 * config (a malformed var fails loudly on every route), then the metrics middleware (counts each
 * answer under its route pattern; docs/metrics.md), then routes; errors of every route pass
 * through `errorToResponse`. The OHTTP gateway (routes/ohttp.ts) runs its inner requests through this
 * same app. The bench baseline lives in its own Worker (bench/baseline-worker/),
 * never in this one.
 */
import { Hono } from "hono";
import { errorToResponse, notFound } from "./http/errors.js";
import { collectMetrics } from "./http/metrics.js";
import { noStoreByDefault, refuseMisconfigured, withConfig } from "./http/middleware.js";
import type { AppEnv } from "./http/types.js";
import { atisRoutes } from "./routes/atis.js";
import { blockRoutes } from "./routes/blocks.js";
import { demoRoutes } from "./routes/demo.js";
import { discoveryRoutes } from "./routes/discovery.js";
import { feedbackRoutes } from "./routes/feedback.js";
import { healthRoutes } from "./routes/health.js";
import { keyRoutes } from "./routes/keys.js";
import { metricsRoutes } from "./routes/metrics.js";
import { ohttpRoutes } from "./routes/ohttp.js";
import { openApiRoutes } from "./routes/openapi.js";
import { passportRoutes } from "./routes/passports.js";
import { subscriptionRoutes } from "./routes/subscriptions.js";
import { tokenRoutes } from "./routes/tokens.js";

export function buildApp(): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.use("*", noStoreByDefault());
  app.use("*", refuseMisconfigured());
  app.use("*", withConfig());
  // After config (it reads METRICS), around every route: counts each answer by route pattern (docs/metrics.md).
  app.use("*", collectMetrics());

  app.route("/cps/blocks", blockRoutes);
  app.route("/cps", subscriptionRoutes);
  app.route("/cps", passportRoutes);
  // The ATIS out-of-band APIs (ATIS-1000096, ATIS-1000105, VESPER; docs/atis-api.md): with ATIS_API
  // "off" they answer like an unknown path. Errors there in the ATIS JSON format, not problem+json.
  app.route("/passports", atisRoutes);
  app.route("/keys", keyRoutes);
  app.route("/", discoveryRoutes);
  app.route("/tokens", tokenRoutes);
  app.route("/feedback", feedbackRoutes);
  app.route("/health", healthRoutes);
  app.route("/openapi.json", openApiRoutes);
  // The /demo page's TEST-ONLY credentials: 404 unless run locally (docs/web.md).
  app.route("/demo", demoRoutes);
  app.route("/", metricsRoutes);
  // The OHTTP gateway runs inner requests through this same app (every middleware and route).
  app.route(
    "/",
    ohttpRoutes((req, env, ctx) => Promise.resolve(app.fetch(req, env, ctx))),
  );

  app.onError(errorToResponse);
  app.notFound(notFound);
  return app;
}

export const app = buildApp();
