import { createHmac, timingSafeEqual } from "node:crypto";

/** The header a delivery's signature travels in: `sha256=` and the hex HMAC-SHA256 of the body. */
export const SIGNATURE_HEADER = "x-dmesh-signature";
/** The delivery's id: the same on every retry, so that a receiver can drop a repeat. */
export const DELIVERY_HEADER = "x-dmesh-delivery";
/** "session" or "batch". */
export const EVENT_HEADER = "x-dmesh-event";

export function signBody(secret: string, body: string): string {
  return `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;
}

/** What a receiver runs: whether `signature` is the body's, compared in constant time. */
export function verifySignature(secret: string, body: string, signature: string): boolean {
  const expected = Buffer.from(signBody(secret, body));
  const given = Buffer.from(signature);
  return expected.length === given.length && timingSafeEqual(expected, given);
}
