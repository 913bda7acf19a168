// Direct mode against the fake: one event per request, one request per customer+meter at a time, duplicates delivered.
import { startFakeStripe, trafficProblems } from '@metered/testing';
import type { FakeStripe } from '@metered/testing';
import { closeReporters, expectInvariant, reporterFor, totalsFor } from './helpers';

let fake: FakeStripe;

beforeEach(async () => {
  fake = await startFakeStripe({ meters: ['api_requests', 'tokens', { event_name: 'old_meter', status: 'inactive' }] });
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

const direct = (r: { endpoint: string | null }) => r.endpoint === 'meter_events';

it('sends one event per request, in Stripe\'s wire format, with the secret key', async () => {
  const { reporter } = reporterFor(fake, { mode: 'direct' });
  reporter.report({ eventName: 'api_requests', customerId: 'cus_1', value: 12, identifier: 'd-1' });
  await reporter.flush();
  const [request] = fake.requests().filter(direct);
  expect(request!.body).toEqual({
    event_name: 'api_requests',
    identifier: 'd-1',
    timestamp: expect.stringMatching(/Z$/),
    payload: { stripe_customer_id: 'cus_1', value: '12' },
  });
  expect(request!.status).toBe(200);
  expect(request!.headers.authorization).not.toContain(fake.apiKey);
  expect(fake.requests().some((r) => r.endpoint === 'meter_event_session')).toBe(false);
  await reporter.close();
});

it('never has two requests in flight for the same customer and meter (Stripe answers 409)', async () => {
  // Every response takes 20 ms, so overlapping requests for one pair would meet at the fake.
  await fake.close();
  fake = await startFakeStripe({ meters: ['api_requests', 'tokens'], latencyMs: 20 });
  const { reporter } = reporterFor(fake, { mode: 'direct', concurrency: 8 });
  for (let i = 0; i < 40; i += 1) {
    reporter.report({ eventName: i % 2 ? 'api_requests' : 'tokens', customerId: `cus_${i % 4}` });
  }
  await reporter.flush();
  expect(fake.requests().filter((r) => r.status === 409)).toEqual([]);
  // …while different pairs did go out in parallel.
  expect(reporter.stats()).toMatchObject({ delivered: 40, retries: 0 });
  expect(fake.totals()).toEqual({
    cus_0: { tokens: 10 },
    cus_1: { api_requests: 10 },
    cus_2: { tokens: 10 },
    cus_3: { api_requests: 10 },
  });
  await reporter.close();
});

it('retries a 409 from another process sending for the same pair', async () => {
  const { reporter } = reporterFor(fake, { mode: 'direct' });
  fake.faults.fail({ endpoint: 'meter_events', status: 409, code: 'too_many_concurrent_requests', count: 2 });
  reporter.report({ eventName: 'api_requests', customerId: 'cus_1' });
  await reporter.flush();
  expect(reporter.stats()).toMatchObject({ delivered: 1, retries: 2 });
  await reporter.close();
});

it('counts duplicate_meter_event as delivered: a lost response is retried without billing twice', async () => {
  const { reporter, recorded } = reporterFor(fake, { mode: 'direct' });
  fake.faults.fail({ endpoint: 'meter_events', status: 500, afterProcessing: true, count: 1 });
  fake.faults.resetConnection({ endpoint: 'meter_events', afterProcessing: true, count: 1 });
  reporter.report({ eventName: 'api_requests', customerId: 'cus_1', value: 5 });
  reporter.report({ eventName: 'api_requests', customerId: 'cus_2', value: 6 });
  await reporter.flush();
  const answers = fake.requests().filter(direct).map((r) => (r.response as { error?: { code?: string } } | undefined)?.error?.code);
  expect(answers.filter((code) => code === 'duplicate_meter_event')).toHaveLength(2);
  expect(recorded.errors).toEqual([]);
  expect(reporter.stats()).toMatchObject({ delivered: 2, failed: 0 });
  expect(totalsFor(fake, 'api_requests')).toEqual({ cus_1: 5, cus_2: 6 });
  await reporter.close();
});

it.each([
  ['an archived meter', 'old_meter', 'archived_meter'],
  ['an unknown meter', 'no_such_meter', 'no_meter'],
])('hands events for %s to onError with Stripe\'s code, without retrying', async (_label, eventName, code) => {
  const { reporter, recorded } = reporterFor(fake, { mode: 'direct' });
  reporter.report({ eventName, customerId: 'cus_1' });
  reporter.report({ eventName: 'api_requests', customerId: 'cus_1' });
  await reporter.flush();
  expect(recorded.errors).toHaveLength(1);
  expect(recorded.errors[0]!.error.cause).toMatchObject({ status: 400, stripeCode: code });
  expect(recorded.errors[0]!.events.map((e) => e.eventName)).toEqual([eventName]);
  expect(reporter.stats()).toMatchObject({ delivered: 1, failed: 1, retries: 0 });
  expectInvariant(reporter.stats());
  await reporter.close();
});

it('keeps at most maxQueueSize events while one customer and meter waits for its request (drop-oldest)', async () => {
  // The first request is held at the fake: every later event of the same pair waits for it, outside the store.
  const held = fake.faults.hold({ endpoint: 'meter_events' });
  const { reporter, recorded } = reporterFor(fake, { mode: 'direct', maxQueueSize: 3, overflow: 'drop-oldest' });
  reporter.report({ eventName: 'api_requests', customerId: 'cus_1', identifier: 'e0' });
  await held.reached(1);
  for (let i = 1; i <= 10; i += 1) {
    reporter.report({ eventName: 'api_requests', customerId: 'cus_1', identifier: `e${i}` });
    // A turn between reports: each pump moves the new event to the pair's waiting line.
    await new Promise(setImmediate);
    expect(reporter.stats().queued).toBeLessThanOrEqual(3);
  }
  expectInvariant(reporter.stats());
  expect(reporter.stats()).toMatchObject({ enqueued: 11, inFlight: 1, queued: 3, dropped: { overflow: 7 } });
  expect(recorded.drops.flatMap((d) => d.events.map((e) => e.identifier))).toEqual(['e1', 'e2', 'e3', 'e4', 'e5', 'e6', 'e7']);
  held.release();
  await reporter.flush();
  expect(fake.events().map((e) => e.identifier)).toEqual(['e0', 'e8', 'e9', 'e10']);
  expect(reporter.stats()).toMatchObject({ delivered: 4, pending: 0 });
  await reporter.close();
});

it('drops the oldest queued events first in direct mode: those held for their customer and meter before the store\'s', async () => {
  const held = fake.faults.hold({ endpoint: 'meter_events' });
  const { reporter, recorded } = reporterFor(fake, { mode: 'direct', maxQueueSize: 3, overflow: 'drop-oldest' });
  reporter.report({ eventName: 'api_requests', customerId: 'cus_1', identifier: 'e0' });
  await held.reached(1);
  reporter.report({ eventName: 'api_requests', customerId: 'cus_1', identifier: 'e1' });
  reporter.report({ eventName: 'api_requests', customerId: 'cus_1', identifier: 'e2' });
  // One turn: the pump moves e1 and e2 to the pair's waiting line. Then a burst within one turn stays in the store.
  await new Promise(setImmediate);
  for (let i = 3; i <= 5; i += 1) reporter.report({ eventName: 'api_requests', customerId: 'cus_1', identifier: `e${i}` });
  expect(reporter.stats()).toMatchObject({ queued: 3, dropped: { overflow: 2 } });
  await new Promise(setImmediate);
  expect(recorded.drops.flatMap((d) => d.events.map((e) => e.identifier))).toEqual(['e1', 'e2']);
  held.release();
  await reporter.flush();
  expect(fake.events().map((e) => e.identifier)).toEqual(['e0', 'e3', 'e4', 'e5']);
  await reporter.close();
});
