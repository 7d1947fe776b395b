/**
 * Server B of the push benchmark (bench/push.mjs): the CPS Worker as it is, run with the CPS's own
 * wrangler.toml (`wrangler dev bench/no-block-index/index.ts`, this file as the entry), except that
 * PassportQueue does not file stored blobs into their number block (BlockQueue). Beside server A (the
 * CPS itself) in the same run, that gives the block index's cost per store as a ratio. Block answers
 * from this Worker hold dummies only. Bench code: never deployed, never imported by src/.
 */
import { PassportQueue as CpsPassportQueue } from "../../src/durable-objects/passport-queue.js";

export { AtisStore, BlockQueue, default, MetricsHub, ReplayGuard, TokenLedger } from "../../src/index.js";

/** Bound as PASSPORT_QUEUE by wrangler.toml's class name, in place of the CPS's own. */
export class PassportQueue extends CpsPassportQueue {
  protected override async fileInBlock(): Promise<void> {}
}
