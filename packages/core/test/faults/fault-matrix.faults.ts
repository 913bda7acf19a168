// The fault matrix: every failure Stripe or the network can throw at delivery, totals exact and the invariant true throughout.
import { execFile } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
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

/** What a hostile proxy does with one answer of the fake's: pass it on, drip it forever, or refuse the request unseen. */
type ProxyMove = 'pass' | 'drip' | 'refuse';

/**
 * A proxy in front of the fake. `decide` sees each stream request (its body, its rank) and says what a hostile
 * or broken middlebox does: 'drip' lets Stripe process the request, then answers one byte every `dripMs` (it would
 * hold a connection for minutes); 'refuse' answers 400 naming no event, as Stripe does for a body it cannot take,
 * without forwarding it.
 */
async function hostileProxy(target: FakeStripe, decide: (body: string, rank: number) => ProxyMove, dripMs = 200): Promise<{ url: string; close: () => Promise<void> }> {
  let streamRequests = 0;
  const timers = new Set<NodeJS.Timeout>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const isStream = req.url === '/v2/billing/meter_event_stream';
      const body = Buffer.concat(chunks);
      const move = isStream ? decide(body.toString('utf8'), (streamRequests += 1)) : 'pass';
      if (move === 'refuse') {
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { type: 'invalid_request_error', code: 'parameter_invalid', message: 'The request could not be read.' } }));
        return;
      }
      const headers = { ...req.headers };
      delete headers.host;
      const upstream = http.request(`${isStream ? target.meterEventsUrl : target.url}${req.url ?? '/'}`, { method: req.method, headers }, (answer) => {
        const parts: Buffer[] = [];
        answer.on('data', (chunk: Buffer) => parts.push(chunk));
        answer.on('end', () => {
          const text = Buffer.concat(parts);
          if (move === 'pass') {
            res.writeHead(answer.statusCode ?? 502, { 'content-type': 'application/json' });
            res.end(text);
            return;
          }
          res.writeHead(answer.statusCode ?? 502, { 'content-type': 'application/json', 'content-length': String(text.length + 1000) });
          const timer = setInterval(() => res.write(' '), dripMs);
          timers.add(timer);
          res.on('close', () => {
            clearInterval(timer);
            timers.delete(timer);
          });
        });
      });
      upstream.on('error', () => res.destroy());
      upstream.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      for (const timer of timers) clearInterval(timer);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

it('a hostile slow body after Stripe processed the batch: cut off at requestTimeoutMs, resent, counted once', async () => {
  // Four stream answers drip forever (they would fill the four connections); the fake has those events already.
  const proxy = await hostileProxy(fake, (_body, rank) => (rank <= 4 ? 'drip' : 'pass'));
  try {
    const { reporter, recorded } = reporterFor(fake, { apiBaseUrl: proxy.url, meterEventsBaseUrl: proxy.url, requestTimeoutMs: 1_000, concurrency: 4, maxBatchSize: 50 });
    const stop = watchInvariant(reporter);
    const reports = reportSeeded(reporter, 1000, 7);
    const started = Date.now();
    const result = await reporter.flush({ timeoutMs: 60_000 });
    expect(result).toEqual({ settled: true, pending: 0 });
    // Held by the drips, the first four requests alone would have taken 200 s.
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(stop()).toEqual([]);
    expect(recorded.errors).toEqual([]);
    expect(totalsFor(fake, 'api_requests')).toEqual(expectedTotals(reports));
    expect(fake.events()).toHaveLength(1000);
    expect(reporter.stats()).toMatchObject({ delivered: 1000, failed: 0 });
    expect(reporter.stats().retries).toBeGreaterThanOrEqual(4);
  } finally {
    await closeReporters();
    await proxy.close();
  }
});

it('a poison event among good ones: every request carrying it is refused whole, the other 299 are all recorded', async () => {
  const proxy = await hostileProxy(fake, (body) => (body.includes('"poison-1"') ? 'refuse' : 'pass'));
  try {
    const { reporter, recorded } = reporterFor(fake, { apiBaseUrl: proxy.url, meterEventsBaseUrl: proxy.url, concurrency: 2, flushIntervalMs: 60_000 });
    const ids = Array.from({ length: 300 }, (_, i) => (i === 123 ? 'poison-1' : `good-${i}`));
    for (const identifier of ids) reporter.report({ eventName: 'api_requests', customerId: 'cus_p', identifier });
    const result = await reporter.flush({ timeoutMs: 60_000 });
    expect(result.settled).toBe(true);
    expect(recorded.errors.flatMap((e) => e.events.map((event) => event.identifier))).toEqual(['poison-1']);
    expect(fake.events().map((e) => e.identifier).sort()).toEqual(ids.filter((id) => id !== 'poison-1').sort());
    expect(totalsFor(fake, 'api_requests')).toEqual({ cus_p: 299 });
    expectInvariant(reporter.stats());
  } finally {
    await closeReporters();
    await proxy.close();
  }
});
