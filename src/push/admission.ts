/**
 * Who may open a push socket on an object (RFC 8816 §5.5; docs/push-and-blocks.md "Admission").
 * Limits per object, checked before any work and again in the stretch that accepts.
 */
import { CpsError, problemResponse } from "../errors.js";
import { EVICTED_CLOSE_CODE } from "../stir/push-frames.js";
import { closeQuietly } from "./send-window.js";

/** Sockets per object; beyond this a subscribe gets 429 (the runtime allows 32,768). */
export const MAX_SUBSCRIBERS_PER_OBJECT = 1_000;
/** Anonymous sockets per object: the other 100 are kept for authenticated (callee) subscribers. */
export const MAX_ANONYMOUS_SUBSCRIBERS = 900;
/** Tag of a socket whose upgrade carried a credential covering the number or block. */
export const CALLEE_TAG = "callee";
/**
 * Greeting characters per second an object sends to anonymous subscribers (2 Mi, about 1,400 frames),
 * and the most it may send at once (4 Mi). A greeting may overdraw the budget (a block's may hold
 * 10,000 frames); the next anonymous subscribe then waits until it is paid back.
 */
export const ANONYMOUS_GREETING_CHARS_PER_S = 2 * 1024 * 1024;
export const ANONYMOUS_GREETING_BURST_CHARS = 4 * 1024 * 1024;
/**
 * Least an anonymous greeting is charged, whatever its size: its decoys (cached per isolate) and its
 * message cost the object about the same for 1 frame or 20. So at most 64 small greetings/s.
 */
export const MIN_GREETING_CHARGE = 32 * 1024;

/**
 * Anonymous subscribers (§6.2 lets anyone poll; the blobs are sealed) get at most `maxAnonymous` of
 * the `maxSubscribers` sockets and a greeting budget of `greetingCharsPerS`; a subscriber whose
 * upgrade carried a credential covering the number or block (the route checked it; tagged
 * {@link CALLEE_TAG}) is never refused while an anonymous socket is open: on a full object one
 * anonymous socket, chosen at random, is closed with 4029 to make room. The budget is in memory (a
 * hibernated object wakes with a full one: it was idle for seconds).
 */
export class Admission {
  /** Lower in tests only. */
  maxSubscribers = MAX_SUBSCRIBERS_PER_OBJECT;
  maxAnonymous = MAX_ANONYMOUS_SUBSCRIBERS;
  greetingCharsPerS = ANONYMOUS_GREETING_CHARS_PER_S;
  greetingBurstChars = ANONYMOUS_GREETING_BURST_CHARS;
  private budget: number | null = null;
  private budgetAt = 0;

  /**
   * Decides an upgrade: a problem response refuses it, null admits it. With `evict` (the last check,
   * made in the same synchronous stretch as the accept) a callee on a full object closes an anonymous
   * socket; without it nothing changes, so an early check can refuse before any work is done.
   */
  admit(ctx: DurableObjectState, request: Request, callee: boolean, evict: boolean): Response | null {
    if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket") {
      const res = problemResponse(new CpsError("UPGRADE_REQUIRED", "Subscribe with a WebSocket upgrade"));
      res.headers.set("Upgrade", "websocket");
      return res;
    }
    const total = ctx.getWebSockets().length;
    if (callee) {
      if (total < this.maxSubscribers) return null;
      const open = ctx
        .getWebSockets()
        .filter(
          (ws) => ws.readyState === WebSocket.READY_STATE_OPEN && !ctx.getTags(ws).includes(CALLEE_TAG),
        );
      if (open.length === 0) return full();
      if (evict) {
        const [r] = crypto.getRandomValues(new Uint32Array(1));
        closeQuietly(
          open[r! % open.length]!,
          EVICTED_CLOSE_CODE,
          "room made for an authenticated subscriber",
        );
      }
      return null;
    }
    const anonymous = total - ctx.getWebSockets(CALLEE_TAG).length;
    if (total >= this.maxSubscribers || anonymous >= this.maxAnonymous) return full();
    const budget = this.refill();
    if (budget < MIN_GREETING_CHARGE) {
      const wait = Math.ceil((MIN_GREETING_CHARGE - budget) / this.greetingCharsPerS);
      return problemResponse(
        new CpsError("TOO_MANY_SUBSCRIBERS", "Too many new subscribers for this number: retry later", {
          retryAfter: Math.max(1, wait),
        }),
      );
    }
    return null;
  }

  /** Charges an anonymous greeting of `chars` characters against the budget (it may go below 0). */
  charge(chars: number): void {
    this.budget = this.refill() - Math.max(chars, MIN_GREETING_CHARGE);
  }

  private refill(): number {
    const now = Date.now();
    const prev = this.budget ?? this.greetingBurstChars;
    const at = this.budget === null ? now : this.budgetAt;
    this.budget = Math.min(this.greetingBurstChars, prev + ((now - at) / 1000) * this.greetingCharsPerS);
    this.budgetAt = now;
    return this.budget;
  }
}

function full(): Response {
  return problemResponse(
    new CpsError("TOO_MANY_SUBSCRIBERS", "Too many subscribers for this number", { retryAfter: 30 }),
  );
}
