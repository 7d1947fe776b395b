/**
 * `stir-oob keygen` (a callee's X25519 key pair, kept in the home) and `stir-oob keys` (register it
 * in the key directory, RFC 8816 §11; list what the directory publishes for a number).
 */
import { CpsClient } from "../client/cps-client.js";
import { encodeBase64url } from "../stir/base64url.js";
import { exportRecipientPrivateKey, generateRecipientKeyPair } from "../stir/envelope.js";
import { canonicalTn } from "../stir/tn.js";
import {
  bold,
  dim,
  discoveryFor,
  EXIT,
  green,
  loadGlobals,
  parse,
  printJson,
  showTn,
  UsageError,
} from "./common.js";
import { bearer, credentialFor, loadCalleeKeys, saveCalleeKey, x25519Thumbprint } from "./home.js";

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

register  publishes every local key of NUMBER (PUT /keys/NUMBER), authenticated by a STIR credential
          whose TNAuthList covers NUMBER (the first that does, or --as NAME).
list      shows the keys the directory publishes for NUMBER (what a caller will seal to).

Options:
  --tn +NUMBER       the number
  --as NAME          credential to sign the request with (default: one covering the number)
  --ttl SECONDS      how long the directory keeps the key (default 30 days)
  --cps URL          CPS / discovery base URL (default config.json "cps", env STIR_OOB_CPS, http://127.0.0.1:8787)
  --home DIR, --json
`;

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

export async function keysCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    tn: { type: "string" },
    as: { type: "string" },
    ttl: { type: "string" },
  });
  const [sub] = positionals;
  if (values.help || sub === undefined) {
    process.stdout.write(KEYS_HELP);
    return values.help ? EXIT.OK : EXIT.USAGE;
  }
  if (!values.tn) throw new UsageError(`keys ${sub} needs --tn +NUMBER`);
  const g = await loadGlobals(values);
  const tn = canonicalTn(values.tn);
  const discovery = discoveryFor(g);

  if (sub === "register") {
    const local = await loadCalleeKeys(g.home, tn);
    if (local.length === 0)
      throw new UsageError(`No local key for ${showTn(tn)}: run \`stir-oob keygen --tn ${showTn(tn)}\``);
    const ttl = values.ttl === undefined ? undefined : Number(values.ttl);
    if (ttl !== undefined && !Number.isInteger(ttl))
      throw new UsageError("--ttl is a whole number of seconds");
    const cred = await credentialFor(g.home, tn, values.as);
    const { keys: directory } = await discovery.locate(tn);
    const client = new CpsClient({ baseUrl: directory, ...g.transport });
    const registered = [];
    for (const k of local) {
      const res = await client.request(`/${tn}`, {
        method: "PUT",
        headers: {
          "content-type": "application/json",
          authorization: await bearer(cred, directory, "keys:put"),
        },
        body: JSON.stringify({
          jwk: { kty: "OKP", crv: "X25519", x: k.publicKey },
          label: k.label,
          ...(ttl === undefined ? {} : { ttl }),
        }),
      });
      await res.body?.cancel();
      registered.push({ kid: k.kid, label: k.label });
    }
    if (g.json) printJson({ tn, directory, credential: cred.name, registered });
    else {
      for (const r of registered)
        console.log(`${green("✔")} registered key ${bold(r.kid)} ${dim(`(${r.label})`)} for ${showTn(tn)}`);
      console.log(dim(`  directory ${directory}, signed with credential ${cred.name}`));
    }
    return EXIT.OK;
  }

  if (sub === "list") {
    const keys = await discovery.keys(tn);
    const local = new Set((await loadCalleeKeys(g.home, tn)).map((k) => encodeBase64url(k.raw)));
    const list = keys.map((k) => ({
      kid: k.kid,
      label: k.label,
      local: local.has(encodeBase64url(k.publicKey)),
    }));
    if (g.json) printJson({ tn, keys: list });
    else if (list.length === 0) console.log(`no keys registered for ${showTn(tn)}`);
    else
      for (const k of list)
        console.log(`  ${bold(k.kid)} ${k.label ?? ""} ${k.local ? green("(private key here)") : ""}`);
    return EXIT.OK;
  }
  throw new UsageError(`Unknown keys subcommand ${JSON.stringify(sub)} (register, list)`);
}
