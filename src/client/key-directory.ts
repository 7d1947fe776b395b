/**
 * The callee's side of the key directory (RFC 8816 §11, docs/key-directory.md): register an
 * encryption key as a SIGNED key record (a JWS by the STIR credential that covers the number, so a
 * directory can withhold keys but never substitute them), list what the directory serves, remove a
 * key. Writes carry a single-use credential token of the same credential (the directory requires the
 * record's signer and the token's holder to be one). No Node-only imports.
 */

import { issueCredentialToken } from "../stir/credential-token.js";
import { formatBlock, parseBlock } from "../stir/number-blocks.js";
import { signKeyRecord } from "../stir/signed-key-record.js";
import { CpsClient, type FetchLike } from "./cps-client.js";
import { CpsUnavailableError } from "./errors.js";
import type { RelayTransportOptions } from "./relay.js";

/** Default record lifetime: 30 days (the directory's own default key lifetime). */
export const DEFAULT_RECORD_LIFETIME_SECONDS = 30 * 86_400;

/** The STIR credential of the number's holder: signs the records and the write tokens. */
export interface KeyDirectoryCredential {
  /** The certificate's ES256 private key. */
  readonly privateKey: CryptoKey;
  /** Certificate chain, leaf first, DER (credential tokens always carry it). */
  readonly x5c: readonly Uint8Array[];
  /** When set, records name the certificate by this URL instead of carrying the chain. */
  readonly x5u?: string;
}

export interface KeyDirectoryClientOptions extends RelayTransportOptions {
  /** Key directory base URL (a discovery record's `keys`, e.g. `https://cps.example/keys`). */
  readonly directory: string;
  /** Needed to register and remove (not to list). */
  readonly credential?: KeyDirectoryCredential;
  readonly fetch?: FetchLike;
  /** Seconds since the epoch (default: clock), for record windows and token `iat`. */
  readonly now?: () => number;
}

export interface RegisterKeyInput {
  /** Raw 32-byte X25519 public key. */
  readonly publicKey: Uint8Array;
  /** The number or block registered (`+1 202 555 0100`, `120255501xx`): the record's first block. */
  readonly tn: string;
  /** Further blocks the same record covers (the credential must cover every one). */
  readonly moreBlocks?: readonly string[];
  /** 1-32 of letters, digits, space and `._:@-`. */
  readonly label: string;
  /** Record lifetime from `nbf` (default 30 days, at most 400 days). */
  readonly lifetimeSeconds?: number;
  /** Start of the record's window (default now). */
  readonly nbf?: number;
}

export interface RegisteredKey {
  readonly kid: string;
  readonly label: string;
  /** When the directory drops it (seconds since the epoch). */
  readonly exp: number;
  readonly blocks: readonly string[];
  /** The signed record as sent (the directory serves it unchanged). */
  readonly record: string;
}

/** One key as the directory lists it: its word only (an AS verifies `record` before sealing). */
export interface ListedKey {
  readonly kid?: string;
  readonly x?: string;
  readonly label?: string;
  readonly exp?: number;
  readonly block?: string;
  readonly record?: string;
}

/** A number (any accepted spelling) or a block, in the canonical form the directory's paths use. */
function target(text: string): string {
  const compact = text
    .trim()
    .toLowerCase()
    .replace(/^\+/, "")
    .replace(/[.\- ]/g, "");
  return formatBlock(parseBlock(compact));
}

/**
 * Registers, lists and removes one holder's encryption keys at a key directory.
 *
 * @example
 * const dir = new KeyDirectoryClient({ directory: "https://cps.example/keys",
 *   credential: { privateKey, x5c: chainDer } });
 * const { kid } = await dir.register({ publicKey, tn: "+2 222 555 2222", label: "phone" });
 * await dir.remove("+2 222 555 2222", oldKid);
 */
export class KeyDirectoryClient {
  readonly #options: KeyDirectoryClientOptions;
  readonly #client: CpsClient;
  readonly #audience: string;

  constructor(options: KeyDirectoryClientOptions) {
    if (options.credential && options.credential.x5c.length === 0)
      throw new TypeError("The credential needs its chain (x5c)");
    this.#options = options;
    this.#audience = new URL(options.directory).origin;
    this.#client = new CpsClient({
      baseUrl: options.directory,
      ...(options.fetch ? { fetch: options.fetch } : {}),
      ...(options.relay ? { relay: options.relay } : {}),
      ...(options.requireRelay ? { requireRelay: true } : {}),
    });
  }

  #now(): number {
    return Math.floor(this.#options.now?.() ?? Date.now() / 1000);
  }

  #credential(): KeyDirectoryCredential {
    if (!this.#options.credential) throw new TypeError("Registering and removing keys need a credential");
    return this.#options.credential;
  }

  async #authorization(action: "keys:put" | "keys:delete"): Promise<string> {
    const cred = this.#credential();
    const token = await issueCredentialToken({
      privateKey: cred.privateKey,
      x5c: [...cred.x5c],
      audience: this.#audience,
      action,
      now: this.#now(),
    });
    return `Bearer ${token}`;
  }

  /** Signs a record for the key and registers it (`PUT /keys/{tn}` with `{ record }`). */
  async register(input: RegisterKeyInput): Promise<RegisteredKey> {
    const first = target(input.tn);
    const blocks = [first, ...(input.moreBlocks ?? []).map(target)];
    const nbf = input.nbf ?? this.#now();
    const cred = this.#credential();
    const record = await signKeyRecord({
      publicKey: input.publicKey,
      blocks,
      label: input.label,
      iat: this.#now(),
      nbf,
      exp: nbf + (input.lifetimeSeconds ?? DEFAULT_RECORD_LIFETIME_SECONDS),
      privateKey: cred.privateKey,
      ...(cred.x5u === undefined ? { x5c: cred.x5c } : { x5u: cred.x5u }),
    });
    const res = await this.#client.request(`/${first}`, {
      method: "PUT",
      headers: { "content-type": "application/json", authorization: await this.#authorization("keys:put") },
      body: JSON.stringify({ record }),
    });
    const body = await json<Partial<RegisteredKey>>(res);
    return {
      kid: String(body.kid ?? ""),
      label: String(body.label ?? input.label),
      exp: Number(body.exp ?? nbf + (input.lifetimeSeconds ?? DEFAULT_RECORD_LIFETIME_SECONDS)),
      blocks: Array.isArray(body.blocks) ? body.blocks.map(String) : blocks,
      record,
    };
  }

  /** What the directory serves for a number (`GET /keys/{tn}`), unverified: for display. */
  async list(tn: string): Promise<ListedKey[]> {
    let body: { keys?: unknown };
    try {
      ({ body } = await this.#client.getJson<{ keys?: unknown }>(`/${target(tn)}`));
    } catch (err) {
      if ((err as { status?: number }).status === 404) return [];
      throw err;
    }
    if (!Array.isArray(body.keys)) return [];
    return body.keys.flatMap((k: unknown) => {
      if (k === null || typeof k !== "object") return [];
      const e = k as Record<string, unknown>;
      const pick = <T>(name: string, type: string): Partial<Record<string, T>> =>
        typeof e[name] === type ? { [name]: e[name] as T } : {};
      return [
        {
          ...pick<string>("kid", "string"),
          ...pick<string>("x", "string"),
          ...pick<string>("label", "string"),
          ...pick<number>("exp", "number"),
          ...pick<string>("block", "string"),
          ...pick<string>("record", "string"),
        } as ListedKey,
      ];
    });
  }

  /**
   * Removes this holder's key `kid` for the number or block (every one of its keys there without
   * `kid`): `DELETE /keys/{tn}[?kid=]`. The directory purges its cached answers for the number.
   */
  async remove(tn: string, kid?: string): Promise<{ removed: number }> {
    const query = kid === undefined ? "" : `?kid=${encodeURIComponent(kid)}`;
    const res = await this.#client.request(`/${target(tn)}${query}`, {
      method: "DELETE",
      headers: { authorization: await this.#authorization("keys:delete") },
    });
    const body = await json<{ removed?: unknown }>(res);
    return { removed: typeof body.removed === "number" ? body.removed : 0 };
  }
}

async function json<T>(res: Response): Promise<T> {
  try {
    return (await res.json()) as T;
  } catch (cause) {
    throw new CpsUnavailableError("The key directory answered with something that is not JSON", res.url, {
      cause,
    });
  }
}
