/**
 * HTTP client for the CPS API v1 (docs/wire-format.md §3): store, list and fetch sealed PASSporTs,
 * and obtain storage tokens (docs/tokens.md). The one HTTP path of the client library: discovery,
 * the key directory, the AS, VS and the token wallet all send through `request`.
 *
 * `fetch` is injectable (a Workers service binding's `fetch`, a test double). Every non-2xx answer
 * becomes a `CpsError` carrying the problem document's `code` and the HTTP status; a network failure,
 * a timeout or an answer that is not what the API promises becomes a `CpsUnavailableError`.
 * No Node-only imports: this runs on Node >= 20, in browsers and in Workers.
 */
import { CpsError, type CpsErrorCode } from "../errors.js";
import { encodeEnvelope } from "../stir/envelope.js";
import { feedbackBody } from "../stir/feedback.js";
import type { CanonicalTn } from "../stir/tn.js";
import { CpsUnavailableError } from "./errors.js";
import { type OhttpRelay, type RelayTransportOptions, relayFor, relayRequired } from "./relay.js";

export { CpsUnavailableError } from "./errors.js";

/** Longest a retry honours a busy CPS's Retry-After: a later answer is no use to a call. */
const MAX_RETRY_AFTER_MS = 5_000;

/** The fetch signature the client library uses (global fetch, a service binding, a test double). */
export type FetchLike = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

/** `GET /tokens/keys` answer (docs/tokens.md §1). */
export interface IssuerKeysDocument {
  keys: {
    id: string;
    suite: string;
    publicKey: string;
    notBefore: string;
    notAfter: string;
    status: string;
  }[];
  limits: { maxUses: number; maxUsesPerNumber: number; windowSeconds: number; batchMax: number };
}

/** One entry of `GET /cps/{tn}/ppts`. */
export interface ListedBlob {
  readonly id: string;
  /** base64url text of the 1072-byte envelope. */
  readonly blob: string;
}

/** Answer to a successful store. */
export interface StoredBlob {
  readonly id: string;
  /** Path of the stored blob (`/cps/{tn}/ppts/{id}`). */
  readonly location: string;
  /** When the CPS stops serving it. */
  readonly expires: Date;
  /** Requests it took: more than 1 when an answer was lost and the same request was sent again. */
  readonly attempts: number;
}

export interface CpsClientOptions extends RelayTransportOptions {
  /** Base URL of the CPS, e.g. `https://cps.example.com` (no trailing `/cps`). */
  readonly baseUrl: string;
  readonly fetch?: FetchLike;
  /** Per-request timeout, milliseconds (default 10,000). */
  readonly timeoutMs?: number;
  /**
   * Times a store is sent again after a lost answer (network failure, timeout, 5xx); default 2.
   * Safe: the retry is the identical request, which the CPS counts once (docs/tokens.md).
   */
  readonly storeRetries?: number;
  /**
   * Times a token issuance (`POST /tokens`) is sent again after a lost answer; default 2. Each try
   * carries a fresh credential token (they are single use). Not free: a lost answer the CPS did
   * sign was charged to the issuance quota, and its tokens are lost with it.
   */
  readonly issueRetries?: number;
  /** Wait before the first retry, doubled for each next one, milliseconds (default 100). */
  readonly retryDelayMs?: number;
}

const KNOWN_STATUS_TEXT = /^[A-Z][A-Z0-9_]{1,63}$/;

/** Turns a non-2xx response into a CpsError from its problem+json body (RFC 9457). */
export async function errorFromResponse(res: Response): Promise<CpsError> {
  let code: CpsErrorCode = res.status >= 500 ? "INTERNAL" : "INVALID_BODY";
  let title = `The service answered ${res.status}`;
  try {
    const type = res.headers.get("content-type") ?? "";
    if (type.includes("json")) {
      const body = (await res.json()) as { code?: unknown; title?: unknown };
      // A code this client does not know yet is still passed on as is: the union is not closed
      // across versions, and callers compare codes as strings.
      if (typeof body.code === "string" && KNOWN_STATUS_TEXT.test(body.code))
        code = body.code as CpsErrorCode;
      if (typeof body.title === "string" && body.title.length <= 200) title = body.title;
    } else {
      await res.body?.cancel();
    }
  } catch {
    // Unreadable body: keep the status-derived code.
  }
  const retry = Number(res.headers.get("retry-after"));
  return new CpsError(code, title, {
    status: res.status,
    ...(Number.isFinite(retry) && retry > 0 ? { retryAfter: retry } : {}),
  });
}

function stripSlash(url: string): string {
  return url.replace(/\/+$/, "");
}

/**
 * A small typed client for one CPS.
 *
 * @example
 * const cps = new CpsClient({ baseUrl: "https://cps.example.com" });
 * const { id } = await cps.store(canonicalTn("+2 222 555 2222"), blob);
 * const entries = await cps.list(canonicalTn("22225552222"));
 */
export class CpsClient {
  readonly baseUrl: string;
  readonly #fetch: FetchLike;
  /** When set, every request goes through this Oblivious HTTP relay (docs/ohttp.md). */
  readonly relay: OhttpRelay | undefined;
  readonly #requireRelay: boolean;
  readonly #timeoutMs: number;
  readonly #storeRetries: number;
  readonly #issueRetries: number;
  readonly #retryDelayMs: number;

  constructor(options: CpsClientOptions) {
    this.baseUrl = stripSlash(options.baseUrl);
    this.#fetch = options.fetch ?? ((input, init) => fetch(input, init));
    this.relay = relayFor(options.relay, options.fetch);
    this.#requireRelay = options.requireRelay ?? false;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#storeRetries = Math.max(0, Math.floor(options.storeRetries ?? 2));
    this.#issueRetries = Math.max(0, Math.floor(options.issueRetries ?? 2));
    this.#retryDelayMs = Math.max(0, options.retryDelayMs ?? 100);
  }

  /**
   * Sends a request to `path` on this CPS, through the relay when one is configured (the same
   * answer comes back either way); maps transport failures to CpsUnavailableError. With
   * `requireRelay` and no relay it sends nothing and throws `RELAY_REQUIRED`.
   */
  async request(path: string, init: RequestInit = {}): Promise<Response> {
    if (this.relay === undefined && this.#requireRelay) throw relayRequired();
    const url = `${this.baseUrl}${path}`;
    const send = this.relay?.fetch ?? this.#fetch;
    let res: Response;
    try {
      res = await send(url, { ...init, signal: init.signal ?? AbortSignal.timeout(this.#timeoutMs) });
    } catch (cause) {
      const via = this.relay ? ` through the relay ${this.relay.url}` : "";
      throw new CpsUnavailableError(`Could not reach ${this.baseUrl}${via}`, url.split("?")[0] ?? url, {
        cause,
      });
    }
    if (!res.ok) throw await errorFromResponse(res);
    return res;
  }

  /**
   * `request`, sent again when the answer is lost (network failure, timeout, 5xx), up to `retries`
   * times, after `retryDelayMs` doubling or a 503's Retry-After (at most 5 s), whichever is longer.
   * A 4xx is final. `init` is built per try (a token issuance needs a fresh credential token).
   */
  async #retrying(
    path: string,
    retries: number,
    init: () => RequestInit | Promise<RequestInit>,
  ): Promise<{ res: Response; attempts: number }> {
    for (let attempt = 1; ; attempt++) {
      try {
        return { res: await this.request(path, await init()), attempts: attempt };
      } catch (err) {
        const lost = err instanceof CpsUnavailableError || (err instanceof CpsError && err.status >= 500);
        if (!lost || attempt > retries) throw err;
        // A busy CPS (503) says how long to wait; at most MAX_RETRY_AFTER_MS, since a call is waiting.
        const asked = err instanceof CpsError && err.retryAfter !== undefined ? err.retryAfter * 1000 : 0;
        const backoff = this.#retryDelayMs * 2 ** (attempt - 1);
        await new Promise((r) => setTimeout(r, Math.max(backoff, Math.min(asked, MAX_RETRY_AFTER_MS))));
      }
    }
  }

  /** The JSON body of `res`; an answer that is not JSON is a `CpsUnavailableError`. */
  async #json<T>(res: Response): Promise<T> {
    try {
      return (await res.json()) as T;
    } catch (cause) {
      throw new CpsUnavailableError("The service answered with something that is not JSON", res.url, {
        cause,
      });
    }
  }

  /** GET and parse JSON, refusing an answer that is not JSON. */
  async getJson<T>(
    path: string,
    headers: Record<string, string> = {},
  ): Promise<{ body: T; response: Response }> {
    const res = await this.request(path, { headers: { accept: "application/json", ...headers } });
    return { body: await this.#json<T>(res), response: res };
  }

  /**
   * Stores one sealed blob (`POST /cps/{tn}/ppts`); `headers` carry the storage token, if any.
   * When the answer is lost (network failure, timeout, 5xx) the very same request is sent again, up
   * to `storeRetries` times, after `retryDelayMs` doubling or a 503's Retry-After (at most 5 s): the
   * CPS recognises it and answers the first store's id without spending the token again
   * (docs/tokens.md "Retried stores"). A 4xx is final and never retried.
   * @example
   * await cps.store(tn, await sealPassport(key, tn, jws), await wallet.headersForStore(tn, blob));
   */
  async store(
    tn: CanonicalTn,
    blob: Uint8Array | string,
    headers: Record<string, string> = {},
  ): Promise<StoredBlob> {
    const init = {
      method: "POST",
      headers: { "content-type": "application/passport", ...headers },
      body: typeof blob === "string" ? blob : encodeEnvelope(blob),
    };
    const { res, attempts } = await this.#retrying(`/cps/${tn}/ppts`, this.#storeRetries, () => init);
    const body = (await res.json().catch(() => ({}))) as { id?: unknown; expires?: unknown };
    const location = res.headers.get("location") ?? "";
    if (typeof body.id !== "string" || typeof body.expires !== "string") {
      throw new CpsUnavailableError("The store answer has no id", `${this.baseUrl}/cps`);
    }
    return { id: body.id, location, expires: new Date(body.expires), attempts };
  }

  /**
   * The CPS's storage-token issuer keys and spend limits (`GET /tokens/keys`, docs/tokens.md §1).
   * @example
   * const current = (await cps.tokenKeys()).keys.find((k) => k.status === "current");
   */
  async tokenKeys(): Promise<IssuerKeysDocument> {
    const body = await this.#json<Partial<IssuerKeysDocument>>(await this.request("/tokens/keys"));
    if (!Array.isArray(body.keys) || typeof body.limits !== "object" || body.limits === null) {
      throw new CpsUnavailableError("The token keys answer has no keys", `${this.baseUrl}/tokens/keys`);
    }
    return body as IssuerKeysDocument;
  }

  /**
   * Blind signatures for a batch of blinded token messages (`POST /tokens`, docs/tokens.md §3), in
   * order. `authorization` gives the `Authorization` header value (`Bearer <credential token>`,
   * action `tokens:issue`); it is called once per try, since credential tokens are single use. A lost
   * answer is retried like a store (`issueRetries`, Retry-After); a 4xx (`ISSUANCE_QUOTA`, `AUTH_*`)
   * is final.
   * @example
   * const sigs = await cps.issueTokens(current.id, blinded.map(encodeBase64url), authorization);
   */
  async issueTokens(
    keyId: string,
    blindedMessages: readonly string[],
    authorization: () => Promise<string>,
  ): Promise<string[]> {
    const body = JSON.stringify({ keyId, blindedMessages });
    const { res } = await this.#retrying("/tokens", this.#issueRetries, async () => ({
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: await authorization() },
      body,
    }));
    const answer = await this.#json<{ blindSignatures?: unknown }>(res);
    const sigs = answer.blindSignatures;
    if (
      !Array.isArray(sigs) ||
      sigs.length !== blindedMessages.length ||
      sigs.some((s) => typeof s !== "string")
    ) {
      throw new CpsUnavailableError(
        "The token answer has the wrong number of signatures",
        `${this.baseUrl}/tokens`,
      );
    }
    return sigs as string[];
  }

  /**
   * Every blob for a number, real ones and dummies alike (`GET /cps/{tn}/ppts`).
   * @example
   * for (const { id, blob } of await cps.list(tn)) console.log(id, blob.length);
   */
  async list(tn: CanonicalTn): Promise<ListedBlob[]> {
    const { body } = await this.getJson<{ passports?: unknown }>(`/cps/${tn}/ppts`);
    if (!Array.isArray(body.passports)) {
      throw new CpsUnavailableError("The list answer has no passports", `${this.baseUrl}/cps`);
    }
    return body.passports.filter(
      (p): p is ListedBlob =>
        p !== null && typeof p === "object" && typeof p.id === "string" && typeof p.blob === "string",
    );
  }

  /**
   * One blob as base64url text (`GET /cps/{tn}/ppts/{id}`).
   * @example
   * const text = await cps.get(tn, "3f2a0c9d1e7b4a6f8c5d2e1b0a9f8e7d");
   */
  async get(tn: CanonicalTn, id: string): Promise<string> {
    const res = await this.request(`/cps/${tn}/ppts/${encodeURIComponent(id)}`, {
      headers: { accept: "application/passport" },
    });
    return (await res.text()).replace(/\s+/g, "");
  }

  /**
   * Reports a blob whose PASSporT is bogus (`POST /feedback`, docs/tokens.md "Feedback"): the blob as
   * stored under `tn` and its KEM shared secret (`openPassportForReport`). No credential; through the
   * relay when one is configured. Resolves with how many tokens the report newly revoked (0 for a
   * report already made); throws the CPS's refusal (`FEEDBACK_NOT_BOGUS`, `FEEDBACK_UNKNOWN`, ...).
   * Not retried: a report is rare and a lost answer can be sent again by the caller (a replay is harmless).
   * @example
   * const { revoked } = await cps.report(tn, blob, opened.secret);
   */
  async report(
    tn: CanonicalTn,
    blob: Uint8Array,
    secret: Uint8Array,
  ): Promise<{ revoked: number; already: number; reason?: string }> {
    const res = await this.request("/feedback", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: feedbackBody(tn, blob, secret),
    });
    const body = await this.#json<{ revoked?: unknown; already?: unknown; reason?: unknown }>(res);
    if (typeof body.revoked !== "number" || typeof body.already !== "number") {
      throw new CpsUnavailableError("The feedback answer has no count", `${this.baseUrl}/feedback`);
    }
    return {
      revoked: body.revoked,
      already: body.already,
      ...(typeof body.reason === "string" ? { reason: body.reason } : {}),
    };
  }

  /** `GET /health`: resolves when the CPS answers 200. */
  async health(): Promise<void> {
    const res = await this.request("/health");
    await res.body?.cancel();
  }
}
