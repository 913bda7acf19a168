// Aggregation (totals and event summaries by sum/count/last), cancellations, the meter registry, the request log and options.
import {
  FakeStripeConfigError,
  FakeStripeError,
  createManualClock,
  createSessionToken,
  meterEvent,
  startFakeStripe,
} from '../src';
import type { FakeStripe, FakeStripeOptions } from '../src';
import { call, sendDirect, sendStream } from './support/clients';
import { expectTrafficMatchesSpecThenReset } from './support/spec';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
// 12:00 UTC: hour- and day-aligned arithmetic below stays readable.
const NOON = Date.UTC(2026, 3, 10, 12, 0, 0);
const clock = createManualClock(NOON);
let fake: FakeStripe;

beforeAll(async () => {
  fake = await startFakeStripe({
    now: clock.now,
    meters: [
      { event_name: 'calls', id: 'mtr_sum', formula: 'sum' },
      { event_name: 'hits', id: 'mtr_count', formula: 'count' },
      { event_name: 'seats', id: 'mtr_last', formula: 'last' },
    ],
  });
});

afterEach(() => expectTrafficMatchesSpecThenReset(fake, () => clock.set(NOON)));

afterAll(() => fake.close());

function summaries(meterId: string, query: Record<string, string | number>): ReturnType<typeof call> {
  const qs = new URLSearchParams(Object.entries(query).map(([k, v]): [string, string] => [k, String(v)]));
  return call(fake, `/v1/billing/meters/${meterId}/event_summaries?${qs.toString()}`, { method: 'GET' });
}

const sec = (ms: number): number => Math.floor(ms / 1000);

describe('aggregation by formula', () => {
  beforeEach(async () => {
    const at = (minutesAgo: number): number => NOON - minutesAgo * MINUTE;
    await sendStream(fake, [
      meterEvent('cus_a', 5, { event_name: 'calls', timestamp: at(90) }),
      meterEvent('cus_a', 7, { event_name: 'calls', timestamp: at(30) }),
      meterEvent('cus_b', 100, { event_name: 'calls', timestamp: at(30) }),
      meterEvent('cus_a', 3, { event_name: 'hits', timestamp: at(90) }),
      meterEvent('cus_a', 3, { event_name: 'hits', timestamp: at(30) }),
      meterEvent('cus_a', 3, { event_name: 'hits', timestamp: at(20) }),
      meterEvent('cus_a', 10, { event_name: 'seats', timestamp: at(10) }),
      meterEvent('cus_a', 4, { event_name: 'seats', timestamp: at(5) }),
      meterEvent('cus_a', 8, { event_name: 'seats', timestamp: at(70) }),
    ]);
  });

  it('totals per customer and event name by the meter formula', () => {
    expect(fake.totals()).toEqual({
      cus_a: { calls: 12, hits: 3, seats: 4 },
      cus_b: { calls: 100 },
    });
  });

  it.each([
    ['mtr_sum', 12],
    ['mtr_count', 3],
    ['mtr_last', 4],
  ])('summarises %s over [start, end)', async (meterId, expected) => {
    const res = await summaries(meterId, { customer: 'cus_a', start_time: sec(NOON - 2 * HOUR), end_time: sec(NOON) });
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ object: 'list', has_more: false, url: `/v1/billing/meters/${meterId}/event_summaries` });
    expect(res.json.data).toEqual([
      expect.objectContaining({ object: 'billing.meter_event_summary', meter: meterId, aggregated_value: expected, start_time: sec(NOON - 2 * HOUR), end_time: sec(NOON) }),
    ]);
  });

  it('includes start_time and excludes end_time', async () => {
    const sum = async (start: number, end: number): Promise<number> =>
      (await summaries('mtr_sum', { customer: 'cus_a', start_time: sec(start), end_time: sec(end) })).json.data[0].aggregated_value;
    expect(await sum(NOON - 90 * MINUTE, NOON - 30 * MINUTE)).toBe(5);
    expect(await sum(NOON - 30 * MINUTE, NOON)).toBe(7);
    expect(await sum(NOON - 29 * MINUTE, NOON)).toBe(0);
  });

  it('groups by hour, newest window first', async () => {
    const res = await summaries('mtr_sum', { customer: 'cus_a', start_time: sec(NOON - 2 * HOUR), end_time: sec(NOON), value_grouping_window: 'hour' });
    expect(res.json.data.map((s: { start_time: number; aggregated_value: number }) => [s.start_time, s.aggregated_value])).toEqual([
      [sec(NOON - HOUR), 7],
      [sec(NOON - 2 * HOUR), 5],
    ]);
  });

  it('pages through grouped windows', async () => {
    const query = { customer: 'cus_a', start_time: sec(NOON - 2 * HOUR), end_time: sec(NOON), value_grouping_window: 'hour', limit: 1 };
    const first = await summaries('mtr_sum', query);
    expect(first.json.has_more).toBe(true);
    const second = await summaries('mtr_sum', { ...query, starting_after: first.json.data[0].id });
    expect(second.json).toMatchObject({ has_more: false, data: [expect.objectContaining({ aggregated_value: 5 })] });
    const back = await summaries('mtr_sum', { ...query, ending_before: second.json.data[0].id });
    expect(back.json.data[0].id).toBe(first.json.data[0].id);
  });

  it.each([
    ['start_time', { start_time: sec(NOON) - 30, end_time: sec(NOON) + 60 }],
    ['end_time', { start_time: sec(NOON), end_time: sec(NOON) + 61 }],
    ['end_time', { start_time: sec(NOON), end_time: sec(NOON) }],
    ['start_time', { start_time: sec(NOON) + 60, end_time: sec(NOON) + 3600, value_grouping_window: 'hour' }],
    ['start_time', { start_time: sec(NOON), end_time: sec(NOON + DAY), value_grouping_window: 'day' }],
    ['start_time', { customer: 'cus_a', start_time: 'yesterday', end_time: sec(NOON) + 60 }],
  ])('refuses a bad %s in the v1 error shape', async (param, query) => {
    const res = await summaries('mtr_sum', { customer: 'cus_a', ...query });
    expect(res.status).toBe(400);
    expect(res.json.error).toMatchObject({ type: 'invalid_request_error', param, message: expect.any(String) });
  });

  it('requires the customer', async () => {
    const res = await summaries('mtr_sum', { start_time: sec(NOON), end_time: sec(NOON) + 60 });
    expect(res.status).toBe(400);
    expect(res.json.error).toMatchObject({ type: 'invalid_request_error', code: 'parameter_missing', param: 'customer' });
  });

  it('answers 404 resource_missing for an unknown meter id', async () => {
    const res = await summaries('mtr_nope', { customer: 'cus_a', start_time: 0, end_time: 60 });
    expect(res.status).toBe(404);
    expect(res.json.error).toMatchObject({ type: 'invalid_request_error', code: 'resource_missing', param: 'id' });
  });
});

describe('cancellations', () => {
  const cancel = (identifier: string, eventName = 'calls'): ReturnType<typeof call> =>
    call(fake, '/v2/billing/meter_event_adjustments', { body: { event_name: eventName, type: 'cancel', cancel: { identifier } } });

  it('removes a cancelled event from events, totals and summaries, but keeps its identifier taken', async () => {
    await sendDirect(fake, meterEvent('cus_a', 5, { event_name: 'calls', identifier: 'x-1' }));
    await sendStream(fake, [meterEvent('cus_a', 2, { event_name: 'calls', identifier: 'x-2' })]);
    const res = await cancel('x-2');
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ object: 'v2.billing.meter_event_adjustment', status: 'pending', cancel: { identifier: 'x-2' } });
    expect(fake.events().map((e) => e.identifier)).toEqual(['x-1']);
    expect(fake.totals()).toEqual({ cus_a: { calls: 5 } });
    const summary = await summaries('mtr_sum', { customer: 'cus_a', start_time: sec(NOON - HOUR), end_time: sec(NOON) + 60 });
    expect(summary.json.data[0].aggregated_value).toBe(5);
    expect((await sendDirect(fake, meterEvent('cus_a', 2, { event_name: 'calls', identifier: 'x-2' }))).json.error.code).toBe('duplicate_meter_event');
  });

  it('records why a cancellation did nothing', async () => {
    await sendDirect(fake, meterEvent('cus_a', 5, { event_name: 'calls', identifier: 'y-1' }));
    await sendDirect(fake, meterEvent('cus_a', 5, { event_name: 'calls', identifier: 'y-2' }));
    await cancel('y-1');
    await cancel('y-1');
    await cancel('unknown');
    await cancel('y-2', 'hits');
    clock.advance(DAY);
    await cancel('y-2');
    expect(fake.adjustments().map((a) => [a.identifier, a.applied, a.reason])).toEqual([
      ['y-1', true, null],
      ['y-1', false, 'already_cancelled'],
      ['unknown', false, 'not_found'],
      ['y-2', false, 'not_found'],
      ['y-2', false, 'outside_24h_window'],
    ]);
    expect(fake.totals()).toEqual({ cus_a: { calls: 5 } });
  });

  it('refuses malformed adjustments', async () => {
    const post = (body: unknown): ReturnType<typeof call> => call(fake, '/v2/billing/meter_event_adjustments', { body });
    expect((await post({ event_name: 'calls', type: 'cancel' })).json.error.code).toBe('invalid_cancel_configuration');
    expect((await post({ event_name: 'calls', type: 'cancel', cancel: {} })).json.error.code).toBe('invalid_cancel_configuration');
    expect((await post({ event_name: 'calls', type: 'delete', cancel: { identifier: 'a' } })).status).toBe(400);
    expect((await post({ type: 'cancel', cancel: { identifier: 'a' } })).status).toBe(400);
    expect(fake.adjustments()).toEqual([]);
  });
});

describe('precision', () => {
  it('keeps totals beyond 2^53 exact and refuses to round them in totals()', async () => {
    await sendStream(fake, [
      meterEvent('cus_big', '900000000000000', { event_name: 'calls' }),
      meterEvent('cus_big', '9000000000000000000', { event_name: 'calls' }),
      meterEvent('cus_big', '1', { event_name: 'calls' }),
    ]);
    expect(fake.exactTotals()).toEqual({ cus_big: { calls: 9000900000000000001n } });
    expect(() => fake.totals()).toThrow(expect.objectContaining({ code: 'ERR_FAKE_STRIPE_PRECISION' }));
    expect(fake.events().map((e) => e.value)).toEqual(['900000000000000', '9000000000000000000', '1']);
    // The summary carries the exact integer on the wire.
    const res = await summaries('mtr_sum', { customer: 'cus_big', start_time: sec(NOON - HOUR), end_time: sec(NOON) + 60 });
    expect(res.text).toContain('"aggregated_value":9000900000000000001');
  });
});

describe('meter registry', () => {
  it('adds, archives, reactivates and removes meters, as the API lists them', async () => {
    const added = fake.meters.add({ event_name: 'uploads', customerKey: 'acct', valueKey: 'bytes', formula: 'sum' });
    expect(added.id).toMatch(/^mtr_/);
    expect(() => fake.meters.add('uploads')).toThrow(FakeStripeError);
    fake.meters.archive('uploads');
    const inactive = await call(fake, '/v1/billing/meters?status=inactive', { method: 'GET' });
    expect(inactive.json.data).toEqual([
      expect.objectContaining({ id: added.id, status: 'inactive', status_transitions: { deactivated_at: sec(NOON) } }),
    ]);
    expect((await sendDirect(fake, { event_name: 'uploads', payload: { acct: 'cus_a', bytes: '1' } })).json.error.code).toBe('archived_meter');
    fake.meters.reactivate(added.id);
    expect((await sendDirect(fake, { event_name: 'uploads', payload: { acct: 'cus_a', bytes: '1' } })).status).toBe(200);
    expect(fake.meters.remove('uploads')).toBe(true);
    expect((await sendDirect(fake, { event_name: 'uploads', payload: { acct: 'cus_a', bytes: '1' } })).json.error.code).toBe('no_meter');
    expect(() => fake.meters.archive('uploads')).toThrow(expect.objectContaining({ code: 'ERR_FAKE_STRIPE_UNKNOWN_METER' }));
  });

  it('refuses unknown list parameters and bad limits', async () => {
    expect((await call(fake, '/v1/billing/meters?colour=red', { method: 'GET' })).json.error).toMatchObject({ param: 'colour' });
    expect((await call(fake, '/v1/billing/meters?limit=0', { method: 'GET' })).status).toBe(400);
    expect((await call(fake, '/v1/billing/meters?limit=101', { method: 'GET' })).status).toBe(400);
  });
});

describe('request log', () => {
  it('never contains the secret key or a session token', async () => {
    const session = await call(fake, '/v2/billing/meter_event_session');
    const tokens = [session.json.authentication_token as string, createSessionToken(fake)];
    await sendStream(fake, [meterEvent('cus_a', 1, { event_name: 'calls' })], { auth: tokens[0]! });
    await sendStream(fake, [meterEvent('cus_a', 1, { event_name: 'calls' })], { auth: tokens[1]! });
    await sendStream(fake, [meterEvent('cus_a')], { auth: fake.apiKey });
    await sendDirect(fake, meterEvent('cus_a', 1, { event_name: 'calls' }), { auth: tokens[0]! });
    await sendDirect(fake, meterEvent('cus_a', 1, { event_name: 'calls' }));
    await call(fake, '/v1/billing/meters', { method: 'GET', headers: { 'x-api-key': fake.apiKey }, auth: null });
    fake.faults.expireSessions();
    await sendStream(fake, [meterEvent('cus_a')], { auth: tokens[1]! });

    const log = JSON.stringify(fake.requests());
    expect(fake.requests()).toHaveLength(8);
    for (const secret of [fake.apiKey, ...tokens]) expect(log).not.toContain(secret);
    expect(fake.requests()[0]!.headers.authorization).toBe('Bearer sk_test_[REDACTED]');
    expect(fake.requests()[0]!.response).toMatchObject({ authentication_token: 'ek_test_[REDACTED]' });
    expect(fake.requests()[1]!.headers.authorization).toBe('Bearer ek_test_[REDACTED]');
  });

  it('records method, host, path, query, status, body and timing', async () => {
    await sendDirect(fake, meterEvent('cus_a', 1, { event_name: 'calls', identifier: 'log-1' }));
    await call(fake, '/v1/billing/meters?limit=2', { method: 'GET' });
    const [post, get] = fake.requests();
    expect(post).toMatchObject({
      method: 'POST',
      host: 'api',
      path: '/v2/billing/meter_events',
      endpoint: 'meter_events',
      status: 200,
      body: { identifier: 'log-1' },
      response: expect.objectContaining({ object: 'v2.billing.meter_event' }),
      fault: null,
      time: NOON,
      id: expect.stringMatching(/^req_/),
    });
    expect(post!.durationMs).toBeGreaterThanOrEqual(0);
    expect(get).toMatchObject({ method: 'GET', path: '/v1/billing/meters', query: { limit: '2' }, endpoint: 'meters', body: undefined });
  });
});

describe('options and lifecycle', () => {
  const started: FakeStripe[] = [];
  const start = async (options: FakeStripeOptions): Promise<FakeStripe> => {
    const f = await startFakeStripe(options);
    started.push(f);
    return f;
  };
  afterEach(async () => {
    await Promise.all(started.splice(0).map((f) => f.close()));
  });

  it('keeps only the newest maxLoggedRequests entries, and none when 0', async () => {
    const small = await start({ maxLoggedRequests: 2 });
    for (let i = 0; i < 5; i++) await sendDirect(small, meterEvent('cus_a', i + 1));
    expect(small.requests().map((r) => (r.body as { payload: { value: string } }).payload.value)).toEqual(['4', '5']);
    const none = await start({ maxLoggedRequests: 0 });
    await sendDirect(none, meterEvent('cus_a'));
    expect(none.requests()).toEqual([]);
    expect(none.stats().acceptedEvents).toBe(1);
  });

  it('leaves bodies out of the log with logBodies: false', async () => {
    const lean = await start({ logBodies: false });
    await sendDirect(lean, meterEvent('cus_a'));
    expect(lean.requests()).toEqual([expect.objectContaining({ status: 200, body: undefined, response: undefined })]);
  });

  it('reports livemode and the configured key', async () => {
    const live = await start({ livemode: true, apiKey: 'sk_live_abc123' });
    expect(live.apiKey).toBe('sk_live_abc123');
    const res = await sendDirect(live, meterEvent('cus_a'));
    expect(res.json.livemode).toBe(true);
    expect(live.createSession().authentication_token).toMatch(/^ek_live_/);
  });

  it('reset() clears events, rejections, log and faults but keeps meters and sessions', async () => {
    const f = await start({});
    const token = createSessionToken(f);
    await sendStream(f, [meterEvent('cus_a', 1, { identifier: 'keep' }), meterEvent('cus_a', 0)], { auth: token });
    f.faults.fail({ count: 5 });
    f.reset();
    expect([f.events(), f.rejected(), f.requests(), f.adjustments()]).toEqual([[], [], [], []]);
    expect(f.stats()).toEqual({ requests: 0, acceptedEvents: 0, rejectedEvents: 0, duplicateEvents: 0 });
    expect((await sendStream(f, [meterEvent('cus_a', 1, { identifier: 'keep' })], { auth: token })).status).toBe(200);
    expect(f.totals()).toEqual({ cus_a: { api_requests: 1 } });
  });

  it('close() is idempotent and stops both listeners', async () => {
    const f = await startFakeStripe();
    await Promise.all([f.close(), f.close()]);
    await expect(sendDirect(f, meterEvent('cus_a'))).rejects.toThrow();
    await expect(sendStream(f, [meterEvent('cus_a')])).rejects.toThrow();
  });

  it.each<[string, FakeStripeOptions, RegExp]>([
    ['a malformed key', { apiKey: 'pk_test_123' }, /"apiKey"/],
    ['an unknown option', { colour: 'red' } as FakeStripeOptions, /"colour"/],
    ['a bad port', { port: 70_000 }, /"port"/],
    ['duplicate meters', { meters: ['a', 'a'] }, /"meters\[1\]"/],
    ['a bad formula', { meters: [{ event_name: 'a', formula: 'max' as 'sum' }] }, /"meters\[0\]\.formula"/],
    ['a zero rate', { rateLimit: { requestsPerSecond: 0 } }, /"rateLimit\.requestsPerSecond"/],
    ['an unknown rate-limited endpoint', { rateLimit: { requestsPerSecond: 1, endpoints: ['charges' as 'meters'] } }, /"rateLimit\.endpoints"/],
    ['a bad clock', { now: 5 as unknown as () => number }, /"now"/],
  ])('throws FakeStripeConfigError for %s', async (_name, options, message) => {
    const error: unknown = await startFakeStripe(options).then(
      (f) => f.close(),
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(FakeStripeConfigError);
    expect((error as Error).message).toMatch(message);
  });

  it('never echoes a rejected key in the configuration error', async () => {
    const error = await startFakeStripe({ apiKey: 'sk_test_has spaces' }).catch((e: unknown) => e as Error);
    expect((error as Error).message).not.toContain('has spaces');
  });
});
