/**
 * The worker thread of `npm run load` (started by bench/load/client-worker.mjs): the token wallet and
 * the sealing, the CPU-heavy client work. It keeps ready-to-send stores ("tickets") coming, runs each
 * refill the main thread asks for, and reports every request the wallet sends.
 */

import { pathToFileURL } from "node:url";
import { parentPort, workerData } from "node:worker_threads";
import { problemCode, REQUEST_TIMEOUT_MS, TOKEN_BATCH, transportStatus, USES_PER_TOKEN } from "./config.mjs";

async function workerMain() {
  const m = await import(pathToFileURL(workerData.bundle).href);
  const post = (msg) => parentPort.postMessage(msg);
  const pki = await m.createTestPki();
  const callee = await m.generateRecipientKeyPair();
  post({ type: "pki", rootPem: pki.root.certificate.toString("pem") });

  let wallet;
  let numbers = [];
  let demand = 0;
  let pumping = false;

  /** The wallet's fetch: every request it sends is timed and reported to the main thread. */
  const timedFetch = async (request) => {
    const op = new URL(request.url).pathname === "/tokens/keys" ? "token-keys" : "issue";
    const t0 = performance.now();
    try {
      const res = await fetch(request, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
      const ms = performance.now() - t0;
      const code = res.ok ? undefined : problemCode(await res.clone().text());
      post({ type: "http", op, ms, status: res.status, code });
      return res;
    } catch (err) {
      post({ type: "http", op, ms: performance.now() - t0, status: transportStatus(err) });
      throw err;
    }
  };

  /** Makes ready-to-send stores (number, sealed envelope, token headers) while some are wanted. */
  async function pump() {
    if (pumping) return;
    pumping = true;
    try {
      const batch = [];
      while (demand > 0 && wallet.size > 0) {
        const tn = numbers[Math.floor(Math.random() * numbers.length)];
        const blob = await m.sealPassport(callee.publicKey, m.canonicalTn(tn), m.RFC8816_EXAMPLE_PASSPORT);
        const headers = await wallet.storeHeaders(tn, blob);
        batch.push({ tn, text: m.encodeEnvelope(blob), headers });
        demand--;
        if (batch.length >= 4) post({ type: "tickets", tickets: batch.splice(0) });
      }
      if (batch.length > 0) post({ type: "tickets", tickets: batch });
    } finally {
      pumping = false;
    }
  }

  parentPort.on("message", (msg) => {
    if (msg.type === "start") {
      numbers = msg.numbers;
      const authorization = async () =>
        `Bearer ${await m.issueCredentialToken({
          privateKey: pki.valid.privateKey,
          x5c: pki.valid.der,
          audience: msg.url,
          action: "tokens:issue",
        })}`;
      wallet = new m.TokenWallet({
        cpsUrl: msg.url,
        authorization,
        fetch: timedFetch,
        usesPerToken: USES_PER_TOKEN,
      });
      wallet.refill(msg.prefill).then(
        () => post({ type: "ready", tokens: wallet.size }),
        (err) => post({ type: "fatal", message: `prefilling the token wallet failed: ${err}` }),
      );
    } else if (msg.type === "want") {
      demand += msg.n;
      pump().catch((err) => post({ type: "fatal", message: `making a store request failed: ${err}` }));
    } else if (msg.type === "issue") {
      const t0 = performance.now();
      wallet.refill(TOKEN_BATCH).then(
        (added) => {
          post({ type: "issued", seq: msg.seq, added, ms: performance.now() - t0 });
          pump().catch((err) => post({ type: "fatal", message: `making a store request failed: ${err}` }));
        },
        (err) =>
          post({ type: "issued", seq: msg.seq, added: 0, ms: performance.now() - t0, error: String(err) }),
      );
    }
  });
}

workerMain().catch((err) => parentPort.postMessage({ type: "fatal", message: String(err?.stack ?? err) }));
