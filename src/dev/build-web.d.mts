/** Types of build-web.mjs (plain ESM so it runs before anything is built). */
export declare const WEB_SRC: string;
export declare const WEB_OUT: string;
export declare const PAGES: readonly { page: string; file: string; url: string }[];
/** Builds every page present (nothing when the inputs are those of the last build); the URLs served. */
export declare function buildWeb(options?: { quiet?: boolean }): Promise<string[]>;
