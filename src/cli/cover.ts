/**
 * `stir-oob cover`: cover traffic by an authentication service (RFC 8816 §7.4 last paragraph, §13),
 * as a daemon: stores cover calls (sealed to keys nobody holds, one storage token per blob, exactly
 * like real stores) at Poisson times to numbers of the given patterns, with a status line. A library
 * AS learns its cover from its own calls instead (src/client/cover.ts, docs/cover-and-decoys.md).
 */
import { CoverTraffic } from "../client/cover.js";
import { StirOobError } from "../client/errors.js";
import { tokensPerCps } from "../client/multi-cps.js";
import { type StoreTokenSource, untokenedStores } from "../client/store-tokens.js";
import { canonicalTn } from "../stir/tn.js";
import {
  countFlag,
  dim,
  discoveryFor,
  EXIT,
  green,
  loadGlobals,
  parse,
  secondsFlag,
  showTn,
  UsageError,
} from "./common.js";
import { bearer, credentialFor } from "./home.js";
import { FileWallet } from "./wallet.js";

export const COVER_HELP = `stir-oob cover: store cover calls at random times (RFC 8816 §7.4, §13)

Usage:
  stir-oob cover --per-hour R --to PATTERN [--to PATTERN ...] [--copies K] [--as NAME]
                 [--count N] [--for S] [--no-tokens]

Stores a cover call about R times an hour (Poisson, so the gaps look like calls' gaps) to a number
made from a random --to pattern, e.g. 1202555xxxx (each x a random digit): K blobs (default 1, as
many as a real call to such a number would store, one per key), each sealed to a throwaway key
nobody holds and paid with one storage token, at the CPS discovery names for the number. The CPS
sees the same requests as for real calls. Cost: K tokens and K store requests per cover call.
Prints a status line (one JSON object per cover call with --json). Stops on Ctrl+C, after N cover
calls (--count) or S seconds (--for).

For cover that follows your own calls (same rate by time of day, same kind of numbers), use the
library: AuthenticationService({ cover: new CoverTraffic({ tokens }) }) (docs/cover-and-decoys.md).

Options:
  --per-hour R   mean cover calls per hour (> 0)
  --to PATTERN   digits and x (random digit); repeat for several, one drawn per cover call
  --copies K     blobs per cover call (1-8, default 1)
  --as NAME      the STIR credential that obtains storage tokens (default: the first)
  --no-tokens    store without tokens (a CPS with ALLOW_UNTOKENED_STORES only)
  --count N, --for S, --cps URL, --home DIR, --relay URL, --require-relay, --json
`;

export async function coverCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    "per-hour": { type: "string" },
    to: { type: "string", multiple: true },
    copies: { type: "string" },
    as: { type: "string" },
    count: { type: "string" },
    for: { type: "string" },
    "no-tokens": { type: "boolean", default: false },
  });
  if (values.help) {
    process.stdout.write(COVER_HELP);
    return EXIT.OK;
  }
  const perHour = Number(values["per-hour"]);
  if (!(perHour > 0 && perHour <= 360_000))
    throw new UsageError("cover needs --per-hour R (0 < R <= 360000)");
  const patterns = values.to ?? [];
  if (patterns.length === 0) throw new UsageError("cover needs --to PATTERN, e.g. 1202555xxxx (see --help)");
  for (const p of patterns) {
    const digits = p.replace(/^\+/, "");
    if (!/^[0-9x]{2,15}$/.test(digits) || !/^[0-9]/.test(digits))
      throw new UsageError(`--to ${p}: digits and x only, 2 to 15, starting with a digit`);
  }
  const copies = Number(values.copies ?? 1);
  if (!(Number.isInteger(copies) && copies >= 1 && copies <= 8)) throw new UsageError("--copies is 1 to 8");
  const count = countFlag(values.count);
  const seconds = secondsFlag("--for", values.for);

  const g = await loadGlobals(values);
  let tokens: StoreTokenSource = untokenedStores;
  if (!values["no-tokens"]) {
    const cred = await credentialFor(g.home, undefined, values.as);
    // One wallet per CPS (tokensPerCps keeps it): tokens are good only where they were issued.
    tokens = tokensPerCps(
      (cps) => new FileWallet(g.home, cps, () => bearer(cred, cps, "tokens:issue"), g.transport),
    );
  }
  const random = () => (crypto.getRandomValues(new Uint32Array(1))[0] as number) / 2 ** 32;
  const number = () => {
    const p = (patterns[Math.floor(random() * patterns.length)] as string).replace(/^\+/, "");
    return p.replace(/x/g, () => String(Math.floor(random() * 10)));
  };
  // --json: one object per line, as `watch` prints them (a stream, not one document).
  const line = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`);
  const started = Date.now();
  const controller = new AbortController();
  let done = 0;
  const status = (text: string) => {
    if (!g.json && process.stderr.isTTY) process.stderr.write(`\r\x1b[2K${text}`);
  };
  const cover = new CoverTraffic({
    perHour,
    numbers: number,
    discovery: discoveryFor(g),
    copies,
    tokens,
    ...g.transport,
    onCover: (target, stats) => {
      done++;
      if (g.json) line({ cover: target.tn, cpses: target.cpses, copies: target.copies, ...stats });
      else
        status(
          `${green("●")} cover: ${stats.coverCalls} calls, ${stats.blobs} blobs = tokens, ${stats.failures} failed` +
            dim(` (last ${showTn(canonicalTn(target.tn))}, ${Math.round((Date.now() - started) / 1000)} s)`),
        );
      if (count !== undefined && done >= count) controller.abort();
    },
    onError: (err) => {
      const message = err instanceof Error ? err.message : String(err);
      // Why, not only that: STORE_FAILED says little without the CPS's answer underneath it.
      const code = err instanceof StirOobError ? err.code : undefined;
      const under = err instanceof Error ? err.cause : undefined;
      const cause = under instanceof StirOobError ? under.code : undefined;
      if (g.json) line({ error: message, ...(code ? { code } : {}), ...(cause ? { cause } : {}) });
      else
        process.stderr.write(
          `\r\x1b[2Kcover call failed: ${message}${cause ? ` (${cause})` : code ? ` (${code})` : ""}\n`,
        );
    },
  });
  status(dim(`cover: about ${perHour} an hour to ${patterns.join(", ")}; Ctrl+C stops`));
  const stop = () => controller.abort();
  process.once("SIGINT", stop);
  const timer = seconds === undefined ? undefined : setTimeout(stop, seconds * 1000);
  cover.start();
  await new Promise<void>((resolve) =>
    controller.signal.addEventListener("abort", () => resolve(), { once: true }),
  );
  await cover.stop();
  if (timer) clearTimeout(timer);
  process.off("SIGINT", stop);
  const s = cover.stats;
  if (!g.json) {
    status("");
    console.log(
      `${green("✔")} ${s.coverCalls} cover calls, ${s.blobs} blobs stored (= tokens spent), ${s.failures} failed,` +
        ` in ${Math.round((Date.now() - started) / 1000)} s`,
    );
  } else line({ done: true, ...s });
  return s.failures > 0 && s.blobs === 0 ? EXIT.SERVICE : EXIT.OK;
}
