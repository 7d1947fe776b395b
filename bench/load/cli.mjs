/** `npm run load` flags: parsed and checked, or a usage message and exit code 2. */
import { parseArgs } from "node:util";
import { MIN_REQUESTS } from "./config.mjs";

const USAGE =
  "npm run load -- [--duration S (60)] [--rate REQ/S (50)] [--ttl S (60)] [--max-in-flight N (200)] [--out FILE]";

export function parseFlags() {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        duration: { type: "string", default: "60" },
        rate: { type: "string", default: "50" },
        ttl: { type: "string", default: "60" },
        "max-in-flight": { type: "string", default: "200" },
        out: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      allowPositionals: false,
    }).values;
  } catch (err) {
    usageError(err.message);
  }
  if (parsed.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const number = (name, { min, max, integer }) => {
    const raw = parsed[name];
    const n = Number(raw);
    const kind = integer ? "a whole number" : "a number";
    if (raw.trim() === "" || !Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min || n > max) {
      usageError(`--${name} must be ${kind} from ${min} to ${max} (got "${raw}")`);
    }
    return n;
  };
  const flags = {
    duration: number("duration", { min: 1, max: 86_400, integer: false }),
    rate: number("rate", { min: 0.1, max: 10_000, integer: false }),
    ttl: number("ttl", { min: 3, max: 3_600, integer: true }),
    maxInFlight: number("max-in-flight", { min: 1, max: 100_000, integer: true }),
    out: parsed.out,
  };
  if (flags.out !== undefined && flags.out.trim() === "") usageError("--out needs a file name");
  if (flags.rate * flags.duration < MIN_REQUESTS) {
    usageError(
      `--rate x --duration must be at least ${MIN_REQUESTS} requests, so every kind of request is ` +
        `scheduled (got ${flags.rate} x ${flags.duration})`,
    );
  }
  return flags;
}

function usageError(message) {
  console.error(`load: ${message}\n${USAGE}`);
  process.exit(2);
}
