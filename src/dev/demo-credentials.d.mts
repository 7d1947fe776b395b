/** Types for demo-credentials.mjs: TEST-ONLY credentials for the /demo page (docs/web.md). */

export declare const DEMO_NUMBERS: {
  alice: string;
  bobBlockStart: string;
  bobBlockCount: number;
  mallory: string;
};

/**
 * Fresh demo credentials: `json` is the DEMO_CREDENTIALS secret (private keys: an env file, never a
 * command line), `rootPem` goes into TRUST_ANCHORS_PEM.
 */
export declare function makeDemoCredentials(): Promise<{ rootPem: string; json: string }>;
