/**
 * The start/stop bookkeeping shared by the client's daemons (cover.ts `CoverTraffic`, decoys.ts
 * `DecoyPoller`): one timer for the next planned event, and the jobs in flight, which `stop` lets
 * finish. What to plan and when stays with each daemon (`schedule`).
 */
export abstract class Daemon {
  #timer: ReturnType<typeof setTimeout> | undefined;
  #running = false;
  readonly #inflight = new Set<Promise<void>>();

  /** Plans the next event with `after`; `start` calls it first, each event's callback again. */
  protected abstract schedule(): void;

  get running(): boolean {
    return this.#running;
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.schedule();
  }

  /** Stops scheduling and waits for the jobs in flight. */
  async stop(): Promise<void> {
    this.#running = false;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    await Promise.allSettled([...this.#inflight]);
  }

  /** Runs `fn` after `delayMs` unless stopped by then (the one timer `stop` clears). */
  protected after(delayMs: number, fn: () => void): void {
    this.#timer = setTimeout(() => {
      if (this.#running) fn();
    }, delayMs);
  }

  /** Keeps `job` until it settles, so `stop` waits for it. */
  protected track(job: Promise<void>): void {
    this.#inflight.add(job);
    void job.finally(() => this.#inflight.delete(job));
  }
}
