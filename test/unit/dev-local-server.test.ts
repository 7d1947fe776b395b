/**
 * startLocalServer (src/dev/local-server.mjs) starts `wrangler dev` once more, on a fresh port, when
 * its first start restarted on a watcher event and then lost its own port. The detector must match
 * that failure as wrangler prints it, and nothing else (a port the caller chose and any other failure
 * still fail at once).
 */
import { describe, expect, it } from "vitest";
import { isRestartBindFailure } from "../../src/dev/local-server.mjs";

// The tail of wrangler's output in the CI run where it happened (2026-12-03), shortened.
const RESTARTED = `env.TOKEN_ISSUER_KEYS ("(hidden)")   Environment Variable      local

The file web,src/client,src/stir changed, restarting build...
[custom build] Running: node src/dev/build-web.mjs
*** Fatal uncaught kj::Exception: kj/async-io-unix.c++:945: failed: ::bind(sockfd, &addr.generic, addrlen): Address already in use; toString() = 127.0.0.1:40355
✘ [ERROR] Address already in use (127.0.0.1:40355). Please check that you are not already running a server on this address or specify a different port with --port.`;

describe("startLocalServer's one retry", () => {
  it("matches a start that restarted on a watcher event and then lost its port", () => {
    expect(isRestartBindFailure(RESTARTED)).toBe(true);
  });

  it("does not match a port taken from the start, a restart alone, or another failure", () => {
    const taken = RESTARTED.replace(/The file .* restarting build\.\.\.\n/, "");
    expect(taken).not.toContain("restarting");
    expect(isRestartBindFailure(taken)).toBe(false);
    expect(
      isRestartBindFailure("The file web changed, restarting build...\nReady on http://127.0.0.1:1"),
    ).toBe(false);
    expect(isRestartBindFailure("wrangler dev exited (1) before http://127.0.0.1:1/health answered")).toBe(
      false,
    );
  });
});
