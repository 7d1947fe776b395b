// RFC 9474 Appendix A test vectors (data: test/vectors/rfc9474.json, from cloudflare/blindrsa-ts)
// inside workerd with the server's native RSA-RAW BlindSign (supportsRSARAW: true).
import { describe, it } from "vitest";
import { RFC9474_VECTORS, runRfc9474Vector } from "../vectors/rfc9474-vectors.js";

describe("RFC 9474 Appendix A vectors (workerd, RSA-RAW)", () => {
  it.each(RFC9474_VECTORS.map((v) => [v.name, v] as const))("RFC 9474 A: %s", async (_name, v) => {
    await runRfc9474Vector(v, true);
  });
});
