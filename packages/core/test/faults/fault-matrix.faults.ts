// The fault matrix: every failure Stripe or the network can throw at delivery, totals exact and the invariant true throughout.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { MeterReporter } from '@metered/core';
import type { MeterError } from '@metered/core';
import { startFakeStripe, trafficProblems } from '@metered/testing';
import type { FakeStripe } from '@metered/testing';
import { closeReporters, expectInvariant, expectedTotals, reporterFor, seeded, totalsFor, until, watchInvariant } from '../helpers';

let fake: FakeStripe;

beforeEach(async () => {
  fake = await startFakeStripe({ seed: 11 });
});

afterEach(async () => {
  await closeReporters();
  expect(trafficProblems(fake, { allRequests: true })).toEqual([]);
  fake.faults.clear();
  await fake.close();
});

function reportSeeded(reporter: MeterReporter, count: number, seed: number): { customerId: string; value: number }[] {
  const random = seeded(seed);
  const reports: { customerId: string; value: number }[] = [];
  for (let i = 0; i < count; i += 1) {
    const customerId = `cus_${String(Math.floor(random() * 20)).padStart(2, '0')}`;
    const value = 1 + Math.floor(random() * 100);
    reporter.report({ eventName: 'api_requests', customerId, value });
    reports.push({ customerId, value });
  }
  return reports;
}

it('rotating 500s, 429s with Retry-After, resets before and after processing, session expiry and whole-batch 400s: totals exact', async () => {
  const endpoint = 'meter_event_stream';
  fake.faults.fail({ endpoint, fraction: 0.1, status: 500 });
  fake.faults.fail({ endpoint, fraction: 0.05, status: 503, afterProcessing: true });
  fake.faults.fail({ endpoint, fraction: 0.05, status: 429, retryAfter: 1 });
  fake.faults.resetConnection({ endpoint, fraction: 0.05 });
  fake.faults.resetConnection({ endpoint, fraction: 0.05, afterProcessing: true });
  // A poison-like refusal naming no event: the batch is split and every half delivered.
  fake.faults.fail({ endpoint, status: 400, code: 'parameter_invalid', count: 3 });
  const { reporter, recorded } = reporterFor(fake, { concurrency: 4, retry: { initialDelayMs: 5, maxDelayMs: 200 } });
  const stop = watchInvariant(reporter);
  const reports = reportSeeded(reporter, 3000, 3);
  const expiring = setInterval(() => fake.faults.expireSessions(), 150);
  try {
    const result = await reporter.flush({ timeoutMs: 120_000 });
    expect(result).toEqual({ settled: true, pending: 0 });
  } finally {
    clearInterval(expiring);
  }
  expect(stop()).toEqual([]);
  expect(recorded.errors).toEqual([]);
  expect(totalsFor(fake, 'api_requests')).toEqual(expectedTotals(reports));
  expectInvariant(reporter.stats());
  expect(reporter.stats()).toMatchObject({ delivered: 3000, failed: 0, dropped: { total: 0 } });
  expect(reporter.stats().sessionRefreshes).toBeGreaterThan(1);
  expect(reporter.stats().rateLimited).toBeGreaterThan(0);
});

it('with default options, a 45 s outage with 300 events queued ends with all 300 recorded and nothing sent to onError', async () => {
  const errors: MeterError[] = [];
  const reporter = new MeterReporter({
    apiKey: fake.apiKey,
    apiBaseUrl: fake.url,
    meterEventsBaseUrl: fake.meterEventsUrl,
    logger: { warn() {}, error() {} },
    onError: (error) => errors.push(error),
  });
  const stop = watchInvariant(reporter);
  fake.faults.outage(true);
  const reports = reportSeeded(reporter, 300, 5);
  const started = Date.now();
  // Half answered 503, half connections reset: the two ways an outage shows.
  setTimeout(() => fake.faults.outage({ mode: 'reset' }), 22_500);
  setTimeout(() => fake.faults.outage(false), 45_000);
  await until(() => Date.now() - started >= 45_000, 'the outage to end', 60_000);
  expect(fake.events()).toHaveLength(0);
  expect(errors).toEqual([]);
  const result = await reporter.flush({ timeoutMs: 60_000 });
  expect(result).toEqual({ settled: true, pending: 0 });
  expect(stop()).toEqual([]);
  expect(errors).toEqual([]);
  expect(totalsFor(fake, 'api_requests')).toEqual(expectedTotals(reports));
  expectInvariant(reporter.stats());
  await reporter.close();
});

it('a script that reports and ends without close() while Stripe fails every other request still delivers all 150', async () => {
  fake.faults.fail({ endpoint: 'meter_event_stream', fraction: 0.5, status: 503 });
  const script = `
    const { MeterReporter } = require(${JSON.stringify(path.resolve(__dirname, '../../src/index.ts'))});
    const r = new MeterReporter({ apiKey: process.env.KEY, apiBaseUrl: process.env.API, meterEventsBaseUrl: process.env.EVENTS, maxBatchSize: 10, retry: { initialDelayMs: 5, maxDelayMs: 50 }, logger: { warn() {}, error() {} } });
    for (let i = 0; i < 150; i += 1) r.report({ eventName: 'api_requests', customerId: 'cus_exit', identifier: 'exit-' + i });
    process.on('exit', () => process.stdout.write(JSON.stringify(r.stats())));
  `;
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '-e', script], {
    cwd: path.resolve(__dirname, '../../../..'),
    timeout: 60_000,
    env: { ...process.env, KEY: fake.apiKey, API: fake.url, EVENTS: fake.meterEventsUrl },
  });
  expect(JSON.parse(stdout)).toMatchObject({ enqueued: 150, delivered: 150, pending: 0, failed: 0 });
  expect(totalsFor(fake, 'api_requests')).toEqual({ cus_exit: 150 });
});
