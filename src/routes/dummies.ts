/**
 * The dummies of a retrieval (RFC 8816 §6.2: "at least one unique and plausible encrypted response to
 * all retrieval requests"): the number's live decoys (src/dummies/decoys.ts). A decoy lives one TTL
 * like a stored blob and shows in every list, greeting and GET by id while live, so neither a second
 * poll nor a GET tells it from a real blob (issue 13, findings 4 and 6). About 3 are live per number
 * (Poisson, never fewer than 1), so the count of entries does not equal the number of calls plus one.
 */
export { liveDecoys } from "../dummies/decoys.js";
