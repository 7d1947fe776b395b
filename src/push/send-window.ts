/**
 * The sending side of a push socket (RFC 8816 §5.5; frames and flow control: stir/push-frames.ts).
 *
 * Sending never blocks a store: `ws.send` only queues bytes in the runtime; nothing awaits a client,
 * and a send that throws (socket closing or gone) is ignored. A dead socket is dropped by the runtime
 * (webSocketClose / webSocketError) and costs nothing after that.
 */
import {
  MARK_EVERY_CHARS,
  MAX_UNACKED_CHARS,
  markMessage,
  newMark,
  parseAck,
  SLOW_READER_CLOSE_CODE,
} from "../stir/push-frames.js";

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
 * observes: a client cannot acknowledge bytes it did not read, whatever it sends.
 *
 * A socket more than MAX_UNACKED_CHARS behind is closed (4008) instead of sent to: the runtime queues
 * at most greeting + MAX_UNACKED_CHARS for a reader that stopped, and stores never wait for it. The
 * greeting is not held against the socket (a block's greeting alone may pass the cap, and a reader
 * cannot answer its mark before the next push arrives); it is bounded by the list caps, and
 * anonymous greetings by the object's greeting budget (admission.ts).
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

/** Closes, or completes the close handshake the client started (ignored if already closed). */
export function closeQuietly(ws: WebSocket, code: number, reason = "bye"): void {
  try {
    // 1005/1006 are "no code"/"abnormal" and may not be sent back.
    ws.close(code === 1005 || code === 1006 ? 1000 : code, reason);
  } catch {
    // already closed
  }
}
