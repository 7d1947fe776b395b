/** Types for local-server.mjs: the CPS under `wrangler dev`, for e2e tests and benchmarks. */

export interface LocalServerOptions {
  /** Listen port; a free one when omitted. */
  port?: number;
  /** Listen address (default 127.0.0.1). */
  host?: string;
  /** Persisted DO/KV state directory; a fresh temp dir, removed on stop(), when omitted. */
  persistTo?: string;
  /**
   * Worker vars and secrets (they override wrangler.toml [vars]), passed in a 0600 env file
   * (`--env-file`, removed on stop), never on the command line. For the CPS, CPS_ORIGIN defaults
   * to the server's own URL, DECOY_SECRET to a fresh random one and OHTTP_KEYS to one fresh OHTTP
   * gateway key (`OHTTP_KEYS: ""` turns the gateway off).
   */
  vars?: Record<string, string>;
  /** wrangler config relative to the repository (default: the CPS's wrangler.toml). */
  config?: string;
  /** Entry module in place of the config's `main`, relative to the repository. */
  main?: string;
  /** Keep wrangler's output to ourselves (default true); it is in the error if start fails. */
  quiet?: boolean;
  /** Extra `wrangler dev` arguments. */
  args?: string[];
  /**
   * Extra environment for the wrangler process (not the Worker's vars). NODE_EXTRA_CA_CERTS names
   * a PEM file of CAs that miniflare reads at start and gives workerd as trusted certificates for
   * the Worker's outbound https fetches (a local test certificate repository).
   */
  env?: Record<string, string>;
  /** How long to wait for GET /health (default 60,000 ms). */
  timeoutMs?: number;
}

export interface LocalServer {
  /** Base URL, e.g. http://127.0.0.1:40123 (no trailing slash). */
  url: string;
  port: number;
  persistTo: string;
  /** Pid of the wrangler process, leader of the process group that also holds workerd. */
  pid: number;
  /** Settles when wrangler exits. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The last few kB of wrangler's output. */
  output(): string;
  /** SIGTERM to the process group, SIGKILL after 10 s; removes the state dir if it made it. */
  stop(): Promise<void>;
  /** Sends a signal to the whole process group. */
  kill(signal?: NodeJS.Signals): void;
}

export declare const REPO_ROOT: string;
export declare const WRANGLER_BIN: string;
export declare function wranglerEnv(extra?: Record<string, string>): NodeJS.ProcessEnv;
export declare function baseUrl(host: string, port: number): string;
export declare function freePort(host?: string): Promise<number>;
export declare function portIsFree(host: string, port: number): Promise<boolean>;
export declare function waitForHealth(
  url: string,
  options?: { timeoutMs?: number; intervalMs?: number; failed?: () => Error | null },
): Promise<void>;
/** `wrangler dev` arguments; `vars` go on the command line (never a secret: `ps` shows them). */
export declare function wranglerDevArgs(options: {
  host: string;
  port: number;
  persistTo: string;
  vars?: Record<string, string>;
  envFiles?: string[];
  config?: string;
  main?: string;
  extraArgs?: string[];
}): string[];
/** Writes `vars` as a dotenv file created with mode 0600; returns `file`. */
export declare function writeEnvFile(file: string, vars: Record<string, string>): Promise<string>;
/** Starts `wrangler dev` for this repository and resolves once GET /health answers. */
export declare function startLocalServer(options?: LocalServerOptions): Promise<LocalServer>;
/** Whether wrangler's output shows a start that restarted on a watcher event and then lost its own port. */
export declare function isRestartBindFailure(text: string): boolean;
