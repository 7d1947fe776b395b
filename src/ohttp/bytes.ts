/**
 * Byte helpers shared by the key configuration, encapsulation and Binary HTTP code: a bounds-checked
 * reader (every read past the end is a MALFORMED OhttpError, never a RangeError) and QUIC variable-length
 * integers (RFC 9000 §16), which RFC 9292 §3 uses for every length.
 */
import { OhttpError } from "./errors.js";

export { concatBytes } from "../stir/bytes.js";

export function uint16(value: number): Uint8Array {
  return Uint8Array.of(value >>> 8, value & 0xff);
}

/** RFC 9000 §16: the shortest encoding of `value` (at most 2^53 - 1 here: lengths, status codes). */
export function encodeVarint(value: number): Uint8Array {
  if (!Number.isSafeInteger(value) || value < 0) throw new OhttpError("MALFORMED", "Not a varint value");
  if (value < 0x40) return Uint8Array.of(value);
  if (value < 0x4000) return Uint8Array.of(0x40 | (value >>> 8), value & 0xff);
  if (value < 0x40000000) {
    return Uint8Array.of(0x80 | (value >>> 24), (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff);
  }
  const out = new Uint8Array(8);
  const view = new DataView(out.buffer);
  view.setUint32(0, Math.floor(value / 2 ** 32));
  view.setUint32(4, value >>> 0);
  out[0]! |= 0xc0;
  return out;
}

export class Reader {
  private offset = 0;

  constructor(
    private readonly bytes: Uint8Array,
    private readonly what: string,
  ) {}

  get remaining(): number {
    return this.bytes.length - this.offset;
  }

  get position(): number {
    return this.offset;
  }

  private fail(): OhttpError {
    return new OhttpError("MALFORMED", `The ${this.what} is truncated or malformed`);
  }

  take(length: number): Uint8Array {
    if (!Number.isSafeInteger(length) || length < 0 || length > this.remaining) throw this.fail();
    const out = this.bytes.subarray(this.offset, this.offset + length);
    this.offset += length;
    return out;
  }

  u8(): number {
    return this.take(1)[0]!;
  }

  u16(): number {
    const b = this.take(2);
    return (b[0]! << 8) | b[1]!;
  }

  /** RFC 9000 §16; a value beyond 2^53 - 1 cannot be a length that fits in memory: MALFORMED. */
  varint(): number {
    const first = this.take(1)[0]!;
    const size = 1 << (first >>> 6);
    let value = first & 0x3f;
    const rest = this.take(size - 1);
    for (const b of rest) value = value * 256 + b;
    if (!Number.isSafeInteger(value)) throw this.fail();
    return value;
  }

  /** The rest of the input, consumed. */
  rest(): Uint8Array {
    return this.take(this.remaining);
  }
}
