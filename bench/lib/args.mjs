/** Command-line flags of the benchmark scripts. */

/** `flags[name]` (from util.parseArgs) as a whole number >= 1; exits 2 with a message otherwise. */
export function positive(flags, name) {
  const n = Number(flags[name]);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`--${name} must be a positive whole number`);
    process.exit(2);
  }
  return n;
}

/** Whether `--name` is on the command line (the privacy scripts' own light parsing). */
export const argvFlag = (name) => process.argv.slice(2).includes(`--${name}`);

/** The word after `--name` on the command line, or `fallback`. */
export function argvOption(name, fallback) {
  const args = process.argv.slice(2);
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1] : fallback;
}
