/**
 * Concurrent requests for one key share one promise until it settles, so a burst of verifications
 * of one caller costs one fetch (x5u certificates, CRLs). A settled promise is forgotten at once:
 * caching the value is the caller's business, with its own lifetime rules.
 */
export class SingleFlight<T> {
  readonly #pending = new Map<string, Promise<T>>();

  /** The promise already under way for `key`, or `load()`'s, shared until it settles. */
  run(key: string, load: () => Promise<T>): Promise<T> {
    const pending = this.#pending.get(key);
    if (pending !== undefined) return pending;
    const p = load().finally(() => this.#pending.delete(key));
    this.#pending.set(key, p);
    return p;
  }
}
