/**
 * STIR certificates (RFC 8226): parsing, TNAuthList, chain validation and the validated-chain cache.
 * One import point for callers; the work is split by responsibility into `cert-parse.ts` and
 * `cert-validate.ts`.
 */
export {
  type CertificateChain,
  certificatePublicKey,
  certificateTnAuthList,
  chainFingerprint,
  MAX_CHAIN_LENGTH,
  parseCertificate,
  parseCertificateChain,
} from "./cert-parse.js";
export {
  CertificateValidator,
  type CertificateValidatorOptions,
  type ValidatedCertificate,
  type ValidateOptions,
  validateCertificateChain,
} from "./cert-validate.js";
export {
  coversRange,
  coversSpc,
  coversTn,
  type SpcRangeCheck,
  type TnAuthEntry,
  type TnAuthList,
  tnAuthListWithin,
} from "./tnauthlist.js";
