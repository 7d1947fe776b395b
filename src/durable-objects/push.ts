/**
 * Push delivery shared by PassportQueue (one number) and BlockQueue (a block of 10^4 numbers):
 * hibernatable WebSocket subscribers (RFC 8816 §5.5 "subscription/notification interface").
 *
 * - Frames are JSON text `{"type":"passport","id","tn","blob"}`, the same shape and length for real
 *   blobs and dummies: nothing but the callee's private key tells them apart.
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
import { encodeEnvelope } from "../stir/envelope.js";

/** Mean gap between stream dummies. */
export const DUMMY_MEAN_MS = 10_000;
/** Sockets per object; beyond this a subscribe gets 429 (the runtime allows 32,768). */
export const MAX_SUBSCRIBERS_PER_OBJECT = 1_000;

export interface PushBlob {
  id: string;
  tn: string;
  blob: Uint8Array;
}

/** The one frame format for real blobs and dummies: key order and lengths are fixed. */
export function pushFrame(p: PushBlob): string {
  return JSON.stringify({ type: "passport", id: p.id, tn: p.tn, blob: encodeEnvelope(p.blob) });
}

/** Sends to each socket without waiting; returns how many sends the runtime accepted. */
export function broadcast(sockets: Iterable<WebSocket>, frame: string): number {
  let sent = 0;
  for (const ws of sockets) {
    try {
      ws.send(frame);
      sent++;
    } catch {
      // Closing or closed: the runtime delivers webSocketClose/Error and drops it.
    }
  }
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

/** Completes the close handshake the client started (ignored if the runtime already did). */
export function closeQuietly(ws: WebSocket, code: number): void {
  try {
    // 1005/1006 are "no code"/"abnormal" and may not be sent back.
    ws.close(code === 1005 || code === 1006 ? 1000 : code, "bye");
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
