/**
 * The part of RFC 8816 §8.1 shared by the AS, the gateway (§8.3) and the diverting service: seal each
 * PASSporT once per destination key (step 4), pay one storage token per store, store every blob at the
 * CPS, and report success only when all stores succeeded ("Only after that is completed should any
 * call be initiated"); for the gateway and the diverting service, discovery (step 3) before it.
 */
import { StirOobError } from "../errors.js";
import { sealPassportWithTag } from "../stir/envelope.js";
import { encodeFeedbackTag, FEEDBACK_TAG_HEADER } from "../stir/feedback.js";
import { TOKEN_HEADER } from "../stir/storage-token.js";
import type { CanonicalTn } from "../stir/tn.js";
import { CpsClient, type FetchLike } from "./cps-client.js";
import type { DestinationKey, Discovery } from "./discovery.js";
import { StirClientError } from "./errors.js";
import { type KeyRecordCheck, requireUsableKeys, type SkippedKey } from "./key-records.js";
import type { RelayTransportOptions } from "./relay.js";
import { type StoreTokenSource, untokenedStores } from "./store-tokens.js";

/** One stored copy: which key it was sealed to and where the CPS keeps it. */
export interface StoredCopy {
  /** Key id (thumbprint) of the destination key this copy was sealed to. */
  readonly kid: string;
  /** Index of the PASSporT in the input list (a gateway may store several for one call). */
  readonly passport: number;
  readonly id: string;
  readonly location: string;
  readonly expires: Date;
}

export interface PlacementTimings {
  /** HPKE sealing of every copy, ms. */
  seal: number;
  /** Spending tokens (signing each store with its K_temp), ms. */
  tokens: number;
  /** The stores at the CPS, ms. */
  store: number;
}

/** Milliseconds since an arbitrary origin; `performance.now` exists on Node, browsers and Workers. */
export function clock(): number {
  return performance.now();
}

/** Rounds a duration to 0.01 ms for reports. */
export function ms(start: number, end = clock()): number {
  return Math.round((end - start) * 100) / 100;
}

/**
 * Seals every PASSporT to every key, pays for and stores each blob at `cps`. Throws
 * `StirClientError("NO_KEYS")` without keys and `StirClientError("STORE_FAILED")` (with the copies that
 * were stored in `details.stored`) when any store fails.
 */
export async function sealAndStore(input: {
  cps: string;
  tn: CanonicalTn;
  passports: readonly string[];
  keys: readonly DestinationKey[];
  tokens: StoreTokenSource;
  fetch?: FetchLike;
  relay?: RelayTransportOptions["relay"];
  requireRelay?: boolean;
  /**
   * Send each tokened store's feedback tag (`CPS-Feedback-Tag`, docs/tokens.md "Feedback"), so a callee
   * can report a bogus blob and the CPS revoke the token that paid for it. Default true; a function
   * decides per PASSporT (by its index in `passports`).
   */
  feedbackTags?: boolean | ((passportIndex: number) => boolean);
}): Promise<{ stored: StoredCopy[]; timings: PlacementTimings }> {
  const { cps, tn, passports, keys, tokens } = input;
  if (keys.length === 0) {
    throw new StirClientError("NO_KEYS", "No encryption key is registered for the called number");
  }
  let t = clock();
  const jobs = passports.flatMap((passport, index) => keys.map((key) => ({ passport, index, key })));
  // Each blob's feedback tag is an HPKE export of its own sender context (RFC 9180 §5.3).
  const sealed = await Promise.all(jobs.map((j) => sealPassportWithTag(j.key.publicKey, tn, j.passport)));
  const blobs = sealed.map((s) => s.blob);
  const seal = ms(t);

  t = clock();
  await tokens.prefetch?.(cps, blobs.length);
  const headers: Record<string, string>[] = [];
  for (const blob of blobs) {
    try {
      headers.push(await tokens.headersForStore(cps, tn, blob));
    } catch (cause) {
      // An error with a code (WALLET_EMPTY, NO_CREDENTIAL, a CPS answer) says more than NO_TOKEN.
      if (cause instanceof StirOobError) throw cause;
      throw new StirClientError("NO_TOKEN", "No storage token is available for this store", { cause });
    }
  }
  const tokenMs = ms(t);
  // The tag goes with tokened stores only: an untokened store (local development) has no token to revoke.
  const tagged = input.feedbackTags ?? true;
  if (tagged !== false) {
    sealed.forEach((s, i) => {
      const h = headers[i];
      const index = jobs[i]?.index ?? 0;
      if (tagged !== true && !tagged(index)) return;
      if (h && Object.keys(h).some((k) => k.toLowerCase() === TOKEN_HEADER.toLowerCase())) {
        headers[i] = { ...h, [FEEDBACK_TAG_HEADER]: encodeFeedbackTag(s.tag) };
      }
    });
  }

  t = clock();
  const client = new CpsClient({
    baseUrl: cps,
    ...(input.fetch ? { fetch: input.fetch } : {}),
    ...(input.relay ? { relay: input.relay } : {}),
    ...(input.requireRelay ? { requireRelay: true } : {}),
  });
  const results = await Promise.allSettled(blobs.map((blob, i) => client.store(tn, blob, headers[i])));
  const store = ms(t);
  const stored: StoredCopy[] = [];
  let failure: unknown;
  results.forEach((r, i) => {
    const job = jobs[i];
    if (r.status === "fulfilled" && job) stored.push({ kid: job.key.kid, passport: job.index, ...r.value });
    else if (r.status === "rejected") failure ??= r.reason;
  });
  if (failure !== undefined) {
    throw new StirClientError(
      "STORE_FAILED",
      `${results.length - stored.length} of ${results.length} stores failed; do not rely on out-of-band for this call`,
      { cause: failure, details: { stored } },
    );
  }
  return { stored, timings: { seal, tokens: tokenMs, store } };
}

/**
 * §8.1 steps 3-4 for one called number as the gateway (§8.3) and the diverting service run them:
 * the CPS and the keys whose signed records pass `check` (`NO_KEYS` / `NO_VALID_KEYS` otherwise),
 * then `sealAndStore` at that CPS, paid from `tokens` (default `untokenedStores`). `discover` is the
 * time discovery took, ms.
 */
export async function storeAtDestination(input: {
  discovery: Discovery;
  check: KeyRecordCheck;
  to: CanonicalTn;
  /** The call's time, seconds since the epoch (the key records are judged then). */
  nowSeconds: number;
  passports: readonly string[];
  tokens?: StoreTokenSource | undefined;
  fetch?: FetchLike | undefined;
  relay?: RelayTransportOptions["relay"] | undefined;
  requireRelay?: boolean | undefined;
  /** As `sealAndStore`'s. */
  feedbackTags?: boolean | ((passportIndex: number) => boolean) | undefined;
}): Promise<{
  cps: string;
  skipped: SkippedKey[];
  stored: StoredCopy[];
  timings: PlacementTimings;
  discover: number;
}> {
  const t = clock();
  const { cps, keys, skipped } = await input.discovery.destination(input.to, input.check, input.nowSeconds);
  requireUsableKeys(keys, skipped);
  const discover = ms(t);
  const { stored, timings } = await sealAndStore({
    cps,
    tn: input.to,
    passports: input.passports,
    keys,
    tokens: input.tokens ?? untokenedStores,
    ...(input.fetch ? { fetch: input.fetch } : {}),
    ...(input.relay ? { relay: input.relay } : {}),
    ...(input.requireRelay ? { requireRelay: true } : {}),
    ...(input.feedbackTags === undefined ? {} : { feedbackTags: input.feedbackTags }),
  });
  return { cps, skipped, stored, timings, discover };
}
