/** Types for relay-server.mjs: the OHTTP relay Worker under `wrangler dev`. */
import type { LocalServer, LocalServerOptions } from "./local-server.mjs";

export declare const RELAY_CONFIG: string;
export declare const LOCAL_GATEWAY_NAME: string;

export interface LocalRelayOptions extends Omit<LocalServerOptions, "config" | "main"> {
  /** OHTTP_GATEWAYS as an object: gateway name -> origin (e.g. {cps: cps.url}). */
  gateways: Record<string, string>;
}

export interface LocalRelay extends LocalServer {
  /** `${url}/gateways/${name}` (name default "cps"): what `--relay` takes. */
  gatewayUrl(name?: string): string;
  /** `${url}/gateways/${name}/keys`: the gateway's key configuration through the relay. */
  keysUrl(name?: string): string;
}

/** Starts the relay (relay/wrangler.toml) and resolves once its /health answers. */
export declare function startLocalRelay(options: LocalRelayOptions): Promise<LocalRelay>;
