/**
 * `stir-oob gateway`: the gateway placement services of RFC 8816 §8.3.
 *   gateway store --identity VALUE [--identity VALUE ...] [--to +NUMBER]   SIP -> PSTN (§5.4)
 *   gateway fetch --to +NUMBER --calling +NUMBER                           PSTN -> SIP (§5.3 subcase 1)
 */
import { readFile } from "node:fs/promises";
import { Gateway, ReverseGateway } from "../client/gateway.js";
import { untokenedStores } from "../client/store-tokens.js";
import { VerificationService } from "../client/vs.js";
import { canonicalTn } from "../stir/tn.js";
import {
  describeSkipped,
  dim,
  discoveryFor,
  EXIT,
  green,
  loadGlobals,
  parse,
  printJson,
  red,
  showTn,
  UsageError,
  yellow,
} from "./common.js";
import { loadCalleeKeys, trustAnchors, x5uResolver } from "./home.js";
import { FileWallet } from "./wallet.js";

export const GATEWAY_HELP = `stir-oob gateway: move PASSporTs between SIP and the CPS (RFC 8816 §8.3)

Usage:
  stir-oob gateway store --identity VALUE [--identity VALUE ...] [--to +NUMBER] [--no-tokens]
                         [--trust root.pem] [--allow-unsigned-keys]
  stir-oob gateway store --identity-file FILE [--to +NUMBER]
  stir-oob gateway fetch --to +NUMBER --calling +NUMBER [--trust root.pem]

store  (SIP -> PSTN gateway, §5.4) takes the full-form PASSporT(s) out of the INVITE's Identity
       header value(s), seals each to every key of the called number whose signed key record
       verifies (as \`place\` does; exit 69 NO_VALID_KEYS when none does) and stores them (one storage
       token per store, from the wallet). --to defaults to the PASSporT's dest.
fetch  (PSTN -> SIP gateway, §5.3 subcase 1) retrieves and verifies the PASSporTs for --to with the
       local keys of --to, and prints an Identity header line per valid PASSporT for the new INVITE.
       Exit codes as for verify (0 verified, 1 failed, 2 no-passport).

Options:
  --identity VALUE     an Identity header value (with or without "Identity:"); repeatable
  --identity-file FILE Identity header values, one per line ("-" for stdin)
  --to +NUMBER         called number
  --calling +NUMBER    (fetch) the calling number presented on the PSTN leg
  --no-tokens          (store) store without storage tokens (ALLOW_UNTOKENED_STORES CPS only)
  --allow-unsigned-keys (store) also seal to keys without a signed record: trusts the key directory
  --trust FILE, --cps URL, --home DIR, --json
`;

async function readLines(file: string): Promise<string[]> {
  const text =
    file === "-"
      ? await new Response(process.stdin as unknown as ReadableStream).text()
      : await readFile(file, "utf8");
  return text.split(/\r?\n/).filter((l) => l.trim() !== "");
}

export async function gatewayCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    identity: { type: "string", multiple: true },
    "identity-file": { type: "string" },
    to: { type: "string" },
    calling: { type: "string" },
    trust: { type: "string", multiple: true },
    "no-tokens": { type: "boolean", default: false },
    "allow-unsigned-keys": { type: "boolean", default: false },
  });
  const [sub] = positionals;
  if (values.help || sub === undefined) {
    process.stdout.write(GATEWAY_HELP);
    return values.help ? EXIT.OK : EXIT.USAGE;
  }
  const g = await loadGlobals(values);

  if (sub === "store") {
    const identity = [
      ...(values.identity ?? []),
      ...(values["identity-file"] ? await readLines(values["identity-file"]) : []),
    ];
    if (identity.length === 0)
      throw new UsageError("gateway store needs --identity VALUE or --identity-file FILE");
    const wallet = new FileWallet(g.home, g.cps, undefined, g.transport);
    const tokens = values["no-tokens"] || (await wallet.size()) === 0 ? untokenedStores : wallet;
    if (tokens === untokenedStores && !values["no-tokens"]) {
      process.stderr.write(
        dim("note: the token wallet is empty (`stir-oob tokens fetch`); storing without tokens\n"),
      );
    }
    const gw = new Gateway({
      discovery: discoveryFor(g),
      tokens,
      trustAnchors: await trustAnchors(g, values.trust ?? []),
      resolveCertificate: x5uResolver(g),
      ...(values["allow-unsigned-keys"] ? { allowUnsignedKeys: true } : {}),
      ...g.transport,
    });
    const out = await gw.storeIdentity({ identity, ...(values.to ? { to: values.to } : {}) });
    if (g.json)
      printJson({ ...out, stored: out.stored.map((s) => ({ ...s, expires: s.expires.toISOString() })) });
    else {
      console.log(
        `${green("✔ STORED")}  ${out.passports.length} PASSporT(s) for ${showTn(out.to)} as ${out.stored.length} sealed cop${out.stored.length === 1 ? "y" : "ies"} at ${out.cps}`,
      );
      for (const k of out.skipped) console.log(describeSkipped(k));
      console.log(
        dim(
          `  steps (ms): discover ${out.timings.discover}, seal ${out.timings.seal}, tokens ${out.timings.tokens}, store ${out.timings.store}; total ${out.timings.total}`,
        ),
      );
    }
    return EXIT.OK;
  }

  if (sub === "fetch") {
    if (!values.to || !values.calling)
      throw new UsageError("gateway fetch needs --to +NUMBER and --calling +NUMBER");
    const to = canonicalTn(values.to);
    const keys = await loadCalleeKeys(g.home, to);
    if (keys.length === 0)
      throw new UsageError(`No local key for ${showTn(to)}: the reverse gateway holds the callee keys`);
    const vs = new VerificationService({
      keys: keys.map((k) => k.key),
      trustAnchors: await trustAnchors(g, values.trust ?? []),
      resolveCertificate: x5uResolver(g),
      discovery: discoveryFor(g),
      ...g.transport,
    });
    const { verification: v, identity } = await new ReverseGateway(vs).identityFor({
      to,
      calling: values.calling,
    });
    if (g.json) printJson({ verdict: v.verdict, identity, verification: v });
    else {
      const head = `${showTn(v.calling)} → ${showTn(v.to)}`;
      if (v.verdict === "verified") console.log(`${green("✔ VERIFIED")}  ${head}; add to the new INVITE:`);
      else if (v.verdict === "failed")
        console.log(`${red("✘ FAILED")}  ${head}: no valid PASSporT; forward without Identity`);
      else console.log(`${yellow("• NO PASSPORT")}  ${head}: nothing stored; forward without Identity`);
      for (const h of identity) console.log(`Identity: ${h}`);
      for (const c of v.candidates.filter((c) => !c.ok))
        console.log(dim(`  refused: step ${c.failure?.step} ${c.failure?.code}`));
    }
    return v.verdict === "verified" ? EXIT.OK : v.verdict === "failed" ? EXIT.FAILED : EXIT.NO_PASSPORT;
  }
  throw new UsageError(`Unknown gateway subcommand ${JSON.stringify(sub)} (store, fetch)`);
}
