/** Types for local-server.mjs: the CPS under `wrangler dev`, for e2e tests and benchmarks. */

export interface LocalServerOptions {
  /** Listen port; a free one when omitted. */
  port?: number;
  /** Listen address (default 127.0.0.1). */
  host?: string;
  /** Persisted DO/KV state directory; a fresh temp dir, removed on stop(), when omitted. */
  persistTo?: string;
  /** Worker vars, passed as `--var KEY:VALUE` (they override wrangler.toml [vars]). */
  vars?: Record<string, string>;
  /** Keep wrangler's output to ourselves (default true); it is in the error if start fails. */
  quiet?: boolean;
  /** Extra `wrangler dev` arguments. */
  args?: string[];
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
export declare function wranglerDevArgs(options: {
  host: string;
  port: number;
  persistTo: string;
  vars?: Record<string, string>;
  extraArgs?: string[];
}): string[];
/** Starts `wrangler dev` for this repository and resolves once GET /health answers. */
export declare function startLocalServer(options?: LocalServerOptions): Promise<LocalServer>;
