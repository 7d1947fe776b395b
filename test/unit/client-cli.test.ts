/** stir-oob CLI internals: global flags before the command, and error -> exit code mapping. */
import { describe, expect, it } from "vitest";
import { describeError, EXIT, UsageError } from "../../src/cli/common.js";
import { splitCommand } from "../../src/cli/main.js";
import { CpsUnavailableError } from "../../src/client/cps-client.js";
import { StirClientError } from "../../src/client/errors.js";
import { CpsError } from "../../src/errors.js";

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
