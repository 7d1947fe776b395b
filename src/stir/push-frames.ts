/**
 * The push stream's wire format (RFC 8816 §5.5 "subscription/notification interface";
 * docs/push-and-blocks.md "Frames"), shared by the CPS's Durable Objects and the client's `watch`.
 * Pure: no bindings, no I/O.
 *
 * - A frame is one blob as JSON, `{"type":"passport","id","tn","blob"}`, with a fixed key order, so
 *   real blobs and dummies of one stream have one length.
 * - A WebSocket message carries one or more frames, one per line: stores that overlap in one object
 *   go out together.
 * - Flow control: after every {@link MARK_EVERY_CHARS} characters of frames the CPS sends a socket a
 *   separate message `mark <32 hex>`, a fresh random value for that socket alone; the client answers
 *   `ack <the same hex>`. A mark arrives only after every byte before it (one TCP stream, messages in
 *   order), so naming it proves those bytes were read: a count, a frame id (frames go to every socket
 *   of a stream, and real ids are listed) or another socket's mark proves nothing and counts nothing.
 *   The CPS closes a socket that falls {@link MAX_UNACKED_CHARS} behind its last answered mark with
 *   {@link SLOW_READER_CLOSE_CODE}, so a reader that stopped reading cannot make the runtime queue
 *   bytes for it without bound. The client reconnects and gets every live blob again.
 *   Frames are ASCII, so characters are bytes.
 */
import { BLOB_ID, newBlobId } from "./blob-id.js";
import { encodeEnvelope } from "./envelope.js";

export interface PushBlob {
  id: string;
  tn: string;
  blob: Uint8Array;
}

/** A frame as the client reads it: the blob still as envelope text. */
export interface PushFrameText {
  id: string;
  tn?: string;
  blob: string;
}

/** The CPS sends a socket a mark after at most this many characters of frames (about 180 frames). */
export const MARK_EVERY_CHARS = 256 * 1024;
/** How far a socket may fall behind its last answered mark before the CPS closes it (~2,800 frames). */
export const MAX_UNACKED_CHARS = 4 * 1024 * 1024;
/** Close code for a socket that fell too far behind (4000-4999: application codes). */
export const SLOW_READER_CLOSE_CODE = 4008;
/** Close code for an anonymous socket closed to make room for an authenticated subscriber. */
export const EVICTED_CLOSE_CODE = 4029;

/** The one frame format for real blobs and dummies: key order and lengths are fixed. */
export function pushFrame(p: PushBlob): string {
  return JSON.stringify({ type: "passport", id: p.id, tn: p.tn, blob: encodeEnvelope(p.blob) });
}

/** One message of several frames. */
export function joinFrames(frames: readonly string[]): string {
  return frames.join("\n");
}

/** The frames of a message that are well-formed passport frames; anything else is dropped. */
export function parseFrames(message: string): PushFrameText[] {
  const out: PushFrameText[] = [];
  for (const line of message.split("\n")) {
    try {
      const f = JSON.parse(line) as { type?: unknown; id?: unknown; blob?: unknown; tn?: unknown };
      if (f.type !== "passport" || typeof f.id !== "string" || !BLOB_ID.test(f.id)) continue;
      if (typeof f.blob !== "string") continue;
      out.push(typeof f.tn === "string" ? { id: f.id, tn: f.tn, blob: f.blob } : { id: f.id, blob: f.blob });
    } catch {
      // not JSON: dropped
    }
  }
  return out;
}

/** A fresh mark: 128 random bits, lowercase hex (never seen on any other socket), as a blob id. */
export function newMark(): string {
  return newBlobId();
}

/** The CPS's mark message. */
export function markMessage(mark: string): string {
  return `mark ${mark}`;
}

/** The mark a `mark <32 hex>` message carries, or null for any other message (frames, `pong`). */
export function parseMark(message: string): string | null {
  const m = /^mark ([0-9a-f]{32})$/.exec(message);
  return m ? m[1]! : null;
}

/** The client's acknowledgement of a mark it read. */
export function ackMessage(mark: string): string {
  if (!BLOB_ID.test(mark)) throw new TypeError("a mark is 32 lowercase hex digits");
  return `ack ${mark}`;
}

/** The mark an `ack <32 hex>` message names, or null for any other message. */
export function parseAck(message: string): string | null {
  const m = /^ack ([0-9a-f]{32})$/.exec(message);
  return m ? m[1]! : null;
}
