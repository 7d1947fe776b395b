/** Types for ts-module.mjs. */

/** Imports the TypeScript module at `path` (relative to the repository), bundled by esbuild. */
export declare function importTs<T = Record<string, unknown>>(path: string): Promise<T>;
