// deliveryThread: 'worker' — the HTTP exchange on a worker thread: totals, identifiers, sessions, retries, deadlines, close, a crashed worker.
import { execFile } from 'node:child_process';
import diagnostics from 'node:diagnostics_channel';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { MeterConfigError, MeterReporter } from '@metered/core';
import { trafficProblems } from '@metered/testing';
import { MockAgent } from 'undici';
import { resolveConfig } from '../src/config';
import { MAX_RESPONSE_BYTES, StripeHttp, agentOptions } from '../src/transport/http';
import { WorkerDispatcher, deliveryWorkers } from '../src/transport/worker-dispatcher';
import { expectInvariant, reporterFor, totalsFor, until, useFake } from './helpers';

const stripe = useFake({ meters: ['api_requests'] });

afterEach(() => {
  // Every request either thread sent matches Stripe's definitions, and no test leaves a worker running.
  expect(trafficProblems(stripe.fake, { allRequests: true })).toEqual([]);
});

/** Counts the requests undici creates on this (the main) thread: undici publishes them where it runs. */
function mainThreadRequests(): { count: () => number; stop: () => void } {
  let count = 0;
  const onCreate = (): void => {
    count += 1;
  };
  diagnostics.subscribe('undici:request:create', onCreate);
  return { count: () => count, stop: () => diagnostics.unsubscribe('undici:request:create', onCreate) };
}

function onlyWorker(): (typeof deliveryWorkers extends Set<infer W> ? W : never) {
  expect(deliveryWorkers.size).toBe(1);
  return [...deliveryWorkers][0]!;
}

function streamRequests() {
  return stripe.fake.requests().filter((r) => r.endpoint === 'meter_event_stream');
}

it('delivers stream batches through the worker: exact totals and identifiers, no request made on the main thread', async () => {
  const watch = mainThreadRequests();
  try {
    const { reporter, recorded } = reporterFor(stripe.fake, { deliveryThread: 'worker', concurrency: 4 });
    const identifiers = new Set<string>();
    for (let i = 0; i < 1050; i += 1) identifiers.add(reporter.report({ eventName: 'api_requests', customerId: `cus_${i % 7}`, value: 1 + (i % 3) }));
    await reporter.flush();
    expect(new Set(stripe.fake.events().map((e) => e.identifier))).toEqual(identifiers);
    const expected: Record<string, number> = {};
    for (let i = 0; i < 1050; i += 1) expected[`cus_${i % 7}`] = (expected[`cus_${i % 7}`] ?? 0) + 1 + (i % 3);
    expect(totalsFor(stripe.fake, 'api_requests')).toEqual(expected);
    expect(reporter.stats()).toMatchObject({ delivered: 1050, failed: 0, retries: 0 });
    expect(streamRequests()).toHaveLength(11);
    expect(recorded.errors).toEqual([]);
    expect(watch.count()).toBe(0);
    await reporter.close();
  } finally {
    watch.stop();
  }
});

it('the main thread makes the requests with the default, as the counter above can tell', async () => {
  const watch = mainThreadRequests();
  try {
    const { reporter } = reporterFor(stripe.fake);
    reporter.report({ eventName: 'api_requests', customerId: 'cus_1' });
    await reporter.flush();
    expect(watch.count()).toBe(2); // the session, then the batch
    expect(deliveryWorkers.size).toBe(0);
    await reporter.close();
  } finally {
    watch.stop();
  }
});

it('delivers direct-mode events through the worker, one request each', async () => {
  const { reporter } = reporterFor(stripe.fake, { deliveryThread: 'worker', mode: 'direct' });
  const identifiers = Array.from({ length: 40 }, (_, i) => reporter.report({ eventName: 'api_requests', customerId: 'cus_d', value: i + 1, identifier: `direct-${i}` }));
  await reporter.flush();
  expect(stripe.fake.events().map((e) => e.identifier).sort()).toEqual([...identifiers].sort());
  expect(totalsFor(stripe.fake, 'api_requests')).toEqual({ cus_d: (40 * 41) / 2 });
  expect(stripe.fake.requests().filter((r) => r.endpoint === 'meter_events')).toHaveLength(40);
  await reporter.close();
});

it('re-authenticates through the worker after the session expires and resends the same batch', async () => {
  const { reporter } = reporterFor(stripe.fake, { deliveryThread: 'worker' });
  reporter.report({ eventName: 'api_requests', customerId: 'cus_1' });
  await reporter.flush();
  // The fake outlives the file's tests: sessions of earlier tests expire too.
  expect(stripe.fake.faults.expireSessions()).toBeGreaterThanOrEqual(1);
  stripe.fake.reset();
  reporter.report({ eventName: 'api_requests', customerId: 'cus_1', identifier: 'after-expiry' });
  await reporter.flush();
  const stream = streamRequests();
  expect(stream.map((r) => r.status)).toEqual([401, 200]);
  expect(stream[0]!.body).toEqual(stream[1]!.body);
  expect(stream[0]!.headers['idempotency-key']).toBe(stream[1]!.headers['idempotency-key']);
  expect(reporter.stats()).toMatchObject({ delivered: 2, sessionRefreshes: 2, retries: 0 });
  expect(totalsFor(stripe.fake, 'api_requests')).toEqual({ cus_1: 1 });
  await reporter.close();
});

it('retries 503s (Stripe-Should-Retry, Retry-After read in the worker), 429s and resets through the worker, each event counted once', async () => {
  const { reporter } = reporterFor(stripe.fake, { deliveryThread: 'worker' });
  stripe.fake.faults.fail({ endpoint: 'meter_event_stream', status: 503, count: 2, afterProcessing: true });
  stripe.fake.faults.fail({ endpoint: 'meter_event_stream', status: 429, retryAfter: 0, count: 1 });
  stripe.fake.faults.resetConnection({ endpoint: 'meter_event_stream', count: 1, afterProcessing: true });
  for (let i = 0; i < 250; i += 1) reporter.report({ eventName: 'api_requests', customerId: 'cus_r' });
  await reporter.flush();
  expect(totalsFor(stripe.fake, 'api_requests')).toEqual({ cus_r: 250 });
  expect(stripe.fake.stats().duplicateEvents).toBeGreaterThan(0);
  expect(reporter.stats()).toMatchObject({ delivered: 250, failed: 0, retries: 4, rateLimited: 1 });
  expectInvariant(reporter.stats());
  await reporter.close();
});

it('hands a refusal to onError with Stripe\'s code and request id read through the worker', async () => {
  const { reporter, recorded } = reporterFor(stripe.fake, { deliveryThread: 'worker' });
  stripe.fake.faults.fail({ endpoint: 'meter_event_stream', status: 400, code: 'parameter_invalid', message: 'bad', count: 1 });
  reporter.report({ eventName: 'api_requests', customerId: 'cus_1' });
  await reporter.flush();
  expect(recorded.errors).toHaveLength(1);
  const cause = recorded.errors[0]!.error.cause as { status: number; stripeCode: string; message: string; requestId: string | undefined };
  expect(cause).toMatchObject({ status: 400, stripeCode: 'parameter_invalid' });
  expect(cause.message).toContain('bad');
  expect(cause.requestId).toMatch(/^req_/);
  await reporter.close();
});

it('keeps the deadline on the main thread: a held answer times out, is cancelled in the worker, and is retried', async () => {
  const { reporter } = reporterFor(stripe.fake, { deliveryThread: 'worker', requestTimeoutMs: 100 });
  // The worker's start (loading undici) would count against the first request's 100 ms: started first.
  reporter.report({ eventName: 'api_requests', customerId: 'cus_1' });
  await reporter.flush();
  const before = reporter.stats().retries;
  const held = stripe.fake.faults.hold({ endpoint: 'meter_event_stream', count: 1 });
  reporter.report({ eventName: 'api_requests', customerId: 'cus_1' });
  await reporter.flush();
  expect(held.triggered).toBe(1);
  held.release();
  expect(reporter.stats()).toMatchObject({ delivered: 2, retries: before + 1 });
  expect(totalsFor(stripe.fake, 'api_requests')).toEqual({ cus_1: 2 });
  await reporter.close();
});

it('close() delivers what is queued, then stops the worker; flush() before it returns the count', async () => {
  const { reporter } = reporterFor(stripe.fake, { deliveryThread: 'worker', flushIntervalMs: 60_000 });
  for (let i = 0; i < 30; i += 1) reporter.report({ eventName: 'api_requests', customerId: 'cus_c' });
  const worker = onlyWorker();
  const exited = new Promise<number>((resolve) => worker.once('exit', resolve));
  await expect(reporter.flush()).resolves.toEqual({ settled: true, pending: 0 });
  expect(reporter.stats().delivered).toBe(30);
  for (let i = 0; i < 20; i += 1) reporter.report({ eventName: 'api_requests', customerId: 'cus_c' });
  await expect(reporter.close()).resolves.toEqual({ delivered: 20, failed: 0, dropped: 0, kept: 0 });
  await expect(exited).resolves.toBe(0);
  expect(deliveryWorkers.size).toBe(0);
  expect(totalsFor(stripe.fake, 'api_requests')).toEqual({ cus_c: 50 });
});

for (const how of ['terminate', 'process.exit'] as const) {
  it(`a worker killed mid-delivery (${how}): its requests in flight are retried on the main thread, one onError, exact totals`, async () => {
    const { reporter, recorded } = reporterFor(stripe.fake, { deliveryThread: 'worker', concurrency: 2 });
    // Both first batches reach the fake, which records them and then holds their answers (a hold parks after
    // processing): the worker is killed with them in flight.
    const held = stripe.fake.faults.hold({ endpoint: 'meter_event_stream', count: 2 });
    const identifiers = new Set<string>();
    for (let i = 0; i < 300; i += 1) identifiers.add(reporter.report({ eventName: 'api_requests', customerId: `cus_${i % 3}` }));
    const flushed = reporter.flush();
    await until(() => held.triggered === 2, 'two batches held at the fake');
    const worker = onlyWorker();
    if (how === 'terminate') await worker.terminate();
    else worker.postMessage({ exit: 7 });
    await until(() => deliveryWorkers.size === 0, 'the worker gone');
    await expect(flushed).resolves.toEqual({ settled: true, pending: 0 });
    expect(reporter.stats()).toMatchObject({ delivered: 300, failed: 0 });
    held.release();
    expect(totalsFor(stripe.fake, 'api_requests')).toEqual({ cus_0: 100, cus_1: 100, cus_2: 100 });
    expect(new Set(stripe.fake.events().map((e) => e.identifier))).toEqual(identifiers);
    expect(stripe.fake.stats().duplicateEvents).toBe(200);
    expect(recorded.errors.map((e) => e.error.code)).toEqual(['ERR_METER_DELIVERY_WORKER']);
    expect(recorded.errors[0]!.error.message).toContain(how === 'terminate' ? 'exit code 1' : 'exit code 7');
    expect(recorded.errors[0]!.error.message).not.toContain(stripe.fake.apiKey);
    expect(recorded.errors[0]!.events).toEqual([]);
    // Delivery goes on on the main thread.
    reporter.report({ eventName: 'api_requests', customerId: 'cus_0' });
    await expect(reporter.close()).resolves.toMatchObject({ delivered: 1 });
    expect(totalsFor(stripe.fake, 'api_requests')).toEqual({ cus_0: 101, cus_1: 100, cus_2: 100 });
    expectInvariant(reporter.stats());
  });
}

it('cuts a response body at 256 KiB in the worker: an endless answer ends there, not at the deadline', async () => {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    const drip = setInterval(() => res.write(chunk), 1);
    res.on('close', () => clearInterval(drip));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const config = resolveConfig({ apiKey: 'sk_test_cap', requestTimeoutMs: 20_000 });
  const worker = new WorkerDispatcher({ agent: agentOptions(1), maxResponseBytes: MAX_RESPONSE_BYTES, onLost: () => undefined });
  const http = new StripeHttp(config, { beforeRequest: () => Promise.resolve(), afterResponse: () => undefined }, worker);
  try {
    const started = Date.now();
    // 256 KiB of spaces parse as nothing: the answer is read as far as the cap and the exchange ends.
    await expect(http.post(origin, '/endless', { bearer: 'sk_test_cap', body: {} })).resolves.toBeUndefined();
    expect(Date.now() - started).toBeLessThan(10_000);
  } finally {
    await http.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

it('an aborted signal cancels the request the worker holds', async () => {
  const held = stripe.fake.faults.hold({ endpoint: 'meter_event_session', count: 1 });
  const config = resolveConfig({ apiKey: stripe.fake.apiKey });
  const worker = new WorkerDispatcher({ agent: agentOptions(1), maxResponseBytes: MAX_RESPONSE_BYTES, onLost: () => undefined });
  const http = new StripeHttp(config, { beforeRequest: () => Promise.resolve(), afterResponse: () => undefined }, worker);
  try {
    const controller = new AbortController();
    const sent = http.post(stripe.fake.url, '/v2/billing/meter_event_session', { bearer: stripe.fake.apiKey, body: {}, signal: controller.signal });
    await until(() => held.triggered === 1, 'the request held at the fake');
    controller.abort(new Error('given up'));
    await expect(sent).rejects.toThrow('given up');
  } finally {
    held.release();
    await http.close();
  }
});

it('after close(), a request is refused as a closed agent refuses it (retriable UND_ERR_CLOSED), not sent from a new agent', async () => {
  const watch = mainThreadRequests();
  const config = resolveConfig({ apiKey: stripe.fake.apiKey });
  const worker = new WorkerDispatcher({ agent: agentOptions(1), maxResponseBytes: MAX_RESPONSE_BYTES, onLost: () => undefined });
  const http = new StripeHttp(config, { beforeRequest: () => Promise.resolve(), afterResponse: () => undefined }, worker);
  try {
    await http.post(stripe.fake.url, '/v2/billing/meter_event_session', { bearer: stripe.fake.apiKey, body: {} });
    await http.close();
    expect(deliveryWorkers.size).toBe(0);
    await expect(http.post(stripe.fake.url, '/v2/billing/meter_event_session', { bearer: stripe.fake.apiKey, body: {} })).rejects.toMatchObject({ code: 'UND_ERR_CLOSED' });
    expect(watch.count()).toBe(0);
    expect(stripe.fake.requests()).toHaveLength(1);
  } finally {
    watch.stop();
  }
});

it('lets a script that never calls close() deliver everything and exit: the worker holds the process only while a request is in flight', async () => {
  const core = JSON.stringify(path.resolve(__dirname, '../src/index.ts'));
  const script = `
    const { MeterReporter } = require(${core});
    const r = new MeterReporter({ apiKey: process.env.KEY, apiBaseUrl: process.env.API, meterEventsBaseUrl: process.env.EVENTS, deliveryThread: 'worker', maxRequestsPerSecond: 1000, logger: { warn() {}, error() {} } });
    for (let i = 0; i < 150; i += 1) r.report({ eventName: 'api_requests', customerId: 'cus_exit', identifier: 'worker-exit-' + i });
    process.on('exit', () => process.stdout.write(JSON.stringify(r.stats())));
  `;
  const { fake } = stripe;
  const { stdout, stderr } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '-e', script], {
    cwd: path.resolve(__dirname, '../../..'),
    timeout: 30_000,
    env: { ...process.env, KEY: fake.apiKey, API: fake.url, EVENTS: fake.meterEventsUrl },
  });
  expect(stderr).toBe('');
  expect(JSON.parse(stdout)).toMatchObject({ enqueued: 150, delivered: 150, pending: 0 });
  expect(totalsFor(fake, 'api_requests')).toEqual({ cus_exit: 150 });
}, 40_000);

describe('the option', () => {
  it.each([['threads'], [1], [null]])('refuses deliveryThread %p, naming it', (value) => {
    expect(() => new MeterReporter({ apiKey: 'sk_test_x', deliveryThread: value as never })).toThrow(
      expect.objectContaining({ name: 'MeterConfigError', code: 'ERR_METER_INVALID_OPTION', option: 'deliveryThread' }),
    );
  });

  it("refuses 'worker' with a dispatcher of the user's own, which cannot cross threads", () => {
    const build = (): MeterReporter => new MeterReporter({ apiKey: 'sk_test_x', deliveryThread: 'worker', dispatcher: new MockAgent() });
    expect(build).toThrow(MeterConfigError);
    expect(build).toThrow(/"deliveryThread": cannot be 'worker' with a dispatcher of your own/);
    expect(deliveryWorkers.size).toBe(0);
  });

  it("defaults to 'main' and takes 'main' with a dispatcher", () => {
    expect(resolveConfig({ apiKey: 'sk_test_x' }).deliveryThread).toBe('main');
    expect(resolveConfig({ apiKey: 'sk_test_x', deliveryThread: 'main', dispatcher: new MockAgent() }).deliveryThread).toBe('main');
  });
});
