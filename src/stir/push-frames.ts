/**
 * The push stream's wire format (RFC 8816 §5.5 "subscription/notification interface";
 * docs/push-and-blocks.md "Frames"), shared by the CPS's Durable Objects and the client's `watch`.
 * Pure: no bindings, no I/O.
 *
 * - A frame is one blob as JSON, `{"type":"passport","id","tn","blob"}`, with a fixed key order, so
 *   real blobs and dummies of one stream have one length.
 * - A WebSocket message carries one or more frames, one per line: stores that overlap in one object
 *   go out together.
 * - Flow control: the client says how many characters it has received with `ack <n>` at least every
 *   {@link ACK_EVERY_CHARS}; the CPS closes a socket that falls {@link MAX_UNACKED_CHARS} behind with
 *   {@link SLOW_READER_CLOSE_CODE}, so a reader that stopped reading cannot make the runtime queue
 *   bytes for it without bound. The client reconnects and gets every live blob again.
 *   Frames are ASCII, so characters are bytes.
 */
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

/** How often the client acknowledges: every 256 Ki characters received (about 180 frames). */
export const ACK_EVERY_CHARS = 256 * 1024;
/** How far a socket may fall behind its last acknowledgement before the CPS closes it. */
export const MAX_UNACKED_CHARS = 4 * 1024 * 1024;
/** Close code for a socket that fell too far behind (4000-4999: application codes). */
export const SLOW_READER_CLOSE_CODE = 4008;

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
      if (f.type !== "passport" || typeof f.id !== "string" || !/^[0-9a-f]{32}$/.test(f.id)) continue;
      if (typeof f.blob !== "string") continue;
      out.push(typeof f.tn === "string" ? { id: f.id, tn: f.tn, blob: f.blob } : { id: f.id, blob: f.blob });
    } catch {
      // not JSON: dropped
    }
  }
  return out;
}

/** The client's acknowledgement of `received` characters on this connection. */
export function ackMessage(received: number): string {
  return `ack ${received}`;
}

/** The count an `ack <n>` message carries, or null for any other message. */
export function parseAck(message: string): number | null {
  const m = /^ack (\d{1,15})$/.exec(message);
  return m ? Number(m[1]) : null;
}
