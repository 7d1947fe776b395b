/** Oblivious HTTP (RFC 9458) and Binary HTTP (RFC 9292): the pure protocol code of the gateway, relay and client. */
export * from "./encapsulation.js";
export * from "./errors.js";
export * from "./keys.js";
export * from "./messages.js";
