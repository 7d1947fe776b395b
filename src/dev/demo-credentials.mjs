/**
 * TEST-ONLY credentials for the /demo page (docs/web.md), made fresh by `npm start` at each run and
 * by the page tests: a throwaway root and intermediate (src/stir/test-pki.ts) and one STIR credential
 * (RFC 8226, TNAuthList) per party. The local Worker trusts the root (TRUST_ANCHORS_PEM) and serves
 * the parties, private keys included, at GET /demo/credentials (src/routes/demo.ts), only with a
 * loopback CPS_ORIGIN. Nothing here is ever valid anywhere else: every subject says TEST ONLY and the
 * root exists for one run.
 *
 * Parties (RFC 8816 §8: Alice calls Bob):
 * - alice   +1 111 555 1111, the caller's AS signs with it;
 * - bob     the block +2 222 555 2xxx (a range of 1,000): the callee signs his key records with it;
 *           each demo call uses a fresh number of the block, so earlier calls' PASSporTs (alive for
 *           their 60 s TTL, RFC 8816 §7.5) never mix into the next call's verdict;
 * - mallory +3 333 555 3333, a real credential for another number: the "spoofed caller".
 */
import { importBundle } from "./ts-module.mjs";

export const DEMO_NUMBERS = {
  alice: "11115551111",
  bobBlockStart: "22225552000",
  bobBlockCount: 1000,
  mallory: "33335553333",
};

const SOURCE = `
import "reflect-metadata";
import { createTestPki } from "./src/stir/test-pki.ts";
import { encodeBase64url } from "./src/stir/base64url.ts";

export async function make(n) {
  const pki = await createTestPki();
  const parties = {};
  const add = async (name, subject, tnAuthList, numbers) => {
    const cred = await pki.issue({ subject: subject + " - stir-oob demo", tnAuthList });
    const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", cred.privateKey));
    parties[name] = { subject: cred.chain[0].subject, numbers, chainPem: cred.pem, privateKeyPkcs8: encodeBase64url(pkcs8) };
  };
  await add("alice", "Alice", [{ type: "one", tn: n.alice }], ["+" + n.alice]);
  await add("bob", "Bob", [{ type: "range", start: n.bobBlockStart, count: n.bobBlockCount }],
    ["+" + n.bobBlockStart + " + " + n.bobBlockCount]);
  await add("mallory", "Mallory", [{ type: "one", tn: n.mallory }], ["+" + n.mallory]);
  return { rootPem: pki.root.certificate.toString("pem"), parties };
}
`;

/**
 * Fresh demo credentials: `{ rootPem, json }`, where `json` is the DEMO_CREDENTIALS secret (private
 * keys: pass it in a 0600 env file, never on a command line) and `rootPem` goes into TRUST_ANCHORS_PEM.
 */
export async function makeDemoCredentials() {
  const { make } = await importBundle({ name: "demo-credentials", source: SOURCE });
  const made = await make(DEMO_NUMBERS);
  return { rootPem: made.rootPem, json: JSON.stringify(made) };
}
