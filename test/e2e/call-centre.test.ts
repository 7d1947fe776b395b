/**
 * RFC 8816 §5.5 (Case 5: Enterprise Call Center) end to end against the real CPS under `wrangler dev`:
 * a call centre watches its number block over a WebSocket subscription (src/client/watch.ts); 100
 * calls are placed to numbers of the block, each with a real signed PASSporT (RFC 8225/8588) sealed to
 * the centre's key and stored over HTTP (RFC 8816 §9); every one is opened and verified from the stream.
 */
import { WebSocket as UndiciWebSocket } from "undici"; // Node 20 has no global WebSocket
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type WebSocketLike, watch } from "../../src/client/watch.js";
import { type LocalServer, startLocalServer } from "../../src/dev/local-server.mjs";
import {
  encodeEnvelope,
  generateRecipientKeyPair,
  openPassport,
  sealPassport,
} from "../../src/stir/envelope.js";
import { createPassport, verifyPassport } from "../../src/stir/passport.js";
import { createTestPki, type TestPki } from "../../src/stir/test-pki.js";
import { canonicalTn } from "../../src/stir/tn.js";

const BLOCK = "1202555xxxx";
const CALLS = 100;
const CALLER = "12155551212";

/** Distinct random numbers of the block. */
function numbersInBlock(n: number): string[] {
  const out = new Set<string>();
  while (out.size < n) out.add(`1202555${String(Math.floor(Math.random() * 10_000)).padStart(4, "0")}`);
  return [...out];
}

describe("RFC 8816 §5.5 call centre: block subscription over wrangler dev", () => {
  let server: LocalServer;
  let pki: TestPki;

  beforeAll(async () => {
    // Stores without storage tokens: token issuance has its own e2e; this one is about push.
    [server, pki] = await Promise.all([
      startLocalServer({ vars: { ALLOW_UNTOKENED_STORES: "true" } }),
      createTestPki(),
    ]);
  });

  afterAll(async () => {
    await server?.stop();
  });

  it(`verifies all ${CALLS} calls to the block from the stream`, async () => {
    const centre = await generateRecipientKeyPair();
    const verified = new Map<string, { tn: string; dest: string }>();
    const failures: unknown[] = [];
    let dummies = 0;

    const watcher = watch({
      cps: server.url,
      target: { block: BLOCK },
      connect: (url) => new UndiciWebSocket(url) as unknown as WebSocketLike,
      onError: (e) => failures.push(e),
      onFrame: async ({ tn, blob }) => {
        const jws = await openPassport(centre.keyPair, canonicalTn(tn!), blob).catch(() => null);
        if (jws === null) {
          dummies++; // a dummy, or a blob for someone else's key: indistinguishable by design
          return;
        }
        const { claims } = await verifyPassport(jws, pki.valid.publicKey);
        verified.set(claims.origid!, { tn: tn!, dest: claims.dest.tn![0]! });
      },
    });
    // The subscription greets with a dummy: once it is in, everything stored from now on is pushed.
    await expect.poll(() => dummies, { timeout: 20_000, interval: 20 }).toBeGreaterThanOrEqual(1);

    const numbers = numbersInBlock(CALLS);
    const placed = new Map<string, string>(); // origid -> called number
    const started = Date.now();
    for (let i = 0; i < numbers.length; i += 10) {
      await Promise.all(
        numbers.slice(i, i + 10).map(async (tn) => {
          const origid = crypto.randomUUID();
          const jws = await createPassport(
            {
              x5u: "https://cert.example.org/passport.pem",
              ppt: "shaken",
              claims: {
                attest: "A",
                dest: { tn: [tn] },
                iat: Math.floor(Date.now() / 1000),
                orig: { tn: CALLER },
                origid,
              },
            },
            pki.valid.privateKey,
          );
          const sealed = await sealPassport(centre.publicKey, canonicalTn(tn), jws);
          const res = await fetch(`${server.url}/cps/${tn}/ppts`, {
            method: "POST",
            headers: { "Content-Type": "application/passport" },
            body: encodeEnvelope(sealed),
          });
          expect(res.status).toBe(201);
          placed.set(origid, tn);
        }),
      );
    }

    await expect.poll(() => verified.size, { timeout: 30_000, interval: 50 }).toBe(CALLS);
    const elapsed = Date.now() - started;
    for (const [origid, tn] of placed) {
      expect(verified.get(origid)).toEqual({ tn, dest: tn });
    }
    expect(failures).toEqual([]);
    watcher.close();
    await watcher.done;
    console.log(`§5.5: ${CALLS} calls placed and verified from the block stream in ${elapsed} ms`);
  });

  it("the block query returns the same calls (plus dummies) in one request", async () => {
    const res = await fetch(`${server.url}/cps/blocks/${BLOCK}/ppts`);
    expect(res.status).toBe(200);
    const { passports } = (await res.json()) as { passports: { tn: string }[] };
    expect(passports.length).toBeGreaterThan(CALLS);
    for (const p of passports) expect(p.tn).toMatch(/^1202555[0-9]{4}$/);
  });
});
