// Stripe's webhook signature scheme: `Stripe-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">[,v1=…]`.
// Scheme as documented at https://docs.stripe.com/webhooks#verify-manually (signed payload = timestamp, ".", raw body;
// several v1 entries while a secret is rolled; compare in constant time; 300 s is the libraries' default tolerance).
import { createHmac, timingSafeEqual } from 'node:crypto';
import { MeterWebhookSignatureError } from './errors';

/** How far the signature's timestamp may be from now: Stripe's libraries default to five minutes. */
export const DEFAULT_WEBHOOK_TOLERANCE_SECONDS = 300;
/** The only signature scheme Stripe documents for live and test events; others (`v0`) are ignored, as its libraries do. */
const SCHEME = 'v1';
const HEX_SHA256 = /^[0-9a-f]{64}$/;

function hmac(secret: string, timestamp: string, payload: Buffer | string): Buffer {
  const mac = createHmac('sha256', secret);
  mac.update(`${timestamp}.`, 'utf8');
  mac.update(payload);
  return mac.digest();
}

/**
 * The `Stripe-Signature` header Stripe would send for `payload`: one `v1` per secret (as during a rotation).
 *
 * @example
 * const header = signWebhookPayload(JSON.stringify(event), 'whsec_test_secret');
 */
export function signWebhookPayload(payload: Buffer | string, secrets: string | readonly string[], timestampSeconds = Math.floor(Date.now() / 1000)): string {
  const t = String(Math.floor(timestampSeconds));
  const list = typeof secrets === 'string' ? [secrets] : secrets;
  return [`t=${t}`, ...list.map((secret) => `${SCHEME}=${hmac(secret, t, payload).toString('hex')}`)].join(',');
}

/**
 * Throws `MeterWebhookSignatureError` unless one `v1` signature of the header is the HMAC of the raw body under
 * one of `secrets` and its timestamp is within `toleranceSeconds` of `nowMs`. The body must be the exact bytes
 * received: a body re-serialized by a JSON parser no longer matches.
 */
export function verifyWebhookSignature(
  payload: Buffer | string,
  header: string | readonly string[] | undefined,
  secrets: readonly string[],
  toleranceSeconds = DEFAULT_WEBHOOK_TOLERANCE_SECONDS,
  nowMs = Date.now(),
): void {
  const value = typeof header === 'string' ? header : header?.[0];
  if (value === undefined || value.length === 0) throw new MeterWebhookSignatureError('missing_header', 'The request has no Stripe-Signature header');
  let timestamp: string | undefined;
  const signatures: Buffer[] = [];
  for (const part of value.split(',')) {
    const at = part.indexOf('=');
    if (at <= 0) continue;
    const key = part.slice(0, at).trim();
    const item = part.slice(at + 1).trim();
    if (key === 't') timestamp = item;
    else if (key === SCHEME && HEX_SHA256.test(item)) signatures.push(Buffer.from(item, 'hex'));
  }
  if (timestamp === undefined || !/^\d{1,12}$/.test(timestamp) || signatures.length === 0) {
    throw new MeterWebhookSignatureError('malformed_header', 'The Stripe-Signature header has no timestamp (t=) or no v1 signature');
  }
  let matched = false;
  // Every secret against every signature, without stopping early: the time taken says nothing about which matched.
  for (const secret of secrets) {
    const expected = hmac(secret, timestamp, payload);
    for (const signature of signatures) if (timingSafeEqual(expected, signature)) matched = true;
  }
  if (!matched) throw new MeterWebhookSignatureError('no_matching_signature', 'No v1 signature of the Stripe-Signature header matches the body under the configured secret(s)');
  const ageSeconds = Math.abs(Math.floor(nowMs / 1000) - Number(timestamp));
  if (ageSeconds > toleranceSeconds) {
    throw new MeterWebhookSignatureError('timestamp_outside_tolerance', `The signature's timestamp is ${ageSeconds} s from now, beyond the tolerance of ${toleranceSeconds} s (a replayed or delayed request)`);
  }
}
