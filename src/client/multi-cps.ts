/**
 * Several CPSes per number (RFC 8816 §10: "a carrier operates one or more CPS instances", a number
 * served by its carrier and by a third party): what the AS and the VS share when discovery names more
 * than one. The AS stores a fresh seal at each and proceeds per a `StorePolicy`; the VS retrieves from
 * each concurrently and merges. Neither waits for a slow or down CPS past a deadline once it has what
 * it needs (`settleUntil`). No Node-only imports.
 */
import { StirOobError } from "../errors.js";
import type { CanonicalTn } from "../stir/tn.js";
import { clock } from "./placement.js";
import type { StoreTokenSource } from "./store-tokens.js";

/** Default deadline, milliseconds from the start of the stores or retrievals (`cpsDeadlineMs`). */
export const DEFAULT_CPS_DEADLINE_MS = 2_000;

/**
 * How many of a number's CPSes must hold the call before it may proceed: `"all"` (the default, and
 * what a single CPS always meant), `"any"` (at least one), or `{ count }` (at least that many, at most
 * all of them). A store is attempted at every CPS in each case.
 */
export type StorePolicy = "all" | "any" | { readonly count: number };

/** Where a CPS of the number stands after the stores or the retrieval. */
export type CpsOutcome = "stored" | "answered" | "failed" | "timed-out";

/** A CPS's error, as reported: the stable code and the message. */
export interface CpsFault {
  readonly code: string;
  readonly message: string;
}

/** Stores (of the AS) that must succeed under `policy` out of `total` CPSes. */
export function requiredStores(policy: StorePolicy, total: number): number {
  if (policy === "all") return total;
  if (policy === "any") return Math.min(1, total);
  const { count } = policy;
  if (!Number.isInteger(count) || count < 1) throw new TypeError("storePolicy.count is a positive integer");
  return Math.min(count, total);
}

/** Checks a policy given by a caller (TypeError when it is none of the three shapes). */
export function checkStorePolicy(policy: unknown): StorePolicy {
  if (policy === "all" || policy === "any") return policy;
  const count = (policy as { count?: unknown } | null)?.count;
  if (typeof count === "number" && Number.isInteger(count) && count >= 1) return { count };
  throw new TypeError('storePolicy is "all", "any" or { count: n } with n >= 1');
}

/** Checks a deadline given by a caller: a finite number of milliseconds, 0 or more. */
export function checkDeadline(ms: unknown): number {
  if (ms === undefined) return DEFAULT_CPS_DEADLINE_MS;
  if (typeof ms !== "number" || !Number.isFinite(ms) || ms < 0) {
    throw new TypeError("cpsDeadlineMs is a number of milliseconds, 0 or more");
  }
  return ms;
}

/** The code and message of an error for a report (a CpsError code, else its name). */
export function faultOf(err: unknown): CpsFault {
  if (err instanceof StirOobError) return { code: err.code, message: err.message };
  if (err instanceof Error)
    return { code: err.name === "Error" ? "INTERNAL" : err.name, message: err.message };
  return { code: "INTERNAL", message: String(err) };
}

/**
 * Waits for `tasks` (one per CPS) until all have settled, or until `deadlineMs` after `started` has
 * passed AND `enough(results)` holds, whichever comes first; after the deadline it returns as soon as
 * `enough` holds. A task still running then is `undefined` in the result (timed out); it is not
 * cancelled, its outcome is ignored. So a slow or silent CPS holds the caller no longer than the
 * deadline once the others gave enough, and a CPS that is merely slow is still used when nothing else
 * answered. `decided(results)`, checked at every settlement, ends the wait at once (e.g. the AS's
 * policy can no longer be met).
 * @example
 * const r = await settleUntil(cpses.map(list), 2000, (rs) => rs.some((x) => x?.status === "fulfilled"));
 */
export function settleUntil<T>(
  tasks: readonly Promise<T>[],
  deadlineMs: number,
  enough: (results: readonly (PromiseSettledResult<T> | undefined)[]) => boolean,
  started: number = clock(),
  decided: (results: readonly (PromiseSettledResult<T> | undefined)[]) => boolean = () => false,
): Promise<(PromiseSettledResult<T> | undefined)[]> {
  const results: (PromiseSettledResult<T> | undefined)[] = tasks.map(() => undefined);
  let pending = tasks.length;
  let late = false;
  return new Promise((resolve) => {
    let done = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const check = () => {
      if (done || !(pending === 0 || (late && enough(results)) || decided(results))) return;
      done = true;
      if (timer !== undefined) clearTimeout(timer);
      resolve([...results]);
    };
    timer = setTimeout(
      () => {
        late = true;
        check();
      },
      Math.max(0, deadlineMs - (clock() - started)),
    );
    tasks.forEach((task, i) => {
      task.then(
        (value) => {
          results[i] = { status: "fulfilled", value };
          pending--;
          check();
        },
        (reason: unknown) => {
          results[i] = { status: "rejected", reason };
          pending--;
          check();
        },
      );
    });
    check();
  });
}

/**
 * A token source that pays each CPS with its own tokens: tokens are blind-signed by one CPS's issuer
 * and only that CPS accepts them (docs/tokens.md), so an AS storing to several CPSes needs a wallet
 * per CPS. `sourceFor` is asked once per CPS.
 * @example
 * const tokens = tokensPerCps((cps) => walletTokens(new TokenWallet({ cpsUrl: cps, authorization })));
 */
export function tokensPerCps(sourceFor: (cps: string) => StoreTokenSource): StoreTokenSource {
  const sources = new Map<string, StoreTokenSource>();
  const get = (cps: string) => {
    let s = sources.get(cps);
    if (s === undefined) {
      s = sourceFor(cps);
      sources.set(cps, s);
    }
    return s;
  };
  return {
    headersForStore: (cps: string, tn: CanonicalTn, blob: Uint8Array) =>
      get(cps).headersForStore(cps, tn, blob),
    prefetch: async (cps: string, count: number) => {
      await get(cps).prefetch?.(cps, count);
    },
  };
}
