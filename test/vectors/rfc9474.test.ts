// RFC 9474 Appendix A test vectors (data: test/vectors/rfc9474.json, from cloudflare/blindrsa-ts),
// on Node: the client's path (prepare, blind, finalize) and the library's big-number BlindSign, for
// the suite this CPS uses (the big-number BlindSign takes seconds here, so only that one).
// All four vectors run with the server's native RSA-RAW in workerd:
// test/integration-tokens/rfc9474.test.ts.
import { describe, expect, it } from "vitest";
import { TOKEN_SUITE } from "../../src/stir/storage-token.js";
import { RFC9474_VECTORS, runRfc9474Vector } from "./rfc9474-vectors.js";

describe("RFC 9474 Appendix A vectors (Node, big-number path)", { timeout: 60_000 }, () => {
  it(`RFC 9474 A: ${TOKEN_SUITE}`, async () => {
    const v = RFC9474_VECTORS.find((x) => x.name === TOKEN_SUITE);
    expect(v).toBeDefined();
    if (v) await runRfc9474Vector(v, false);
  });
});
