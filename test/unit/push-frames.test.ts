/** The push stream's wire format (src/stir/push-frames.ts; docs/push-and-blocks.md "Frames"). */
import { describe, expect, it } from "vitest";
import { newBlobId } from "../../src/stir/blob-id.js";
import { ENVELOPE_LENGTH, encodeEnvelope } from "../../src/stir/envelope.js";
import {
  ackMessage,
  joinFrames,
  markMessage,
  newMark,
  parseAck,
  parseFrames,
  parseMark,
  pushFrame,
} from "../../src/stir/push-frames.js";

const blob = () => crypto.getRandomValues(new Uint8Array(ENVELOPE_LENGTH));

describe("push frames", () => {
  it("round-trips one frame and several joined in one message, in order, each one length", () => {
    const blobs = Array.from({ length: 5 }, () => ({ id: newBlobId(), tn: "12025550100", blob: blob() }));
    const frames = blobs.map(pushFrame);
    expect(new Set(frames.map((f) => f.length)).size).toBe(1);
    expect(parseFrames(frames[0]!)).toEqual([
      { id: blobs[0]!.id, tn: "12025550100", blob: encodeEnvelope(blobs[0]!.blob) },
    ]);
    const parsed = parseFrames(joinFrames(frames));
    expect(parsed.map((f) => f.id)).toEqual(blobs.map((b) => b.id));
    expect(parsed.map((f) => f.blob)).toEqual(blobs.map((b) => encodeEnvelope(b.blob)));
  });

  it.each([
    ["not JSON", "pong"],
    ["wrong type", JSON.stringify({ type: "dummy", id: "0".repeat(32), blob: "x" })],
    ["id not 32 hex", JSON.stringify({ type: "passport", id: "ABC", blob: "x" })],
    ["blob not a string", JSON.stringify({ type: "passport", id: "0".repeat(32), blob: 1 })],
  ])("drops a line that is %s, keeps the good lines beside it", (_name, bad) => {
    const good = pushFrame({ id: newBlobId(), tn: "12025550100", blob: blob() });
    expect(parseFrames(bad)).toEqual([]);
    expect(parseFrames(joinFrames([bad, good, bad]))).toHaveLength(1);
  });

  it("marks and acknowledgements: `mark <hex>` and `ack <hex>` round-trip; counts and ids are not acks", () => {
    const mark = newMark();
    expect(mark).toMatch(/^[0-9a-f]{32}$/);
    expect(newMark()).not.toBe(mark);
    expect(parseMark(markMessage(mark))).toBe(mark);
    expect(parseAck(ackMessage(mark))).toBe(mark);
    expect(parseMark(ackMessage(mark))).toBeNull();
    expect(parseAck(markMessage(mark))).toBeNull();
    // A frame is never a mark, so a client that parses frames drops marks.
    expect(parseFrames(markMessage(mark))).toEqual([]);
    expect(() => ackMessage("262144")).toThrow(TypeError);
    for (const other of [
      "ack",
      "ack 262144", // the old count form: proves nothing, so it is not an acknowledgement
      "ack 999999999999999",
      `ack ${mark.toUpperCase()}`,
      `ack ${mark}0`,
      ` ack ${mark}`,
      `ack ${mark}\n`,
      "ping",
    ]) {
      expect(parseAck(other)).toBeNull();
    }
  });
});
