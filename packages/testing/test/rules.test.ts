// Every rule a meter-event reporter relies on; each test fails if the fake became more lenient than Stripe.
import { createManualClock, meterEvent, startFakeStripe } from '../src';
import type { FakeStripe } from '../src';
import { call, sendDirect, sendStream } from './support/clients';
import { expectTrafficMatchesSpecThenReset } from './support/spec';

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;
const clock = createManualClock(Date.UTC(2026, 2, 1, 9, 30, 0));
let fake: FakeStripe;

beforeAll(async () => {
  fake = await startFakeStripe({
    now: clock.now,
    meters: [
      'api_requests',
      { event_name: 'llm_tokens', customerKey: 'account', valueKey: 'tokens' },
      { event_name: 'retired', status: 'inactive' },
    ],
  });
});

afterEach(() => expectTrafficMatchesSpecThenReset(fake));

afterAll(() => fake.close());

const iso = (ms: number): string => new Date(ms).toISOString();

interface Case {
  name: string;
  event: () => unknown;
  /** Direct endpoint: the 400 code. */
  direct: string;
  /** Stream: a synchronous 400 code, or the asynchronous error-report code. */
  stream: { sync: string } | { async: string };
}

const invalid: Case[] = [
  {
    name: 'a numeric value',
    event: () => ({ event_name: 'api_requests', payload: { stripe_customer_id: 'cus_a', value: 25 } }),
    direct: 'invalid_fields',
    stream: { sync: 'invalid_fields' },
  },
  {
    name: 'a numeric customer id',
    event: () => ({ event_name: 'api_requests', payload: { stripe_customer_id: 42, value: '1' } }),
    direct: 'invalid_fields',
    stream: { sync: 'invalid_fields' },
  },
  { name: 'a value of 16 significant digits', event: () => meterEvent('cus_a', '1234567890123456'), direct: 'payload_invalid_value', stream: { async: 'meter_event_value_too_many_digits' } },
  { name: 'a zero value', event: () => meterEvent('cus_a', '0'), direct: 'payload_invalid_value', stream: { async: 'meter_event_invalid_value' } },
  { name: 'a negative value', event: () => meterEvent('cus_a', '-1'), direct: 'payload_invalid_value', stream: { async: 'meter_event_invalid_value' } },
  { name: 'a decimal value', event: () => meterEvent('cus_a', '1.5'), direct: 'payload_invalid_value', stream: { async: 'meter_event_invalid_value' } },
  { name: 'a non-numeric value', event: () => meterEvent('cus_a', 'abc'), direct: 'payload_invalid_value', stream: { async: 'meter_event_invalid_value' } },
  { name: 'an empty value', event: () => meterEvent('cus_a', ''), direct: 'payload_invalid_value', stream: { async: 'meter_event_invalid_value' } },
  { name: 'an exponent value', event: () => meterEvent('cus_a', '1e3'), direct: 'payload_invalid_value', stream: { async: 'meter_event_invalid_value' } },
  {
    name: 'no customer under the default key',
    event: () => ({ event_name: 'api_requests', payload: { customer: 'cus_a', value: '1' } }),
    direct: 'payload_no_customer_defined',
    stream: { async: 'meter_event_no_customer_defined' },
  },
  {
    name: 'no customer under a custom key (the default key is not enough)',
    event: () => ({ event_name: 'llm_tokens', payload: { stripe_customer_id: 'cus_a', tokens: '10' } }),
    direct: 'payload_no_customer_defined',
    stream: { async: 'meter_event_no_customer_defined' },
  },
  {
    name: 'no value under a custom key (the default key is not enough)',
    event: () => ({ event_name: 'llm_tokens', payload: { account: 'cus_a', value: '10' } }),
    direct: 'payload_no_value_defined',
    stream: { async: 'meter_event_invalid_value' },
  },
  {
    name: 'a timestamp older than 35 days',
    event: () => meterEvent('cus_a', 1, { timestamp: clock.now() - 35 * DAY - 1000 }),
    direct: 'timestamp_too_far_in_past',
    stream: { async: 'timestamp_too_far_in_past' },
  },
  {
    name: 'a timestamp more than 5 minutes ahead',
    event: () => meterEvent('cus_a', 1, { timestamp: clock.now() + 5 * MINUTE + 1000 }),
    direct: 'timestamp_in_future',
    stream: { async: 'timestamp_in_future' },
  },
  { name: 'a date without a time', event: () => meterEvent('cus_a', 1, { timestamp: '2026-03-01' }), direct: 'invalid_fields', stream: { sync: 'invalid_fields' } },
  {
    name: 'a timestamp without a zone',
    event: () => meterEvent('cus_a', 1, { timestamp: '2026-03-01T09:00:00' }),
    direct: 'invalid_fields',
    stream: { sync: 'invalid_fields' },
  },
  {
    name: 'a Unix-seconds timestamp',
    event: () => ({ ...meterEvent('cus_a', 1), timestamp: Math.floor(clock.now() / 1000) }),
    direct: 'invalid_fields',
    stream: { sync: 'invalid_fields' },
  },
  { name: 'an impossible date', event: () => meterEvent('cus_a', 1, { timestamp: '2026-02-30T09:00:00Z' }), direct: 'invalid_fields', stream: { sync: 'invalid_fields' } },
  { name: 'an unknown meter', event: () => meterEvent('cus_a', 1, { event_name: 'nope' }), direct: 'no_meter', stream: { async: 'no_meter' } },
  { name: 'an archived meter', event: () => meterEvent('cus_a', 1, { event_name: 'retired' }), direct: 'archived_meter', stream: { async: 'archived_meter' } },
  { name: 'an identifier of 101 characters', event: () => meterEvent('cus_a', 1, { identifier: 'x'.repeat(101) }), direct: 'invalid_fields', stream: { sync: 'invalid_fields' } },
  { name: 'an empty identifier', event: () => meterEvent('cus_a', 1, { identifier: '' }), direct: 'invalid_fields', stream: { sync: 'invalid_fields' } },
  { name: 'an unknown event field', event: () => ({ ...meterEvent('cus_a'), value: '1' }), direct: 'invalid_fields', stream: { sync: 'invalid_fields' } },
  { name: 'a missing payload', event: () => ({ event_name: 'api_requests' }), direct: 'invalid_fields', stream: { sync: 'invalid_fields' } },
  { name: 'a missing event_name', event: () => ({ payload: { stripe_customer_id: 'cus_a', value: '1' } }), direct: 'invalid_fields', stream: { sync: 'invalid_fields' } },
];

describe.each(invalid)('an event with $name', ({ event, direct, stream }) => {
  it(`is refused by POST /v2/billing/meter_events with 400 ${direct}`, async () => {
    const res = await sendDirect(fake, event());
    expect(res.status).toBe(400);
    expect(res.json.error).toMatchObject({ type: 'invalid_request_error', code: direct });
    expect(fake.events()).toEqual([]);
  });

  it('is not counted by the stream, and is reported the way Stripe reports it', async () => {
    const res = await sendStream(fake, [event(), meterEvent('cus_ok', 1)]);
    if ('sync' in stream) {
      // Shape errors fail the whole request synchronously: not even the valid event is counted.
      expect(res.status).toBe(400);
      expect(res.json.error.code).toBe(stream.sync);
      expect(fake.events()).toEqual([]);
      expect(fake.rejected()).toEqual([]);
    } else {
      expect(res.status).toBe(200);
      expect(res.json).toEqual({});
      expect(fake.totals()).toEqual({ cus_ok: { api_requests: 1 } });
      expect(fake.rejected()).toEqual([expect.objectContaining({ code: stream.async, syncCode: direct })]);
    }
  });
});

describe('values and timestamps Stripe accepts', () => {
  it.each([
    ['1', 1n],
    ['999999999999999', 999999999999999n],
    ['1000000000000000000000', 10n ** 21n],
    ['123456789012345000', 123456789012345000n],
  ])('accepts the value %s on both endpoints, exactly', async (value, exact) => {
    expect((await sendDirect(fake, meterEvent('cus_d', value))).status).toBe(200);
    expect((await sendStream(fake, [meterEvent('cus_s', value)])).status).toBe(200);
    expect(fake.rejected()).toEqual([]);
    expect(fake.exactTotals()).toEqual({ cus_d: { api_requests: exact }, cus_s: { api_requests: exact } });
  });

  it('accepts timestamps at the edges of the window', async () => {
    const edges = [clock.now() - 35 * DAY, clock.now() + 5 * MINUTE, clock.now()];
    for (const t of edges) expect((await sendDirect(fake, meterEvent('cus_a', 1, { timestamp: t }))).status).toBe(200);
    await sendStream(fake, edges.map((t) => meterEvent('cus_b', 1, { timestamp: t })));
    expect(fake.rejected()).toEqual([]);
    expect(fake.totals()).toEqual({ cus_a: { api_requests: 3 }, cus_b: { api_requests: 3 } });
  });

  it('accepts RFC 3339 offsets and fractional seconds', async () => {
    const res = await sendDirect(fake, meterEvent('cus_a', 1, { timestamp: '2026-03-01T10:29:59.5+01:00' }));
    expect(res.status).toBe(200);
    expect(res.json.timestamp).toBe('2026-03-01T09:29:59.500Z');
  });

  it('reads customer and value from the custom payload keys', async () => {
    await sendDirect(fake, { event_name: 'llm_tokens', payload: { account: 'cus_a', tokens: '700' } });
    await sendStream(fake, [{ event_name: 'llm_tokens', payload: { account: 'cus_a', tokens: '300', model: 'small' } }]);
    expect(fake.totals()).toEqual({ cus_a: { llm_tokens: 1000 } });
  });

  it('accepts events again once an archived meter is reactivated', async () => {
    fake.meters.archive('api_requests');
    expect((await sendDirect(fake, meterEvent('cus_a'))).json.error.code).toBe('archived_meter');
    fake.meters.reactivate('api_requests');
    expect((await sendDirect(fake, meterEvent('cus_a'))).status).toBe(200);
  });
});

describe('the stream request shape', () => {
  const events = (n: number): unknown[] => Array.from({ length: n }, (_, i) => meterEvent('cus_a', 1, { identifier: `e-${i}` }));

  it('accepts 100 events and refuses 101 without counting any', async () => {
    expect((await sendStream(fake, events(100))).status).toBe(200);
    fake.reset();
    const res = await sendStream(fake, events(101));
    expect(res.status).toBe(400);
    expect(res.json.error.code).toBe('invalid_fields');
    expect(fake.events()).toEqual([]);
  });

  it('refuses an empty list, a missing list and unknown top-level fields', async () => {
    expect((await sendStream(fake, [])).status).toBe(400);
    const token = fake.createSession().authentication_token;
    for (const body of [{}, { events: events(1), extra: true }, { events: 'x' }, []]) {
      const res = await call(fake, '/v2/billing/meter_event_stream', { host: 'meter_events', auth: token, body });
      expect(res.status).toBe(400);
    }
  });

  it('refuses malformed JSON and a non-JSON content type', async () => {
    const token = fake.createSession().authentication_token;
    const bad = await call(fake, '/v2/billing/meter_event_stream', { host: 'meter_events', auth: token, body: '{"events": [' });
    expect(bad.status).toBe(400);
    expect(bad.json.error.code).toBe('invalid_json');
    const form = await call(fake, '/v2/billing/meter_event_stream', {
      host: 'meter_events',
      auth: token,
      body: JSON.stringify({ events: events(1) }),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(form.status).toBe(400);
    expect(fake.events()).toEqual([]);
  });

  it('answers {} as a body, never an empty response', async () => {
    const res = await sendStream(fake, events(1));
    expect(res.text).toBe('{}');
    expect(res.headers.get('content-type')).toBe('application/json');
  });

  it('requires a Stripe-Version header on v2 endpoints', async () => {
    expect((await sendStream(fake, events(1), { version: null })).status).toBe(400);
    expect((await sendDirect(fake, meterEvent('cus_a'), { version: null })).status).toBe(400);
    expect(fake.events()).toEqual([]);
  });
});

describe('identifiers are unique for 24 hours', () => {
  it('answers duplicate_meter_event on the direct endpoint and counts the event once', async () => {
    expect((await sendDirect(fake, meterEvent('cus_a', 5, { identifier: 'id-1' }))).status).toBe(200);
    const again = await sendDirect(fake, meterEvent('cus_a', 5, { identifier: 'id-1' }));
    expect(again.status).toBe(400);
    expect(again.json.error).toMatchObject({ type: 'invalid_request_error', code: 'duplicate_meter_event' });
    expect(fake.totals()).toEqual({ cus_a: { api_requests: 5 } });
  });

  it('silently counts a duplicate once on the stream, within and across requests', async () => {
    const event = meterEvent('cus_a', 5, { identifier: 'id-2' });
    expect((await sendStream(fake, [event, event])).json).toEqual({});
    expect((await sendStream(fake, [event])).json).toEqual({});
    expect(fake.totals()).toEqual({ cus_a: { api_requests: 5 } });
    expect(fake.rejected()).toEqual([]);
    expect(fake.stats().duplicateEvents).toBe(2);
  });

  it('shares one identifier space between both endpoints', async () => {
    await sendStream(fake, [meterEvent('cus_a', 5, { identifier: 'id-3' })]);
    expect((await sendDirect(fake, meterEvent('cus_a', 5, { identifier: 'id-3' }))).json.error.code).toBe('duplicate_meter_event');
    expect(fake.totals()).toEqual({ cus_a: { api_requests: 5 } });
  });

  it('accepts the identifier again after 24 hours', async () => {
    await sendDirect(fake, meterEvent('cus_a', 5, { identifier: 'id-4' }));
    clock.advance(DAY - 1);
    expect((await sendDirect(fake, meterEvent('cus_a', 5, { identifier: 'id-4' }))).status).toBe(400);
    clock.advance(1);
    expect((await sendDirect(fake, meterEvent('cus_a', 5, { identifier: 'id-4' }))).status).toBe(200);
    expect(fake.totals()).toEqual({ cus_a: { api_requests: 10 } });
  });
});

describe('credentials and hosts', () => {
  it('refuses the secret key on the stream', async () => {
    const res = await sendStream(fake, [meterEvent('cus_a')], { auth: fake.apiKey });
    expect(res.status).toBe(401);
    expect(fake.events()).toEqual([]);
  });

  it('refuses a session token on every API endpoint', async () => {
    const token = fake.createSession().authentication_token;
    expect((await sendDirect(fake, meterEvent('cus_a'), { auth: token })).status).toBe(401);
    expect((await call(fake, '/v2/billing/meter_event_session', { auth: token })).status).toBe(401);
    expect((await call(fake, '/v1/billing/meters', { method: 'GET', auth: token })).status).toBe(401);
    expect(fake.events()).toEqual([]);
  });

  it('refuses a missing, a wrong and a non-Bearer credential', async () => {
    expect((await sendDirect(fake, meterEvent('cus_a'), { auth: null })).status).toBe(401);
    expect((await sendDirect(fake, meterEvent('cus_a'), { auth: 'sk_test_other' })).status).toBe(401);
    const basic = await sendDirect(fake, meterEvent('cus_a'), { auth: null, headers: { authorization: `Basic ${Buffer.from(`${fake.apiKey}:`).toString('base64')}` } });
    expect(basic.status).toBe(401);
    expect((await sendStream(fake, [meterEvent('cus_a')], { auth: 'ek_test_made_up' })).status).toBe(401);
    expect(fake.events()).toEqual([]);
  });

  it('expires session tokens after the TTL on the fake clock', async () => {
    const token = fake.createSession().authentication_token;
    clock.advance(15 * MINUTE - 1);
    expect((await sendStream(fake, [meterEvent('cus_a')], { auth: token })).status).toBe(200);
    clock.advance(1);
    const expired = await sendStream(fake, [meterEvent('cus_a')], { auth: token });
    expect(expired.status).toBe(401);
    expect(expired.json.error).toMatchObject({ type: 'temporary_session_expired', code: 'billing_meter_event_session_expired' });
    expect(fake.totals()).toEqual({ cus_a: { api_requests: 1 } });
  });

  it('serves the stream only on the meter-events host and the API only on the API host, with 404s in Stripe shape', async () => {
    const token = fake.createSession().authentication_token;
    const wrong = [
      await call(fake, '/v2/billing/meter_event_stream', { host: 'api', auth: token, body: { events: [meterEvent('cus_a')] } }),
      await call(fake, '/v2/billing/meter_events', { host: 'meter_events', body: meterEvent('cus_a') }),
      await call(fake, '/v2/billing/meter_event_session', { host: 'meter_events' }),
      await call(fake, '/v2/billing/meter_event_adjustments', { host: 'meter_events', body: { event_name: 'api_requests', type: 'cancel', cancel: { identifier: 'x' } } }),
      await call(fake, '/v1/billing/meters', { host: 'meter_events', method: 'GET' }),
    ];
    for (const res of wrong) {
      expect(res.status).toBe(404);
      expect(res.json.error).toMatchObject({ type: 'invalid_request_error', message: expect.stringContaining('Unrecognized request URL') });
    }
    expect(wrong[0]!.json.error.code).toBe('not_found');
    expect(fake.events()).toEqual([]);
  });

  it('answers 404 for unknown routes and wrong methods', async () => {
    expect((await call(fake, '/v2/billing/meter_events', { method: 'GET' })).status).toBe(404);
    expect((await call(fake, '/v1/customers', { method: 'GET' })).status).toBe(404);
  });

  it('takes no parameters when creating a session', async () => {
    expect((await call(fake, '/v2/billing/meter_event_session')).status).toBe(200);
    expect((await call(fake, '/v2/billing/meter_event_session', { body: {} })).status).toBe(200);
    expect((await call(fake, '/v2/billing/meter_event_session', { body: { ttl: 60 } })).status).toBe(400);
  });
});

it('timestamps events at receipt when none is sent', async () => {
  await sendDirect(fake, meterEvent('cus_a'));
  expect(fake.events()[0]!.timestamp).toBe(iso(clock.now()));
});
