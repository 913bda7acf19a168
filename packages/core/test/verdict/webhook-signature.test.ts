// Our signer and verifier agree with stripe-node's, and the verifier refuses what Stripe's libraries refuse.
import { MeterWebhookSignatureError, signWebhookPayload, verifyWebhookSignature } from '@metered/core';
import Stripe from 'stripe';

const stripe = new Stripe('sk_test_conformance', { telemetry: false });
const SECRET = 'whsec_conformance_secret';
const BODY = JSON.stringify({ id: 'evt_test_1', object: 'v2.core.event', type: 'v1.billing.meter.error_report_triggered' });
const NOW = 1_760_000_000_000;
const T = NOW / 1000;

function failure(fn: () => void): string {
  try {
    fn();
  } catch (error) {
    if (error instanceof MeterWebhookSignatureError) return error.reason;
    throw error;
  }
  return 'accepted';
}

it("verifies a header stripe-node's generateTestHeaderString made", () => {
  const header = stripe.webhooks.generateTestHeaderString({ payload: BODY, secret: SECRET, timestamp: T });
  expect(failure(() => verifyWebhookSignature(BODY, header, [SECRET], 300, NOW))).toBe('accepted');
  expect(failure(() => verifyWebhookSignature(Buffer.from(BODY), header, [SECRET], 300, NOW))).toBe('accepted');
});

it('signs headers stripe-node verifies, one v1 per secret', () => {
  const header = signWebhookPayload(BODY, ['whsec_old', SECRET], T);
  expect(header.split(',').filter((p) => p.startsWith('v1='))).toHaveLength(2);
  expect(stripe.webhooks.signature!.verifyHeader(BODY, header, SECRET, 300, undefined, NOW)).toBe(true);
  expect(stripe.webhooks.signature!.verifyHeader(BODY, header, 'whsec_old', 300, undefined, NOW)).toBe(true);
});

it('accepts any of several secrets (rotation) and any of several v1 signatures', () => {
  const header = signWebhookPayload(BODY, 'whsec_new', T);
  expect(failure(() => verifyWebhookSignature(BODY, header, [SECRET, 'whsec_new'], 300, NOW))).toBe('accepted');
  const two = `${header},v1=${'0'.repeat(64)}`;
  expect(failure(() => verifyWebhookSignature(BODY, two, ['whsec_new'], 300, NOW))).toBe('accepted');
});

it('refuses a tampered body, a wrong secret, a stale or far-future timestamp, and malformed headers', () => {
  const header = signWebhookPayload(BODY, SECRET, T);
  expect(failure(() => verifyWebhookSignature(`${BODY} `, header, [SECRET], 300, NOW))).toBe('no_matching_signature');
  expect(failure(() => verifyWebhookSignature(BODY, header, ['whsec_other'], 300, NOW))).toBe('no_matching_signature');
  expect(failure(() => verifyWebhookSignature(BODY, header, [SECRET], 300, NOW + 301_000))).toBe('timestamp_outside_tolerance');
  expect(failure(() => verifyWebhookSignature(BODY, header, [SECRET], 300, NOW - 301_000))).toBe('timestamp_outside_tolerance');
  expect(failure(() => verifyWebhookSignature(BODY, undefined, [SECRET], 300, NOW))).toBe('missing_header');
  expect(failure(() => verifyWebhookSignature(BODY, `t=${T}`, [SECRET], 300, NOW))).toBe('malformed_header');
  expect(failure(() => verifyWebhookSignature(BODY, header.replace(/^t=\d+/, 't=abc'), [SECRET], 300, NOW))).toBe('malformed_header');
  // A v0 (legacy test scheme) signature is not a v1 one.
  expect(failure(() => verifyWebhookSignature(BODY, header.replace('v1=', 'v0='), [SECRET], 300, NOW))).toBe('malformed_header');
});

it('never puts a secret in its messages', () => {
  expect.assertions(1);
  const header = signWebhookPayload(BODY, SECRET, T);
  try {
    verifyWebhookSignature(BODY, header, ['whsec_other'], 300, NOW);
  } catch (error) {
    expect(String((error as Error).message)).not.toContain('whsec_');
  }
});
