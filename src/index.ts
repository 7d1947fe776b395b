/**
 * Worker entry: the handlers as default export (`fetch`: the app; `queue`: the ATIS republish
 * consumer, src/federation/republish.ts) and the Durable Object classes. Nothing else.
 */
import { app } from "./app.js";
import { handleRepublishBatch } from "./federation/republish.js";

export default {
  fetch: app.fetch,
  queue: handleRepublishBatch,
} satisfies ExportedHandler<Env>;
export { AtisStore } from "./durable-objects/atis-store.js";
export { BlockQueue } from "./durable-objects/block-queue.js";
export { MetricsHub } from "./durable-objects/metrics-hub.js";
export { PassportQueue } from "./durable-objects/passport-queue.js";
export { ReplayGuard } from "./durable-objects/replay-guard.js";
export { TokenLedger } from "./durable-objects/token-ledger.js";
