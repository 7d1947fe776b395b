/**
 * `stir-oob keygen` (a callee's X25519 key pair, kept in the home) and `stir-oob keys` (register it
 * in the key directory as a signed key record, RFC 8816 §11; list what the directory publishes for a
 * number; rotate, prune and remove keys).
 */
import { rm } from "node:fs/promises";
import { CpsError } from "../client/errors.js";
import { KeyDirectoryClient } from "../client/key-directory.js";
import { encodeBase64url } from "../stir/base64url.js";
import { exportRecipientPrivateKey, generateRecipientKeyPair } from "../stir/envelope.js";
import { type CanonicalTn, canonicalTn } from "../stir/tn.js";
import {
  bold,
  dim,
  discoveryFor,
  EXIT,
  type GlobalOptions,
  green,
  loadGlobals,
  parse,
  printJson,
  progress,
  showTn,
  UsageError,
  yellow,
} from "./common.js";
import {
  credentialFor,
  keyPath,
  type LocalCredential,
  loadCalleeKeys,
  saveCalleeKey,
  x25519Thumbprint,
} from "./home.js";

export const KEYGEN_HELP = `stir-oob keygen: make an encryption key pair for a called number (RFC 8816 §11)

Usage:
  stir-oob keygen --tn +NUMBER [--label TEXT]

Writes <home>/keys/NUMBER/KID.json (mode 0600; KID is the RFC 7638 thumbprint). The private key never
leaves this file; \`keys register\` publishes the public half. A number may have several keys (phone,
desk, ...): callers seal one copy per key, and \`verify\` tries every local key.

Options:
  --tn +NUMBER   the number the key receives calls for
  --label TEXT   a short label shown in the directory (default "key-<date>")
  --home DIR, --json
`;

export const KEYS_HELP = `stir-oob keys: the key directory (RFC 8816 §11)

Usage:
  stir-oob keys register --tn +NUMBER [--as CREDENTIAL] [--ttl SECONDS]
  stir-oob keys list --tn +NUMBER
  stir-oob keys rotate --tn +NUMBER [--kid KID] [--label TEXT] [--overlap SECONDS] [--no-wait]
  stir-oob keys prune --tn +NUMBER
  stir-oob keys remove --tn +NUMBER [--kid KID]

register  publishes every local key of NUMBER (PUT /keys/NUMBER) as a SIGNED key record: a JWS by a
          STIR credential whose TNAuthList covers NUMBER (the first that does, or --as NAME), carrying
          its chain (x5c). Callers seal only to keys whose record verifies (docs/key-directory.md).
list      shows the keys the directory publishes for NUMBER (what a caller will seal to).
rotate    makes a new key, registers it, and keeps the old key(s) registered and their private keys
          here for --overlap seconds, so every PASSporT sealed to them (also by callers whose key
          cache still holds only the old key) can still be opened; then deletes the old keys from the
          directory and from this home. Shows the countdown on stderr. With --no-wait it records when
          the old keys retire and returns at once: a later \`keys rotate\` or \`keys prune\` finishes.
prune     deletes from the directory and from this home every key of NUMBER whose retire time has
          passed (keys still waiting are listed). Exit 0 either way.
remove    deletes a key (--kid) or all of this holder's keys of NUMBER from the directory at once
          (the directory's cached answers for the number are purged); the private keys stay here for
          --overlap seconds more and go with the next \`keys prune\`.

Options:
  --tn +NUMBER       the number
  --as NAME          credential to sign the records and requests with (default: one covering the number)
  --ttl SECONDS      how long the directory keeps a registered key (the record's lifetime; default 30 days)
  --kid KID          rotate or remove this key only (default: every current key of the number)
  --label TEXT       label of the new key (rotate; default "key-<date>")
  --overlap SECONDS  how long an old key stays usable (default 180: the directory's key cache, 60 s,
                     + the CPS TTL, 60 s, + the VS freshness window, 60 s)
  --no-wait          rotate: do not wait for the overlap (finish with \`keys prune\` later)
  --cps URL          CPS / discovery base URL (default config.json "cps", env STIR_OOB_CPS, http://127.0.0.1:8787)
  --home DIR, --json

Exit codes: 0 done, 64 usage (no local key, no covering credential, bad flags), 69 the directory
refused (its problem code is printed) or could not be reached, 70 internal error.
`;

/** Directory key cache (60 s) + CPS TTL (60 s) + VS freshness window (60 s): see KEYS_HELP. */
export const DEFAULT_OVERLAP_SECONDS = 180;

export async function keygenCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, { tn: { type: "string" }, label: { type: "string" } });
  if (values.help) {
    process.stdout.write(KEYGEN_HELP);
    return EXIT.OK;
  }
  if (!values.tn) throw new UsageError("keygen needs --tn +NUMBER (see --help)");
  const g = await loadGlobals(values);
  const tn = canonicalTn(values.tn);
  const label = values.label ?? `key-${new Date().toISOString().slice(0, 10)}`;
  if (!/^[A-Za-z0-9 ._:@-]{1,32}$/.test(label))
    throw new UsageError("--label is 1-32 of letters, digits, space and ._:@-");
  const { keyPair, publicKey } = await generateRecipientKeyPair();
  const kid = await x25519Thumbprint(publicKey);
  const path = await saveCalleeKey(g.home, tn, {
    kid,
    label,
    publicKey: encodeBase64url(publicKey),
    privateKey: encodeBase64url(await exportRecipientPrivateKey(keyPair.privateKey)),
    created: new Date().toISOString(),
  });
  if (g.json) printJson({ tn, kid, label, publicKey: encodeBase64url(publicKey), path });
  else {
    console.log(`${green("✔")} key ${bold(kid)} for ${showTn(tn)} ${dim(`(${label})`)}`);
    console.log(dim(`  private key in ${path}; publish it with: stir-oob keys register --tn ${showTn(tn)}`));
  }
  return EXIT.OK;
}

type LocalKey = Awaited<ReturnType<typeof loadCalleeKeys>>[number];

/** A key directory client for NUMBER, as the holder of `cred`. */
async function directoryFor(g: GlobalOptions, tn: CanonicalTn, cred: LocalCredential) {
  const { keys: directory } = await discoveryFor(g).locate(tn);
  const client = new KeyDirectoryClient({
    directory,
    credential: {
      privateKey: cred.privateKey,
      x5c: cred.chain.certificates.map((c) => new Uint8Array(c.rawData)),
    },
    ...g.transport,
  });
  return { directory, client };
}

function retiring(k: LocalKey): boolean {
  return k.retireAt !== undefined;
}

/** Deletes a retired key from the directory (already gone is fine) and its private key here. */
async function retire(
  g: GlobalOptions,
  tn: CanonicalTn,
  client: KeyDirectoryClient,
  k: LocalKey,
): Promise<void> {
  try {
    await client.remove(tn, k.kid);
  } catch (err) {
    if (!(err instanceof CpsError && err.status === 404)) throw err;
  }
  await rm(keyPath(g.home, tn, k.kid), { force: true });
}

/** Keys of `tn` whose retire time has passed: removed. Returns [retired, still waiting]. */
async function prune(
  g: GlobalOptions,
  tn: CanonicalTn,
  client: KeyDirectoryClient,
): Promise<{ retired: LocalKey[]; waiting: LocalKey[] }> {
  const now = Date.now();
  const retired: LocalKey[] = [];
  const waiting: LocalKey[] = [];
  for (const k of await loadCalleeKeys(g.home, tn)) {
    if (!retiring(k)) continue;
    if (Date.parse(k.retireAt ?? "") <= now) {
      await retire(g, tn, client, k);
      retired.push(k);
    } else waiting.push(k);
  }
  return { retired, waiting };
}

async function markRetiring(g: GlobalOptions, tn: CanonicalTn, keys: LocalKey[], at: Date): Promise<void> {
  for (const k of keys) {
    const { key: _key, raw: _raw, ...stored } = k;
    await saveCalleeKey(g.home, tn, { ...stored, retireAt: at.toISOString() });
  }
}

function parseSeconds(text: string | undefined, name: string, fallback: number, min = 0): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < min)
    throw new UsageError(`${name} is a whole number of seconds (at least ${min})`);
  return n;
}

export async function keysCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    tn: { type: "string" },
    as: { type: "string" },
    ttl: { type: "string" },
    kid: { type: "string" },
    label: { type: "string" },
    overlap: { type: "string" },
    "no-wait": { type: "boolean", default: false },
  });
  const [sub] = positionals;
  if (values.help || sub === undefined) {
    process.stdout.write(KEYS_HELP);
    return values.help ? EXIT.OK : EXIT.USAGE;
  }
  if (!["register", "list", "rotate", "prune", "remove"].includes(sub))
    throw new UsageError(
      `Unknown keys subcommand ${JSON.stringify(sub)} (register, list, rotate, prune, remove)`,
    );
  if (!values.tn) throw new UsageError(`keys ${sub} needs --tn +NUMBER`);
  const g = await loadGlobals(values);
  const tn = canonicalTn(values.tn);
  const overlap = parseSeconds(values.overlap, "--overlap", DEFAULT_OVERLAP_SECONDS);
  const ttl = values.ttl === undefined ? undefined : parseSeconds(values.ttl, "--ttl", 0, 60);

  if (sub === "list") {
    const discovery = discoveryFor(g);
    const { keys: directory } = await discovery.locate(tn);
    const listed = await new KeyDirectoryClient({
      directory,
      ...g.transport,
    }).list(tn);
    const local = new Map((await loadCalleeKeys(g.home, tn)).map((k) => [k.publicKey, k]));
    const list = listed.map((k) => ({
      kid: k.kid,
      label: k.label,
      block: k.block,
      signed: k.record !== undefined,
      local: k.x !== undefined && local.has(k.x),
      ...(k.x !== undefined && local.get(k.x)?.retireAt ? { retireAt: local.get(k.x)?.retireAt } : {}),
    }));
    if (g.json) printJson({ tn, keys: list });
    else if (list.length === 0) console.log(`no keys registered for ${showTn(tn)}`);
    else
      for (const k of list)
        console.log(
          `  ${bold(k.kid ?? "?")} ${k.label ?? ""} ${k.signed ? "" : yellow("(unsigned) ")}${k.local ? green("(private key here)") : ""}${k.retireAt ? dim(` retires ${k.retireAt}`) : ""}`,
        );
    return EXIT.OK;
  }

  const cred = await credentialFor(g.home, tn, values.as);
  const { directory, client } = await directoryFor(g, tn, cred);
  const register = async (k: { publicKey: string; label: string; raw: Uint8Array }) =>
    client.register({
      publicKey: k.raw,
      tn,
      label: k.label,
      ...(ttl === undefined ? {} : { lifetimeSeconds: ttl }),
    });

  if (sub === "register") {
    const local = (await loadCalleeKeys(g.home, tn)).filter((k) => !retiring(k));
    if (local.length === 0)
      throw new UsageError(`No local key for ${showTn(tn)}: run \`stir-oob keygen --tn ${showTn(tn)}\``);
    const registered = [];
    for (const k of local) {
      const r = await register(k);
      registered.push({ kid: k.kid, label: k.label, exp: r.exp });
    }
    if (g.json) printJson({ tn, directory, credential: cred.name, signed: true, registered });
    else {
      for (const r of registered)
        console.log(`${green("✔")} registered key ${bold(r.kid)} ${dim(`(${r.label})`)} for ${showTn(tn)}`);
      console.log(dim(`  directory ${directory}, record signed by credential ${cred.name}`));
    }
    return EXIT.OK;
  }

  if (sub === "prune") {
    const { retired, waiting } = await prune(g, tn, client);
    if (g.json)
      printJson({
        tn,
        retired: retired.map((k) => k.kid),
        waiting: waiting.map((k) => ({ kid: k.kid, retireAt: k.retireAt })),
      });
    else {
      for (const k of retired) console.log(`${green("✔")} retired key ${bold(k.kid)} for ${showTn(tn)}`);
      for (const k of waiting) console.log(dim(`  key ${k.kid} retires at ${k.retireAt}`));
      if (retired.length + waiting.length === 0) console.log(`no retiring keys for ${showTn(tn)}`);
    }
    return EXIT.OK;
  }

  if (sub === "remove") {
    const local = await loadCalleeKeys(g.home, tn);
    // A --kid not held here is still the holder's to remove at the directory (a lost device's key).
    const { removed } = await client.remove(tn, values.kid);
    const affected = local.filter((k) => values.kid === undefined || k.kid === values.kid);
    const at = new Date(Date.now() + overlap * 1000);
    await markRetiring(
      g,
      tn,
      affected.filter((k) => !retiring(k)),
      at,
    );
    if (g.json)
      printJson({ tn, directory, removed, retireAt: affected.length ? at.toISOString() : undefined });
    else {
      console.log(
        `${green("✔")} removed ${removed} key${removed === 1 ? "" : "s"} of ${showTn(tn)} from ${directory}`,
      );
      if (affected.length)
        console.log(
          dim(
            `  private key(s) kept until ${at.toISOString()} for PASSporTs in flight; then: stir-oob keys prune --tn ${showTn(tn)}`,
          ),
        );
    }
    return EXIT.OK;
  }

  // rotate
  const label = values.label ?? `key-${new Date().toISOString().slice(0, 10)}`;
  if (!/^[A-Za-z0-9 ._:@-]{1,32}$/.test(label))
    throw new UsageError("--label is 1-32 of letters, digits, space and ._:@-");
  // Finish earlier rotations whose time has come.
  const earlier = await prune(g, tn, client);
  const current = (await loadCalleeKeys(g.home, tn)).filter(
    (k) => !retiring(k) && (values.kid === undefined || k.kid === values.kid),
  );
  if (values.kid !== undefined && current.length === 0)
    throw new UsageError(`No current local key ${values.kid} for ${showTn(tn)}`);
  const { keyPair, publicKey } = await generateRecipientKeyPair();
  const kid = await x25519Thumbprint(publicKey);
  const created = {
    kid,
    label,
    publicKey: encodeBase64url(publicKey),
    privateKey: encodeBase64url(await exportRecipientPrivateKey(keyPair.privateKey)),
    created: new Date().toISOString(),
  };
  await saveCalleeKey(g.home, tn, created);
  // New key first: from now on callers that look up seal to it (and to the old ones, still listed).
  await register({ ...created, raw: publicKey });
  const retireAt = new Date(Date.now() + overlap * 1000);
  await markRetiring(g, tn, current, retireAt);
  const report = (retired: string[], waiting: boolean) => {
    if (g.json)
      printJson({
        tn,
        directory,
        credential: cred.name,
        new: { kid, label },
        old: current.map((k) => k.kid),
        retireAt: retireAt.toISOString(),
        retired: [...earlier.retired.map((k) => k.kid), ...retired],
        waiting,
      });
    else {
      console.log(`${green("✔")} new key ${bold(kid)} ${dim(`(${label})`)} registered for ${showTn(tn)}`);
      for (const k of earlier.retired)
        console.log(`${green("✔")} retired key ${bold(k.kid)} (earlier rotation)`);
      for (const r of retired) console.log(`${green("✔")} retired old key ${bold(r)}`);
      if (waiting)
        for (const k of current)
          console.log(
            dim(
              `  old key ${k.kid} stays until ${retireAt.toISOString()}; then: stir-oob keys prune --tn ${showTn(tn)}`,
            ),
          );
    }
  };
  if (values["no-wait"] || current.length === 0) {
    report([], current.length > 0);
    return EXIT.OK;
  }
  // Keep the old keys while PASSporTs sealed to them may still be stored and fresh.
  const bar = progress(`old key(s) of ${showTn(tn)} retire in`, !g.json);
  const started = Date.now();
  try {
    while (Date.now() < retireAt.getTime()) {
      const elapsed = Math.floor((Date.now() - started) / 1000);
      bar.update(Math.min(elapsed, overlap), overlap);
      if (!g.json && !process.stderr.isTTY && elapsed % 30 === 0)
        process.stderr.write(dim(`waiting ${overlap - elapsed} s before retiring the old key(s)\n`));
      await new Promise((r) => setTimeout(r, Math.min(1000, Math.max(0, retireAt.getTime() - Date.now()))));
    }
  } finally {
    bar.end();
  }
  const retired: string[] = [];
  for (const k of current) {
    await retire(g, tn, client, k);
    retired.push(k.kid);
  }
  report(retired, false);
  return EXIT.OK;
}
