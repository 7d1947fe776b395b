/**
 * `stir-oob`: the command line over the client library (src/client). One file per command group;
 * this one dispatches, and turns every error into a message and an exit code (docs/client.md).
 */
import { caCommand } from "./ca.js";
import { placeCommand, tokensCommand, verifyCommand } from "./calls.js";
import { describeError, EXIT, printJson } from "./common.js";
import { coverCommand } from "./cover.js";
import { divertCommand } from "./divert.js";
import { gatewayCommand } from "./gateway.js";
import { keygenCommand, keysCommand } from "./keys.js";
import { watchCommand } from "./watch.js";

export const MAIN_HELP = `stir-oob: STIR out-of-band (RFC 8816) from the command line

Usage: stir-oob <command> [options]      (stir-oob <command> --help for each)

Commands:
  ca init|issue|show     a DEMO certificate authority and STIR credentials (TEST ONLY)
  keygen --tn N          an encryption key pair for a called number
  keys register|list|rotate|prune|remove
                         publish (signed), look up, rotate and remove encryption keys (§11)
  tokens fetch|status    storage tokens, fetched ahead of calls (§7.5)
  place --from A --to B  authenticate a call: sign, seal per key, store (AS, §8.1)
  verify --to B --calling A
                         verify a ringing call: verified / failed / no-passport (VS, §8.2)
  divert --from C --to B --calling A
                         forward a ringing call: div/div-o PASSporT stored for B (RFC 8946, §6.2)
  gateway store|fetch    move PASSporTs between SIP Identity headers and the CPS (§8.3)
  watch --to B           receive PASSporTs for a number as they are stored (push, §5.5)
  cover --per-hour R --to PATTERN
                         store cover calls at random times, paid like real ones (§7.4, §13)

Global options:
  --cps URL     CPS base URL (env STIR_OOB_CPS, config.json "cps"; default http://127.0.0.1:8787)
  --home DIR    state directory (env STIR_OOB_HOME; default ./.stir-oob)
  --relay URL   send every CPS request through this Oblivious HTTP relay (RFC 9458; env
                STIR_OOB_RELAY), e.g. http://127.0.0.1:8788/gateways/cps (docs/ohttp.md)
  --require-relay
                refuse to send anything to the CPS directly (watch refuses: push is a WebSocket)
  --json        machine-readable output on stdout
  -h, --help    help

Exit codes: 0 success / verified, 1 failed verdict, 2 no-passport, 64 usage error,
            69 service unreachable or refusing, 70 internal error.
`;

const COMMANDS: Record<string, (argv: string[]) => Promise<number>> = {
  ca: caCommand,
  keygen: keygenCommand,
  keys: keysCommand,
  tokens: tokensCommand,
  place: placeCommand,
  verify: verifyCommand,
  divert: divertCommand,
  gateway: gatewayCommand,
  watch: watchCommand,
  cover: coverCommand,
};

/** Global flags may come before the command (`stir-oob --home h verify ...`): move them after it. */
export function splitCommand(argv: readonly string[]): { command: string | undefined; rest: string[] } {
  const leading: string[] = [];
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i] ?? "";
    if (a === "--home" || a === "--cps" || a === "--relay") leading.push(a, argv[++i] ?? "");
    else if (
      a === "--json" ||
      a === "--require-relay" ||
      a.startsWith("--home=") ||
      a.startsWith("--cps=") ||
      a.startsWith("--relay=")
    )
      leading.push(a);
    else break;
  }
  return { command: argv[i], rest: [...argv.slice(i + 1), ...leading] };
}

/** Runs the CLI with `argv` (without node and script) and resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  const { command, rest } = splitCommand(argv);
  if (command === undefined || command === "--help" || command === "-h" || command === "help") {
    process.stdout.write(MAIN_HELP);
    return command === undefined ? EXIT.USAGE : EXIT.OK;
  }
  const run = COMMANDS[command];
  if (!run) {
    process.stderr.write(`stir-oob: unknown command ${JSON.stringify(command)}\n\n${MAIN_HELP}`);
    return EXIT.USAGE;
  }
  try {
    return await run(rest);
  } catch (err) {
    const d = describeError(err);
    if (rest.includes("--json")) printJson({ error: { code: d.code, message: d.message, exit: d.exit } });
    process.stderr.write(`stir-oob ${command}: ${d.message}\n`);
    if (d.exit === EXIT.USAGE) process.stderr.write(`(stir-oob ${command} --help for usage)\n`);
    return d.exit;
  }
}
