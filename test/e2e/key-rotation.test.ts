/**
 * Key rotation end to end (issue 15 item 3; RFC 8816 §11, §8.2 step 1) against the real CPS under
 * `wrangler dev`, driven through `stir-oob keys rotate | prune | remove` (the launcher, as a person
 * runs it) and the client library's AS:
 *   - a key rotated between two calls: both calls verify (the VS tries every local key);
 *   - a call placed by an AS whose key cache still holds only the old key verifies during the overlap;
 *   - once the old key is retired, the directory stops serving it at once (its cached answers for the
 *     number are purged on delete), and the old private key is gone from the home;
 *   - a waiting rotation shows its countdown and finishes by itself; `keys remove` takes a key out.
 */
import "reflect-metadata";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PemConverter } from "@peculiar/x509";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LocalCredential, loadCalleeKeys, loadCredentials } from "../../src/cli/home.js";
import { AuthenticationService } from "../../src/client/as.js";
import { Discovery } from "../../src/client/discovery.js";
import { type LocalServer, startLocalServer } from "../../src/dev/local-server.mjs";
import { parseCertificate } from "../../src/stir/cert-parse.js";
import { canonicalTn } from "../../src/stir/tn.js";
import { type CliRun, runCli } from "../helpers/cli.js";

/** Each step runs several CLI processes against wrangler dev: minutes on a loaded 2-core machine. */
const SLOW = 180_000;
const ALICE = canonicalTn("+1 111 555 1111");
const BOB = canonicalTn("+2 222 555 2222");

let home: string;
let server: LocalServer;
let alice: LocalCredential;
let root: ReturnType<typeof parseCertificate>;

function cli(...args: string[]): Promise<CliRun> {
  return runCli(args, { home, cps: server?.url ?? "" });
}

async function json<T>(...args: string[]): Promise<T> {
  const run = await cli(...args, "--json");
  expect(run.code, `${args.join(" ")}: ${run.stderr}`).toBe(0);
  return JSON.parse(run.stdout) as T;
}

/** Bob's phone: `stir-oob verify` with every local key; the kids that opened the verified PASSporT. */
async function bobVerifies(): Promise<string[]> {
  const run = await cli("verify", "--to", BOB, "--calling", ALICE, "--json");
  expect(run.code, run.stdout + run.stderr).toBe(0);
  const v = JSON.parse(run.stdout) as { verdict: string; verified?: { kids: string[] } };
  expect(v.verdict).toBe("verified");
  return v.verified?.kids ?? [];
}

/** What the directory serves for Bob, exact and by prefix (the AS's default 2 open digits). */
async function served(): Promise<{ exact: string[]; prefix: string[]; cache: string | null }> {
  const exact = await fetch(`${server.url}/keys/${BOB}`);
  const prefix = await fetch(`${server.url}/keys?prefix=${BOB.slice(0, -2)}xx`);
  const kids = async (r: Response) =>
    ((await r.json()) as { keys: { kid: string }[] }).keys.map((k) => k.kid);
  return {
    exact: await kids(exact),
    prefix: await kids(prefix),
    cache: exact.headers.get("x-directory-cache"),
  };
}

const localKids = async () => (await loadCalleeKeys(home, BOB)).map((k) => k.kid).sort();

/** Alice's AS; `frozen`: its discovery clock stands still, so its key cache never expires (a slow run). */
function libraryAs(frozen = false): AuthenticationService {
  const t = Date.now();
  return new AuthenticationService({
    credential: { privateKey: alice.privateKey, x5u: alice.x5u, chain: alice.chain },
    discovery: new Discovery({
      bootstrap: server.url,
      allowLoopbackHttp: true,
      ...(frozen ? { now: () => t } : {}),
    }),
    trustAnchors: [root],
  });
}

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), "stir-oob-rotate-"));
  const ca = await cli("ca", "init", "--issue", "alice=+1-111-555-1111", "--issue", "bob=+2-222-555-2222");
  expect(ca.code, ca.stderr).toBe(0);
  const rootPem = await readFile(join(home, "ca/root.pem"), "utf8");
  root = parseCertificate(PemConverter.decode(rootPem)[0] as ArrayBuffer);
  alice = (await loadCredentials(home)).find((c) => c.name === "alice") as LocalCredential;
  server = await startLocalServer({ vars: { TRUST_ANCHORS_PEM: rootPem, ALLOW_UNTOKENED_STORES: "true" } });
});

afterAll(async () => {
  await server?.stop();
  if (home) await rm(home, { recursive: true, force: true });
});

describe("key rotation against `wrangler dev`", () => {
  let oldKid: string;
  let newKid: string;
  // An AS that places Alice's calls and keeps its key cache (discovery) between them.
  let cachedAs: AuthenticationService;

  it(
    "before: Bob's first key is registered (signed) and a first call verifies with it",
    async () => {
      expect((await cli("keygen", "--tn", BOB, "--label", "bob-old")).code).toBe(0);
      const reg = await json<{ registered: { kid: string }[]; signed: boolean }>(
        "keys",
        "register",
        "--tn",
        BOB,
      );
      expect(reg.signed).toBe(true);
      oldKid = reg.registered[0]?.kid ?? "";
      cachedAs = libraryAs(true);
      const first = await cachedAs.placeCall({ from: ALICE, to: BOB });
      expect(first.stored.map((s) => s.kid)).toEqual([oldKid]);
      expect(await bobVerifies()).toEqual([oldKid]);
    },
    SLOW,
  );

  it(
    "rotate (--no-wait) between two calls: the next call is sealed to both keys and verifies",
    async () => {
      const rot = await json<{ new: { kid: string }; old: string[]; waiting: boolean; retireAt: string }>(
        "keys",
        "rotate",
        "--tn",
        BOB,
        "--label",
        "bob-new",
        "--no-wait",
        "--overlap",
        "3",
      );
      newKid = rot.new.kid;
      expect(rot.old).toEqual([oldKid]);
      expect(rot.waiting).toBe(true);
      expect(await localKids()).toEqual([oldKid, newKid].sort());
      // Registration purged the directory's cached answers: the new key is served at once.
      expect((await served()).exact.sort()).toEqual([oldKid, newKid].sort());
      const second = await libraryAs().placeCall({ from: ALICE, to: BOB });
      expect(second.stored.map((s) => s.kid).sort()).toEqual([oldKid, newKid].sort());
      expect((await bobVerifies()).sort()).toEqual([oldKid, newKid].sort());
    },
    SLOW,
  );

  it(
    "a call placed with a cached old key set (sealed to the old key only) still verifies in the overlap",
    async () => {
      const call = await cachedAs.placeCall({ from: ALICE, to: BOB });
      expect(call.stored.map((s) => s.kid)).toEqual([oldKid]);
      expect(await bobVerifies()).toEqual([oldKid]);
    },
    SLOW,
  );

  it(
    "prune after the overlap: the old key leaves the directory at once (edge cache purged) and the home",
    async () => {
      // Warm the directory's cache with an answer that still lists the old key.
      await served();
      const warm = await served();
      expect(warm.cache).toBe("HIT");
      expect(warm.exact).toContain(oldKid);
      expect(warm.prefix).toContain(oldKid);
      await new Promise((r) => setTimeout(r, 3_100)); // the --overlap 3 of the rotation above
      const pruned = await json<{ retired: string[] }>("keys", "prune", "--tn", BOB);
      expect(pruned.retired).toEqual([oldKid]);
      const after = await served();
      expect(after.exact).toEqual([newKid]);
      expect(after.prefix).toEqual([newKid]);
      expect(await localKids()).toEqual([newKid]);
      // Calls placed now are sealed to the new key alone and verify with it.
      const call = await libraryAs().placeCall({ from: ALICE, to: BOB });
      expect(call.stored.map((s) => s.kid)).toEqual([newKid]);
      expect(await bobVerifies()).toEqual([newKid]);
    },
    SLOW,
  );

  it(
    "a waiting rotation shows its countdown, then retires the old key by itself",
    async () => {
      const run = await cli("keys", "rotate", "--tn", BOB, "--label", "bob-3", "--overlap", "2");
      expect(run.code, run.stderr).toBe(0);
      expect(run.stderr).toMatch(/waiting \d+ s before retiring/);
      expect(run.stdout).toMatch(/new key \S+ \(bob-3\) registered/);
      expect(run.stdout).toContain(`retired old key ${newKid}`);
      const [third] = await localKids();
      expect(await localKids()).toHaveLength(1);
      expect((await served()).exact).toEqual([third]);
    },
    SLOW,
  );

  it(
    "keys remove: the key leaves the directory at once; an unknown kid is refused (exit 69)",
    async () => {
      const [kid] = await localKids();
      const removed = await json<{ removed: number; retireAt: string }>(
        "keys",
        "remove",
        "--tn",
        BOB,
        "--kid",
        kid ?? "",
      );
      expect(removed.removed).toBe(1);
      expect((await served()).exact).toEqual([]);
      // The private key stays for PASSporTs in flight until a prune after --overlap.
      expect(await localKids()).toEqual([kid]);
      const unknown = await cli(
        "keys",
        "remove",
        "--tn",
        BOB,
        "--kid",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
      );
      expect(unknown.code).toBe(69);
      expect((await cli("keys", "rotate")).code).toBe(64);
      expect((await cli("keys", "rotate", "--tn", BOB, "--overlap", "soon")).code).toBe(64);
    },
    SLOW,
  );
});
