#!/usr/bin/env node
/**
 * The OHTTP relay Worker (src/relay/, relay/wrangler.toml) on workerd through `wrangler dev`, for
 * `npm start -- --relay` (beside the CPS), `npm run start:relay` (alone) and the e2e tests.
 *
 *   OHTTP_GATEWAYS='{"cps":"http://127.0.0.1:8787"}' RELAY_PORT=8788 npm run start:relay
 *
 * Alone, it forwards to the CPS of `npm start` by default ({"cps": "http://127.0.0.1:8787"}, or
 * PORT's). Clients then use http://127.0.0.1:8788/gateways/cps (keys at .../gateways/cps/keys).
 * A CPS with OHTTP_RELAYS set refuses a relay without its token: pass OHTTP_GATEWAY_TOKENS
 * ('{"cps":"<token>"}') too, or use `npm start -- --relay`, which wires both.
 *
 * Plain Node ESM like local-server.mjs. Types: relay-server.d.mts.
 */
import { createHash, randomBytes } from "node:crypto";
import { join } from "node:path";
import { baseUrl, REPO_ROOT, startLocalServer } from "./local-server.mjs";

export const RELAY_CONFIG = "relay/wrangler.toml";
/** The gateway name `npm start -- --relay` configures for the local CPS. */
export const LOCAL_GATEWAY_NAME = "cps";
/** The relay name the local CPS's OHTTP_RELAYS lists. */
export const LOCAL_RELAY_NAME = "local-relay";

/**
 * A fresh relay token (32 random bytes, base64url: 43 characters) and the CPS's OHTTP_RELAYS entry
 * listing it by its SHA-256 (docs/ohttp.md): one per run, so the relay and the CPS it forwards to
 * agree and nothing else does. Both go into 0600 env files, never on a command line.
 * DEVELOPMENT SECRET ONLY.
 *
 * @param {string} [name] the relay's name on the CPS's list
 */
export function localRelayToken(name = LOCAL_RELAY_NAME) {
  const token = randomBytes(32).toString("base64url");
  const tokenSha256 = createHash("sha256").update(token, "utf8").digest("base64url");
  return { token, name, tokenSha256, relays: JSON.stringify([{ name, tokenSha256 }]) };
}

/**
 * Starts the relay and resolves once its /health answers. `gateways` is OHTTP_GATEWAYS as an object
 * (name -> origin), `tokens` OHTTP_GATEWAY_TOKENS (gateway name -> token, e.g. localRelayToken()'s);
 * the other options are startLocalServer's.
 *
 * @param {{ gateways: Record<string, string>, tokens?: Record<string, string> } & Parameters<typeof startLocalServer>[0]} options
 */
export async function startLocalRelay({ gateways, tokens, vars = {}, ...options }) {
  const server = await startLocalServer({
    ...options,
    config: RELAY_CONFIG,
    vars: {
      OHTTP_GATEWAYS: JSON.stringify(gateways),
      ...(tokens ? { OHTTP_GATEWAY_TOKENS: JSON.stringify(tokens) } : {}),
      ...vars,
    },
  });
  return {
    ...server,
    /** The relay resource URL of one configured gateway (what `--relay` takes). */
    gatewayUrl: (name = LOCAL_GATEWAY_NAME) => `${server.url}/gateways/${name}`,
    /** The relayed key configuration URL of one configured gateway. */
    keysUrl: (name = LOCAL_GATEWAY_NAME) => `${server.url}/gateways/${name}/keys`,
  };
}

async function main() {
  const host = process.env.RELAY_HOST ?? "127.0.0.1";
  const cpsPort = Number(process.env.PORT ?? 8787);
  const port = Number(process.env.RELAY_PORT ?? cpsPort + 1);
  if (!Number.isInteger(port) || port <= 0 || port > 65535) {
    console.error("start:relay: RELAY_PORT must be a TCP port number");
    process.exit(2);
  }
  const gateways = process.env.OHTTP_GATEWAYS
    ? JSON.parse(process.env.OHTTP_GATEWAYS)
    : { [LOCAL_GATEWAY_NAME]: process.env.CPS_ORIGIN || baseUrl("127.0.0.1", cpsPort) };
  // OHTTP_GATEWAY_TOKENS (JSON {"name": "token"}) from the environment, if the gateways check relays.
  const tokens = process.env.OHTTP_GATEWAY_TOKENS ? JSON.parse(process.env.OHTTP_GATEWAY_TOKENS) : undefined;
  const relay = await startLocalRelay({
    host,
    port,
    gateways,
    tokens,
    persistTo: join(REPO_ROOT, ".wrangler/relay-state"),
    quiet: false,
  });
  for (const [name, origin] of Object.entries(gateways)) {
    console.log(`\nOHTTP relay ready: ${relay.gatewayUrl(name)} -> ${origin} (keys: ${relay.keysUrl(name)})`);
  }
  for (const signal of ["SIGINT", "SIGTERM"])
    process.on(signal, () => relay.stop().then(() => process.exit(0)));
  const { code, signal } = await relay.exited;
  process.exit(code ?? (signal ? 1 : 0));
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) await main();
