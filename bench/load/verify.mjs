/**
 * The soak's check: every blob stored (201) must be served, with its bytes, by id and in its number's
 * list while live, and by neither once expired (plus the alarm's grace). See bench/load.mjs.
 */
import { GRACE_MS, randInt } from "./config.mjs";

/** A binary min-heap of checks by `dueAt`. */
class DueHeap {
  items = [];
  get size() {
    return this.items.length;
  }
  peek() {
    return this.items[0];
  }
  push(item) {
    const a = this.items;
    a.push(item);
    for (let i = a.length - 1; i > 0; ) {
      const p = (i - 1) >> 1;
      if (a[p].dueAt <= a[i].dueAt) break;
      [a[p], a[i]] = [a[i], a[p]];
      i = p;
    }
  }
  pop() {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0) {
      a[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && a[l].dueAt < a[m].dueAt) m = l;
        if (r < a.length && a[r].dueAt < a[m].dueAt) m = r;
        if (m === i) break;
        [a[m], a[i]] = [a[i], a[m]];
        i = m;
      }
    }
    return top;
  }
}

/**
 * Every blob stored (201) and its four checks: `liveId`, `liveList` (served while live) and `goneId`,
 * `goneList` (not served after expiry + grace); each is undefined until decided, then "ok" or "fail".
 * Checks wait in two heaps by the time they fall due; a blob leaves `tracked` once both gone checks
 * are decided.
 */
export class Verifier {
  blobs = new Map();
  /** tn -> Set of tracked blobs: every list answer for tn is judged against all of them. */
  byTn = new Map();
  tracked = [];
  heaps = { Id: new DueHeap(), List: new DueHeap() };
  open = 0;
  seen = { lost: 0, lingering: 0, corrupt: 0 };

  /** @param {number} marginMs live checks fall due in [stored, expiry - 2 x margin] */
  constructor(marginMs) {
    this.marginMs = marginMs;
  }

  track(tn, id, text, expiresAt, storedAt) {
    const b = {
      id,
      tn,
      text,
      expiresAt,
      checks: { liveId: undefined, liveList: undefined, goneId: undefined, goneList: undefined },
      inflight: {},
      slot: this.tracked.length,
    };
    this.blobs.set(id, b);
    this.tracked.push(b);
    if (!this.byTn.has(tn)) this.byTn.set(tn, new Set());
    this.byTn.get(tn).add(b);
    this.open += 4;
    const liveUntil = Math.max(storedAt, expiresAt - 2 * this.marginMs);
    for (const via of ["Id", "List"]) {
      this.heaps[via].push({
        b,
        kind: `live${via}`,
        dueAt: storedAt + Math.random() * (liveUntil - storedAt),
      });
      this.heaps[via].push({ b, kind: `gone${via}`, dueAt: expiresAt + GRACE_MS });
    }
  }

  randomTracked() {
    return this.tracked[randInt(this.tracked.length)];
  }

  /**
   * Judges one observation of blob b through `via` ("Id" or "List"): served (with `text`) or not, by
   * a request sent at t0 and answered at t1 (wall clock, as the server's expiry). An answer before the
   * expiry must serve it; a request sent GRACE_MS after it must not; anything in between decides nothing.
   */
  observe(b, via, served, text, t0, t1) {
    if (served && text !== b.text) this.#flag(b, "corrupt");
    if (t1 < b.expiresAt) {
      if (!served) this.#flag(b, "lost");
      this.#settle(b, `live${via}`, served ? "ok" : "fail");
    } else if (t0 >= b.expiresAt + GRACE_MS) {
      if (served) this.#flag(b, "lingering");
      this.#settle(b, `gone${via}`, served ? "fail" : "ok");
    }
  }

  /** Judges a list answer for tn against every tracked blob of tn. */
  observeList(tn, passports, t0, t1) {
    const served = new Map(passports.map((p) => [p?.id, p?.blob]));
    for (const b of [...(this.byTn.get(tn) ?? [])]) {
      this.observe(b, "List", served.has(b.id), served.get(b.id), t0, t1);
    }
  }

  /** The earliest open check through `via` that fell due by `at`, or null. */
  due(via, at) {
    const heap = this.heaps[via];
    while (heap.size > 0 && heap.peek().dueAt <= at) {
      const e = heap.pop();
      if (e.b.checks[e.kind] === undefined && !e.b.inflight[e.kind]) return e;
    }
    return null;
  }

  /** Puts check e back to fall due at `at` (e.g. refused at the in-flight cap). */
  defer(e, at) {
    this.heaps[e.kind.endsWith("Id") ? "Id" : "List"].push({ ...e, dueAt: at });
  }

  /** After an attempt at check e: if still open, try again soon (a live check only while live). */
  retryIfOpen(e) {
    if (e.b.checks[e.kind] !== undefined) return;
    const at = Date.now();
    if (e.kind.startsWith("live") && at >= e.b.expiresAt - 50) return;
    this.defer(e, at + 100);
  }

  /** Whether some check may still be decided: the heaps hold gone checks up to the last expiry + grace. */
  get waiting() {
    return this.heaps.Id.size + this.heaps.List.size > 0;
  }

  lastExpiry() {
    let last = 0;
    for (const b of this.blobs.values()) last = Math.max(last, b.expiresAt);
    return last;
  }

  summary() {
    const all = [...this.blobs.values()];
    const count = (pred) => all.filter(pred).length;
    return {
      blobsStored: all.length,
      blobsLost: this.seen.lost,
      blobsLingering: this.seen.lingering,
      blobsCorrupt: this.seen.corrupt,
      blobsUnverified: count((b) => Object.values(b.checks).includes(undefined)),
      liveById: count((b) => b.checks.liveId === "ok"),
      liveInList: count((b) => b.checks.liveList === "ok"),
      goneById: count((b) => b.checks.goneId === "ok"),
      goneFromList: count((b) => b.checks.goneList === "ok"),
      undecided: Object.fromEntries(
        ["liveId", "liveList", "goneId", "goneList"].map((k) => [k, count((b) => b.checks[k] === undefined)]),
      ),
      graceMs: GRACE_MS,
      liveCheckMarginMs: this.marginMs,
    };
  }

  #flag(b, what) {
    if (!b[what]) this.seen[what]++;
    b[what] = true;
  }

  #settle(b, kind, verdict) {
    if (b.checks[kind] === undefined) this.open--;
    if (b.checks[kind] !== "fail") b.checks[kind] = verdict;
    if (b.slot >= 0 && b.checks.goneId !== undefined && b.checks.goneList !== undefined) this.#untrack(b);
  }

  #untrack(b) {
    this.byTn.get(b.tn)?.delete(b);
    const last = this.tracked.pop();
    if (last !== b) {
      this.tracked[b.slot] = last;
      last.slot = b.slot;
    }
    b.slot = -1;
  }
}
