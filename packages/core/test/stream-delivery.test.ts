// Stream mode against the fake: wire format, sessions, and every failure ending with each event counted once.
import { startFakeStripe, trafficProblems } from '@metered/testing';
import type { FakeStripe } from '@metered/testing';
import { DEFAULT_STRIPE_VERSION } from '@metered/core';
import { closeReporters, expectInvariant, reporterFor, totalsFor, until, watchInvariant } from './helpers';

let fake: FakeStripe;

beforeEach(async () => {
  fake = await startFakeStripe({ meters: ['api_requests', { event_name: 'tokens', customerKey: 'cust', valueKey: 'qty' }] });
});

afterEach(async () => {
  try {
    // Whatever happened in the test, every request the reporter sent matches Stripe's definitions.
    expect(trafficProblems(fake, { allRequests: true })).toEqual([]);
  } finally {
    // Closed even when the check or the test failed: an open fake or reporter would keep jest from exiting.
    await closeReporters();
    await fake.close();
  }
});

function streamRequests() {
  return fake.requests().filter((r) => r.endpoint === 'meter_event_stream');
}

it('sends batches of at most 100 events, values as strings, RFC 3339 timestamps, one session', async () => {
  const { reporter } = reporterFor(fake, { concurrency: 4 });
  const at = Date.parse('2026-11-20T10:00:00.000Z');
  for (let i = 0; i < 250; i += 1) {
    reporter.report({ eventName: 'api_requests', customerId: `cus_${i % 5}`, value: 2, timestamp: Math.max(at, Date.now() - 86_400_000), identifier: `evt_${i}` });
  }
  await reporter.flush();

  const batches = streamRequests();
  expect(batches.map((r) => ((r.body as { events: unknown[] }).events).length).sort((a, b) => b - a)).toEqual([100, 100, 50]);
  const first = (batches[0]!.body as { events: Record<string, unknown>[] }).events[0]!;
  expect(first).toEqual({
    event_name: 'api_requests',
    identifier: expect.stringMatching(/^evt_\d+$/),
    timestamp: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/),
    payload: { stripe_customer_id: expect.stringMatching(/^cus_\d$/), value: '2' },
  });
  expect(batches[0]!.headers['stripe-version']).toBe(DEFAULT_STRIPE_VERSION);
  expect(batches[0]!.headers['user-agent']).toMatch(/^@metered\/core\/\d+\.\d+\.\d+/);
  expect(batches[0]!.headers['idempotency-key']).toMatch(/^metered-[0-9a-f]{32}$/);
  expect(fake.requests().filter((r) => r.endpoint === 'meter_event_session')).toHaveLength(1);
  expect(totalsFor(fake, 'api_requests')).toEqual({ cus_0: 100, cus_1: 100, cus_2: 100, cus_3: 100, cus_4: 100 });
  expect(reporter.stats()).toMatchObject({ enqueued: 250, delivered: 250, pending: 0, batchesSent: 3, sessionRefreshes: 1 });
  await reporter.close();
});

it('uses the meter payload keys and passes dimensions through', async () => {
  const { reporter } = reporterFor(fake, { payloadKeys: { customer: 'cust', value: 'qty' } });
  reporter.report({ eventName: 'tokens', customerId: 'cus_A', value: '1500', dimensions: { model: 'large' } });
  await reporter.flush();
  expect(fake.events()).toEqual([expect.objectContaining({ customer: 'cus_A', value: '1500', payload: { cust: 'cus_A', qty: '1500', model: 'large' } })]);
  await reporter.close();
});

it('sends a partial batch after flushIntervalMs without an explicit flush', async () => {
  const { reporter } = reporterFor(fake, { flushIntervalMs: 20 });
  reporter.report({ eventName: 'api_requests', customerId: 'cus_1' });
  await until(() => fake.events().length === 1, 'the interval flush');
  await reporter.close();
});

it('re-authenticates once after its session expires mid-run and resends the same batch', async () => {
  const { reporter } = reporterFor(fake);
  reporter.report({ eventName: 'api_requests', customerId: 'cus_1' });
  await reporter.flush();
  expect(fake.faults.expireSessions()).toBe(1);
  reporter.report({ eventName: 'api_requests', customerId: 'cus_1', identifier: 'after-expiry' });
  await reporter.flush();

  const stream = streamRequests();
  expect(stream.map((r) => r.status)).toEqual([200, 401, 200]);
  expect(stream[1]!.body).toEqual(stream[2]!.body);
  expect(stream[1]!.headers['idempotency-key']).toBe(stream[2]!.headers['idempotency-key']);
  expect(reporter.stats()).toMatchObject({ delivered: 2, sessionRefreshes: 2, retries: 0 });
  expect(totalsFor(fake, 'api_requests')).toEqual({ cus_1: 2 });
  await reporter.close();
});

it('creates one session however many batches start at once', async () => {
  const { reporter } = reporterFor(fake, { concurrency: 8 });
  for (let i = 0; i < 800; i += 1) reporter.report({ eventName: 'api_requests', customerId: 'cus_1' });
  await reporter.flush();
  expect(fake.requests().filter((r) => r.endpoint === 'meter_event_session')).toHaveLength(1);
  expect(reporter.stats().sessionRefreshes).toBe(1);
  await reporter.close();
});

it('pauses all sending for Retry-After after a 429, then delivers everything once', async () => {
  // Paced at 100/s, a reporter that ignored the pause would send every 10 ms during it.
  const { reporter } = reporterFor(fake, { concurrency: 2, maxRequestsPerSecond: 100 });
  fake.faults.fail({ endpoint: 'meter_event_stream', status: 429, retryAfter: 1, count: 1 });
  for (let i = 0; i < 800; i += 1) reporter.report({ eventName: 'api_requests', customerId: `cus_${i % 4}` });
  await reporter.flush();

  const stream = streamRequests();
  const limited = stream.find((r) => r.status === 429)!;
  const sentDuringPause = stream.filter((r) => r.time > limited.time + 20 && r.time < limited.time + 950);
  expect(sentDuringPause).toEqual([]);
  expect(stream.filter((r) => r.time >= limited.time + 950).length).toBeGreaterThanOrEqual(1);
  expect(reporter.stats()).toMatchObject({ delivered: 800, rateLimited: 1, retries: 1 });
  expect(totalsFor(fake, 'api_requests')).toEqual({ cus_0: 200, cus_1: 200, cus_2: 200, cus_3: 200 });
  await reporter.close();
});

it('retries a 429 without Retry-After by backoff', async () => {
  const { reporter } = reporterFor(fake);
  fake.faults.fail({ endpoint: 'meter_event_stream', status: 429, count: 2 });
  reporter.report({ eventName: 'api_requests', customerId: 'cus_1' });
  await reporter.flush();
  expect(reporter.stats()).toMatchObject({ delivered: 1, retries: 2, rateLimited: 2 });
  expect(totalsFor(fake, 'api_requests')).toEqual({ cus_1: 1 });
  await reporter.close();
});

it.each([500, 503])('retries %i answers, including ones that lost a processed request', async (status) => {
  const { reporter } = reporterFor(fake);
  fake.faults.fail({ endpoint: 'meter_event_stream', status, count: 2 });
  fake.faults.fail({ endpoint: 'meter_event_stream', status, count: 2, afterProcessing: true });
  for (let i = 0; i < 150; i += 1) reporter.report({ eventName: 'api_requests', customerId: 'cus_1' });
  await reporter.flush();
  expect(totalsFor(fake, 'api_requests')).toEqual({ cus_1: 150 });
  expect(fake.stats().duplicateEvents).toBeGreaterThan(0);
  // Every attempt of a batch carried the same identifiers under the same Idempotency-Key.
  const attemptsByKey = new Map<string, string[]>();
  for (const r of streamRequests()) {
    const ids = (r.body as { events: { identifier: string }[] }).events.map((e) => e.identifier).join(',');
    attemptsByKey.set(r.headers['idempotency-key']!, [...(attemptsByKey.get(r.headers['idempotency-key']!) ?? []), ids]);
  }
  expect(attemptsByKey.size).toBe(2);
  for (const attempts of attemptsByKey.values()) expect(new Set(attempts).size).toBe(1);
  expect([...attemptsByKey.values()].reduce((n, a) => n + a.length, 0)).toBe(2 + 4);
  expectInvariant(reporter.stats());
  expect(reporter.stats()).toMatchObject({ delivered: 150, failed: 0 });
  await reporter.close();
});

it('retries connection resets, before and after the fake processed the request', async () => {
  const { reporter } = reporterFor(fake);
  fake.faults.resetConnection({ endpoint: 'meter_event_stream', count: 1 });
  fake.faults.resetConnection({ endpoint: 'meter_event_stream', count: 1, afterProcessing: true });
  fake.faults.resetConnection({ endpoint: 'meter_event_session', count: 1 });
  for (let i = 0; i < 120; i += 1) reporter.report({ eventName: 'api_requests', customerId: 'cus_9' });
  await reporter.flush();
  expect(totalsFor(fake, 'api_requests')).toEqual({ cus_9: 120 });
  expect(reporter.stats()).toMatchObject({ delivered: 120, failed: 0 });
  expect(reporter.stats().retries).toBeGreaterThanOrEqual(2);
  await reporter.close();
});

it('times out a response that never comes and retries it', async () => {
  const { reporter } = reporterFor(fake, { requestTimeoutMs: 100 });
  const held = fake.faults.hold({ endpoint: 'meter_event_stream', count: 1 });
  reporter.report({ eventName: 'api_requests', customerId: 'cus_1' });
  await reporter.flush();
  expect(held.triggered).toBe(1);
  held.release();
  expect(reporter.stats()).toMatchObject({ delivered: 1, retries: 1 });
  expect(totalsFor(fake, 'api_requests')).toEqual({ cus_1: 1 });
  await reporter.close();
});

it('rides out an outage, then delivers everything once, the invariant holding throughout', async () => {
  const { reporter } = reporterFor(fake, { retry: { initialDelayMs: 5, maxDelayMs: 20, maxAttempts: 1000 } });
  const stop = watchInvariant(reporter);
  fake.faults.outage(true);
  for (let i = 0; i < 300; i += 1) reporter.report({ eventName: 'api_requests', customerId: `cus_${i % 3}` });
  const flushed = reporter.flush();
  await until(() => reporter.stats().retries >= 5, 'retries during the outage');
  expect(fake.events()).toHaveLength(0);
  fake.faults.outage({ mode: 'reset' });
  await until(() => reporter.stats().retries >= 10, 'retries during the reset outage');
  fake.faults.outage(false);
  await flushed;
  expect(stop()).toEqual([]);
  expect(totalsFor(fake, 'api_requests')).toEqual({ cus_0: 100, cus_1: 100, cus_2: 100 });
  expect(reporter.stats()).toMatchObject({ delivered: 300, failed: 0, pending: 0 });
  await reporter.close();
});

it('hands events to onError, with Stripe\'s code, when Stripe refuses the request', async () => {
  const { reporter, recorded } = reporterFor(fake);
  fake.faults.fail({ endpoint: 'meter_event_stream', status: 400, code: 'parameter_invalid', message: 'bad', count: 1 });
  reporter.report({ eventName: 'api_requests', customerId: 'cus_1', identifier: 'refused-1' });
  await reporter.flush();
  expect(recorded.errors).toHaveLength(1);
  const { error, events } = recorded.errors[0]!;
  expect(error.code).toBe('ERR_METER_DELIVERY_FAILED');
  expect(error).toMatchObject({ permanent: true, attempts: 1 });
  expect(error.cause).toMatchObject({ status: 400, stripeCode: 'parameter_invalid' });
  expect(events.map((e) => e.identifier)).toEqual(['refused-1']);
  expect(reporter.stats()).toMatchObject({ failed: 1, delivered: 0, retries: 0 });
  expectInvariant(reporter.stats());
  await reporter.close();
});

it('keeps retrying transient failures past maxAttempts, within the time budget', async () => {
  // A count of attempts turned a short outage into dead letters: 503s are bounded by time alone.
  const { reporter, recorded } = reporterFor(fake, { retry: { initialDelayMs: 1, maxDelayMs: 2, maxAttempts: 3 } });
  fake.faults.fail({ endpoint: 'meter_event_stream', status: 503, count: 10 });
  reporter.report({ eventName: 'api_requests', customerId: 'cus_1' });
  await reporter.flush();
  expect(recorded.errors).toEqual([]);
  expect(reporter.stats()).toMatchObject({ delivered: 1, failed: 0, retries: 10 });
  await reporter.close();
});

it('hands a batch still failing when maxElapsedMs runs out to onError as a dead letter', async () => {
  const { reporter, recorded } = reporterFor(fake, { retry: { initialDelayMs: 5, maxDelayMs: 10, maxElapsedMs: 150 } });
  fake.faults.outage(true);
  reporter.report({ eventName: 'api_requests', customerId: 'cus_1' });
  await reporter.flush();
  expect(recorded.errors[0]!.error).toMatchObject({ code: 'ERR_METER_DELIVERY_FAILED', permanent: false });
  expect((recorded.errors[0]!.error as unknown as { attempts: number }).attempts).toBeGreaterThan(3);
  expect(reporter.stats()).toMatchObject({ failed: 1, delivered: 0 });
  await reporter.close();
});

it('gives up at once when the wait Stripe asks for would pass maxElapsedMs', async () => {
  const { reporter, recorded } = reporterFor(fake, { retry: { initialDelayMs: 1, maxDelayMs: 1, maxAttempts: 100, maxElapsedMs: 1000 } });
  fake.faults.fail({ endpoint: 'meter_event_stream', status: 503, retryAfter: 2, count: 10 });
  reporter.report({ eventName: 'api_requests', customerId: 'cus_1' });
  await reporter.flush();
  expect(recorded.errors[0]!.error).toMatchObject({ attempts: 1, permanent: false });
  expect(reporter.stats()).toMatchObject({ failed: 1, retries: 0 });
  await reporter.close();
});

it('cancels a delivered event through meter_event_adjustments', async () => {
  const { reporter } = reporterFor(fake);
  const id = reporter.report({ eventName: 'api_requests', customerId: 'cus_1', value: 7 });
  reporter.report({ eventName: 'api_requests', customerId: 'cus_1', value: 3 });
  await reporter.flush();
  const adjustment = await reporter.cancel({ eventName: 'api_requests', identifier: id });
  expect(adjustment).toMatchObject({ object: 'v2.billing.meter_event_adjustment', type: 'cancel', cancel: { identifier: id } });
  expect(totalsFor(fake, 'api_requests')).toEqual({ cus_1: 3 });
  await reporter.close();
});
