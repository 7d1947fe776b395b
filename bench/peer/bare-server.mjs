#!/usr/bin/env node
/**
 * `npm run bench:peer` system `bare`: the bench's bare Durable Object baseline (bench/baseline-worker:
 * one Worker -> Durable Object hop and one SQLite write or read per request, no CPS logic) served
 * exactly as `npm start` serves the CPS (src/dev/miniflare-server.mjs: workerd through Miniflare's API),
 * so the comparison shows what the runtime itself costs per call on this machine.
 *
 *   PORT=8899 node bench/peer/bare-server.mjs --persist-to DIR [--inspector-port N]
 *
 * Stops on SIGINT or SIGTERM.
 */
import { parseArgs } from "node:util";
import { serveWithMiniflare } from "../../src/dev/miniflare-server.mjs";

const { values } = parseArgs({
  options: { "persist-to": { type: "string" }, "inspector-port": { type: "string" } },
});
if (!values["persist-to"]) {
  console.error("usage: PORT=N node bench/peer/bare-server.mjs --persist-to DIR [--inspector-port N]");
  process.exit(2);
}
const server = await serveWithMiniflare({
  host: process.env.HOST ?? "127.0.0.1",
  port: Number(process.env.PORT ?? 8787),
  persistTo: values["persist-to"],
  inspectorPort: values["inspector-port"] === undefined ? undefined : Number(values["inspector-port"]),
  bindings: {},
  worker: { config: "bench/wrangler.toml", entry: "bench/baseline-worker/index.ts", web: false },
});
console.log(`bare baseline ready on ${server.url}`);
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.once(signal, () => server.dispose().finally(() => process.exit(0)));
}
