/** stir-oob CLI internals: global flags before the command, and error -> exit code mapping. */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { describeError, EXIT, parse, UsageError } from "../../src/cli/common.js";
import { splitCommand } from "../../src/cli/main.js";
import { FileWallet } from "../../src/cli/wallet.js";
import { CpsUnavailableError } from "../../src/client/cps-client.js";
import { StirClientError } from "../../src/client/errors.js";
import { CpsError } from "../../src/errors.js";
import { canonicalTn } from "../../src/stir/tn.js";

describe("stir-oob argument handling", () => {
  it.each([
    [["verify", "--to", "1"], "verify", ["--to", "1"]],
    [["--home", "h", "--json", "verify", "--to", "1"], "verify", ["--to", "1", "--home", "h", "--json"]],
    [["--cps=http://x", "place"], "place", ["--cps=http://x"]],
    [["--json"], undefined, ["--json"]],
  ])("%j -> command %s", (argv, command, rest) => {
    expect(splitCommand(argv)).toEqual({ command, rest });
  });
});

describe("stir-oob exit codes", () => {
  it.each([
    [new UsageError("x"), EXIT.USAGE],
    [new CpsError("INVALID_TN", "x"), EXIT.USAGE],
    [new StirClientError("NOT_AUTHORITATIVE", "x"), EXIT.USAGE],
    [new StirClientError("NO_KEYS", "x"), EXIT.SERVICE],
    [new StirClientError("STORE_FAILED", "x", { cause: new CpsError("QUEUE_FULL", "full") }), EXIT.SERVICE],
    [new CpsError("TOKEN_MISSING", "x"), EXIT.SERVICE],
    [new CpsUnavailableError("down", "http://x"), EXIT.SERVICE],
    [new StirClientError("WALLET_EMPTY", "x"), EXIT.SERVICE],
    [new StirClientError("NO_CREDENTIAL", "x"), EXIT.USAGE],
    [new TypeError("bug"), EXIT.INTERNAL],
  ])("%o -> %i", (err, exit) => {
    expect(describeError(err).exit).toBe(exit);
  });

  it("a failed store names the CPS's code", () => {
    const d = describeError(
      new StirClientError("STORE_FAILED", "1 of 2 stores failed", {
        cause: new CpsError("QUEUE_FULL", "full"),
      }),
    );
    expect(d.message).toContain("QUEUE_FULL");
  });
});

describe("stir-oob token wallet file", () => {
  it("an empty wallet says WALLET_EMPTY (no HTTP status); refilling without a credential says NO_CREDENTIAL", async () => {
    const home = await mkdtemp(join(tmpdir(), "stir-oob-wallet-"));
    try {
      const wallet = new FileWallet(home, "http://127.0.0.1:9", undefined);
      const empty = await wallet
        .headersForStore("http://127.0.0.1:9", canonicalTn("22225552222"), new Uint8Array(1))
        .catch((e: unknown) => e);
      expect(empty).toMatchObject({ name: "StirClientError", code: "WALLET_EMPTY" });
      const shown = describeError(empty);
      expect(shown).toMatchObject({ exit: EXIT.SERVICE, code: "WALLET_EMPTY" });
      expect(shown.message).not.toMatch(/HTTP|401/);
      const noCred = await wallet.refill(1).catch((e: unknown) => e);
      expect(noCred).toMatchObject({ name: "StirClientError", code: "NO_CREDENTIAL" });
      expect(describeError(noCred).exit).toBe(EXIT.USAGE);
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  });
});

describe("option values that start with a dash", () => {
  // A key id is an RFC 7638 thumbprint in base64url: one in 64 starts with "-", and the user pastes it.
  it("takes `--kid -UQA...` as the value of --kid, as `--kid=-UQA...` would be", () => {
    const kid = "-UQAgdaaEr5sNTtu30yW2qbQMJGEfQGLaErNRuS7wmY";
    const { values } = parse(["keys", "--kid", kid, "--tn", "+1 202 555 0100"], {
      kid: { type: "string" },
      tn: { type: "string" },
    });
    expect(values.kid).toBe(kid);
    expect(values.tn).toBe("+1 202 555 0100");
  });

  it("still reads a known flag after a string option as a missing value", () => {
    expect(() => parse(["--kid", "--json"], { kid: { type: "string" } })).toThrow(UsageError);
    expect(() => parse(["--kid", "-h"], { kid: { type: "string" } })).toThrow(UsageError);
  });
});
