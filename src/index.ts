/** Worker entry: the app as default export, and the Durable Object classes. Nothing else. */
export { app as default } from "./app.js";
export { BlockQueue } from "./durable-objects/block-queue.js";
export { MetricsHub } from "./durable-objects/metrics-hub.js";
export { PassportQueue } from "./durable-objects/passport-queue.js";
export { ReplayGuard } from "./durable-objects/replay-guard.js";
export { TokenLedger } from "./durable-objects/token-ledger.js";
