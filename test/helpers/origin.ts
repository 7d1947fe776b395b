/**
 * CPS_ORIGIN of the integration Workers (vitest.config.ts) and the base URL the tests send requests
 * to. Loopback, because those Workers run with development switches (untokened stores), which the
 * serving guard honours only for a loopback origin (src/config.ts `deploymentProblem`). Nothing
 * listens there: requests go to the Worker in-process. Plain module: vitest.config.ts imports it.
 */
export const TEST_CPS_ORIGIN = "http://127.0.0.1:8787";
