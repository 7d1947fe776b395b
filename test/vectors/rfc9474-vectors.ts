/**
 * RFC 9474 Appendix A known-answer runner, shared by the Node test (client path: the library's
 * big-number code) and the workerd test (server path: native RSA-RAW). Vector data in
 * test/vectors/rfc9474.json (RFC 9474 Appendix A, copied from cloudflare/blindrsa-ts). Randomness is
 * made deterministic by stubbing crypto.getRandomValues: prepare's prefix, the PSS salt, then r.
 */
import { BlindRSA, getSuiteByName } from "@cloudflare/blindrsa-ts";
import { expect, vi } from "vitest";
import data from "./rfc9474.json";

export interface Rfc9474Vector {
  name: string;
  p: string;
  q: string;
  n: string;
  e: string;
  d: string;
  msg: string;
  msg_prefix: string;
  input_msg: string;
  salt: string;
  inv: string;
  blinded_msg: string;
  blind_sig: string;
  sig: string;
}

export const RFC9474_SOURCE: string = data.source;
export const RFC9474_VECTORS = data.vectors as Rfc9474Vector[];

const big = (hex: string) => BigInt(hex.startsWith("0x") ? hex : `0x${hex}`);

function bytes(hex: string): Uint8Array {
  const h = hex.startsWith("0x") ? hex.slice(2) : hex;
  return Uint8Array.from(h.match(/../g) ?? [], (b) => Number.parseInt(b, 16));
}

function toHex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

function intToBytes(x: bigint, len: number): Uint8Array {
  const out = new Uint8Array(len);
  for (let i = len - 1; i >= 0; i--) {
    out[i] = Number(x & 0xffn);
    x >>= 8n;
  }
  return out;
}

function b64u(x: bigint): string {
  let hex = x.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  let bin = "";
  for (const b of bytes(hex)) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function modInverse(a: bigint, m: bigint): bigint {
  let [r0, r1] = [a % m, m];
  let [s0, s1] = [1n, 0n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
  }
  return ((s0 % m) + m) % m;
}

async function keys(v: Rfc9474Vector): Promise<CryptoKeyPair> {
  const [p, q, d] = [big(v.p), big(v.q), big(v.d)];
  const alg = { name: "RSA-PSS", hash: "SHA-384" };
  const pub = { kty: "RSA", n: b64u(big(v.n)), e: b64u(big(v.e)), ext: true };
  const priv = {
    ...pub,
    d: b64u(d),
    p: b64u(p),
    q: b64u(q),
    dp: b64u(d % (p - 1n)),
    dq: b64u(d % (q - 1n)),
    qi: b64u(modInverse(q, p)),
  };
  return {
    publicKey: await crypto.subtle.importKey("jwk", pub, alg, true, ["verify"]),
    privateKey: await crypto.subtle.importKey("jwk", priv, alg, true, ["sign"]),
  };
}

/** Runs one vector end to end; `supportsRSARAW` picks the signer's path. */
export async function runRfc9474Vector(v: Rfc9474Vector, supportsRSARAW: boolean): Promise<void> {
  const n = big(v.n);
  const kLen = Math.ceil(n.toString(16).length / 2);
  const r = modInverse(big(v.inv), n);
  const spy = vi
    .spyOn(crypto, "getRandomValues")
    .mockReturnValueOnce(bytes(v.msg_prefix))
    .mockReturnValueOnce(bytes(v.salt))
    .mockReturnValueOnce(intToBytes(r, kLen));
  try {
    const suite = getSuiteByName(BlindRSA, v.name, { supportsRSARAW });
    const { publicKey, privateKey } = await keys(v);
    const input = suite.prepare(bytes(v.msg));
    expect(toHex(input)).toBe(v.input_msg);
    const { blindedMsg, inv } = await suite.blind(publicKey, input);
    expect(toHex(blindedMsg)).toBe(v.blinded_msg);
    expect(toHex(inv)).toBe(v.inv.slice(2).padStart(kLen * 2, "0"));
    const blindSig = await suite.blindSign(privateKey, blindedMsg);
    expect(toHex(blindSig)).toBe(v.blind_sig);
    const sig = await suite.finalize(publicKey, input, blindSig, inv);
    expect(toHex(sig)).toBe(v.sig);
    expect(await suite.verify(publicKey, sig, input)).toBe(true);
    // A flipped bit of the signature must not verify (the check above can fail).
    const bad = sig.slice();
    bad[0] = (bad[0] ?? 0) ^ 1;
    expect(await suite.verify(publicKey, bad, input)).toBe(false);
  } finally {
    spy.mockRestore();
  }
}
