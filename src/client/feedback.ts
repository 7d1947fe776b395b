/**
 * The callee's side of feedback on bogus PASSporTs (RFC 8816 §7.5; docs/tokens.md "Feedback"): which
 * failed candidates are worth reporting, and the report of each blob that held one, to the CPS that
 * stored it. `VerificationService.report` runs this with its keys and its CPS clients.
 */
import { StirOobError } from "../errors.js";
import { decodeBase64url } from "../stir/base64url.js";
import { ENVELOPE_TEXT_LENGTH, openPassportForReport } from "../stir/envelope.js";
import { UNTRUSTED_CERT_CODES } from "../stir/feedback.js";
import type { CanonicalTn } from "../stir/tn.js";
import type { CpsClient, ListedBlob } from "./cps-client.js";

/**
 * VS failure codes (§8.2 steps 2-6) that prove a PASSporT bogus without knowing the call, so the CPS
 * can judge them too: malformed, re-sealed to another callee (`DEST_MISMATCH`), stale, an untrusted or
 * non-covering signer, a bad signature. Not `ORIG_MISMATCH` (a genuine PASSporT of another call),
 * `REPLAYED`, an unsupported `ppt` or a certificate that could not be fetched.
 */
export const REPORTABLE_FAILURES: ReadonlySet<string> = new Set([
  "PASSPORT_MALFORMED",
  "PASSPORT_ALG",
  "PASSPORT_CLAIMS",
  "DEST_MISMATCH",
  "PASSPORT_STALE",
  // The certificate failures the CPS judges UNTRUSTED, and the one it judges NOT_AUTHORISED.
  ...UNTRUSTED_CERT_CODES,
  "CERT_NOT_AUTHORISED",
  "PASSPORT_SIGNATURE",
]);

/** A candidate as `judge` reports it, as far as a report needs. */
export interface ReportableCandidate {
  readonly passport: string;
  readonly blobIds: readonly string[];
  readonly ok: boolean;
  /** `link` >= 1: the failure is of an earlier PASSporT of a diversion chain, not of this one. */
  readonly failure?: { readonly code: string; readonly link?: number };
}

/**
 * Whether a candidate failed in a way the CPS can confirm (REPORTABLE_FAILURES), in its own PASSporT:
 * a diversion whose earlier link failed (`link` >= 1) may itself be genuine, so it is not reported.
 */
export function isReportable(c: ReportableCandidate): boolean {
  if (c.ok || c.failure === undefined) return false;
  if ((c.failure.link ?? 0) > 0) return false;
  return REPORTABLE_FAILURES.has(c.failure.code);
}

/** What became of one reported blob. */
export interface ReportOutcome {
  readonly blobId: string;
  /** The CPS the blob was found at and reported to (absent when none held it any more). */
  readonly cps?: string;
  /**
   * `revoked`: the CPS revoked the token that paid for it; `already`: a report had; `refused`: the
   * CPS refused the report (`code`: FEEDBACK_NOT_BOGUS, FEEDBACK_UNKNOWN, ...); `not-found`: no CPS
   * serves the blob any more (expired) and none was given.
   */
  readonly outcome: "revoked" | "already" | "refused" | "not-found";
  readonly code?: string;
}

/** A key that may have opened the blob. */
interface ReportKey {
  readonly privateKey: CryptoKey | CryptoKeyPair;
}

function bytesOf(text: string): Uint8Array | undefined {
  const compact = text.replace(/\s+/g, "");
  if (compact.length !== ENVELOPE_TEXT_LENGTH) return undefined;
  try {
    return decodeBase64url(compact);
  } catch {
    return undefined;
  }
}

/**
 * Reports every blob of `candidates` that failed reportably (or of those given, `force`). Each blob
 * is looked for in `blobs` (the list the VS retrieved), else fetched by id from each CPS in turn;
 * re-opened with the callee's keys to recover its KEM shared secret (only a blob that opens to the
 * candidate's PASSporT is reported), and reported to the CPS that serves it. Never throws for one
 * blob: its outcome says what happened.
 */
export async function reportCandidates(input: {
  to: CanonicalTn;
  candidates: readonly ReportableCandidate[];
  keys: readonly ReportKey[];
  clients: readonly CpsClient[];
  blobs?: readonly ListedBlob[];
  force?: boolean;
}): Promise<ReportOutcome[]> {
  const outcomes: ReportOutcome[] = [];
  for (const candidate of input.candidates) {
    if (!input.force && !isReportable(candidate)) continue;
    for (const blobId of candidate.blobIds) {
      outcomes.push(await reportBlob(input, candidate.passport, blobId));
    }
  }
  return outcomes;
}

async function reportBlob(
  input: {
    to: CanonicalTn;
    keys: readonly ReportKey[];
    clients: readonly CpsClient[];
    blobs?: readonly ListedBlob[];
  },
  passport: string,
  blobId: string,
): Promise<ReportOutcome> {
  const given = input.blobs?.find((b) => b.id === blobId);
  // A listed blob's id is the CPS's; with several CPSes the one that answers for it holds it.
  for (const client of input.clients) {
    let text = given?.blob;
    if (text === undefined) {
      try {
        text = await client.get(input.to, blobId);
      } catch {
        continue;
      }
    }
    const bytes = bytesOf(text);
    if (bytes === undefined) continue;
    let secret: Uint8Array | undefined;
    for (const key of input.keys) {
      try {
        const opened = await openPassportForReport(key.privateKey, input.to, bytes);
        if (opened.passport === passport) secret = opened.secret;
        break;
      } catch {
        // Not this key.
      }
    }
    if (secret === undefined) continue;
    try {
      const answer = await client.report(input.to, bytes, secret);
      return { blobId, cps: client.baseUrl, outcome: answer.revoked > 0 ? "revoked" : "already" };
    } catch (err) {
      // With the blob given and several CPSes, the tag is at one of them: try the next on FEEDBACK_UNKNOWN.
      const code = err instanceof StirOobError ? err.code : "UNAVAILABLE";
      if (given !== undefined && code === "FEEDBACK_UNKNOWN" && client !== input.clients.at(-1)) continue;
      return { blobId, cps: client.baseUrl, outcome: "refused", code };
    }
  }
  return { blobId, outcome: "not-found" };
}
