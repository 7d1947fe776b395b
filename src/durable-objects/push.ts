/**
 * Push delivery shared by PassportQueue (one number) and BlockQueue (a block of 10^4 numbers):
 * hibernatable WebSocket subscribers (RFC 8816 §5.5 "subscription/notification interface").
 *
 * - Frames are JSON text `{"type":"passport","id","tn","blob"}`, the same shape and length for real
 *   blobs and dummies: nothing but the callee's private key tells them apart. A WebSocket message
 *   carries one or more frames, one per line: stores that overlap in one object are sent together,
 *   and a busy object paces its streams to a send budget (PushBatch), so 100 subscribers cost a
 *   bounded number of sends per second, not 100 per store.
 * - Sending never blocks a store: `ws.send` only queues bytes in the runtime; we never await a client,
 *   and a send that throws (socket closing or gone) is ignored. A dead socket is dropped by the runtime
 *   (webSocketClose / webSocketError) and costs nothing after that.
 * - Dummies at exponential intervals (mean {@link DUMMY_MEAN_MS}) come from the object's one alarm, and
 *   only while at least one socket is attached: an object with no subscribers schedules nothing, and an
 *   alarm costs one short wake-up, whereas a per-socket timer would keep the object from hibernating.
 *   The same dummy goes to every socket of a stream, as a real blob does, so two subscribers comparing
 *   notes learn nothing either.
 *
 * Platform limits relied on: a hibernated object keeps its accepted sockets (up to 32,768 per object)
 * and their `serializeAttachment` state (at most 2,048 bytes) and is woken for messages, closes and
 * alarms; memory is lost on hibernation, so nothing here lives only in memory.
 */
import { CpsError, problemResponse } from "../errors.js";
import {
  joinFrames,
  MAX_UNACKED_CHARS,
  type PushBlob,
  parseAck,
  pushFrame,
  SLOW_READER_CLOSE_CODE,
} from "../stir/push-frames.js";

export { type PushBlob, pushFrame };

/** Mean gap between stream dummies. */
export const DUMMY_MEAN_MS = 10_000;
/** Sockets per object; beyond this a subscribe gets 429 (the runtime allows 32,768). */
export const MAX_SUBSCRIBERS_PER_OBJECT = 1_000;

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

/**
 * Characters sent to and acknowledged by each socket (push-frames.ts "Flow control"). In memory only:
 * after a hibernation both counts start again from the client's next acknowledgement, which errs on
 * the lenient side. A socket more than MAX_UNACKED_CHARS behind is closed instead of sent to, so a
 * reader that stopped reading costs the runtime a bounded queue, and stores never wait for it.
 */
export class SendWindow {
  private readonly counts = new Map<WebSocket, { sent: number; acked: number }>();

  /** Sends `message` unless `ws` is too far behind (then closes it); true if sent. */
  send(ws: WebSocket, message: string): boolean {
    let c = this.counts.get(ws);
    if (!c) {
      c = { sent: 0, acked: 0 };
      this.counts.set(ws, c);
    }
    if (c.sent - c.acked + message.length > MAX_UNACKED_CHARS) {
      this.counts.delete(ws);
      closeQuietly(ws, SLOW_READER_CLOSE_CODE, "slow reader: send `ack <characters received>`");
      return false;
    }
    try {
      ws.send(message);
    } catch {
      return false; // closing or closed: the runtime delivers webSocketClose/Error and drops it
    }
    c.sent += message.length;
    return true;
  }

  /**
   * Sends a new socket its greeting (the live blobs and a dummy), which is not held against it: a
   * block's greeting alone may pass the cap, and the client acknowledges it only as it reads on. The
   * runtime's queue for a reader that stops is bounded by greeting + MAX_UNACKED_CHARS.
   */
  greet(ws: WebSocket, message: string): void {
    this.counts.set(ws, { sent: message.length, acked: message.length });
    try {
      ws.send(message);
    } catch {
      // closed already
    }
  }

  /** Takes a client message; true if it was an acknowledgement (anything else is ignored). */
  receive(ws: WebSocket, message: string | ArrayBuffer): boolean {
    const n = typeof message === "string" ? parseAck(message) : null;
    if (n === null) return false;
    const c = this.counts.get(ws);
    if (c) c.acked = Math.min(c.sent, Math.max(c.acked, n));
    return true;
  }

  forget(ws: WebSocket): void {
    this.counts.delete(ws);
  }
}

/** Sends to each socket without waiting; returns how many sends went out. */
export function broadcast(window: SendWindow, sockets: Iterable<WebSocket>, message: string): number {
  let sent = 0;
  for (const ws of sockets) if (window.send(ws, message)) sent++;
  return sent;
}

/** Exponential delay with mean DUMMY_MEAN_MS (WebCrypto randomness), clamped to [0.1, 10] x mean. */
export function nextDummyDelay(meanMs = DUMMY_MEAN_MS): number {
  const [r] = crypto.getRandomValues(new Uint32Array(1));
  const u = (r! + 1) / 2 ** 32; // (0, 1]
  return Math.min(10 * meanMs, Math.max(0.1 * meanMs, -Math.log(u) * meanMs));
}

/** Checks the request is a WebSocket upgrade and the object has room for one more socket. */
export function checkUpgrade(request: Request, sockets: number): Response | null {
  if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket") {
    const res = problemResponse(new CpsError("UPGRADE_REQUIRED", "Subscribe with a WebSocket upgrade"));
    res.headers.set("Upgrade", "websocket");
    return res;
  }
  if (sockets >= MAX_SUBSCRIBERS_PER_OBJECT) {
    return problemResponse(
      new CpsError("TOO_MANY_SUBSCRIBERS", "Too many subscribers for this number", { retryAfter: 30 }),
    );
  }
  return null;
}

/** Closes, or completes the close handshake the client started (ignored if already closed). */
export function closeQuietly(ws: WebSocket, code: number, reason = "bye"): void {
  try {
    // 1005/1006 are "no code"/"abnormal" and may not be sent back.
    ws.close(code === 1005 || code === 1006 ? 1000 : code, reason);
  } catch {
    // already closed
  }
}

/** Tiny key/value table for the few per-object facts that must survive hibernation. */
export class MetaTable {
  static readonly SCHEMA = "CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);";
  constructor(private readonly sql: SqlStorage) {}

  get(k: string): string | null {
    const rows = this.sql.exec<{ v: string }>("SELECT v FROM meta WHERE k = ?", k).toArray();
    return rows[0]?.v ?? null;
  }

  set(k: string, v: string | null): void {
    if (v === null) this.sql.exec("DELETE FROM meta WHERE k = ?", k);
    else
      this.sql.exec(
        "INSERT INTO meta (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
        k,
        v,
      );
  }
}
