/**
 * `POST /feedback`: a verification service reports a blob whose PASSporT is bogus, and the CPS makes
 * the token that paid for it worthless (RFC 8816 §7.5; docs/tokens.md "Feedback"). No credential:
 * the reporter is whoever opened the blob, ideally through the OHTTP relay (docs/ohttp.md).
 *
 * In order, each refusal changing nothing (docs/design.md invariant 7):
 *   1. media type, size, body shape (415, 413, 400 INVALID_BODY / FEEDBACK_INVALID / INVALID_TN / BLOB_*);
 *   2. the blob opens with the reported KEM shared secret for this number, through @hpke/core's key
 *      schedule (403 FEEDBACK_SECRET_INVALID): AEAD proves the reporter knew the blob's secret;
 *   3. the rate limit (429 FEEDBACK_RATE_LIMITED), before anything costs a fan-out or a fetch;
 *   4. the blob's feedback tag (which hashes the whole blob, so only the very blob stored has it) names
 *      a tokened store still on record in some ledger shard, each shard answering its earliest row
 *      for the tag only (404 FEEDBACK_UNKNOWN: expired, never stored with a tag, or a blob nobody
 *      stored, including one re-sealed under a genuine blob's secret);
 *   5. every store it names already revoked: 200, nothing new (a replayed report);
 *   6. the PASSporT is bogus, judged once, at the earliest store time among the rows found, with the
 *      CPS's trust anchors (src/stir/feedback.ts `judgeReportedPassport`; 422 FEEDBACK_NOT_BOGUS,
 *      FEEDBACK_UNDECIDED);
 *   7. every paying token found (at most one per shard, LEDGER_SHARDS in all) is revoked in its shard:
 *      further stores with it get 403 TOKEN_REVOKED.
 * What the CPS learns is the reported blob's plaintext and that one store's token (docs/threat-model.md).
 */
import { Hono } from "hono";
import { LEDGER_SHARDS, type TaggedSpend } from "../durable-objects/token-ledger.js";
import { CpsError } from "../errors.js";
import { limitBody, requireContentType } from "../http/body.js";
import { fetchersFor, validatorFor } from "../http/credential-auth.js";
import { methodNotAllowed } from "../http/errors.js";
import type { AppEnv } from "../http/types.js";
import { encodeBase64url } from "../stir/base64url.js";
import { openWithSharedSecret } from "../stir/envelope.js";
import {
  type FeedbackJudgment,
  judgeReportedPassport,
  MAX_FEEDBACK_BODY_BYTES,
  parseFeedbackBody,
} from "../stir/feedback.js";
import { feedbackRateLedger, tokenLedgerShard } from "../storage/objects.js";

/** Reports per minute the CPS judges in all (each costs a fan-out over the ledger shards). */
export const FEEDBACK_REPORTS_PER_MINUTE = 120;
/** Reports per minute for one called number (a callee reports its own calls). */
export const FEEDBACK_REPORTS_PER_NUMBER_PER_MINUTE = 10;

export const feedbackRoutes = new Hono<AppEnv>();

const utf8 = new TextEncoder();

async function numberKey(tn: string): Promise<string> {
  // The rate table keeps a hash, never the number (docs/design.md invariant 6).
  const digest = await crypto.subtle.digest("SHA-256", utf8.encode(`stir-oob feedback rate\u0000${tn}`));
  return encodeBase64url(new Uint8Array(digest).subarray(0, 16));
}

feedbackRoutes.post(
  "/",
  requireContentType("application/json"),
  limitBody(MAX_FEEDBACK_BODY_BYTES),
  async (c) => {
    const config = c.get("config");
    const report = parseFeedbackBody(await c.req.text());

    let opened: Awaited<ReturnType<typeof openWithSharedSecret>>;
    try {
      opened = await openWithSharedSecret(report.secret, report.tn, report.blob);
    } catch (cause) {
      throw new CpsError(
        "FEEDBACK_SECRET_INVALID",
        "The blob does not open with this secret for this number",
        {
          cause,
        },
      );
    }

    const admitted = await feedbackRateLedger(c.env).admitReport([
      { key: "all", limit: FEEDBACK_REPORTS_PER_MINUTE },
      { key: await numberKey(report.tn), limit: FEEDBACK_REPORTS_PER_NUMBER_PER_MINUTE },
    ]);
    if (!admitted.ok) {
      throw new CpsError("FEEDBACK_RATE_LIMITED", "Too many feedback reports; try again later", {
        retryAfter: admitted.retryAfterSeconds,
      });
    }

    // The tag sits in the paying token's shard, which the report cannot name: ask every shard. Each
    // answers at most its earliest row for the tag, so one report reaches at most LEDGER_SHARDS tokens.
    const tag = encodeBase64url(opened.tag);
    const found: (TaggedSpend & { shard: number })[] = (
      await Promise.all(
        Array.from({ length: LEDGER_SHARDS }, async (_, shard) =>
          (await tokenLedgerShard(c.env, shard).feedbackLookup(tag)).map((s) => ({ ...s, shard })),
        ),
      )
    ).flat();
    if (found.length === 0) {
      throw new CpsError("FEEDBACK_UNKNOWN", "No tokened store on record sent this blob's feedback tag");
    }
    const open = found.filter((s) => !s.revoked);
    if (open.length === 0) return c.json({ revoked: 0, already: found.length });

    // One judgment per report, at the earliest store time found: the tag names one blob (it hashes
    // the whole blob), which its sender stored first; later rows are the same tag sent again.
    const fetcher = fetchersFor(config).x5u;
    const validator = await validatorFor(config);
    const judgment: FeedbackJudgment = await judgeReportedPassport(opened.passport, {
      tn: report.tn,
      storedAt: Math.floor(Math.min(...found.map((s) => s.spentAt)) / 1000),
      resolveSigner: async (header, at) => validator.validate(await fetcher.fetchChain(header.x5u), at),
    });
    if (!judgment.bogus) {
      throw new CpsError("FEEDBACK_NOT_BOGUS", "The reported PASSporT verifies; nothing was revoked");
    }
    const revoked = await Promise.all(open.map((s) => tokenLedgerShard(c.env, s.shard).revoke(tag, s.token)));
    return c.json({
      revoked: revoked.filter(Boolean).length,
      already: found.length - open.length,
      reason: judgment.reason,
    });
  },
);
feedbackRoutes.all("/", methodNotAllowed("POST"));
