/**
 * `stir-oob tokens`, `place` (the AS, RFC 8816 §8.1) and `verify` (the VS, §8.2).
 */
import type { X509Certificate } from "@peculiar/x509";
import { AuthenticationService, type CpsStoreResult } from "../client/as.js";
import { DecoyPoller } from "../client/decoys.js";
import { type Discovery, MAX_LOOKUP_OPEN_DIGITS, type SkippedKey } from "../client/discovery.js";
import { StirClientError } from "../client/errors.js";
import type { ReportOutcome } from "../client/feedback.js";
import { type StorePolicy, tokensPerCps } from "../client/multi-cps.js";
import type { StoreTokenSource } from "../client/store-tokens.js";
import { untokenedStores } from "../client/store-tokens.js";
import type { CalleeKey, CallVerification, Candidate, VerificationServiceOptions } from "../client/vs.js";
import { VerificationService } from "../client/vs.js";
import { canonicalTn } from "../stir/tn.js";
import {
  bold,
  decoysFlag,
  describeSkipped,
  dim,
  discoveryFor,
  EXIT,
  freshnessFlag,
  type GlobalOptions,
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
import {
  bearer,
  credentialFor,
  type LocalCredential,
  requireCalleeKeys,
  trustAnchors,
  x5uResolver,
} from "./home.js";
import { FileReplayStore } from "./replay-store.js";
import { FileWallet } from "./wallet.js";

export const TOKENS_HELP = `stir-oob tokens: storage tokens (RFC 8816 §7.5), fetched ahead of calls

Usage:
  stir-oob tokens fetch [--count N] [--as CREDENTIAL]
  stir-oob tokens status

fetch   obtains N blind-signed tokens (default 10) from the CPS, authenticated by a STIR credential;
        the CPS cannot link them to the stores they later pay for. Kept in <home>/wallet/.
status  shows how many unspent tokens the wallet holds for the CPS.

Options:
  --count N     tokens to fetch (default 10)
  --as NAME     credential for the issuance request (default: the first one)
  --cps URL, --home DIR, --json
`;

export const PLACE_HELP = `stir-oob place: authenticate a call out of band (RFC 8816 §8.1)

Usage:
  stir-oob place --from +NUMBER --to +NUMBER [--as CREDENTIAL] [--attest A|B|C] [--no-tokens]
                 [--lookup-open-digits N] [--allow-unsigned-keys] [--trust root.pem]
                 [--store-policy all|any|N] [--cps-deadline MS]

Signs a full-form PASSporT with a credential covering --from, finds the CPS and the encryption keys
of --to, keeps only keys whose signed key record verifies (signed by a STIR credential that chains to
a trust anchor and covers --to, valid now), seals one copy per key, pays one storage token per
store, stores them, and only then says the call may proceed. Keys the directory served that failed
the check are listed with the reason. Exit 0 when every copy is stored; 69 when no served key passed
(NO_VALID_KEYS: nothing is stored).

Options:
  --from +NUMBER            calling number (a local credential must cover it)
  --to +NUMBER              called number
  --as NAME                 credential to sign with (default: one covering --from)
  --attest A|B|C            SHAKEN attestation (default A)
  --no-tokens               store without storage tokens (only a CPS with ALLOW_UNTOKENED_STORES accepts that)
  --lookup-open-digits N    ask the key directory for the block of --to with its last N digits open,
                            so it does not learn the number (RFC 8816 §11; default 2, 0 = exact number)
  --allow-unsigned-keys     also seal to keys without a signed record: trusts the key directory
                            with the call (docs/threat-model.md); off by default
  --trust FILE              extra trust anchor PEM for key records (default: <home>/ca/root.pem and config "trust")
  --store-policy all|any|N  when discovery names several CPSes for --to (RFC 8816 §10): a fresh copy is
                            stored at each, and the call may proceed when all (default), any one, or
                            N of them hold it; each CPS is paid with its own tokens (<home>/wallet/)
  --cps-deadline MS         several CPSes: once the policy is met, a CPS still storing MS ms after the
                            stores began is reported timed out instead of holding the call (default 2000)
  --cps URL, --home DIR, --json
`;

export const VERIFY_HELP = `stir-oob verify: verify a ringing call out of band (RFC 8816 §8.2)

Usage:
  stir-oob verify --to +NUMBER --calling +NUMBER [--calling +NUMBER ...] [--trust root.pem] [--freshness S]
                  [--allow-forking] [--report] [--cps-deadline MS] [--decoys K]

Retrieves every blob stored for --to, opens what it can with every local key of --to, and checks each
PASSporT: ppt supported, orig = the calling number presented, credential valid and trusted, iat fresh,
signature valid. Several --calling values judge several ringing calls over ONE retrieval (a call
centre, §5.5). A call forwarded to --to (\`stir-oob divert\`; RFC 8946 div/div-o) verifies when its
whole chain does: each diversion signed for the number it diverted from, back to the original
PASSporT signed for the calling number; the verdict shows the path.

Verdicts and exit codes:
  verified     0   a PASSporT passed every check
  failed       1   PASSporT(s) opened, none passed (the reason for each is shown)
  no-passport  2   nothing opened for this number: no out-of-band PASSporT for the call
  (64 usage error, 69 CPS unreachable or refusing, 70 internal error; with several --calling the
  worst verdict sets the exit code)

Options:
  --to +NUMBER        the called number (your number; keys in <home>/keys/NUMBER/)
  --calling +NUMBER   the calling number presented in signalling
  --trust FILE        extra trust anchor PEM (default: <home>/ca/root.pem and config "trust")
  --freshness S       iat freshness window in seconds (default 60)
  --allow-forking     let a PASSporT that already verified a call verify this one too (one call forked
                      to several devices, RFC 8224 §6.2). Without it, each verified PASSporT is kept
                      in <home>/replay/ for the freshness window and a later call presenting it fails
                      at step 5 with REPLAYED
  --cps-deadline MS   when discovery names several CPSes for --to (RFC 8816 §10), every one is asked and
                      their blobs merged; one that has not answered MS ms after the first request is
                      reported timed out and skipped, once another has answered (default 2000)
  --decoys K          also retrieve K numbers you do not own (same prefix, random last 4 digits), each
                      request at a random offset within 100 ms, yours included, so the CPS cannot
                      tell which is yours from the requests (RFC 8816 §6.2; docs/cover-and-decoys.md)
  --report            report each blob whose PASSporT failed in a way the CPS can confirm (bad
                      signature, untrusted or non-covering signer, stale, dest not your number,
                      malformed) to the CPS, which then refuses the token that paid for it
                      (RFC 8816 §7.5 feedback; docs/tokens.md "Feedback"). Through the relay if set
  --cps URL, --home DIR, --json
`;

export function walletFor(g: GlobalOptions, cps: string, cred: LocalCredential | undefined): FileWallet {
  return new FileWallet(g.home, cps, cred ? () => bearer(cred, cps, "tokens:issue") : undefined, g.transport);
}

/**
 * What `place` and `divert` sign, seal and store with: the local credential, key records checked
 * against the trust anchors, and storage tokens from the wallets (none with --no-tokens).
 */
export function storingOptions(
  g: GlobalOptions,
  cred: LocalCredential,
  discovery: Discovery,
  anchors: X509Certificate[],
  noTokens: boolean,
) {
  return {
    credential: { privateKey: cred.privateKey, x5u: cred.x5u, chain: cred.chain },
    discovery,
    tokens: noTokens ? untokenedStores : walletTokens(g, cred),
    trustAnchors: anchors,
    resolveCertificate: x5uResolver(g),
    ...g.transport,
  };
}

/**
 * A wallet per CPS the call is stored at (tokens are only good at the CPS that issued them).
 * Without tokens in it and with a CPS that lets stores go without, say so instead of failing.
 */
function walletTokens(g: GlobalOptions, cred: LocalCredential): StoreTokenSource {
  return tokensPerCps((cps) => {
    let ready: Promise<StoreTokenSource> | undefined;
    const source = () => {
      if (ready === undefined) {
        const wallet = walletFor(g, cps, cred);
        ready = wallet.size().then((n) => (n > 0 ? wallet : fallbackTokens(wallet)));
      }
      return ready;
    };
    return {
      headersForStore: async (at, tn, blob) => (await source()).headersForStore(at, tn, blob),
      prefetch: async (at, n) => (await source()).prefetch?.(at, n),
    };
  });
}

/**
 * The VS that judges a ringing call (`verify`, and `divert` before it forwards one). Diverted calls
 * (RFC 8946): a div/div-o PASSporT verifies only as a chain back to the original. Each run is one
 * ringing call in a new process: the replay cache lives in the home (§8.2 step 5).
 */
export function ringingCallVerifier(
  g: GlobalOptions,
  keys: readonly { key: CalleeKey }[],
  options: Omit<VerificationServiceOptions, "keys" | "resolveCertificate" | "supportedPpt" | "replayStore">,
): VerificationService {
  return new VerificationService({
    keys: keys.map((k) => k.key),
    resolveCertificate: x5uResolver(g),
    supportedPpt: ["shaken", "div", "div-o"],
    replayStore: new FileReplayStore(g.home),
    ...g.transport,
    ...options,
  });
}

export async function tokensCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { count: { type: "string" }, as: { type: "string" } });
  const [sub] = positionals;
  if (values.help || sub === undefined) {
    process.stdout.write(TOKENS_HELP);
    return values.help ? EXIT.OK : EXIT.USAGE;
  }
  const g = await loadGlobals(values);
  if (sub === "status") {
    const n = await walletFor(g, g.cps, undefined).size();
    if (g.json) printJson({ cps: g.cps, tokens: n });
    else console.log(`${n} unspent storage token${n === 1 ? "" : "s"} for ${g.cps}`);
    return EXIT.OK;
  }
  if (sub !== "fetch")
    throw new UsageError(`Unknown tokens subcommand ${JSON.stringify(sub)} (fetch, status)`);
  const count = Number(values.count ?? 10);
  if (!Number.isInteger(count) || count < 1 || count > 1000) throw new UsageError("--count is 1 to 1000");
  const cred = await credentialFor(g.home, undefined, values.as);
  const wallet = walletFor(g, g.cps, cred);
  const bar = progress("blinding and fetching tokens", !g.json);
  const t = performance.now();
  try {
    await wallet.refill(count, (d, total) => bar.update(Math.floor(d), total));
  } finally {
    bar.end();
  }
  const held = await wallet.size();
  const seconds = (performance.now() - t) / 1000;
  if (g.json) printJson({ cps: g.cps, fetched: count, held, seconds });
  else
    console.log(
      `${green("✔")} fetched ${count} storage tokens in ${seconds.toFixed(1)} s (${held} held for ${g.cps})`,
    );
  return EXIT.OK;
}

export async function placeCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    from: { type: "string" },
    to: { type: "string" },
    as: { type: "string" },
    attest: { type: "string" },
    "no-tokens": { type: "boolean", default: false },
    "lookup-open-digits": { type: "string" },
    "allow-unsigned-keys": { type: "boolean", default: false },
    trust: { type: "string", multiple: true },
    "store-policy": { type: "string" },
    "cps-deadline": { type: "string" },
  });
  if (values.help) {
    process.stdout.write(PLACE_HELP);
    return EXIT.OK;
  }
  if (!values.from || !values.to)
    throw new UsageError("place needs --from +NUMBER and --to +NUMBER (see --help)");
  const attest = values.attest ?? "A";
  if (attest !== "A" && attest !== "B" && attest !== "C") throw new UsageError("--attest is A, B or C");
  const openText = values["lookup-open-digits"];
  const lookupOpenDigits = openText === undefined ? undefined : Number(openText);
  if (
    lookupOpenDigits !== undefined &&
    !(/^[0-9]$/.test(openText ?? "") && lookupOpenDigits <= MAX_LOOKUP_OPEN_DIGITS)
  ) {
    throw new UsageError(`--lookup-open-digits is 0 to ${MAX_LOOKUP_OPEN_DIGITS}`);
  }
  const storePolicy = storePolicyFlag(values["store-policy"]);
  const cpsDeadlineMs = deadlineFlag(values["cps-deadline"]);
  const g = await loadGlobals(values);
  const from = canonicalTn(values.from);
  const to = canonicalTn(values.to);
  const cred = await credentialFor(g.home, from, values.as);
  const anchors = await trustAnchors(g, values.trust ?? []);
  const discovery = discoveryFor(g, lookupOpenDigits === undefined ? {} : { lookupOpenDigits });
  const as = new AuthenticationService({
    ...storingOptions(g, cred, discovery, anchors, values["no-tokens"]),
    ...(values["allow-unsigned-keys"] ? { allowUnsignedKeys: true } : {}),
    ...(storePolicy ? { storePolicy } : {}),
    ...(cpsDeadlineMs === undefined ? {} : { cpsDeadlineMs }),
  });
  let call: Awaited<ReturnType<AuthenticationService["placeCall"]>>;
  try {
    call = await as.placeCall({ from, to, attest });
  } catch (err) {
    // Say which served keys were refused and why before the error line (--json: in the error's place).
    if (err instanceof StirClientError && err.code === "NO_VALID_KEYS" && !g.json) {
      for (const k of (err.details.skipped ?? []) as SkippedKey[])
        process.stderr.write(`${describeSkipped(k)}\n`);
    }
    // Several CPSes and the store policy not met: say which CPS held the call and which did not.
    if (err instanceof StirClientError && err.code === "STORE_FAILED" && !g.json) {
      for (const c of (err.details.copies ?? []) as CpsStoreResult[])
        process.stderr.write(`  ${c.cps}: ${c.outcome}${c.error ? ` (${c.error.code})` : ""}\n`);
    }
    throw err;
  }
  if (g.json) {
    printJson({
      ...call,
      credential: cred.name,
      stored: call.stored.map((s) => ({ ...s, expires: s.expires.toISOString() })),
    });
    return EXIT.OK;
  }
  const t = call.timings;
  console.log(`${green("✔ CALL MAY PROCEED")}  ${showTn(from)} → ${showTn(to)}`);
  console.log(
    `  PASSporT signed by ${bold(cred.name)}, ${call.stored.length} sealed cop${call.stored.length === 1 ? "y" : "ies"} stored at ${call.cps} (one per key of ${showTn(to)})`,
  );
  for (const s of call.stored)
    console.log(dim(`    key ${s.kid} → ${s.location}, until ${s.expires.toISOString()}`));
  // Several CPSes for the number (§10): where the call is held, and which CPS failed or was too slow.
  if (call.copies.length > 1) {
    for (const c of call.copies) {
      const why = c.error ? ` (${c.error.code})` : "";
      const line = `    ${c.outcome === "stored" ? green("✔") : yellow("•")} ${c.cps}: ${c.outcome}${why}`;
      console.log(line);
    }
  }
  for (const k of call.skipped) console.log(describeSkipped(k));
  console.log(
    dim(
      `  steps (ms): authorize ${t.authorize}, discover ${t.discover}, sign ${t.sign}, seal ${t.seal}, tokens ${t.tokens}, store ${t.store}; total ${t.total}`,
    ),
  );
  return EXIT.OK;
}

/** `--store-policy all|any|N`. */
function storePolicyFlag(text: string | undefined): StorePolicy | undefined {
  if (text === undefined || text === "all" || text === "any") return text;
  if (/^[1-9][0-9]?$/.test(text)) return { count: Number(text) };
  throw new UsageError("--store-policy is all, any or a number of CPSes (1-99)");
}

/** `--cps-deadline MS`. */
function deadlineFlag(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^[0-9]{1,6}$/.test(text)) throw new UsageError("--cps-deadline is a number of milliseconds");
  return Number(text);
}

/** An empty wallet: fetch a batch now if we can; the CPS's answer decides the rest. */
export async function fallbackTokens(wallet: FileWallet): Promise<StoreTokenSource> {
  try {
    await wallet.refill(wallet.batch);
    return wallet;
  } catch (err) {
    // A CPS without token issuance (ALLOW_UNTOKENED_STORES, no issuer keys) still takes the store;
    // a CPS that requires tokens answers TOKEN_MISSING, which the user then sees.
    process.stderr.write(
      dim(`note: no storage tokens (${err instanceof Error ? err.message : err}); storing without\n`),
    );
    return untokenedStores;
  }
}

function describeCandidate(c: Candidate): string {
  const who = c.orig ? `orig ${/^[0-9]+$/.test(c.orig) ? showTn(c.orig) : c.orig}` : "unreadable";
  // A diverted call (RFC 8946): who signed each link, from this number's diversion back to the original.
  const via = c.diversion
    ? `, diverted via ${c.diversion.via.map(showTn).join(" → ")} (${c.diversion.links.map((l) => `${l.kind} signed by ${l.signer ?? "?"}`).join("; ")})`
    : "";
  if (c.ok)
    return `${green("✔")} ${who}, attest ${c.attest ?? "-"}${c.origid ? `, origid ${c.origid}` : ""}, signed by ${c.signer ?? "?"}${via}`;
  const f = c.failure;
  const link = f?.link ? ` (diversion link ${f.link})` : "";
  return `${red("✘")} ${who}: step ${f?.step} ${f?.code}${link} — ${f?.message}`;
}

function printVerdict(v: CallVerification): void {
  const head = `${showTn(v.calling)} → ${showTn(v.to)}`;
  if (v.verdict === "verified") {
    const age =
      v.verified?.iat === undefined
        ? ""
        : `, signed ${Math.max(0, Math.round(Date.now() / 1000 - v.verified.iat))} s ago`;
    console.log(`${green("✔ VERIFIED")}  call ${head}: the calling number is authenticated${age}`);
    if (v.diversion) {
      const path = [v.calling, ...v.diversion.via, v.to].map(showTn).join(" → ");
      console.log(
        `  diverted: ${path} (${v.diversion.via.length} diversion${v.diversion.via.length === 1 ? "" : "s"}, each signed for the number it diverted from)`,
      );
    }
  } else if (v.verdict === "failed") {
    console.log(`${red("✘ FAILED")}  call ${head}: out-of-band PASSporT(s) found, none valid for this call`);
  } else {
    console.log(
      `${yellow("• NO PASSPORT")}  call ${head}: nothing stored for you; the caller is not authenticated out of band`,
    );
  }
  for (const c of v.candidates) console.log(`  ${describeCandidate(c)}`);
  console.log(
    dim(
      `  ${v.examined} blobs examined (real ones and CPS dummies), ${v.opened} opened; retrieve ${v.timings.retrieve} ms, open ${v.timings.open} ms, verify ${v.timings.verify} ms`,
    ),
  );
  // Several CPSes for the number (§10): which answered, and which failed or was skipped at the deadline.
  for (const s of v.sources ?? []) {
    const detail = s.outcome === "answered" ? `${s.blobs} blobs, ${s.ms} ms` : (s.error?.code ?? "no answer");
    console.log(dim(`  CPS ${s.cps}: ${s.outcome} (${detail})`));
  }
}

/** Reports each verdict's reportable failures; one list of outcomes per verdict (a blob once only). */
async function reportFailures(vs: VerificationService, results: readonly CallVerification[]) {
  const done = new Set<string>();
  const out: ReportOutcome[][] = [];
  for (const r of results) {
    const fresh = r.candidates.filter((c) => c.blobIds.every((id) => !done.has(id)));
    for (const c of fresh) for (const id of c.blobIds) done.add(id);
    out.push(await vs.report({ to: r.to, candidates: fresh }));
  }
  return out;
}

function describeReport(o: ReportOutcome): string {
  if (o.outcome === "revoked")
    return `${yellow("⚑")} reported blob ${o.blobId}: the CPS revoked the token that paid for it`;
  if (o.outcome === "already")
    return `${yellow("⚑")} reported blob ${o.blobId}: its token was already revoked`;
  if (o.outcome === "not-found") return dim(`reported blob ${o.blobId}: no CPS serves it any more`);
  return dim(`reported blob ${o.blobId}: the CPS refused the report (${o.code})`);
}

export async function verifyCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    to: { type: "string" },
    calling: { type: "string", multiple: true },
    trust: { type: "string", multiple: true },
    freshness: { type: "string" },
    "allow-forking": { type: "boolean", default: false },
    "cps-deadline": { type: "string" },
    report: { type: "boolean", default: false },
    decoys: { type: "string" },
  });
  if (values.help) {
    process.stdout.write(VERIFY_HELP);
    return EXIT.OK;
  }
  if (!values.to || !values.calling?.length)
    throw new UsageError("verify needs --to +NUMBER and --calling +NUMBER (see --help)");
  const freshness = freshnessFlag(values.freshness);
  const cpsDeadlineMs = deadlineFlag(values["cps-deadline"]);
  const g = await loadGlobals(values);
  const to = canonicalTn(values.to);
  const calling = values.calling.map((c) => canonicalTn(c));
  const keys = await requireCalleeKeys(g.home, to);
  const decoyCount = decoysFlag(values.decoys);
  const decoys = decoyCount
    ? new DecoyPoller({
        own: [to],
        perRetrieval: decoyCount,
        spreadMs: 100,
        discovery: discoveryFor(g),
        ...g.transport,
      })
    : undefined;
  const bar = progress("opening blobs", !g.json);
  const vs = ringingCallVerifier(g, keys, {
    trustAnchors: await trustAnchors(g, values.trust ?? []),
    discovery: discoveryFor(g),
    ...(freshness === undefined ? {} : { freshnessSeconds: freshness }),
    ...(cpsDeadlineMs === undefined ? {} : { cpsDeadlineMs }),
    ...(values["allow-forking"] ? { allowForking: true } : {}),
    onProgress: (done, total) => bar.update(done, total),
    ...(decoys ? { decoys } : {}),
  });
  let opened: Awaited<ReturnType<VerificationService["open"]>>;
  try {
    opened = await vs.open(to);
  } finally {
    bar.end();
  }
  await decoys?.stop(); // the decoy retrievals still in flight
  const results = await Promise.all(calling.map((c) => vs.judge(opened, c)));
  // --report (RFC 8816 §7.5 feedback): blobs that failed in a way the CPS can confirm are reported.
  const reports = values.report ? await reportFailures(vs, results) : undefined;
  if (g.json) {
    const out = reports === undefined ? results : results.map((r, i) => ({ ...r, reports: reports[i] }));
    printJson(out.length === 1 ? out[0] : out);
  } else {
    for (const [i, r] of results.entries()) {
      printVerdict(r);
      for (const o of reports?.[i] ?? []) console.log(`  ${describeReport(o)}`);
    }
  }
  // Several ringing calls: a failed one (possible spoof) outranks a missing PASSporT.
  const verdicts = new Set(results.map((r) => r.verdict));
  return verdicts.has("failed") ? EXIT.FAILED : verdicts.has("no-passport") ? EXIT.NO_PASSPORT : EXIT.OK;
}
