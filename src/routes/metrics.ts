/**
 * The operator's figures (docs/metrics.md), behind the operator credential (METRICS_TOKEN_SHA256):
 *   GET /metrics        OpenMetrics 1.0 text: counters since the hub began, gauges now;
 *   GET /console/data   the console's time series (5-second intervals, the last 15 minutes).
 * Both answer 404 when no operator credential is configured. Aggregates only: route patterns,
 * statuses and error codes, never a number, blob, token or address (docs/design.md invariant 6).
 */
import { Hono } from "hono";
import { methodNotAllowed } from "../http/errors.js";
import { flushMetrics, operatorRoutesOn, requireOperator } from "../http/metrics.js";
import type { AppEnv } from "../http/types.js";
import { OPENMETRICS_CONTENT_TYPE } from "../metrics/render.js";
import { metricsHub } from "../storage/objects.js";

/** What the console shows: the last 15 minutes. */
export const CONSOLE_WINDOW_MS = 15 * 60_000;

export const metricsRoutes = new Hono<AppEnv>();

metricsRoutes.use("/metrics", operatorRoutesOn());
metricsRoutes.use("/console/data", operatorRoutesOn());

metricsRoutes.get("/metrics", requireOperator(), async (c) => {
  await flushMetrics(c.env);
  const text = await metricsHub(c.env).openMetrics();
  return c.body(text, 200, { "Content-Type": OPENMETRICS_CONTENT_TYPE, "Cache-Control": "no-store" });
});

metricsRoutes.get("/console/data", requireOperator(), async (c) => {
  await flushMetrics(c.env);
  const data = await metricsHub(c.env).consoleData(CONSOLE_WINDOW_MS);
  c.header("Cache-Control", "no-store");
  return c.json(data);
});

metricsRoutes.all("/metrics", methodNotAllowed("GET"));
metricsRoutes.all("/console/data", methodNotAllowed("GET"));
