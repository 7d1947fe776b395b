/** The soak's requests: the five kinds of the mix and the checks' own, each timed and judged. */
import {
  emptyNumber,
  problemCode,
  REQUEST_TIMEOUT_MS,
  randInt,
  STORE_NUMBERS,
  storeNumber,
  transportStatus,
} from "./config.mjs";

/** Sends the mix's requests and the checks' own requests to the CPS at url, and judges the answers. */
export class Traffic {
  inFlight = 0;
  pending = new Set();
  /** Failures of this script itself (a bug here, not an answer of the CPS). */
  clientErrors = [];
  emptyListEntries = {};

  constructor({ url, stats, verifier, client, maxInFlight }) {
    Object.assign(this, { url, stats, verifier, client, maxInFlight });
  }

  /** Launches one request of the mix now, unless the in-flight cap is reached. */
  launch(op) {
    this.stats.ops[op].scheduled++;
    if (this.inFlight >= this.maxInFlight) this.stats.skip(op, "cap");
    else this.#keep(this[op]());
  }

  /** Sends, on their own, open checks that fell due more than `lagMs` ago and no request took. */
  sendOverdueChecks(lagMs) {
    const at = Date.now();
    for (const [via, op] of [
      ["Id", "verify-get-id"],
      ["List", "verify-list"],
    ]) {
      for (let e = this.verifier.due(via, at - lagMs); e; e = this.verifier.due(via, at - lagMs)) {
        if (this.inFlight >= this.maxInFlight) {
          this.stats.skip(op, "cap");
          this.verifier.defer(e, at + 100);
          break;
        }
        this.stats.ops[op].scheduled++;
        this.#keep(this.#check(op, e));
      }
    }
  }

  /** Resolves once every request sent so far has been answered. */
  async settled() {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }

  // The five kinds of the mix.

  async issue() {
    const s = this.stats.ops.issue;
    s.sent++;
    this.inFlight++;
    try {
      await this.client.issue();
    } finally {
      this.inFlight--;
    }
  }

  async store() {
    const ticket = this.client.takeTicket();
    if (!ticket) return this.stats.skip("store", "no-ticket");
    const r = await this.#http("store", `/cps/${ticket.tn}/ppts`, {
      method: "POST",
      headers: { "Content-Type": "application/passport", ...ticket.headers },
      body: ticket.text,
    });
    if (r.status !== 201) return;
    let body;
    try {
      body = JSON.parse(r.text);
    } catch {
      body = {};
    }
    const expiresAt = Date.parse(body.expires);
    if (typeof body.id !== "string" || !Number.isFinite(expiresAt)) return this.stats.unusable("store", 201);
    this.verifier.track(ticket.tn, body.id, ticket.text, expiresAt, r.t1);
  }

  async "get-id"() {
    const e = this.verifier.due("Id", Date.now());
    if (e) return this.#check("get-id", e);
    const b = this.verifier.randomTracked();
    if (b) return this.#getById("get-id", b);
    // Nothing stored yet: an id nobody holds (404).
    const id = Array.from({ length: 32 }, () => randInt(16).toString(16)).join("");
    await this.#http("get-id", `/cps/${emptyNumber()}/ppts/${id}`);
  }

  async "list-live"() {
    const e = this.verifier.due("List", Date.now());
    if (e) return this.#check("list-live", e);
    const b = this.verifier.randomTracked();
    await this.#list("list-live", b ? b.tn : storeNumber(randInt(STORE_NUMBERS)));
  }

  async "list-empty"() {
    const passports = await this.#list("list-empty", emptyNumber());
    if (passports)
      this.emptyListEntries[passports.length] = (this.emptyListEntries[passports.length] ?? 0) + 1;
  }

  // Plumbing.

  async #check(op, e) {
    e.b.inflight[e.kind] = true;
    try {
      if (e.kind.endsWith("Id")) await this.#getById(op, e.b);
      else await this.#list(op, e.b.tn);
    } finally {
      e.b.inflight[e.kind] = false;
      this.verifier.retryIfOpen(e);
    }
  }

  async #getById(op, b) {
    const r = await this.#http(op, `/cps/${b.tn}/ppts/${b.id}`, {
      headers: { accept: "application/passport" },
    });
    if (r.status === 200 || r.status === 404) {
      this.verifier.observe(b, "Id", r.status === 200, r.text.replace(/\s+/g, ""), r.t0, r.t1);
    }
  }

  async #list(op, tn) {
    const r = await this.#http(op, `/cps/${tn}/ppts`, { headers: { accept: "application/json" } });
    if (r.status !== 200) return null;
    let passports;
    try {
      passports = JSON.parse(r.text).passports;
    } catch {
      // judged below
    }
    if (!Array.isArray(passports)) {
      this.stats.unusable(op, 200);
      return null;
    }
    this.verifier.observeList(tn, passports, r.t0, r.t1);
    return passports;
  }

  /** One request; its status (and problem code) and latency go to the stats. t0/t1: wall clock. */
  async #http(op, path, init = {}) {
    this.stats.ops[op].sent++;
    this.inFlight++;
    const t0 = Date.now();
    const p0 = performance.now();
    let status;
    let text = "";
    try {
      const res = await fetch(`${this.url}${path}`, {
        ...init,
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
      text = await res.text();
      status = res.status;
    } catch (err) {
      status = transportStatus(err);
    } finally {
      this.inFlight--;
    }
    const ms = performance.now() - p0;
    const code = typeof status === "number" && status >= 400 ? problemCode(text) : undefined;
    this.stats.record(op, status, code, ms);
    return { status, text, t0, t1: Date.now() };
  }

  #keep(promise) {
    const p = promise
      .catch((err) => {
        this.clientErrors.push(String(err?.stack ?? err));
      })
      .finally(() => this.pending.delete(p));
    this.pending.add(p);
  }
}
