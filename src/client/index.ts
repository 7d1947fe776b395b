/**
 * The stir-oob client library (package export "."): the out-of-band AS, VS and gateways of RFC 8816
 * §8, CPS discovery and key lookup (§10, §11), and the CPS HTTP client. Runs on Node >= 20, in
 * browsers and in Workers: nothing here imports a Node built-in. See docs/client.md.
 */

// Protocol pieces an integrator needs next to the services.
export { type CertificateChain, parseCertificate, parseCertificateChain } from "../stir/cert-parse.js";
export { CertificateValidator } from "../stir/cert-validate.js";
export { CrlChecker, crlCheckingValidator } from "../stir/crl.js";
export {
  exportRecipientPrivateKey,
  generateRecipientKeyPair,
  importRecipientPrivateKey,
  type RecipientKeyPair,
} from "../stir/envelope.js";
export { formatIdentityHeader, parseIdentityHeaders } from "../stir/identity-header.js";
export type { RevocationChecker } from "../stir/revocation.js";
export { type CanonicalTn, canonicalTn } from "../stir/tn.js";
export { X5uFetcher } from "../stir/x5u.js";
export {
  type AsTimings,
  AuthenticationService,
  type AuthenticationServiceOptions,
  type CpsStoreResult,
  type PlaceCallInput,
  type PlacedCall,
  type PlacedCopy,
  type SigningCredential,
} from "./as.js";
// Cover traffic by the AS (RFC 8816 §7.4, §13; docs/cover-and-decoys.md).
export {
  type CoverObservation,
  CoverPlanner,
  type CoverPlannerOptions,
  type CoverStats,
  type CoverTarget,
  CoverTraffic,
  type CoverTrafficOptions,
} from "./cover.js";
export {
  CpsClient,
  type CpsClientOptions,
  errorFromResponse,
  type FetchLike,
  type IssuerKeysDocument,
  type ListedBlob,
  type StoredBlob,
} from "./cps-client.js";
// Decoy polling by the callee (RFC 8816 §6.2, §13; docs/cover-and-decoys.md).
export {
  DecoyPlan,
  type DecoyPlanOptions,
  DecoyPoller,
  type DecoyPollerOptions,
  type DecoyStats,
  type PlannedRetrieval,
} from "./decoys.js";
export {
  type CpsLocation,
  checkServiceUrl,
  checkServiceUrls,
  type DestinationKey,
  Discovery,
  type DiscoveryOptions,
  type KeyDirectoryAnswer,
  keyLookupPath,
  keysFromJwkSet,
  MAX_LOOKUP_OPEN_DIGITS,
  type SkippedKey,
} from "./discovery.js";
// Diverted calls (RFC 8946; RFC 8816 §6.2; docs/diversion.md).
export {
  type DivertedCall,
  type DivertInput,
  DivertingService,
  type DivertingServiceOptions,
} from "./divert.js";
// Every error the library throws on purpose extends StirOobError and has a `code` (docs/client.md "Errors").
export {
  type ClientErrorCode,
  CpsError,
  type CpsErrorCode,
  CpsUnavailableError,
  StirClientError,
  StirOobError,
} from "./errors.js";
export { isReportable, REPORTABLE_FAILURES, type ReportOutcome } from "./feedback.js";
export {
  Gateway,
  type GatewayOptions,
  type GatewayStoreResult,
  ReverseGateway,
  type ReverseGatewayResult,
} from "./gateway.js";
export {
  DEFAULT_RECORD_LIFETIME_SECONDS,
  KeyDirectoryClient,
  type KeyDirectoryClientOptions,
  type KeyDirectoryCredential,
  type ListedKey,
  type RegisteredKey,
  type RegisterKeyInput,
} from "./key-directory.js";
export { KeyRecordCheck, type KeyRecordCheckOptions, requireUsableKeys } from "./key-records.js";
// Several CPSes per number (RFC 8816 §10).
export {
  type CpsFault,
  DEFAULT_CPS_DEADLINE_MS,
  type StorePolicy,
  tokensPerCps,
} from "./multi-cps.js";
export { type PlacementTimings, type StoredCopy, sealAndStore } from "./placement.js";
export { OhttpRelay, type RelayOptions, type RelayTransportOptions } from "./relay.js";
export { type StoreTokenSource, untokenedStores, type WalletLike, walletTokens } from "./store-tokens.js";
export {
  type ExportedToken,
  type StoreTokenHeaders,
  TokenWallet,
  type TokenWalletOptions,
} from "./token-wallet.js";
export {
  type CalleeKey,
  type CallOptions,
  type CallVerification,
  type Candidate,
  type CandidateFailure,
  type Diversion,
  type DiversionLink,
  MemoryReplayStore,
  type OpenedBlobs,
  type ReplayStore,
  type RetrievalSource,
  replayKey,
  type Verdict,
  VerificationService,
  type VerificationServiceOptions,
  type VsTimings,
} from "./vs.js";
export {
  subscribeUrl,
  type Watcher,
  type WatchFrame,
  type WatchOptions,
  type WatchStatus,
  type WatchTarget,
  type WebSocketLike,
  watch,
} from "./watch.js";
