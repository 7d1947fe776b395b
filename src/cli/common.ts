/**
 * Shared pieces of the `stir-oob` CLI: exit codes, argument parsing, the state directory and its
 * config, and output (human by default, `--json` for machines, progress on stderr).
 */
import { chmod, mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { type ParseArgsConfig, parseArgs } from "node:util";
import { Discovery, type SkippedKey } from "../client/discovery.js";
import { CpsError, CpsUnavailableError, StirOobError } from "../client/errors.js";
import { OhttpRelay, type RelayTransportOptions } from "../client/relay.js";
import { isLoopback } from "../stir/urls.js";

/** Exit codes (sysexits.h where one fits). Documented in docs/client.md. */
export const EXIT = {
  OK: 0,
  /** `verify`: PASSporT(s) found, none passed. */
  FAILED: 1,
  /** `verify`: nothing opened for this number: no out-of-band PASSporT for the call. */
  NO_PASSPORT: 2,
  /** Bad flags, bad numbers, missing local state (credentials, keys, CA). */
  USAGE: 64,
  /** The CPS / directory could not be reached, or refused (its problem code is printed). */
  SERVICE: 69,
  /** A bug or an unexpected failure. */
  INTERNAL: 70,
} as const;

export class UsageError extends Error {
  override readonly name = "UsageError";
}

export interface GlobalOptions {
  readonly home: string;
  readonly json: boolean;
  /** CPS base URL (flag, STIR_OOB_CPS, config.json, default http://127.0.0.1:8787). */
  readonly cps: string;
  readonly config: CliConfig;
  /**
   * `--relay URL` (env STIR_OOB_RELAY, config.json "relay") and `--require-relay` (env
   * STIR_OOB_REQUIRE_RELAY=1): every client of the command sends through this one relay, so the
   * gateway's key configuration is fetched once (docs/ohttp.md).
   */
  readonly transport: RelayTransportOptions;
}

export interface CliConfig {
  /** CPS base URL (also the discovery bootstrap). */
  cps?: string;
  /**
   * DEMO ONLY: x5u URL -> local PEM file (relative to the home). The `ca` command writes these, so a
   * local VS can resolve the `x5u` of demo PASSporTs without a certificate server. Any URL not in
   * the map is fetched over https, as in a real deployment.
   */
  x5u?: Record<string, string>;
  /** Extra trust anchors (PEM files, relative to the home) besides ca/root.pem. */
  trust?: string[];
  /** Oblivious HTTP relay URL for the CPS's gateway (`https://relay.example/gateways/cps`). */
  relay?: string;
}

export const GLOBAL_FLAGS = {
  home: { type: "string" },
  cps: { type: "string" },
  json: { type: "boolean", default: false },
  relay: { type: "string" },
  "require-relay": { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
} as const satisfies ParseArgsConfig["options"];

export const DEFAULT_CPS = "http://127.0.0.1:8787";

/**
 * `--kid -UQA...` as `--kid=-UQA...`: a value may start with a dash (a base64url key id does one time
 * in 64), which strict parseArgs would take for a flag. Only a string option's next argument that is
 * not itself one of the command's flags is joined, so `--kid --json` stays a missing value.
 */
function joinDashValues(argv: readonly string[], options: NonNullable<ParseArgsConfig["options"]>): string[] {
  const flags = new Set<string>();
  for (const [name, o] of Object.entries(options)) {
    flags.add(`--${name}`);
    if (o.short) flags.add(`-${o.short}`);
  }
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const next = argv[i + 1];
    const name = arg.startsWith("--") ? arg.slice(2) : undefined;
    if (
      name !== undefined &&
      options[name]?.type === "string" &&
      next?.startsWith("-") &&
      next !== "-" &&
      !flags.has(next.split("=")[0] as string)
    ) {
      out.push(`${arg}=${next}`);
      i++;
    } else out.push(arg);
  }
  return out;
}

/** Parses `argv` with the command's own flags plus the global ones; unknown flags are usage errors. */
export function parse<O extends NonNullable<ParseArgsConfig["options"]>>(argv: string[], options: O) {
  const all = { ...GLOBAL_FLAGS, ...options };
  try {
    return parseArgs({
      args: joinDashValues(argv, all),
      options: all,
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
}

// Flag values that several commands take, checked the same way everywhere (undefined: flag absent).

/** `--freshness S` (verify, divert): the iat freshness window, a positive whole number of seconds. */
export function freshnessFlag(text: string | undefined): number | undefined {
  const seconds = text === undefined ? undefined : Number(text);
  if (seconds !== undefined && !(Number.isInteger(seconds) && seconds > 0))
    throw new UsageError("--freshness is a positive number of seconds");
  return seconds;
}

/** `--count N` (watch, cover): stop after N, a positive whole number. */
export function countFlag(text: string | undefined): number | undefined {
  const count = text === undefined ? undefined : Number(text);
  if (count !== undefined && !(Number.isInteger(count) && count > 0))
    throw new UsageError("--count is a positive number");
  return count;
}

/** `--timeout S` (watch), `--for S` (cover): stop after S seconds, fractions allowed. */
export function secondsFlag(flag: string, text: string | undefined): number | undefined {
  const seconds = text === undefined ? undefined : Number(text);
  if (seconds !== undefined && !(seconds > 0))
    throw new UsageError(`${flag} is a positive number of seconds`);
  return seconds;
}

/** `--decoys K` (verify, watch): decoy numbers per request, 0 (absent) to 64 as DecoyPlan allows. */
export function decoysFlag(text: string | undefined): number {
  const count = text === undefined ? 0 : Number(text);
  if (!(Number.isInteger(count) && count >= 0 && count <= 64)) throw new UsageError("--decoys is 0 to 64");
  return count;
}

export async function loadGlobals(values: {
  home?: string;
  cps?: string;
  json?: boolean;
  relay?: string;
  "require-relay"?: boolean;
}): Promise<GlobalOptions> {
  const home = resolve(values.home ?? (process.env.STIR_OOB_HOME || undefined) ?? ".stir-oob");
  const config = await readJson<CliConfig>(join(home, "config.json"), {});
  const cps = (values.cps ?? (process.env.STIR_OOB_CPS || undefined) ?? config.cps ?? DEFAULT_CPS).replace(
    /\/+$/,
    "",
  );
  try {
    const u = new URL(cps);
    if (u.protocol !== "https:" && u.protocol !== "http:") throw new Error("scheme");
  } catch {
    throw new UsageError(`--cps must be an http(s) URL, got ${JSON.stringify(cps)}`);
  }
  const relayUrl = values.relay ?? (process.env.STIR_OOB_RELAY || undefined) ?? config.relay;
  const requireRelay = values["require-relay"] === true || process.env.STIR_OOB_REQUIRE_RELAY === "1";
  let relay: OhttpRelay | undefined;
  if (relayUrl !== undefined) {
    try {
      relay = new OhttpRelay({ url: relayUrl });
    } catch {
      throw new UsageError(`--relay must be an http(s) URL, got ${JSON.stringify(relayUrl)}`);
    }
  }
  const transport = { ...(relay ? { relay } : {}), ...(requireRelay ? { requireRelay } : {}) };
  return { home, json: values.json ?? false, cps, config, transport };
}

/** True when `url` is plain http to this machine (local demos may use plain http there). */
function isLoopbackHttp(url: string): boolean {
  try {
    const u = new URL(url);
    return u.protocol === "http:" && isLoopback(u.hostname);
  } catch {
    return false;
  }
}

/**
 * Discovery (RFC 8816 §10) through the configured CPS. A CPS reached over plain http to this
 * machine (a local demo) may name plain-http loopback services too; any other answer must be https.
 */
export function discoveryFor(g: GlobalOptions, options: { lookupOpenDigits?: number } = {}): Discovery {
  return new Discovery({
    bootstrap: g.cps,
    allowLoopbackHttp: isLoopbackHttp(g.cps),
    ...g.transport,
    ...options,
  });
}

export async function readJson<T>(path: string, fallback: T): Promise<T> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch {
    return fallback;
  }
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new UsageError(`${path} is not valid JSON`);
  }
}

/** Writes a file, creating directories; `secret` files are readable by the owner only. */
export async function writeFileSafe(path: string, data: string, secret = false): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  await writeFile(path, data, { mode: secret ? 0o600 : 0o644 });
  if (secret) await chmod(path, 0o600);
}

export async function listDir(path: string): Promise<string[]> {
  try {
    return (await readdir(path)).sort();
  } catch {
    return [];
  }
}

export async function updateConfig(home: string, change: (c: CliConfig) => CliConfig): Promise<void> {
  const path = join(home, "config.json");
  const next = change(await readJson<CliConfig>(path, {}));
  await writeFileSafe(path, `${JSON.stringify(next, null, 2)}\n`);
}

// ---------------------------------------------------------------------------------------------
// Output

const useColor = process.stdout.isTTY && !process.env.NO_COLOR;
const paint = (code: string) => (text: string) => (useColor ? `\x1b[${code}m${text}\x1b[0m` : text);
export const green = paint("1;32");
export const red = paint("1;31");
export const yellow = paint("1;33");
export const dim = paint("2");
export const bold = paint("1");

/** `+` and the digits: how people read an E.164 number. */
export function showTn(tn: string): string {
  return `+${tn}`;
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, (_k, v) => (v instanceof Uint8Array ? undefined : v), 2)}\n`);
}

/**
 * A progress line on stderr for batch work (token batches, bulk verification): redrawn in place on a
 * terminal, silent otherwise (so logs and `--json` output stay clean).
 */
export function progress(
  label: string,
  enabled: boolean,
): { update(done: number, total: number): void; end(): void } {
  const on = enabled && process.stderr.isTTY === true;
  let last = 0;
  return {
    update(done, total) {
      if (!on) return;
      const now = Date.now();
      if (done < total && now - last < 50) return;
      last = now;
      const width = 24;
      const filled = total === 0 ? width : Math.round((done / total) * width);
      process.stderr.write(
        `\r${label} [${"#".repeat(filled)}${".".repeat(width - filled)}] ${done}/${total}`,
      );
    },
    end() {
      if (on) process.stderr.write("\r\x1b[2K");
    },
  };
}

/**
 * Codes (docs/client.md "Errors") that are the user's to fix: a bad number in the flags (INVALID_TN
 * comes from our own parsing), a credential that does not cover `--from`, no credential. Every
 * other code is the service's (exit 69).
 */
const USAGE_CODES: ReadonlySet<string> = new Set([
  "INVALID_TN",
  "NOT_AUTHORITATIVE",
  "NO_CREDENTIAL",
  "RELAY_REQUIRED",
]);

/** Maps an error to an exit code and a one-line message for people (or a JSON object). */
export function describeError(err: unknown): { exit: number; code: string; message: string } {
  if (err instanceof UsageError) return { exit: EXIT.USAGE, code: "USAGE", message: err.message };
  if (err instanceof StirOobError) {
    const exit = USAGE_CODES.has(err.code) ? EXIT.USAGE : EXIT.SERVICE;
    return { exit, code: err.code, message: `${err.message}${errorSuffix(err)}` };
  }
  return {
    exit: EXIT.INTERNAL,
    code: "INTERNAL",
    message: err instanceof Error ? (err.stack ?? err.message) : String(err),
  };
}

/** What a person needs after the message: the CPS's code and status, a cause, or a hint. */
function errorSuffix(err: StirOobError): string {
  if (err instanceof CpsUnavailableError) {
    const why = err.cause instanceof Error ? `: ${err.cause.message}` : "";
    return err.message.includes("through the relay")
      ? `${why}. Is the relay running (npm start)?`
      : `${why}. Is the CPS running (npm start)?`;
  }
  if (err instanceof CpsError) return err.code === "INVALID_TN" ? "" : ` (${err.code}, HTTP ${err.status})`;
  return err.cause instanceof StirOobError ? ` (${err.cause.code}: ${err.cause.message})` : "";
}

/** One served key the AS did not seal to (the directory's kid: a claim, shown only to tell them apart). */
export function describeSkipped(k: SkippedKey): string {
  return `  ${yellow("⚠ skipped")} key ${k.kid ?? "(no kid)"}: ${k.code} — ${k.message}`;
}
