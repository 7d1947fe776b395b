/** Types for relay-server.mjs: the OHTTP relay Worker under `wrangler dev`. */
import type { LocalServer, LocalServerOptions } from "./local-server.mjs";

export declare const RELAY_CONFIG: string;
export declare const LOCAL_GATEWAY_NAME: string;
export declare const LOCAL_RELAY_NAME: string;

/** A fresh relay token and the CPS's OHTTP_RELAYS value listing it (name default "local-relay"). */
export declare function localRelayToken(name?: string): {
  /** The secret the relay sends (43 base64url characters). */
  token: string;
  name: string;
  /** base64url SHA-256 of the token's UTF-8 bytes. */
  tokenSha256: string;
  /** OHTTP_RELAYS JSON for the CPS: [{name, tokenSha256}]. */
  relays: string;
};

export interface LocalRelayOptions extends Omit<LocalServerOptions, "config" | "main"> {
  /** OHTTP_GATEWAYS as an object: gateway name -> origin (e.g. {cps: cps.url}). */
  gateways: Record<string, string>;
  /** OHTTP_GATEWAY_TOKENS as an object: gateway name -> this relay's token for it. */
  tokens?: Record<string, string>;
}

export interface LocalRelay extends LocalServer {
  /** `${url}/gateways/${name}` (name default "cps"): what `--relay` takes. */
  gatewayUrl(name?: string): string;
  /** `${url}/gateways/${name}/keys`: the gateway's key configuration through the relay. */
  keysUrl(name?: string): string;
}

/** Starts the relay (relay/wrangler.toml) and resolves once its /health answers. */
export declare function startLocalRelay(options: LocalRelayOptions): Promise<LocalRelay>;
