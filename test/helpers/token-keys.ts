/** The `GET /tokens/keys` answer of a fake issuer (docs/tokens.md), for client tests that stand in for the CPS. */

/** One current RSA blind-signature key `k1` (base64url SPKI), live an hour around now, single-use tokens. */
export function tokenKeysAnswer(spki: string, batchMax: number): Response {
  const now = Date.now();
  return Response.json({
    keys: [
      {
        id: "k1",
        suite: "RSABSSA-SHA384-PSS-Randomized",
        publicKey: spki,
        notBefore: new Date(now - 60_000).toISOString(),
        notAfter: new Date(now + 3_600_000).toISOString(),
        status: "current",
      },
    ],
    limits: { maxUses: 1, maxUsesPerNumber: 1, windowSeconds: 60, batchMax },
  });
}
