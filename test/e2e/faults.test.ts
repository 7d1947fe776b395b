/**
 * Faults (issue #8 part 2) against a real `wrangler dev` with persisted state and storage tokens
 * required:
 *   - the server's whole process group is killed with SIGKILL in the middle of a store burst and
 *     started again on the same state: every store answered 201 before the kill is still served,
 *     and the TokenLedger's spend counts survived (RFC 8816 §7.5 "counting how many times K_temp
 *     appears" must not reset on a crash);
 *   - the requests the kill cut off are retried unchanged after the restart: each succeeds once,
 *     no blob is held twice, and no token is charged twice (docs/tokens.md "Retried stores");
 *   - an answer lost on the way back: CpsClient sends the identical request again and gets the same
 *     id, and the token pays for one store only.
 * The lost answer is made by a fetch wrapper that lets the real request reach the server and then
 * throws its response away, as a dropped connection would.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CpsClient } from "../../src/client/cps-client.js";
import { type ExportedToken, TokenWallet } from "../../src/client/token-wallet.js";
import { oneIssuerKeyVar } from "../../src/dev/issuer-key.mjs";
import { type LocalServer, startLocalServer } from "../../src/dev/local-server.mjs";
import { issueCredentialToken } from "../../src/stir/credential-token.js";
import { decodeEnvelope } from "../../src/stir/envelope.js";
import { createTestPki, type TestPki } from "../../src/stir/test-pki.js";
import { canonicalTn } from "../../src/stir/tn.js";
import { sealedFor } from "../helpers/cps.js";

const USES = 3; // TOKEN_MAX_USES: each token pays for this many stores, then 429 TOKEN_SPENT
const TOKENS = 40;
const BURST = TOKENS * USES;
const KILL_AFTER = 40; // 201s seen before the kill
const NUMBERS = 24;

let stateDir: string;
let server: LocalServer;
let pki: TestPki;
let vars: Record<string, string>;

async function bearer(): Promise<string> {
  const token = await issueCredentialToken({
    privateKey: pki.valid.privateKey,
    x5c: pki.valid.der,
    audience: server.url,
    action: "tokens:issue",
  });
  return `Bearer ${token}`;
}

/** A wallet holding exactly `tokens` (exported earlier), each with `usesLeft` uses to sign with. */
async function walletOf(tokens: ExportedToken[], usesLeft: number): Promise<TokenWallet> {
  const w = new TokenWallet({ cpsUrl: server.url, authorization: bearer });
  await w.importTokens(tokens.map((t) => ({ ...t, usesLeft })));
  return w;
}

interface Store {
  tn: string;
  text: string;
  headers: Record<string, string>;
  token: string;
}

function post(s: Store): Promise<Response> {
  return fetch(`${server.url}/cps/${s.tn}/ppts`, {
    method: "POST",
    headers: { "content-type": "application/passport", ...s.headers },
    body: s.text,
  });
}

beforeAll(async () => {
  stateDir = await mkdtemp(join(tmpdir(), "cps-faults-"));
  pki = await createTestPki();
  vars = {
    TRUST_ANCHORS_PEM: pki.root.certificate.toString("pem"),
    TOKEN_ISSUER_KEYS: await oneIssuerKeyVar("faults-1"),
    ALLOW_UNTOKENED_STORES: "false",
    TOKEN_MAX_USES: String(USES),
    TOKEN_MAX_USES_PER_NUMBER: String(USES),
  };
  server = await startLocalServer({ persistTo: stateDir, vars });
});

afterAll(async () => {
  await server?.stop();
  if (stateDir) await rm(stateDir, { recursive: true, force: true });
});

describe("faults against a real `wrangler dev` (issue #8)", () => {
  it("a lost answer: the client sends the same request again, gets the same id, and pays once", async () => {
    const wallet = new TokenWallet({ cpsUrl: server.url, authorization: bearer, usesPerToken: USES });
    await wallet.refill(1);
    const [token] = await wallet.exportTokens();
    const tn = canonicalTn("12025550700");
    const { text } = await sealedFor(tn);
    let dropped = 0;
    const lossy = new CpsClient({
      baseUrl: server.url,
      retryDelayMs: 10,
      fetch: async (input, init) => {
        const res = await fetch(input, init);
        if (dropped++ > 0) return res;
        await res.arrayBuffer(); // the server answered; the answer never reaches the client
        throw new TypeError("connection reset");
      },
    });
    const stored = await lossy.store(tn, text, await wallet.storeHeaders(tn, decodeEnvelope(text)));
    expect(stored.attempts).toBe(2);
    const { passports } = (await (await fetch(`${server.url}/cps/${tn}/ppts`)).json()) as {
      passports: { id: string; blob: string }[];
    };
    expect(passports.filter((p) => p.blob === text).map((p) => p.id)).toEqual([stored.id]);
    // The token paid for one store: USES - 1 more go through, the next is refused.
    const plain = new CpsClient({ baseUrl: server.url });
    const more = await walletOf([token!], USES);
    const statuses: (number | string)[] = [];
    for (let i = 0; i < USES; i++) {
      const other = canonicalTn(`1202555071${i}`);
      const s = await sealedFor(other);
      const res = await plain
        .store(other, s.text, await more.storeHeaders(other, decodeEnvelope(s.text)))
        .then(() => 201)
        .catch((e: { code?: string }) => e.code ?? "error");
      statuses.push(res);
    }
    expect(statuses).toEqual([...Array(USES - 1).fill(201), "TOKEN_SPENT"]);
  });

  it("SIGKILL mid store burst, restart on the same state: 201s survive, counts survive, retries pay once", async () => {
    const wallet = new TokenWallet({ cpsUrl: server.url, authorization: bearer, usesPerToken: USES });
    await wallet.refill(TOKENS);
    const tokens = await wallet.exportTokens();
    // Every store prepared before the burst; the wallet spends each token on USES numbers in turn.
    const numbers = Array.from({ length: NUMBERS }, (_, i) =>
      canonicalTn(`1303555${String(i).padStart(4, "0")}`),
    );
    const sealers = await Promise.all(numbers.map((tn) => sealedFor(tn)));
    const stores: Store[] = [];
    for (let i = 0; i < BURST; i++) {
      const tn = numbers[i % NUMBERS]!;
      const text = await sealers[i % NUMBERS]!.another();
      const headers = await wallet.storeHeaders(tn, decodeEnvelope(text));
      stores.push({ tn, text, headers, token: headers["CPS-Token"] });
    }

    // The burst, 8 in flight; SIGKILL to the whole process group once KILL_AFTER stores got 201.
    const answered = new Map<number, string>(); // store index -> id
    const cut: number[] = [];
    let next = 0;
    let killed = false;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < BURST) {
          const i = next++;
          if (killed) {
            cut.push(i);
            continue;
          }
          try {
            const res = await post(stores[i]!);
            const body = (await res.json()) as { id?: string };
            if (res.status !== 201) throw new Error(`store ${i}: ${res.status} ${JSON.stringify(body)}`);
            answered.set(i, body.id!);
            if (answered.size >= KILL_AFTER && !killed) {
              killed = true;
              server.kill("SIGKILL");
            }
          } catch (err) {
            if (!killed) throw err;
            cut.push(i); // cut off by the kill: its answer (if any) is lost
          }
        }
      }),
    );
    await server.exited;
    expect(answered.size).toBeGreaterThanOrEqual(KILL_AFTER);
    expect(cut.length).toBeGreaterThan(0);

    // Same port (tokens and credential tokens name this origin), same state directory.
    server = await startLocalServer({ persistTo: stateDir, vars, port: server.port });

    // 1. Every store answered 201 before the kill is still served, byte for byte.
    for (const [i, id] of answered) {
      const res = await fetch(`${server.url}/cps/${stores[i]!.tn}/ppts/${id}`);
      expect(res.status, `store ${i} (${id}) lost in the crash`).toBe(200);
      expect((await res.text()).replace(/\s+/g, "")).toBe(stores[i]!.text);
    }

    // 2. The cut-off requests, sent again unchanged: each is stored (or found) and paid for once.
    const retried = await Promise.all(cut.map((i) => post(stores[i]!)));
    expect(retried.map((r) => r.status)).toEqual(cut.map(() => 201));
    for (const tn of numbers) {
      const { passports } = (await (await fetch(`${server.url}/cps/${tn}/ppts`)).json()) as {
        passports: { blob: string }[];
      };
      const mine = new Set(stores.filter((s) => s.tn === tn).map((s) => s.text));
      const held = passports.filter((p) => mine.has(p.blob)).map((p) => p.blob);
      expect(held.length, `number ${tn} holds a blob twice`).toBe(new Set(held).size);
      expect(new Set(held)).toEqual(mine);
    }

    // 3. Spend counts survived the crash: every token paid for exactly USES stores, before and after
    // the kill, so one more use of any of them is refused.
    const after = await walletOf(tokens, 1);
    const refused = [];
    for (let i = 0; i < 5; i++) {
      const tn = canonicalTn(`1404555000${i}`);
      const s = await sealedFor(tn);
      refused.push(
        await post({
          tn,
          text: s.text,
          headers: await after.storeHeaders(tn, decodeEnvelope(s.text)),
          token: "",
        }),
      );
    }
    const bodies = await Promise.all(refused.map((r) => r.json() as Promise<{ code?: string }>));
    expect(refused.map((r) => r.status)).toEqual(Array(5).fill(429));
    expect(bodies.map((b) => b.code)).toEqual(Array(5).fill("TOKEN_SPENT"));
  });
});
