// The spec validator itself: it loads Stripe's definitions and rejects what they forbid, so the traffic checks are not vacuous.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { FakeStripeError } from '../src';
import type { LoggedRequest } from '../src';
import { SPEC_PATH, loadSpec, specProblems } from './support/spec';

const base: LoggedRequest = {
  id: 'req_1',
  method: 'POST',
  host: 'api',
  path: '/v2/billing/meter_events',
  query: {},
  endpoint: 'meter_events',
  status: 200,
  headers: {},
  body: { event_name: 'api_requests', payload: { stripe_customer_id: 'cus_a', value: '1' } },
  response: {
    object: 'v2.billing.meter_event',
    created: '2026-01-01T00:00:00.000Z',
    event_name: 'api_requests',
    identifier: 'a',
    livemode: false,
    payload: { stripe_customer_id: 'cus_a', value: '1' },
    timestamp: '2026-01-01T00:00:00.000Z',
  },
  fault: null,
  time: 0,
  durationMs: 0,
};

it('finds the spec inside the package and compiles every operation', () => {
  expect(SPEC_PATH).toBe(path.resolve(__dirname, '../spec/stripe-v2-meter-events.openapi.json'));
  expect(loadSpec().operations.map((o) => `${o.method} ${o.template}`).sort()).toEqual([
    'GET /v1/billing/meters',
    'GET /v1/billing/meters/{id}/event_summaries',
    'POST /v2/billing/meter_event_adjustments',
    'POST /v2/billing/meter_event_session',
    'POST /v2/billing/meter_event_stream',
    'POST /v2/billing/meter_events',
  ]);
});

it('passes a conforming exchange', () => {
  expect(specProblems(base)).toEqual([]);
});

it.each<[string, Partial<LoggedRequest>]>([
  ['an accepted numeric payload value', { body: { event_name: 'api_requests', payload: { stripe_customer_id: 'cus_a', value: 1 } } }],
  ['an accepted non-RFC 3339 timestamp', { body: { event_name: 'e', payload: {}, timestamp: '2026-01-01' } }],
  ['a response without its object type', { response: { ...(base.response as object), object: undefined } }],
  ['a numeric response timestamp', { response: { ...(base.response as object), timestamp: 1767225600 } }],
  ['a stream answer that is not {}', { path: '/v2/billing/meter_event_stream', host: 'meter_events', body: { events: [] }, response: { ok: true } }],
  ['an error without a code', { status: 400, response: { error: { type: 'invalid_request_error', message: 'x' } } }],
  ['an expired-session error without doc_url', { path: '/v2/billing/meter_event_stream', status: 401, response: { error: { type: 'temporary_session_expired', code: 'billing_meter_event_session_expired', message: 'x' } } }],
  ['a v1 error with an unknown type', { method: 'GET', path: '/v1/billing/meters', body: undefined, status: 400, response: { error: { type: 'oops', message: 'x' } } }],
  ['a v1 list without url', { method: 'GET', path: '/v1/billing/meters', body: undefined, response: { object: 'list', data: [], has_more: false } }],
  ['accepted unknown query parameters', { method: 'GET', path: '/v1/billing/meters', body: undefined, query: { colour: 'red' }, response: { object: 'list', data: [], has_more: false, url: '/v1/billing/meters' } }],
])('flags %s', (_name, change) => {
  expect(specProblems({ ...base, ...change })).not.toEqual([]);
});

describe('a missing or broken spec file', () => {
  it('is a coded error naming the path', () => {
    const missing = path.join(os.tmpdir(), 'metered-no-such-spec.json');
    expect(() => loadSpec(missing)).toThrow(FakeStripeError);
    expect(() => loadSpec(missing)).toThrow(expect.objectContaining({ code: 'ERR_FAKE_STRIPE_SPEC_MISSING', message: expect.stringContaining(missing) }));
  });

  it('is a coded error when the file is not an OpenAPI document', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'metered-spec-'));
    try {
      const file = path.join(dir, 'spec.json');
      fs.writeFileSync(file, '{"openapi": "3.0.0"}');
      expect(() => loadSpec(file)).toThrow(expect.objectContaining({ code: 'ERR_FAKE_STRIPE_SPEC_INVALID' }));
      fs.writeFileSync(file, '{not json');
      expect(() => loadSpec(file)).toThrow(expect.objectContaining({ code: 'ERR_FAKE_STRIPE_SPEC_INVALID' }));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
