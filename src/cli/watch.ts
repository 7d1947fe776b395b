/**
 * `stir-oob watch`: the push side of §5.5 / §8.2 step 1 ("it may receive PASSporTs through a push
 * interface from the CPS"): subscribe to a number, open every pushed blob with the local keys, and
 * report each PASSporT that opens with steps 2 and 4-6 (its `orig` is the caller it announces; a call
 * centre matches it to the ringing line). Dummies open with no key and are only counted.
 */

import { DecoyPlan } from "../client/decoys.js";
import { VerificationService } from "../client/vs.js";
import { watch } from "../client/watch.js";
import { encodeBase64url } from "../stir/base64url.js";
import { decodePassport } from "../stir/passport.js";
import { canonicalTn } from "../stir/tn.js";
import {
  countFlag,
  decoysFlag,
  dim,
  discoveryFor,
  EXIT,
  green,
  loadGlobals,
  parse,
  red,
  secondsFlag,
  showTn,
  UsageError,
} from "./common.js";
import { bearer, credentialFor, requireCalleeKeys, trustAnchors, x5uResolver } from "./home.js";

export const WATCH_HELP = `stir-oob watch: receive PASSporTs for a number as the CPS stores them (push, RFC 8816 §5.5)

Usage:
  stir-oob watch --to +NUMBER [--as NAME] [--count N] [--timeout S] [--trust root.pem] [--decoys K]

Subscribes to the CPS for --to, opens each pushed blob with the local keys of --to, and prints one
line per PASSporT that opens: the caller it announces and whether it verifies (ppt, credential,
freshness, signature). With --json, one JSON object per line. Stops on Ctrl+C, after N verified
PASSporTs (--count, then exit 0), or after S seconds (--timeout, then exit 2 if --count was not met).

Options:
  --to +NUMBER   the number to watch (keys in <home>/keys/NUMBER/)
  --as NAME      subscribe as the callee, with the STIR credential NAME (it must cover the number):
                 the CPS then admits the subscription however many anonymous ones it holds
  --count N      stop after N verified PASSporTs
  --timeout S    stop after S seconds
  --decoys K     also subscribe to K numbers you do not own (same prefix, random last 4 digits),
                 dropping their frames, so the CPS cannot tell which one you watch (RFC 8816 §6.2;
                 not with --as, whose credential names your numbers anyway)
  --trust FILE, --cps URL, --home DIR, --json
`;

export async function watchCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    to: { type: "string" },
    count: { type: "string" },
    timeout: { type: "string" },
    trust: { type: "string", multiple: true },
    as: { type: "string" },
    decoys: { type: "string" },
  });
  if (values.help) {
    process.stdout.write(WATCH_HELP);
    return EXIT.OK;
  }
  if (!values.to) throw new UsageError("watch needs --to +NUMBER (see --help)");
  const count = countFlag(values.count);
  const timeout = secondsFlag("--timeout", values.timeout);
  const g = await loadGlobals(values);
  const to = canonicalTn(values.to);
  const keys = await requireCalleeKeys(g.home, to);
  const cred = values.as === undefined ? undefined : await credentialFor(g.home, to, values.as);
  const decoyCount = decoysFlag(values.decoys);
  if (decoyCount && cred)
    throw new UsageError("--decoys hides nothing with --as (the credential names your numbers)");
  const vs = new VerificationService({
    keys: keys.map((k) => k.key),
    trustAnchors: await trustAnchors(g, values.trust ?? []),
    resolveCertificate: x5uResolver(g),
    discovery: discoveryFor(g),
  });

  let verified = 0;
  let dummies = 0;
  // A PASSporT sealed to several keys of the number arrives once per key (distinct blob ids): it is
  // one call, reported once. Its replay-cache claim uses the PASSporT as the call id, so judging a
  // copy again finds its own claim rather than REPLAYED (src/client/vs.ts).
  const reported = new Set<string>();
  const controller = new AbortController();
  const stop = () => controller.abort();
  process.once("SIGINT", stop);
  const timer = timeout === undefined ? undefined : setTimeout(stop, timeout * 1000);

  // Push is a WebSocket, which Oblivious HTTP cannot carry (docs/ohttp.md "Limits"): refuse under
  // --require-relay; with --relay alone, say that this connection goes to the CPS directly.
  if (g.transport.relay && !g.transport.requireRelay && !g.json)
    process.stderr.write(dim("note: watch connects to the CPS directly; --relay covers requests only\n"));
  const w = watch({
    cps: g.cps,
    ...(g.transport.requireRelay ? { requireRelay: true } : {}),
    target: { tn: to },
    ...(decoyCount
      ? { decoys: new DecoyPlan({ perRetrieval: decoyCount }).decoysFor(to).map((tn) => ({ tn })) }
      : {}),
    signal: controller.signal,
    // A fresh token per dial: credential tokens are single use.
    ...(cred ? { authorization: () => bearer(cred, g.cps, "push:subscribe") } : {}),
    onStatus: (s) => {
      if (!g.json)
        process.stderr.write(
          dim(
            s.state === "open"
              ? `watching ${showTn(to)} at ${g.cps}\n`
              : `disconnected; retrying in ${s.retryInMs} ms\n`,
          ),
        );
    },
    onError: (err) => {
      if (!g.json)
        process.stderr.write(dim(`watch: ${err instanceof Error ? err.message : "connection error"}\n`));
    },
    onFrame: async (frame) => {
      const opened = await vs.open(to, [{ id: frame.id, blob: encodeBase64url(frame.blob) }]);
      const [passport] = [...opened.passports.keys()];
      if (passport === undefined) {
        dummies++;
        return;
      }
      if (reported.has(passport)) return;
      let orig: string | undefined;
      try {
        const o = decodePassport(passport).claims.orig;
        orig = "tn" in o ? o.tn : undefined;
      } catch {
        orig = undefined;
      }
      // The caller's number is the one the PASSporT announces: step 3 is the call centre's matching.
      const v = await vs.judge(opened, orig ?? to, { callId: passport });
      const c = v.candidates[0];
      if (v.verdict === "verified") {
        if (reported.has(passport)) return; // a copy judged concurrently
        reported.add(passport);
        verified++;
      }
      if (g.json) {
        process.stdout.write(
          `${JSON.stringify({ id: frame.id, at: new Date().toISOString(), orig, origid: c?.origid, verdict: v.verdict, failure: c?.failure })}\n`,
        );
      } else if (v.verdict === "verified") {
        console.log(
          `${green("✔ VERIFIED")}  incoming call from ${orig ? showTn(orig) : "?"} to ${showTn(to)} (attest ${c?.attest ?? "-"}${c?.origid ? `, origid ${c.origid}` : ""})`,
        );
      } else {
        console.log(
          `${red("✘ FAILED")}  PASSporT for ${showTn(to)}: step ${c?.failure?.step} ${c?.failure?.code}`,
        );
      }
      if (count !== undefined && verified >= count) stop();
    },
  });
  await w.done;
  if (timer) clearTimeout(timer);
  process.off("SIGINT", stop);
  if (!g.json) process.stderr.write(dim(`${verified} verified, ${dummies} dummies or not for these keys\n`));
  return count !== undefined && verified < count ? EXIT.NO_PASSPORT : EXIT.OK;
}
