// Fault injection, the per-customer concurrency rule and the rate limiter: what a reporter's retry logic is tested against.
import { performance } from 'node:perf_hooks';

import { createManualClock, meterEvent, startFakeStripe } from '../src';
import type { FakeStripe, FakeStripeOptions } from '../src';
import { call, rejectionOf, sendDirect, sendStream } from './support/clients';
import { expectTrafficMatchesSpec } from './support/spec';

const clock = createManualClock(Date.UTC(2026, 5, 1));
let fake: FakeStripe;
const extraFakes: FakeStripe[] = [];

async function anotherFake(options: FakeStripeOptions): Promise<FakeStripe> {
  const f = await startFakeStripe(options);
  extraFakes.push(f);
  return f;
}

beforeAll(async () => {
  fake = await startFakeStripe({ now: clock.now });
});

afterEach(async () => {
  const fakes = [fake, ...extraFakes.splice(0)];
  try {
    for (const f of fakes) expectTrafficMatchesSpec(f);
  } finally {
    // Reset and closed even when the check failed: an extra fake left listening keeps jest from exiting.
    fake.reset();
    await Promise.all(fakes.slice(1).map((f) => f.close()));
  }
});

afterAll(() => fake.close());

describe('faults.fail', () => {
  it('fails the next N requests with the chosen status, then recovers', async () => {
    const fault = fake.faults.fail({ status: 503, count: 2 });
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push((await sendDirect(fake, meterEvent('cus_a', 1, { identifier: `n-${i}` }))).status);
    expect(statuses).toEqual([503, 503, 200]);
    expect(fault.triggered).toBe(2);
    expect(fake.events().map((e) => e.identifier)).toEqual(['n-2']);
    expect(fake.requests().map((r) => r.fault)).toEqual(['fail', 'fail', null]);
  });

  it('answers in Stripe error shape with a derived type and code', async () => {
    fake.faults.fail();
    const res = await sendDirect(fake, meterEvent('cus_a'));
    expect(res.status).toBe(500);
    expect(res.json.error).toMatchObject({ type: 'api_error', code: 'internal_server_error', message: expect.any(String) });
  });

  it('targets only the named endpoints', async () => {
    fake.faults.fail({ endpoint: 'meter_event_stream', count: 5 });
    expect((await call(fake, '/v2/billing/meter_event_session')).status).toBe(200);
    expect((await sendDirect(fake, meterEvent('cus_a'))).status).toBe(200);
    expect((await sendStream(fake, [meterEvent('cus_a')])).status).toBe(500);
  });

  it('sends 429 with Retry-After when asked', async () => {
    fake.faults.fail({ status: 429, retryAfter: 3 });
    const res = await sendDirect(fake, meterEvent('cus_a'));
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after')).toBe('3');
    expect(res.json.error).toMatchObject({ type: 'invalid_request_error', code: 'rate_limit' });
  });

  it('answers 409 too_many_concurrent_requests on meter_events, and any status with a custom body', async () => {
    fake.faults.fail({ status: 409 });
    expect((await sendDirect(fake, meterEvent('cus_a'))).json.error.code).toBe('too_many_concurrent_requests');
    fake.faults.fail({ status: 422, type: 'invalid_request_error', code: 'custom_code', message: 'custom message' });
    const res = await sendDirect(fake, meterEvent('cus_a'));
    expect(res.status).toBe(422);
    expect(res.json.error).toEqual({ type: 'invalid_request_error', code: 'custom_code', message: 'custom message' });
  });

  it('can fail after processing: the events count, the response says 500, and a retry is deduplicated', async () => {
    fake.faults.fail({ afterProcessing: true, count: 2 });
    const lost = await sendDirect(fake, meterEvent('cus_a', 4, { identifier: 'lost-1' }));
    expect(lost.status).toBe(500);
    expect(fake.totals()).toEqual({ cus_a: { api_requests: 4 } });
    const lostStream = await sendStream(fake, [meterEvent('cus_b', 6, { identifier: 'lost-2' })]);
    expect(lostStream.status).toBe(500);

    // The client retries with the same identifiers.
    expect((await sendDirect(fake, meterEvent('cus_a', 4, { identifier: 'lost-1' }))).json.error.code).toBe('duplicate_meter_event');
    expect((await sendStream(fake, [meterEvent('cus_b', 6, { identifier: 'lost-2' })])).status).toBe(200);
    expect(fake.totals()).toEqual({ cus_a: { api_requests: 4 }, cus_b: { api_requests: 6 } });
    expect(fake.requests().map((r) => r.fault)).toEqual(['fail_after_processing', 'fail_after_processing', null, null]);
  });
});

describe('faults.resetConnection', () => {
  it('destroys the connection without a response and without processing', async () => {
    fake.faults.resetConnection({ endpoint: 'meter_events' });
    const error = await rejectionOf(sendDirect(fake, meterEvent('cus_a', 1, { identifier: 'r-1' })));
    expect(error).toMatchObject({ name: 'TypeError', message: 'fetch failed' });
    expect(fake.events()).toEqual([]);
    expect(fake.requests()).toEqual([expect.objectContaining({ status: null, fault: 'reset', response: undefined })]);
    expect((await sendDirect(fake, meterEvent('cus_a', 1, { identifier: 'r-1' }))).status).toBe(200);
  });

  it('can reset after processing, so the events count though the client saw a network error', async () => {
    fake.faults.resetConnection({ afterProcessing: true, endpoint: 'meter_event_stream' });
    await rejectionOf(sendStream(fake, [meterEvent('cus_a', 3, { identifier: 'r-2' })]));
    expect(fake.totals()).toEqual({ cus_a: { api_requests: 3 } });
    await sendStream(fake, [meterEvent('cus_a', 3, { identifier: 'r-2' })]);
    expect(fake.totals()).toEqual({ cus_a: { api_requests: 3 } });
  });
});

describe('fractions are seeded and deterministic', () => {
  async function pattern(seed: number): Promise<number[]> {
    const f = await anotherFake({ seed });
    f.faults.fail({ fraction: 0.3 });
    const statuses: number[] = [];
    for (let i = 0; i < 40; i++) statuses.push((await sendDirect(f, meterEvent('cus_a', 1))).status);
    return statuses;
  }

  it('replays the same failures for the same seed and differs for another', async () => {
    const first = await pattern(42);
    const again = await pattern(42);
    const other = await pattern(7);
    expect(again).toEqual(first);
    expect(other).not.toEqual(first);
    const failures = first.filter((s) => s === 500).length;
    expect(failures).toBeGreaterThan(3);
    expect(failures).toBeLessThan(25);
  });

  it('caps a fraction with count', async () => {
    const fault = fake.faults.fail({ fraction: 1, count: 3 });
    for (let i = 0; i < 5; i++) await sendDirect(fake, meterEvent('cus_a'));
    expect(fault.triggered).toBe(3);
  });

  it('applies fractions to resets as well', async () => {
    const fault = fake.faults.resetConnection({ fraction: 0.5, endpoint: 'meter_event_session' });
    const outcomes: string[] = [];
    for (let i = 0; i < 20; i++) {
      outcomes.push(await call(fake, '/v2/billing/meter_event_session').then(
        (r) => String(r.status),
        () => 'reset',
      ));
    }
    expect(outcomes.filter((o) => o === 'reset')).toHaveLength(fault.triggered);
    expect(fault.triggered).toBeGreaterThan(0);
    expect(fault.triggered).toBeLessThan(20);
  });
});

describe('delays and held responses', () => {
  it('delays a response by the given milliseconds', async () => {
    const delay = fake.faults.delay({ ms: 120 });
    const started = performance.now();
    expect((await sendDirect(fake, meterEvent('cus_a'))).status).toBe(200);
    expect(performance.now() - started).toBeGreaterThanOrEqual(115);
    await sendDirect(fake, meterEvent('cus_a'));
    expect(delay.triggered).toBe(1);
  });

  it('adds latencyMs to every response', async () => {
    const slow = await anotherFake({ latencyMs: 80 });
    const started = performance.now();
    await call(slow, '/v2/billing/meter_event_session');
    expect(performance.now() - started).toBeGreaterThanOrEqual(75);
  });

  it('allows one direct call per customer and meter at a time: 409 too_many_concurrent_requests', async () => {
    const held = fake.faults.hold({ endpoint: 'meter_events', count: 1 });
    const first = sendDirect(fake, meterEvent('cus_a', 1, { identifier: 'c-1' }));
    await held.reached();
    const clash = await sendDirect(fake, meterEvent('cus_a', 1, { identifier: 'c-2' }));
    expect(clash.status).toBe(409);
    expect(clash.json.error).toMatchObject({ type: 'invalid_request_error', code: 'too_many_concurrent_requests' });
    // Another customer, or another meter, is not blocked.
    expect((await sendDirect(fake, meterEvent('cus_b', 1))).status).toBe(200);
    held.release();
    expect((await first).status).toBe(200);
    expect((await sendDirect(fake, meterEvent('cus_a', 1, { identifier: 'c-2' }))).status).toBe(200);
    expect(fake.events().map((e) => e.identifier)).toEqual(['c-1', expect.any(String), 'c-2']);
  });

  it('holds the concurrency lock through an injected delay', async () => {
    const delay = fake.faults.delay({ ms: 150, endpoint: 'meter_events' });
    const first = sendDirect(fake, meterEvent('cus_a'));
    await delay.reached();
    expect((await sendDirect(fake, meterEvent('cus_a'))).status).toBe(409);
    expect((await first).status).toBe(200);
    expect((await sendDirect(fake, meterEvent('cus_a'))).status).toBe(200);
  });

  it('does not limit concurrency on the stream', async () => {
    const held = fake.faults.hold({ endpoint: 'meter_event_stream', count: 1 });
    const first = sendStream(fake, [meterEvent('cus_a')]);
    await held.reached();
    expect((await sendStream(fake, [meterEvent('cus_a')])).status).toBe(200);
    held.release();
    expect((await first).status).toBe(200);
    expect(fake.totals()).toEqual({ cus_a: { api_requests: 2 } });
  });
});

describe('sessions and outages', () => {
  it('expires every session now', async () => {
    const token = fake.createSession().authentication_token;
    fake.createSession();
    expect(fake.faults.expireSessions()).toBeGreaterThanOrEqual(2);
    const res = await sendStream(fake, [meterEvent('cus_a')], { auth: token });
    expect(res.status).toBe(401);
    expect(res.json.error.type).toBe('temporary_session_expired');
    expect((await sendStream(fake, [meterEvent('cus_a')])).status).toBe(200);
  });

  it('fails every request on both hosts with 503 during an outage, and recovers', async () => {
    fake.faults.outage(true);
    expect((await sendDirect(fake, meterEvent('cus_a'))).status).toBe(503);
    expect((await sendStream(fake, [meterEvent('cus_a')])).status).toBe(503);
    expect((await call(fake, '/v1/billing/meters', { method: 'GET' })).json.error).toMatchObject({ type: 'api_error', code: 'service_unavailable' });
    fake.faults.outage(false);
    expect((await sendDirect(fake, meterEvent('cus_a'))).status).toBe(200);
    expect(fake.totals()).toEqual({ cus_a: { api_requests: 1 } });
  });

  it('can reset every connection during an outage', async () => {
    fake.faults.outage({ mode: 'reset' });
    await rejectionOf(sendDirect(fake, meterEvent('cus_a')));
    await rejectionOf(sendStream(fake, [meterEvent('cus_a')]));
    fake.faults.clear();
    expect((await sendDirect(fake, meterEvent('cus_a'))).status).toBe(200);
  });

  it('clear() removes every fault and answers held requests at once', async () => {
    fake.faults.fail({ count: 10 });
    const held = fake.faults.hold({ endpoint: 'meter_event_session' });
    const parked = call(fake, '/v2/billing/meter_event_session');
    await held.reached();
    fake.faults.clear();
    expect((await parked).status).toBe(500);
    expect((await sendDirect(fake, meterEvent('cus_a'))).status).toBe(200);
  });

  it('clear() cuts injected delays short', async () => {
    const delay = fake.faults.delay({ ms: 60_000 });
    const delayed = sendDirect(fake, meterEvent('cus_a'));
    await delay.reached();
    fake.faults.clear();
    expect((await delayed).status).toBe(200);
  });

  it('rejects invalid fault options with a message naming the option', () => {
    expect(() => fake.faults.fail({ status: 200 })).toThrow(/"status"/);
    expect(() => fake.faults.fail({ fraction: 1.5 })).toThrow(/"fraction"/);
    expect(() => fake.faults.fail({ count: 0 })).toThrow(/"count"/);
    expect(() => fake.faults.fail({ endpoint: 'charges' as never })).toThrow(/"endpoint"/);
    expect(() => fake.faults.delay({ ms: -1 })).toThrow(/"ms"/);
  });
});

describe('rate limit', () => {
  it('answers 429 with Retry-After once the account-wide bucket is empty, and refills on the fake clock', async () => {
    const limitClock = createManualClock(Date.UTC(2026, 5, 1));
    const limited = await anotherFake({ now: limitClock.now, rateLimit: { requestsPerSecond: 2 } });
    expect((await sendDirect(limited, meterEvent('cus_a', 1, { identifier: 'l-1' }))).status).toBe(200);
    expect((await sendStream(limited, [meterEvent('cus_b')], { auth: limited.createSession().authentication_token })).status).toBe(200);
    const refused = await sendDirect(limited, meterEvent('cus_a', 1, { identifier: 'l-2' }));
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe('1');
    expect(refused.json.error).toMatchObject({ type: 'invalid_request_error', code: 'rate_limit' });
    limitClock.advance(499);
    expect((await sendDirect(limited, meterEvent('cus_a', 1, { identifier: 'l-2' }))).status).toBe(429);
    limitClock.advance(1);
    expect((await sendDirect(limited, meterEvent('cus_a', 1, { identifier: 'l-2' }))).status).toBe(200);
    expect(limited.totals()).toEqual({ cus_a: { api_requests: 2 }, cus_b: { api_requests: 1 } });
    expect(limited.requests().filter((r) => r.status === 429).map((r) => r.fault)).toEqual(['rate_limit', 'rate_limit']);
  });

  it('honours burst, the endpoint list and retryAfter: false', async () => {
    const limitClock = createManualClock(Date.UTC(2026, 5, 1));
    const limited = await anotherFake({
      now: limitClock.now,
      rateLimit: { requestsPerSecond: 1, burst: 3, endpoints: ['meter_events'], retryAfter: false },
    });
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await sendDirect(limited, meterEvent('cus_a'))).status);
    expect(statuses).toEqual([200, 200, 200, 429]);
    const refused = await sendDirect(limited, meterEvent('cus_a'));
    expect(refused.headers.get('retry-after')).toBeNull();
    expect((await sendStream(limited, [meterEvent('cus_a')], { auth: limited.createSession().authentication_token })).status).toBe(200);
  });
});
