// The rateLimiter option: a limiter of the user's own paces every request and hears every 429's Retry-After, in place of the reporter's bucket.
import { MeterConfigError, MeterReporter } from '@metered/core';
import type { MeterReporterOptions, RequestLimiter } from '@metered/core';
import { startFakeStripe } from '@metered/testing';
import type { FakeStripe } from '@metered/testing';
import { closeReporters, reporterFor } from './helpers';

let fake: FakeStripe;

beforeEach(async () => {
  fake = await startFakeStripe({ meters: ['api_requests'] });
});

afterEach(async () => {
  await closeReporters();
  await fake.close();
});

/** A limiter that grants every request and records what the reporter asked of it. */
function recordingLimiter(): RequestLimiter & { acquired: number; pauses: number[] } {
  return {
    acquired: 0,
    pauses: [],
    acquire() {
      this.acquired += 1;
      return Promise.resolve();
    },
    pauseUntil(until: number) {
      this.pauses.push(until);
    },
  };
}

it('a given rateLimiter is acquired before every request, and the reporter paces nothing itself', async () => {
  const limiter = recordingLimiter();
  // One request per second from the reporter's own bucket would take 3 s for three batches; the limiter grants at once.
  const { reporter } = reporterFor(fake, { rateLimiter: limiter, maxRequestsPerSecond: 1, maxBatchSize: 10 });
  for (let i = 0; i < 30; i += 1) reporter.report({ eventName: 'api_requests', customerId: 'cus_1' });
  const started = Date.now();
  await reporter.flush();
  expect(Date.now() - started).toBeLessThan(900);
  expect(limiter.acquired).toBe(reporter.stats().requests);
  expect(reporter.stats().delivered).toBe(30);
});

it('a 429 with Retry-After pauses the given rateLimiter (so it can pause every instance)', async () => {
  const limiter = recordingLimiter();
  const { reporter } = reporterFor(fake, { rateLimiter: limiter });
  fake.faults.fail({ endpoint: 'meter_event_stream', status: 429, retryAfter: 1, count: 1 });
  const before = Date.now();
  reporter.report({ eventName: 'api_requests', customerId: 'cus_1' });
  await reporter.flush();
  expect(limiter.pauses).toHaveLength(1);
  expect(limiter.pauses[0]!).toBeGreaterThanOrEqual(before + 1000);
  expect(reporter.stats()).toMatchObject({ delivered: 1, rateLimited: 1 });
});

it.each([null, 5, {}, { acquire: () => Promise.resolve() }])('refuses a rateLimiter that is not a RequestLimiter: %p', (value) => {
  const make = () => new MeterReporter({ apiKey: 'sk_test_x', rateLimiter: value } as unknown as MeterReporterOptions);
  expect(make).toThrow(MeterConfigError);
  expect(make).toThrow(/"rateLimiter".*acquire\(signal\) and pauseUntil\(until\)/);
});
