// @ts-check
/**
 * RFC 6238 TOTP (HMAC-SHA1, 6 digits, 30 s steps) as the control plane uses it, for the journey (acting
 * as the authenticator app) and the mock server (checking codes). No dependency: node:crypto only.
 */
import { createHmac, randomBytes } from 'node:crypto';

export const STEP_SECONDS = 30;
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** RFC 4648 base32 (no padding needed), case-insensitive; spaces and '=' are ignored. */
export function base32Decode(/** @type {string} */ text) {
  let bits = 0;
  let value = 0;
  /** @type {number[]} */
  const out = [];
  for (const c of text.toUpperCase().replace(/[\s=]/g, '')) {
    const i = ALPHABET.indexOf(c);
    if (i < 0) throw new Error(`not base32: ${JSON.stringify(c)}`);
    value = ((value << 5) | i) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

export function base32Encode(/** @type {Buffer} */ bytes) {
  let bits = 0;
  let value = 0;
  let out = '';
  for (const b of bytes) {
    value = ((value << 8) | b) & 0xffff;
    bits += 8;
    while (bits >= 5) {
      out += ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += ALPHABET[(value << (5 - bits)) & 31];
  return out;
}

/** A new 160-bit secret, base32. */
export function newSecret() {
  return base32Encode(randomBytes(20));
}

/** The time step of a Unix time in milliseconds. */
export function stepAt(ms = Date.now()) {
  return Math.floor(ms / 1000 / STEP_SECONDS);
}

/** The 6-digit code of `secret` (base32) for time step `step` (RFC 4226 dynamic truncation). */
export function totp(/** @type {string} */ secret, step = stepAt()) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac('sha1', base32Decode(secret)).update(counter).digest();
  const offset = (mac[mac.length - 1] ?? 0) & 0x0f;
  const n = (mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;
  return String(n).padStart(6, '0');
}

/** The step a code matches now, allowing one step of skew either way (as the server does), or null. */
export function matchingStep(/** @type {string} */ secret, /** @type {string} */ code, now = Date.now()) {
  const step = stepAt(now);
  for (const s of [step - 1, step, step + 1]) if (totp(secret, s) === code) return s;
  return null;
}
