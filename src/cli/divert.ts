/**
 * `stir-oob divert`: forward a ringing call out of band (RFC 8946; RFC 8816 §6.2, last paragraph).
 * Verifies the call at the number diverted from (its keys are in the home), then signs a `div-o` (or
 * `div`) PASSporT with a credential covering that number and stores it, sealed to the new
 * destination's keys, under the new destination's number (src/client/divert.ts).
 */
import { DivertingService } from "../client/divert.js";
import type { VerificationService } from "../client/vs.js";
import { canonicalTn } from "../stir/tn.js";
import { ringingCallVerifier, storingOptions } from "./calls.js";
import {
  bold,
  dim,
  discoveryFor,
  EXIT,
  freshnessFlag,
  green,
  loadGlobals,
  parse,
  printJson,
  progress,
  red,
  showTn,
  UsageError,
  yellow,
} from "./common.js";
import { credentialFor, requireCalleeKeys, trustAnchors } from "./home.js";

export const DIVERT_HELP = `stir-oob divert: forward a ringing call out of band (RFC 8946, RFC 8816 §6.2)

Usage:
  stir-oob divert --from +NUMBER --to +NUMBER --calling +NUMBER [--as CREDENTIAL] [--kind div|div-o]
                  [--no-tokens] [--trust root.pem] [--freshness S]

Verifies the call from --calling ringing at --from (your number: keys in <home>/keys/NUMBER/, as
\`verify\` does), then signs a diversion PASSporT with a credential covering --from (orig: the caller,
dest: --to, div: --from) and stores it under --to, sealed to --to's keys, with what --to's verifier
needs of the chain. \`stir-oob verify --to <the new number>\` then shows the diversion.

  --kind div-o  nests the PASSporT diverted in the new one ("opt"): what RFC 8816 §6.2 recommends.
  --kind div    stores the PASSporT diverted beside the new one (also sealed to --to).
  Default: div-o when it fits an envelope (1022 bytes), else div (a second diversion usually is div).

Exit codes: 0 diverted; 1 the ringing call did not verify (nothing diverted); 2 no PASSporT for it;
64 usage error; 69 CPS unreachable or refusing; 70 internal error.

Options:
  --from +NUMBER      the number the call rang at (diverted from)
  --to +NUMBER        the new destination
  --calling +NUMBER   the calling number presented in signalling
  --as NAME           credential to sign with (default: one covering --from)
  --kind div|div-o    diversion PASSporT type (default: div-o when it fits)
  --no-tokens         store without storage tokens (only a CPS with ALLOW_UNTOKENED_STORES accepts that)
  --trust FILE        extra trust anchor PEM (default: <home>/ca/root.pem and config "trust")
  --freshness S       iat freshness window in seconds for the check at --from (default 60)
  --cps URL, --home DIR, --json
`;

export async function divertCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    from: { type: "string" },
    to: { type: "string" },
    calling: { type: "string" },
    as: { type: "string" },
    kind: { type: "string" },
    "no-tokens": { type: "boolean", default: false },
    trust: { type: "string", multiple: true },
    freshness: { type: "string" },
  });
  if (values.help) {
    process.stdout.write(DIVERT_HELP);
    return EXIT.OK;
  }
  if (!values.from || !values.to || !values.calling)
    throw new UsageError("divert needs --from +NUMBER, --to +NUMBER and --calling +NUMBER (see --help)");
  const kind = values.kind;
  if (kind !== undefined && kind !== "div" && kind !== "div-o")
    throw new UsageError("--kind is div or div-o");
  const freshness = freshnessFlag(values.freshness);
  const g = await loadGlobals(values);
  const from = canonicalTn(values.from);
  const to = canonicalTn(values.to);
  const calling = canonicalTn(values.calling);
  const keys = await requireCalleeKeys(g.home, from);
  const cred = await credentialFor(g.home, from, values.as);
  const anchors = await trustAnchors(g, values.trust ?? []);
  const discovery = discoveryFor(g);

  // 1. The call as it rang at --from: only a verified call is diverted (a chain of diversions too).
  const bar = progress("opening blobs", !g.json);
  const vs = ringingCallVerifier(g, keys, {
    trustAnchors: anchors,
    discovery,
    ...(freshness === undefined ? {} : { freshnessSeconds: freshness }),
    onProgress: (done, total) => bar.update(done, total),
  });
  let call: Awaited<ReturnType<VerificationService["verifyCall"]>>;
  try {
    call = await vs.verifyCall({ to: from, calling });
  } finally {
    bar.end();
  }
  if (call.verdict !== "verified") {
    if (g.json) printJson({ diverted: false, verification: call });
    else {
      const why = call.candidates.map((c) => `${c.failure?.code ?? "?"}`).join(", ");
      const line =
        call.verdict === "failed"
          ? `${red("✘ NOT DIVERTED")}  the call at ${showTn(from)} did not verify (${why})`
          : `${yellow("• NOT DIVERTED")}  no PASSporT for the call at ${showTn(from)}`;
      console.log(line);
    }
    return call.verdict === "failed" ? EXIT.FAILED : EXIT.NO_PASSPORT;
  }

  // 2. Sign and store for --to, paying with the wallet of whichever CPS serves --to.
  const service = new DivertingService(storingOptions(g, cred, discovery, anchors, values["no-tokens"]));
  const diverted = await service.divert({ call, to, ...(kind === undefined ? {} : { kind }) });
  if (g.json) {
    printJson({
      diverted: true,
      ...diverted,
      credential: cred.name,
      via: [...(call.diversion?.via ?? []), from],
      stored: diverted.stored.map((s) => ({ ...s, expires: s.expires.toISOString() })),
    });
    return EXIT.OK;
  }
  const path = [calling, ...(call.diversion?.via ?? []), from, to].map(showTn).join(" → ");
  console.log(`${green("✔ CALL DIVERTED")}  ${path}`);
  console.log(
    `  ${bold(diverted.kind)} PASSporT signed by ${bold(cred.name)}; ${diverted.passports.length} PASSporT${diverted.passports.length === 1 ? "" : "s"}, ${diverted.stored.length} sealed cop${diverted.stored.length === 1 ? "y" : "ies"} stored at ${diverted.cps} for ${showTn(to)}`,
  );
  const t = diverted.timings;
  console.log(
    dim(
      `  steps (ms): sign ${t.sign}, discover ${t.discover}, seal ${t.seal}, tokens ${t.tokens}, store ${t.store}; total ${t.total}`,
    ),
  );
  return EXIT.OK;
}
