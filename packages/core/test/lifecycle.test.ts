// Bounded memory and shutdown: each overflow policy, flush, close with a clean drain and cut by its timeout.
import { MeterClosedError, MeterQueueFullError } from '@metered/core';
import { startFakeStripe, trafficProblems } from '@metered/testing';
import type { FakeStripe } from '@metered/testing';
import { closeReporters, expectInvariant, reporterFor, totalsFor, until } from './helpers';

let fake: FakeStripe;

beforeEach(async () => {
  fake = await startFakeStripe();
});

afterEach(async () => {
  try {
    // Whatever happened in the test, every request the reporter sent matches Stripe's definitions.
    expect(trafficProblems(fake, { allRequests: true })).toEqual([]);
  } finally {
    // Closed even when the check or the test failed: an open fake or reporter would keep jest from exiting.
    fake.faults.clear();
    await closeReporters();
    await fake.close();
  }
});

// A long interval and batches larger than what is reported: nothing leaves before flush().
const idle = { flushIntervalMs: 60_000, maxQueueSize: 3 };

describe('overflow', () => {
  const report = (reporter: { report: (e: { eventName: string; customerId: string; identifier: string }) => string }, n: number) => {
    for (let i = 1; i <= n; i += 1) reporter.report({ eventName: 'api_requests', customerId: 'cus_1', identifier: `e${i}` });
  };

  it('drop-oldest keeps the newest events and hands the oldest to onDrop, in one call per turn', async () => {
    const { reporter, recorded } = reporterFor(fake, { ...idle, overflow: 'drop-oldest' });
    report(reporter, 5);
    // Counted at once, told once the turn ends: one call for the turn, not one per event.
    expectInvariant(reporter.stats());
    expect(reporter.stats().dropped.overflow).toBe(2);
    expect(recorded.drops).toEqual([]);
    await new Promise(setImmediate);
    expect(recorded.drops.map((d) => [d.reason, d.events.map((e) => e.identifier)])).toEqual([['overflow', ['e1', 'e2']]]);
    await reporter.flush();
    expect(fake.events().map((e) => e.identifier)).toEqual(['e3', 'e4', 'e5']);
    expect(reporter.stats()).toMatchObject({ enqueued: 5, delivered: 3, dropped: { total: 2, overflow: 2 } });
    await reporter.close();
  });

  it('drop-newest keeps the oldest events and hands the new ones to onDrop', async () => {
    const { reporter, recorded } = reporterFor(fake, { ...idle, overflow: 'drop-newest' });
    report(reporter, 5);
    await new Promise(setImmediate);
    expect(recorded.drops.map((d) => d.events.map((e) => e.identifier))).toEqual([['e4', 'e5']]);
    await reporter.flush();
    expect(fake.events().map((e) => e.identifier)).toEqual(['e1', 'e2', 'e3']);
    expect(reporter.stats()).toMatchObject({ enqueued: 5, delivered: 3, dropped: { overflow: 2 } });
    await reporter.close();
  });

  it('reject throws MeterQueueFullError and accepts nothing more', async () => {
    const { reporter, recorded } = reporterFor(fake, { ...idle, overflow: 'reject' });
    report(reporter, 3);
    let thrown: unknown;
    try {
      reporter.report({ eventName: 'api_requests', customerId: 'cus_1', identifier: 'e4' });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(MeterQueueFullError);
    expect(thrown).toMatchObject({ code: 'ERR_METER_QUEUE_FULL', maxQueueSize: 3 });
    expect(recorded.drops).toEqual([]);
    await reporter.flush();
    expect(fake.events().map((e) => e.identifier)).toEqual(['e1', 'e2', 'e3']);
    expect(reporter.stats()).toMatchObject({ enqueued: 3, delivered: 3, rejected: 1, dropped: { total: 0 } });
    await reporter.close();
  });

  it('bounds the queue while Stripe is down, and delivers what it kept once it is back', async () => {
    const { reporter } = reporterFor(fake, { maxQueueSize: 500, concurrency: 1, retry: { initialDelayMs: 5, maxDelayMs: 10, maxAttempts: 1000 } });
    fake.faults.outage(true);
    for (let i = 0; i < 5000; i += 1) reporter.report({ eventName: 'api_requests', customerId: 'cus_1' });
    const s = reporter.stats();
    expect(s.queued).toBeLessThanOrEqual(500);
    expectInvariant(s);
    fake.faults.outage(false);
    await reporter.flush();
    const after = reporter.stats();
    expectInvariant(after);
    expect(after.pending).toBe(0);
    expect(totalsFor(fake, 'api_requests')).toEqual({ cus_1: after.delivered });
    expect(after.delivered + after.dropped.overflow).toBe(5000);
    await reporter.close();
  });
});

describe('flush', () => {
  it('resolves at once when nothing is pending', async () => {
    const { reporter } = reporterFor(fake);
    await reporter.flush();
    expect(fake.requests()).toEqual([]);
    await reporter.close();
  });

  it('does not wait for events reported after it was called', async () => {
    const { reporter } = reporterFor(fake, { concurrency: 1, flushIntervalMs: 60_000 });
    reporter.report({ eventName: 'api_requests', customerId: 'cus_1', identifier: 'before' });
    const flushed = reporter.flush();
    await until(() => fake.stats().acceptedEvents === 1, "the fake to accept 'before'");
    // From here every stream request is parked: 'after' cannot be delivered until released, so a
    // flush that waited for everything pending would never resolve.
    const held = fake.faults.hold({ endpoint: 'meter_event_stream' });
    reporter.report({ eventName: 'api_requests', customerId: 'cus_1', identifier: 'after' });
    await flushed;
    expect(reporter.stats()).toMatchObject({ delivered: 1, pending: 1 });
    held.release();
    await reporter.flush();
    expect(fake.events().map((e) => e.identifier).sort()).toEqual(['after', 'before']);
    await reporter.close();
  });
});

describe('close', () => {
  it('drains everything, then refuses new events', async () => {
    const { reporter, recorded } = reporterFor(fake);
    for (let i = 0; i < 250; i += 1) reporter.report({ eventName: 'api_requests', customerId: 'cus_1' });
    const result = await reporter.close({ timeoutMs: 10_000 });
    expect(result).toEqual({ delivered: 250, failed: 0, dropped: 0, kept: 0 });
    expect(totalsFor(fake, 'api_requests')).toEqual({ cus_1: 250 });
    expect(recorded.drops).toEqual([]);
    expect(() => reporter.report({ eventName: 'api_requests', customerId: 'cus_1' })).toThrow(MeterClosedError);
    expect(reporter.stats().rejected).toBe(1);
    await expect(reporter.cancel({ eventName: 'api_requests', identifier: 'x' })).rejects.toMatchObject({ code: 'ERR_METER_CLOSED' });
    expect(await reporter.close()).toBe(result);
  });

  it('hands what it could not deliver within the timeout to onDrop as shutdown, identifiers kept', async () => {
    const { reporter, recorded } = reporterFor(fake, { concurrency: 1 });
    const held = fake.faults.hold({ endpoint: 'meter_event_stream' });
    for (let i = 0; i < 150; i += 1) reporter.report({ eventName: 'api_requests', customerId: 'cus_1', identifier: `c${i}` });
    const closing = reporter.close({ timeoutMs: 200 });
    await until(() => held.triggered >= 1, 'the batch to be parked');
    const result = await closing;
    expect(result).toEqual({ delivered: 0, failed: 0, dropped: 150, kept: 0 });
    const dropped = recorded.drops.filter((d) => d.reason === 'shutdown').flatMap((d) => d.events.map((e) => e.identifier));
    expect(dropped.sort()).toEqual(Array.from({ length: 150 }, (_, i) => `c${i}`).sort());
    expect(reporter.stats()).toMatchObject({ pending: 0, dropped: { shutdown: 150 } });
    expectInvariant(reporter.stats());
    held.release();

    // The parked request did reach the fake: re-reporting the dropped events, as a spool would, bills each once.
    const { reporter: again } = reporterFor(fake);
    for (const d of recorded.drops) for (const e of d.events) again.report(e);
    await again.close();
    expect(totalsFor(fake, 'api_requests')).toEqual({ cus_1: 150 });
  });

  it('keeps the process alive while awaited, but not an idle reporter', async () => {
    const { reporter } = reporterFor(fake, { flushIntervalMs: 60_000 });
    reporter.report({ eventName: 'api_requests', customerId: 'cus_1' });
    await until(() => reporter.stats().queued === 1, 'the event to be queued');
    await reporter.close();
    expect(fake.events()).toHaveLength(1);
  });
});
