/**
 * The `npm start` log redactor (src/dev/redact-log.mjs): wrangler's request lines name every stored,
 * polled and looked-up number; what npm start prints must not.
 */
import { Readable } from "node:stream";
import { text } from "node:stream/consumers";
import { describe, expect, it } from "vitest";
import { lineRedactor, redactLine } from "../../src/dev/redact-log.mjs";

describe("adversary #14: the dev log names no number (redactor)", () => {
  it.each([
    [
      "[wrangler:info] POST /cps/12025550123/ppts 201 Created (12ms)",
      "[wrangler:info] POST /cps/###########/ppts 201 Created (12ms)",
    ],
    [
      "[wrangler:info] GET /cps/2.222.555.2222/ppts 200 OK (3ms)",
      "[wrangler:info] GET /cps/#.###.###.####/ppts 200 OK (3ms)",
    ],
    [
      "[wrangler:info] GET /cps/%2B1%20202%20555%200123/ppts 200 OK (3ms)",
      "[wrangler:info] GET /cps/%#B#%#####%#####%######/ppts 200 OK (3ms)",
    ],
    [
      "[wrangler:info] GET /keys?prefix=1202555 200 OK (1ms)",
      "[wrangler:info] GET /keys?prefix=####### 200 OK (1ms)",
    ],
    [
      "[wrangler:info] GET /cps/blocks/155504002xx/subscribe 101 Switching Protocols (2ms)",
      "[wrangler:info] GET /cps/blocks/#########xx/subscribe 101 Switching Protocols (2ms)",
    ],
    [
      "[wrangler:info] GET /.well-known/stir-oob?tn=12025550123 200 OK (1ms)",
      "[wrangler:info] GET /.well-known/stir-oob?tn=########### 200 OK (1ms)",
    ],
    [
      "✘ [ERROR] fetch failed: http://127.0.0.1:8787/keys/12025550123",
      "✘ [ERROR] fetch failed: http://127.0.0.1:8787/keys/###########",
    ],
    ["stray 12025550123 in a message", "stray ########### in a message"],
  ])("%s", (line, redacted) => {
    expect(redactLine(line)).toBe(redacted);
    expect(redactLine(line)).not.toMatch(/555|0123/);
  });

  it.each([
    ["[wrangler:info] Ready on http://127.0.0.1:40123"],
    ["[wrangler:info] Ready on http://[::1]:8787"],
    ["CPS ready on http://127.0.0.1:8787 (GET /health answered; state in .wrangler/state)"],
    ["✘ [ERROR] Address already in use (127.0.0.1:8787)"],
    ['{"event":"error","route":"/cps/:tn/ppts","code":"INTERNAL","status":500}'],
    ["[wrangler:info] GET /health 200 OK (1ms)"],
  ])("keeps what is no number: %s", (line) => {
    expect(redactLine(line)).toBe(line);
  });

  it("masks a number split across chunks, line by line, and a last line without newline", async () => {
    const chunks = [
      "[wrangler:info] POST /cps/1202",
      "5550123/ppts 201 Created (1ms)\n[wrangler:info] GET /cps/4420",
      "79460000/ppts 200 OK",
    ];
    const out = await text(Readable.from(chunks).pipe(lineRedactor()));
    expect(out).toBe(
      "[wrangler:info] POST /cps/###########/ppts 201 Created (1ms)\n[wrangler:info] GET /cps/############/ppts 200 OK",
    );
  });
});
