// The acceptance run: 10,000 seeded events, 50 customers, 20% injected failures, totals exactly as reported.
import { startFakeStripe, trafficProblems } from '@metered/testing';
import type { FakeStripe } from '@metered/testing';
import { closeReporters, expectInvariant, expectedTotals, reporterFor, seeded, totalsFor, watchInvariant } from './helpers';

let fake: FakeStripe;

afterEach(async () => {
  await closeReporters();
  await fake.close();
});

it.each([
  ['stream', 10_000],
  ['direct', 2_000],
] as const)('%s mode: %i events, 20%% failures, every customer billed exactly what was reported', async (mode, count) => {
  fake = await startFakeStripe({ seed: 42 });
  const endpoint = mode === 'stream' ? 'meter_event_stream' : 'meter_events';
  // 20% of requests fail in total: errors before and after processing, and connection resets.
  fake.faults.fail({ endpoint, fraction: 0.08, status: 500 });
  fake.faults.fail({ endpoint, fraction: 0.04, status: 503, afterProcessing: true });
  fake.faults.fail({ endpoint, fraction: 0.03, status: 429 });
  fake.faults.resetConnection({ endpoint, fraction: 0.03 });
  fake.faults.resetConnection({ endpoint, fraction: 0.02, afterProcessing: true });

  const { reporter, recorded } = reporterFor(fake, { mode, concurrency: 8, retry: { initialDelayMs: 2, maxDelayMs: 20, maxAttempts: 50 } });
  const stop = watchInvariant(reporter);
  const random = seeded(7);
  const reports: { customerId: string; value: number }[] = [];
  for (let i = 0; i < count; i += 1) {
    const customerId = `cus_${String(Math.floor(random() * 50)).padStart(2, '0')}`;
    const value = 1 + Math.floor(random() * 1000);
    reporter.report({ eventName: 'api_requests', customerId, value });
    reports.push({ customerId, value });
  }
  await reporter.flush();

  expect(stop()).toEqual([]);
  expect(trafficProblems(fake, { allRequests: true })).toEqual([]);
  expect(recorded.errors).toEqual([]);
  expect(totalsFor(fake, 'api_requests')).toEqual(expectedTotals(reports));
  const stats = reporter.stats();
  expectInvariant(stats);
  expect(stats).toMatchObject({ enqueued: count, delivered: count, failed: 0, pending: 0 });
  expect(stats.retries).toBeGreaterThan(0);
  await reporter.close();
}, 60_000);
