/**
 * Batching and pacing of push frames (RFC 8816 §5.5, docs/push-and-blocks.md "Pacing"). A WebSocket
 * message carries one or more frames, one per line: stores that overlap in one object are sent
 * together, and a busy object paces its streams to a send budget, so 100 subscribers cost a bounded
 * number of sends per second, not 100 per store.
 */
import { joinFrames } from "../stir/push-frames.js";
import { broadcast, type SendWindow } from "./send-window.js";

/** Longest a held frame waits for overlapping stores to settle before it is sent anyway. */
export const MAX_HOLD_MS = 5;

/**
 * Socket-messages per second an object spends on push before it paces its streams: a stream of an
 * object with n sockets gets at most one message every n / PUSH_SENDS_PER_S seconds, and frames
 * stored meanwhile wait and go together. An idle stream sends at once; with 100 subscribers a stream
 * sends at most 5 messages/s (frames wait up to 200 ms) however many stores arrive. Measured in
 * docs/push-and-blocks.md: the per-message cost in the runtime, not the bytes, is what slows stores.
 */
export const PUSH_SENDS_PER_S = 500;
/** Longest a frame waits for the send budget (reached with more than 125 sockets on one object). */
export const MAX_PACE_MS = 250;

/** Where a batch finds its sockets. */
export interface PushSockets {
  /** The sockets of one group: "" for a number's, the sub-block tag for a block's. */
  of(group: string): WebSocket[];
  /** Every socket of the object: its groups share one send budget. */
  count(): number;
}

/**
 * Frames held for sending, one message per socket group. Two reasons to hold a frame:
 * - overlap: a store awaits other objects (the block index, the alarm); stores that arrive meanwhile
 *   add their frames, and the first to settle once none is running (or after MAX_HOLD_MS) sends them;
 * - pace: a group is sent at most every `count() / sendsPerS` seconds (at most MAX_PACE_MS); frames
 *   that arrive sooner wait for one timer and go together.
 * So an object that is not busy sends each frame at once, and a busy one sends a bounded number of
 * messages per second whatever its store rate. Held frames are keyed by blob id: a socket accepted
 * while they wait leaves them out of its greeting and gets them with the held message, so one
 * connection never sees an id twice and never misses one.
 */
export class PushBatch {
  private readonly held = new Map<string, Map<string, string>>();
  private readonly lastSent = new Map<string, number>();
  private running = 0;
  private oldest = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly sockets: PushSockets,
    private readonly window: SendWindow,
    /** Socket-messages per second before pacing; lower in tests to make pacing visible. */
    public sendsPerS = PUSH_SENDS_PER_S,
  ) {}

  /** A store that may add frames has started; pair with `settle` in a `finally`. */
  begin(): void {
    this.running++;
  }

  add(group: string, id: string, frame: string): void {
    if (this.held.size === 0) this.oldest = Date.now();
    const frames = this.held.get(group);
    if (frames) frames.set(id, frame);
    else this.held.set(group, new Map([[id, frame]]));
  }

  /** Ids whose frames are held for `group`: a new socket's greeting leaves them out. */
  heldIds(group: string): ReadonlySet<string> {
    return new Set(this.held.get(group)?.keys());
  }

  /** A store has settled: sends what is due unless others still run and none waited long. */
  settle(): void {
    this.running--;
    if (this.held.size === 0) return;
    if (this.running > 0 && Date.now() - this.oldest < MAX_HOLD_MS) return;
    this.flush();
  }

  /** Sends every group whose pace allows, and sets one timer for the rest. */
  private flush(): void {
    const now = Date.now();
    // Counting the sockets lists them all (a block object may hold hundreds): only when some group
    // sent within MAX_PACE_MS, the longest gap, so an idle stream's store does not pay for it.
    let gap: number | undefined;
    let wait = Number.POSITIVE_INFINITY;
    for (const [group, frames] of this.held) {
      const last = this.lastSent.get(group);
      if (last !== undefined && now - last < MAX_PACE_MS) {
        gap ??= Math.min(MAX_PACE_MS, (1000 * this.sockets.count()) / this.sendsPerS);
        if (last + gap > now) {
          wait = Math.min(wait, last + gap - now);
          continue;
        }
      }
      broadcast(this.window, this.sockets.of(group), joinFrames([...frames.values()]));
      this.held.delete(group);
      this.lastSent.set(group, now);
    }
    // Forget groups that would be due anyway (a block object may see many sub-blocks come and go).
    if (this.lastSent.size > 64) {
      for (const [group, at] of this.lastSent) if (at + MAX_PACE_MS <= now) this.lastSent.delete(group);
    }
    if (this.held.size > 0 && this.timer === null) {
      // A pending timer keeps the object awake for at most MAX_PACE_MS: it cannot hibernate with
      // frames unsent.
      this.timer = setTimeout(() => {
        this.timer = null;
        this.flush();
      }, wait);
    }
  }
}
