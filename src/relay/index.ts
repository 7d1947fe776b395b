/**
 * The OHTTP relay Worker (RFC 9458 §2), its own deployment beside the CPS: relay/wrangler.toml.
 * Run locally with `npm start -- --relay` (beside the CPS) or `npm run start:relay`; docs/ohttp.md.
 */
import { CpsError, problemResponse } from "../errors.js";
import { logEvent } from "../log.js";
import { handleRelay, type RelayEnv } from "./relay.js";

export type { RelayEnv } from "./relay.js";

export default {
  async fetch(request, env, ctx): Promise<Response> {
    try {
      return await handleRelay(request, env, ctx);
    } catch (err) {
      // Never a stack trace to the client, and only the error's class in the log.
      logEvent({
        event: "relay error",
        code: "INTERNAL",
        kind: err instanceof Error ? err.name : typeof err,
      });
      return problemResponse(new CpsError("INTERNAL", "The relay failed"));
    }
  },
} satisfies ExportedHandler<RelayEnv>;
