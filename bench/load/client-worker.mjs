/**
 * The main thread's side of the client worker thread (bench/load/worker.mjs), which holds the token
 * wallet and seals the blobs: the CPU-heavy client work, kept off the thread that times requests.
 */
import { Worker } from "node:worker_threads";
import { bundle } from "../../src/dev/ts-module.mjs";

/**
 * The client library for the worker thread, bundled by esbuild into a temporary directory; the caller
 * removes `dir` once the worker has loaded it.
 */
export function bundleClient() {
  return bundle({
    name: "load-client",
    source: `
        export { TokenWallet } from "./src/client/token-wallet.ts";
        export { issueCredentialToken } from "./src/stir/credential-token.ts";
        export { encodeEnvelope, generateRecipientKeyPair, sealPassport } from "./src/stir/envelope.ts";
        export { createTestPki } from "./src/stir/test-pki.ts";
        export { canonicalTn } from "./src/stir/tn.ts";
        export { RFC8816_EXAMPLE_PASSPORT } from "./test/helpers/cps.ts";`,
  });
}

export class ClientWorker {
  failure = null;
  tickets = [];
  issueClientMs = [];
  #outstanding = 0;
  #issues = new Map();
  #seq = 0;
  #waiters = new Map();
  #failed;

  /** @param {{ bundle: string, ticketTarget: number, onHttp: (msg: object) => void }} options */
  constructor({ bundle, ticketTarget, onHttp }) {
    this.ticketTarget = ticketTarget;
    this.worker = new Worker(new URL("./worker.mjs", import.meta.url), { workerData: { bundle } });
    this.#failed = new Promise((_, reject) => {
      const fail = (err) => {
        this.failure ??= err;
        reject(err);
      };
      this.worker.on("error", fail);
      this.worker.on("message", (msg) => {
        if (msg.type === "fatal") fail(new Error(msg.message));
        else if (msg.type === "http") onHttp(msg);
        else if (msg.type === "tickets") {
          this.#outstanding -= msg.tickets.length;
          this.tickets.push(...msg.tickets);
        } else if (msg.type === "issued") {
          this.issueClientMs.push(msg.ms);
          this.#issues.get(msg.seq)?.(msg);
          this.#issues.delete(msg.seq);
        } else this.#waiters.get(msg.type)?.(msg);
      });
    });
    this.#failed.catch(() => {});
  }

  /** The next message of `type` ("pki", "ready"), or the worker's failure. */
  next(type) {
    return Promise.race([new Promise((resolve) => this.#waiters.set(type, resolve)), this.#failed]);
  }

  /** Creates the wallet for the CPS at url and prefills it; resolves with the tokens held. */
  async start(url, numbers, prefill) {
    this.worker.postMessage({ type: "start", url, numbers, prefill });
    return (await this.next("ready")).tokens;
  }

  /** A ready-to-send store request, or undefined; asks for more to stay `ticketTarget` ahead. */
  takeTicket() {
    const ticket = this.tickets.shift();
    this.topUp();
    return ticket;
  }

  topUp() {
    const want = this.ticketTarget - this.tickets.length - this.#outstanding;
    if (want > 0) {
      this.#outstanding += want;
      this.worker.postMessage({ type: "want", n: want });
    }
  }

  /** One TokenWallet.refill in the worker; resolves when it is done (or failed). */
  issue() {
    const seq = ++this.#seq;
    const done = new Promise((resolve) => this.#issues.set(seq, resolve));
    this.worker.postMessage({ type: "issue", seq });
    return done;
  }

  terminate() {
    return this.worker.terminate();
  }
}
