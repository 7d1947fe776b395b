/** The soak's mix, its fixed sizes and timings, and the numbers it stores to (see bench/load.mjs). */
import { progressLog } from "../lib/report.mjs";

export const SHARES = { issue: 0.02, store: 0.18, "get-id": 0.34, "list-live": 0.28, "list-empty": 0.18 };
export const MIX = Object.keys(SHARES);
/** Requests that are not part of the offered mix: the wallet's key fetch and the verification extras. */
export const EXTRA = ["token-keys", "verify-get-id", "verify-list"];
export const WHAT = {
  issue: "POST /tokens (TokenWallet.refill, 3 blinded messages)",
  store: "POST /cps/{tn}/ppts with a storage token, one of 100 numbers",
  "get-id": "GET /cps/{tn}/ppts/{id} of a stored blob",
  "list-live": "GET /cps/{tn}/ppts of a number holding blobs",
  "list-empty": "GET /cps/{tn}/ppts of a number never stored to",
  "token-keys": "GET /tokens/keys, sent by each refill (not in the mix)",
  "verify-get-id": "by-id checks the mix did not take in time, and all after the traffic",
  "verify-list": "list checks the mix did not take in time, and all after the traffic",
};
export const TOKEN_BATCH = 3;
export const USES_PER_TOKEN = 5;
export const PREFILL_SECONDS = 5;
export const STORE_NUMBERS = 100;
export const EMPTY_NUMBERS = 10_000;
export const GRACE_MS = 2_000;
export const REQUEST_TIMEOUT_MS = 15_000;
export const FALLBACK_LAG_MS = 250;
export const CHECK_TICK_MS = 100;
export const PROGRESS_EVERY_MS = 5_000;
export const DRAIN_SLACK_MS = 15_000;
export const MIN_REQUESTS = 100;

export const progress = progressLog("load");
export const randInt = (n) => Math.floor(Math.random() * n);
/** The i-th of the STORE_NUMBERS numbers stores go to. */
export const storeNumber = (i) => `1555060${String(i).padStart(4, "0")}`;
/** A random one of the EMPTY_NUMBERS numbers never stored to. */
export const emptyNumber = () => `1555070${String(randInt(EMPTY_NUMBERS)).padStart(4, "0")}`;

/** The `code` of an RFC 9457 problem body, or undefined. */
export function problemCode(text) {
  try {
    const code = JSON.parse(text)?.code;
    return typeof code === "string" ? code : undefined;
  } catch {
    return undefined;
  }
}

/** What a request that got no HTTP answer is counted as. */
export function transportStatus(err) {
  if (err?.name === "TimeoutError") return "timeout";
  return `network ${err?.cause?.code ?? err?.name ?? "error"}`;
}
