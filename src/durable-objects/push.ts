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
 * - Dummies are the number's decoys (a block stream's: its cover number's; src/dummies/decoys.ts),
 *   each pushed at its birth by the object's one alarm, and only while at least one socket is
 *   attached: an object with no subscribers schedules nothing, and an alarm costs one short wake-up,
 *   whereas a per-socket timer would keep the object from hibernating.
 *   The same dummy goes to every socket of a stream, as a real blob does, so two subscribers comparing
 *   notes learn nothing either.
 *
 * Platform limits relied on: a hibernated object keeps its accepted sockets (up to 32,768 per object)
 * and their `serializeAttachment` state (at most 2,048 bytes) and is woken for messages, closes and
 * alarms; memory is lost on hibernation, so nothing here lives only in memory except the anonymous
 * greeting budget (Admission: an object that hibernated was idle, and wakes with a full one).
 */
import { CpsError, problemResponse } from "../errors.js";
import {
  EVICTED_CLOSE_CODE,
  joinFrames,
  MARK_EVERY_CHARS,
  MAX_UNACKED_CHARS,
  markMessage,
  newMark,
  type PushBlob,
  parseAck,
  pushFrame,
  SLOW_READER_CLOSE_CODE,
} from "../stir/push-frames.js";

export { type PushBlob, pushFrame };

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

/** A socket's flow-control state, kept in its attachment (field `f`) so hibernation cannot reset it. */
interface Flow {
  /** Characters of frames sent on this connection (the greeting included). */
  s: number;
  /** Characters covered by the last answered mark (the greeting counts as answered). */
  a: number;
  /** Characters sent since the last mark. */
  n: number;
  /** Marks sent and not yet answered, oldest first: [mark, characters sent when it went]. */
  m: [string, number][];
}

interface Tracked {
  flow: Flow;
  /** The rest of the socket's attachment, written back with the flow. */
  base: Record<string, unknown>;
}

/**
 * Characters sent to and proven read by each socket (push-frames.ts "Flow control"). After each
 * MARK_EVERY_CHARS of frames a socket gets its own random `mark`; only `ack <mark>` moves its
 * acknowledged count, to what had been sent when that mark went. So the count rests on what the CPS
 * observes: a client cannot acknowledge bytes it did not read, whatever it sends (finding 7).
 *
 * A socket more than MAX_UNACKED_CHARS behind is closed (4008) instead of sent to: the runtime queues
 * at most greeting + MAX_UNACKED_CHARS for a reader that stopped, and stores never wait for it. The
 * greeting is not held against the socket (a block's greeting alone may pass the cap, and a reader
 * cannot answer its mark before the next push arrives); it is bounded by the list caps, and
 * anonymous greetings by the object's greeting budget ({@link Admission}).
 *
 * State per socket: three counts and at most MAX_UNACKED_CHARS / MARK_EVERY_CHARS + 1 pending marks
 * (17), kept in memory and written to the socket's attachment on each send and answered mark, so an
 * object that hibernates and wakes resumes the same counts.
 */
export class SendWindow {
  private readonly tracked = new Map<WebSocket, Tracked>();
  /** Lower in tests only. */
  maxUnacked = MAX_UNACKED_CHARS;
  markEvery = MARK_EVERY_CHARS;

  /** Sends `message` unless `ws` is too far behind (then closes it); true if sent. */
  send(ws: WebSocket, message: string): boolean {
    const t = this.track(ws);
    if (!t) return false;
    const f = t.flow;
    if (f.s - f.a + message.length > this.maxUnacked) {
      this.tracked.delete(ws);
      closeQuietly(ws, SLOW_READER_CLOSE_CODE, "slow reader: answer each `mark <hex>` with `ack <hex>`");
      return false;
    }
    try {
      ws.send(message);
    } catch {
      return false; // closing or closed: the runtime delivers webSocketClose/Error and drops it
    }
    f.s += message.length;
    f.n += message.length;
    if (f.n >= this.markEvery) {
      const mark = newMark();
      f.m.push([mark, f.s]);
      // Never more than 17 with the constants (see above); a hard stop keeps the attachment < 2 KiB.
      if (f.m.length > 32) f.m.shift();
      f.n = 0;
      try {
        ws.send(markMessage(mark));
      } catch {
        // closing: as above
      }
    }
    this.save(ws, t);
    return true;
  }

  /**
   * Sends a new socket its greeting (the live blobs and the greeting dummies): counted as sent and
   * as answered (see the class comment). `base` is the attachment the socket was accepted with.
   */
  greet(ws: WebSocket, message: string, base: Record<string, unknown>): void {
    const t: Tracked = { flow: { s: message.length, a: message.length, n: 0, m: [] }, base };
    this.tracked.set(ws, t);
    this.save(ws, t);
    try {
      ws.send(message);
    } catch {
      // closed already
    }
  }

  /**
   * Takes a client message; true if it was an acknowledgement (anything else is ignored). An ack
   * naming a pending mark of this socket moves its count; any other ack counts nothing.
   */
  receive(ws: WebSocket, message: string | ArrayBuffer): boolean {
    const mark = typeof message === "string" ? parseAck(message) : null;
    if (mark === null) return false;
    const t = this.track(ws);
    if (!t) return true;
    const i = t.flow.m.findIndex(([m]) => m === mark);
    if (i >= 0) {
      t.flow.a = Math.max(t.flow.a, t.flow.m[i]![1]);
      t.flow.m.splice(0, i + 1); // earlier marks are covered too
      this.save(ws, t);
    }
    return true;
  }

  forget(ws: WebSocket): void {
    this.tracked.delete(ws);
  }

  /** The socket's state: in memory, else from its attachment (after a wake-up). */
  private track(ws: WebSocket): Tracked | null {
    let t = this.tracked.get(ws);
    if (t) return t;
    let base: Record<string, unknown>;
    try {
      base = (ws.deserializeAttachment() as Record<string, unknown> | null) ?? {};
    } catch {
      return null; // not an accepted socket
    }
    const f = base.f as Flow | undefined;
    const { f: _, ...rest } = base;
    t = {
      flow: f && Array.isArray(f.m) ? f : { s: 0, a: 0, n: 0, m: [] },
      base: rest,
    };
    this.tracked.set(ws, t);
    return t;
  }

  private save(ws: WebSocket, t: Tracked): void {
    try {
      ws.serializeAttachment({ ...t.base, f: t.flow });
    } catch {
      // closed: nothing to keep
    }
  }
}

/** Sends to each socket without waiting; returns how many sends went out. */
export function broadcast(window: SendWindow, sockets: Iterable<WebSocket>, message: string): number {
  let sent = 0;
  for (const ws of sockets) if (window.send(ws, message)) sent++;
  return sent;
}

/**
 * Who may open a socket on an object (finding 8). Anonymous subscribers (§6.2 lets anyone poll; the
 * blobs are sealed) get at most `maxAnonymous` of the `maxSubscribers` sockets and a greeting budget
 * of `greetingCharsPerS`; a subscriber whose upgrade carried a credential covering the number or
 * block (the route checked it; tagged {@link CALLEE_TAG}) is never refused while an anonymous socket
 * is open: on a full object one anonymous socket, chosen at random, is closed with 4029 to make room.
 * The budget is in memory (a hibernated object wakes with a full one: it was idle for seconds).
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
