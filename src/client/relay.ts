/**
 * Sending the client's CPS requests through an Oblivious HTTP relay (RFC 9458; RFC 8816 §13 asks
 * for a way to keep the CPS from learning who stores and who polls). Each request becomes a Binary
 * HTTP request (RFC 9292, known length, absolute path, authority = the CPS origin), padded to its
 * size bucket (docs/ohttp.md "Padding"), sealed to the gateway's HPKE key configuration and POSTed to
 * the relay as `message/ohttp-req`; the `message/ohttp-res` answer is opened and decoded back into an
 * ordinary `Response`, so the CPS client's error mapping, Retry-After and timeouts apply unchanged.
 *
 * The relay sees this client's address and an opaque, padded body; the gateway (the CPS) sees the
 * request but only the relay's address. No Node-only imports.
 */
import {
  decodeResponse,
  encapsulateRequest,
  encodeRequest,
  type KeyConfig,
  MEDIA_TYPE_KEYS,
  MEDIA_TYPE_REQUEST,
  MEDIA_TYPE_RESPONSE,
  OHTTP_KEY_PROBLEM_TYPE,
  parseKeyConfigs,
  requestFromFetch,
  responseToFetch,
  selectKeyConfig,
} from "../ohttp/index.js";
import { cacheLifetime } from "../stir/cache-lifetime.js";
import type { FetchLike } from "./cps-client.js";
import { StirClientError } from "./errors.js";

/** Where to send: the relay resource for one gateway (`https://relay.example/gateways/cps`). */
export interface RelayOptions {
  /** The relay's URL for the gateway (RFC 9458 §2, "Oblivious Relay Resource"). */
  readonly url: string;
  /**
   * Where the gateway's key configuration is fetched (`application/ohttp-keys`, RFC 9458 §3.2);
   * default `${url}/keys` (the relay forwards it, so the CPS never sees this client for it either).
   */
  readonly keysUrl?: string;
}

/** The options every part of the client library takes to send through a relay. */
export interface RelayTransportOptions {
  /** Send every CPS request through this relay (a shared `OhttpRelay` shares its key cache). */
  readonly relay?: RelayOptions | OhttpRelay;
  /** Refuse to send anything directly (`RELAY_REQUIRED`) when no relay is given. */
  readonly requireRelay?: boolean;
}

/** Key configurations are reused at most this long, whatever the answer says (seconds). */
const MAX_KEY_CACHE_SECONDS = 86_400;
/** How long fetching the key configuration may take (milliseconds). */
const KEY_FETCH_TIMEOUT_MS = 10_000;
/** Without a caching header the configuration is still reused this long (seconds). */
const DEFAULT_KEY_CACHE_SECONDS = 300;

/**
 * A relay and the cached key configuration of the gateway behind it. One instance serves any number
 * of `CpsClient`s (discovery, wallet, AS, VS), so the configuration is fetched once per lifetime.
 *
 * @example
 * const relay = new OhttpRelay({ url: "https://relay.example/gateways/cps" });
 * const cps = new CpsClient({ baseUrl: "https://cps.example.com", relay });
 */
export class OhttpRelay {
  readonly url: string;
  readonly keysUrl: string;
  readonly #fetch: FetchLike;
  readonly #now: () => number;
  #config: { value: KeyConfig; expiresAt: number } | undefined;
  #loading: Promise<KeyConfig> | undefined;

  constructor(options: RelayOptions & { fetch?: FetchLike; now?: () => number }) {
    this.url = options.url.replace(/\/+$/, "");
    this.keysUrl = options.keysUrl ?? `${this.url}/keys`;
    for (const u of [this.url, this.keysUrl]) {
      let parsed: URL;
      try {
        parsed = new URL(u);
      } catch {
        throw new TypeError("The relay URL must be an absolute http(s) URL");
      }
      if (parsed.protocol !== "https:" && parsed.protocol !== "http:")
        throw new TypeError("The relay URL must be an absolute http(s) URL");
    }
    this.#fetch = options.fetch ?? ((input, init) => fetch(input, init));
    this.#now = options.now ?? Date.now;
  }

  /** The gateway's key configuration, from cache while fresh (its max-age, RFC 9458 §3.2). */
  async #keyConfig(): Promise<KeyConfig> {
    const cached = this.#config;
    if (cached !== undefined && cached.expiresAt > this.#now()) return cached.value;
    this.#loading ??= this.#loadKeyConfig().finally(() => {
      this.#loading = undefined;
    });
    return this.#loading;
  }

  async #loadKeyConfig(): Promise<KeyConfig> {
    // Its own timeout, not one caller's signal: concurrent requests share this one fetch.
    const res = await this.#fetch(this.keysUrl, {
      headers: { accept: MEDIA_TYPE_KEYS },
      signal: AbortSignal.timeout(KEY_FETCH_TIMEOUT_MS),
    });
    if (!res.ok) {
      await res.body?.cancel();
      throw new Error(`the relay answered ${res.status} for the gateway's key configuration`);
    }
    // Throws OhttpError MALFORMED / UNSUPPORTED_SUITE: a configuration this client cannot use.
    const value = selectKeyConfig(parseKeyConfigs(new Uint8Array(await res.arrayBuffer())));
    const ttl = Math.min(
      cacheLifetime(res.headers, this.#now(), DEFAULT_KEY_CACHE_SECONDS),
      MAX_KEY_CACHE_SECONDS,
    );
    this.#config = { value, expiresAt: this.#now() + ttl * 1000 };
    return value;
  }

  /** Forgets the cached key configuration (the gateway rotated its keys). */
  forgetKeys(): void {
    this.#config = undefined;
  }

  /**
   * A FetchLike that sends `input` through the relay. Rejects (like a network failure) when the relay
   * or the gateway cannot be reached or answers outside OHTTP; resolves to the CPS's own answer,
   * whatever its status. A key configuration problem (RFC 9458 §5.3: the gateway rotated its keys)
   * fetches the key configuration again and tries once more: nothing reached the CPS's API.
   */
  fetch: FetchLike = async (input, init) => {
    const req = new Request(input, init);
    // RFC 9292 known-length message; scheme, authority (the CPS origin) and path come from the URL.
    // encodeRequest pads to the request bucket (issue 19 item 4), so ordinary requests look alike.
    const padded = encodeRequest(await requestFromFetch(req));
    for (let attempt = 0; ; attempt++) {
      const config = await this.#keyConfig();
      const { encapsulatedRequest, context } = await encapsulateRequest(config, padded);
      const res = await this.#fetch(this.url, {
        method: "POST",
        headers: { "content-type": MEDIA_TYPE_REQUEST },
        body: encapsulatedRequest,
        signal: req.signal,
      });
      const type = (res.headers.get("content-type") ?? "").split(";")[0]?.trim().toLowerCase();
      if (res.status === 200 && type === MEDIA_TYPE_RESPONSE) {
        // A tampered or truncated answer throws here (DECRYPT_FAILED / MALFORMED): a lost answer.
        const plain = await context.decapsulateResponse(new Uint8Array(await res.arrayBuffer()));
        return responseToFetch(decodeResponse(plain));
      }
      if (attempt === 0 && (await isKeyConfigProblem(res))) {
        this.forgetKeys();
        continue;
      }
      await res.body?.cancel().catch(() => {});
      throw new Error(`the relay answered ${res.status} outside Oblivious HTTP`);
    }
  };
}

/**
 * RFC 9458 §5.3: a gateway signals a key configuration it no longer serves with the problem type
 * `...#ohttp-key` (this CPS: 400 with that type); 422 is the status the RFC's example uses.
 */
async function isKeyConfigProblem(res: Response): Promise<boolean> {
  if (res.status === 422) return true;
  if (res.status !== 400 || !(res.headers.get("content-type") ?? "").includes("json")) return false;
  try {
    const body = (await res.json()) as { type?: unknown };
    return body.type === OHTTP_KEY_PROBLEM_TYPE;
  } catch {
    return false;
  }
}

/** The relay of `options` as one shared instance (a plain `{ url }` becomes an `OhttpRelay`). */
export function relayFor(
  relay: RelayOptions | OhttpRelay | undefined,
  fetch: FetchLike | undefined,
): OhttpRelay | undefined {
  if (relay === undefined || relay instanceof OhttpRelay) return relay;
  return new OhttpRelay({ ...relay, ...(fetch ? { fetch } : {}) });
}

/** The error of a send refused because a relay is required and none is configured. */
export function relayRequired(): StirClientError {
  return new StirClientError(
    "RELAY_REQUIRED",
    "A relay is required (requireRelay) and none is configured: nothing was sent",
  );
}
