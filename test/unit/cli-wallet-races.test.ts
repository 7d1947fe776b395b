/**
 * The CLI's token wallet file (src/cli/wallet.ts) under concurrent use, as `stir-oob cover` uses it:
 * its cover calls run at Poisson times and overlap, each paying from the same `<home>/wallet` file.
 * A token must be handed out once (a second store with it is a new store with a spent token, which
 * the CPS refuses with TOKEN_SPENT), and a refill saving its batch must not bring back a token a
 * store spent meanwhile.
 */
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { RSABSSA } from "@cloudflare/blindrsa-ts";
import { build } from "esbuild";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { FileWallet, walletPath } from "../../src/cli/wallet.js";
import { CoverTraffic } from "../../src/client/cover.js";
import { tokensPerCps } from "../../src/client/multi-cps.js";
import type { ExportedToken } from "../../src/client/token-wallet.js";
import { decodeBase64url, encodeBase64url } from "../../src/stir/base64url.js";
import {
  encodeStorageToken,
  exportTempKey,
  generateTempKey,
  TOKEN_HEADER,
  TOKEN_NONCE_LENGTH,
} from "../../src/stir/storage-token.js";
import { canonicalTn } from "../../src/stir/tn.js";
import { tokenKeysAnswer } from "../helpers/token-keys.js";
import { fakeCps } from "./client-fake-cps.js";

const CPS = "https://cps.test";
const TN = canonicalTn("22225552222");

/** Well-formed tokens as `tokens fetch` saves them (the signature is not checked on this side). */
async function savedTokens(n: number): Promise<ExportedToken[]> {
  return Promise.all(
    Array.from({ length: n }, async () => {
      const k = await generateTempKey("Ed25519");
      const token = encodeStorageToken({
        keyId: "k1",
        nonce: crypto.getRandomValues(new Uint8Array(TOKEN_NONCE_LENGTH)),
        kTempSpki: k.spki,
        signature: crypto.getRandomValues(new Uint8Array(256)),
      });
      return {
        token,
        kTemp: encodeBase64url(await exportTempKey(k.privateKey)),
        alg: "Ed25519" as const,
        notAfter: Date.now() + 3_600_000,
        usesLeft: 1,
      };
    }),
  );
}

async function fillWallet(home: string, tokens: ExportedToken[]): Promise<void> {
  await mkdir(join(home, "wallet"), { recursive: true });
  await writeFile(walletPath(home, CPS), `${JSON.stringify({ cps: CPS, tokens })}\n`, { mode: 0o600 });
}

async function held(home: string): Promise<string[]> {
  const file = JSON.parse(await readFile(walletPath(home, CPS), "utf8")) as { tokens: ExportedToken[] };
  return file.tokens.map((t) => t.token);
}

let home: string;
beforeEach(async () => {
  home = await mkdtemp(join(tmpdir(), "stir-oob-wallet-race-"));
});
afterEach(async () => {
  vi.unstubAllGlobals();
  await rm(home, { recursive: true, force: true });
});

describe("the wallet file under concurrent spends", { timeout: 60_000 }, () => {
  it("overlapping spends (one wallet or two on the same file) never hand out a token twice", async () => {
    const saved = await savedTokens(8);
    await fillWallet(home, saved);
    const a = new FileWallet(home, CPS, undefined);
    const b = new FileWallet(home, `${CPS}/`, undefined); // the same file under another spelling
    const spent = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        (i % 3 === 2 ? b : a).headersForStore(CPS, TN, new Uint8Array([i])).then((h) => h[TOKEN_HEADER]),
      ),
    );
    expect(new Set(spent).size).toBe(8);
    expect(new Set(spent)).toEqual(new Set(saved.map((t) => t.token)));
    expect(await a.size()).toBe(0);
    await expect(a.headersForStore(CPS, TN, new Uint8Array(1))).rejects.toMatchObject({
      code: "WALLET_EMPTY",
    });
  });

  it("stir-oob cover's overlapping cover calls each pay with their own token", async () => {
    await fillWallet(home, await savedTokens(6));
    const cps = fakeCps();
    const cover = new CoverTraffic({
      // As src/cli/cover.ts builds it: one FileWallet per CPS.
      tokens: tokensPerCps((url) => new FileWallet(home, url, undefined)),
      cps: CPS,
      numbers: () => "2222555xxxx".replace(/x/g, () => String(Math.floor(Math.random() * 10))),
      perHour: 3600,
      fetch: cps.fetch,
    });
    await Promise.all(Array.from({ length: 6 }, () => cover.coverCall()));
    const tokens = cps.storeHeaders.map((h) => h.get(TOKEN_HEADER));
    expect(tokens).toHaveLength(6);
    expect(new Set(tokens).size).toBe(6);
    expect(cover.stats).toMatchObject({ coverCalls: 6, blobs: 6, failures: 0 });
    expect(await held(home)).toEqual([]);
  });

  it("a refill saving its batch while stores spend does not bring a spent token back", async () => {
    const issuer = await RSABSSA.SHA384.generateKey({
      modulusLength: 2048,
      publicExponent: new Uint8Array([1, 0, 1]),
    });
    const spki = encodeBase64url(
      new Uint8Array((await crypto.subtle.exportKey("spki", issuer.publicKey)) as ArrayBuffer),
    );
    // The CPS's token routes (GET /tokens/keys, POST /tokens), as the global fetch FileWallet.refill uses.
    vi.stubGlobal("fetch", async (input: string | URL | Request, init?: RequestInit) => {
      const request = new Request(input, init);
      const url = new URL(request.url);
      if (url.pathname === "/tokens/keys") {
        return tokenKeysAnswer(spki, 1);
      }
      const { blindedMessages } = (await request.json()) as { blindedMessages: string[] };
      const signer = RSABSSA.SHA384.PSS.Randomized({ supportsRSARAW: false });
      const blindSignatures = await Promise.all(
        blindedMessages.map(async (m) =>
          encodeBase64url(await signer.blindSign(issuer.privateKey, decodeBase64url(m))),
        ),
      );
      return Response.json({ keyId: "k1", blindSignatures });
    });
    const saved = await savedTokens(300);
    await fillWallet(home, saved);
    const wallet = new FileWallet(home, CPS, async () => "Bearer cred");
    const spent: string[] = [];
    let refilling = true;
    const spender = (async () => {
      // Spends one after another (as one store path does) for as long as the refill runs.
      while (refilling && spent.length < saved.length) {
        const h = await wallet.headersForStore(CPS, TN, new Uint8Array([spent.length]));
        spent.push(h[TOKEN_HEADER] as string);
      }
    })();
    let added = 0;
    try {
      added = await wallet.refill(6); // six batches of one: six saves while the spends go on
    } finally {
      refilling = false;
      await spender;
    }
    expect(added).toBe(6);
    expect(new Set(spent).size).toBe(spent.length);
    const left = await held(home);
    // Every token is either spent or still held, never both: nothing spent comes back.
    expect(left.filter((t) => spent.includes(t))).toEqual([]);
    expect(left.length).toBe(saved.length + 6 - spent.length);
  });

  it("two processes spending from one wallet file (`place` next to `cover`) never share a token", async () => {
    const saved = await savedTokens(40);
    await fillWallet(home, saved);
    // A small program that spends N tokens from the wallet and prints them, bundled for plain node.
    const program = join(home, "spend.mjs");
    await build({
      stdin: {
        contents: `
          import { FileWallet } from "./src/cli/wallet.ts";
          const [home, cps, n] = process.argv.slice(2);
          const wallet = new FileWallet(home, cps, undefined);
          const out = [];
          for (let i = 0; i < Number(n); i++)
            out.push((await wallet.headersForStore(cps, "22225552222", new Uint8Array([i])))["CPS-Token"]);
          process.stdout.write(JSON.stringify(out));`,
        resolveDir: process.cwd(),
        loader: "ts",
      },
      bundle: true,
      platform: "node",
      format: "esm",
      outfile: program,
      logLevel: "silent",
    });
    const run = promisify(execFile);
    const outs = await Promise.all(
      [0, 1].map(async () => JSON.parse((await run(process.execPath, [program, home, CPS, "20"])).stdout)),
    );
    const spent = outs.flat() as string[];
    expect(spent).toHaveLength(40);
    expect(new Set(spent)).toEqual(new Set(saved.map((t) => t.token)));
    expect(await held(home)).toEqual([]);
  });
});
