/**
 * Fisher-Yates with WebCrypto randomness, in place. Every answer that mixes real blobs with dummies
 * goes through it: position must not tell them apart (RFC 8816 §6.2).
 */
export function shuffle<T>(items: T[]): T[] {
  const rand = new Uint32Array(items.length);
  crypto.getRandomValues(rand);
  for (let i = items.length - 1; i > 0; i--) {
    const j = rand[i]! % (i + 1);
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}
