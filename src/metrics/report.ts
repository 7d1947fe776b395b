/**
 * Reports from the streaming objects to the MetricsHub: a push subscriber accepted (+1) or gone
 * (-1), sent in the wake-up the object already has for it (docs/metrics.md "Gauges"). No identity
 * of the object travels: the hub learns a count only.
 */
import { readConfig } from "../config.js";
import { logEvent } from "../log.js";
import { metricsHub } from "../storage/objects.js";

export function reportSubscribers(ctx: DurableObjectState, env: Env, delta: 1 | -1): void {
  let on: boolean;
  try {
    on = readConfig(env).metricsEnabled;
  } catch {
    return; // a malformed var answers every request with MISCONFIGURED already
  }
  if (!on) return;
  ctx.waitUntil(
    metricsHub(env)
      .addSubscribers(delta)
      .catch(() => logEvent({ event: "metrics report failed", code: "UNAVAILABLE" })),
  );
}
