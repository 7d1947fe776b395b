/**
 * Byte helpers shared by the protocol code, the gateway and the relay: joining byte strings, and
 * reading a body with a size cap (a hostile peer's body is never read past its limit).
 */

export function concatBytes(...parts: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const p of parts) length += p.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/** Thrown by `readLimited` when a body is over its limit. */
export class BodyTooLarge extends Error {}

/**
 * Reads a body of at most `maxBytes`: refused on its declared length first, then while streaming.
 * With `drainUpTo` (bytes) an oversized body is read and dropped up to that bound before the stream
 * is cancelled, so a server's connection stays usable for the sender's next request.
 */
export async function readLimited(
  body: ReadableStream<Uint8Array> | null,
  declaredLength: string | null,
  maxBytes: number,
  drainUpTo = 0,
): Promise<Uint8Array> {
  if (declaredLength !== null && Number(declaredLength) > maxBytes) throw new BodyTooLarge();
  if (body === null) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      while (total < drainUpTo) {
        const more = await reader.read();
        if (more.done) throw new BodyTooLarge();
        total += more.value.byteLength;
      }
      await reader.cancel().catch(() => undefined);
      throw new BodyTooLarge();
    }
    chunks.push(value);
  }
  return concatBytes(...chunks);
}
