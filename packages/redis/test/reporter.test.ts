// RedisMeterReporter against real Redis and the fake: shared delivery, enqueue-only servers with a worker, the shared rate, Redis restarts and outages.
import { startFakeStripe } from '@metered/testing';
import type { FakeStripe } from '@metered/testing';
import type { MeterError } from '@metered/core';
import { RedisMeterReporter, startWorker } from '@metered/redis';
import type { RedisMeterReporterOptions } from '@metered/redis';
import { describeRedis, itWithRedisServer, onCleanup, ownRedis, rawClient, REDIS_URL, uniquePrefix, until } from './helpers';

let fake: FakeStripe;

afterEach(async () => {
  await fake?.close();
});

function reporterOf(prefix: string, options: Partial<RedisMeterReporterOptions> = {}): { reporter: RedisMeterReporter; errors: MeterError[] } {
  const errors: MeterError[] = [];
  const reporter = new RedisMeterReporter({
    apiKey: fake.apiKey,
    apiBaseUrl: fake.url,
    meterEventsBaseUrl: fake.meterEventsUrl,
    redis: REDIS_URL,
    keyPrefix: prefix,
    maxRequestsPerSecond: 1000,
    retry: { initialDelayMs: 5, maxDelayMs: 50, maxAttempts: 50 },
    queue: { pollIntervalMs: 10, retryIntervalMs: 50 },
    onError: (error) => errors.push(error),
    logger: { warn: () => undefined, error: () => undefined },
    ...options,
  });
  onCleanup(async () => {
    await reporter.close({ timeoutMs: 0 });
  });
  return { reporter, errors };
}

/** Distinct identifiers the fake accepted (it deduplicates), and its total value. */
function accepted(): { ids: Set<string>; total: bigint } {
  const events = fake.events();
  return { ids: new Set(events.map((e) => e.identifier)), total: events.reduce((sum, e) => sum + BigInt(e.value), 0n) };
}

describeRedis('RedisMeterReporter', () => {
  const withServer = itWithRedisServer();
  beforeEach(async () => {
    fake = await startFakeStripe({ meters: ['api_requests'] });
  });

  it('delivers what two replicas report, each event once, and flush() waits until the shared queue has it delivered', async () => {
    const prefix = uniquePrefix();
    const { reporter: a } = reporterOf(prefix);
    const { reporter: b } = reporterOf(prefix);
    for (let i = 0; i < 500; i += 1) (i % 2 === 0 ? a : b).report({ eventName: 'api_requests', customerId: `cus_${i % 7}`, value: i + 1, identifier: `evt_${i}` });
    const [fa, fb] = await Promise.all([a.flush({ timeoutMs: 20_000 }), b.flush({ timeoutMs: 20_000 })]);
    expect(fa).toEqual({ settled: true, pending: 0 });
    expect(fb).toEqual({ settled: true, pending: 0 });
    const { ids, total } = accepted();
    expect(ids.size).toBe(500);
    expect(total).toBe(BigInt((500 * 501) / 2));
    expect(fake.stats().duplicateEvents).toBe(0);
  });

  it('an enqueue-only server never calls Stripe; the worker delivers what it enqueued', async () => {
    const prefix = uniquePrefix();
    const { reporter: api } = reporterOf(prefix, { deliver: false });
    for (let i = 0; i < 300; i += 1) api.report({ eventName: 'api_requests', customerId: 'cus_1', identifier: `evt_${i}` });
    const worker = startWorker({ apiKey: fake.apiKey, apiBaseUrl: fake.url, meterEventsBaseUrl: fake.meterEventsUrl, redis: REDIS_URL, keyPrefix: prefix, maxRequestsPerSecond: 1000, queue: { pollIntervalMs: 10 } });
    onCleanup(() => worker.close({ timeoutMs: 0 }).then(() => undefined));
    expect(await api.flush({ timeoutMs: 20_000 })).toEqual({ settled: true, pending: 0 });
    expect(accepted().ids.size).toBe(300);
    expect(api.stats().requests).toBe(0);
    expect(worker.stats().delivered).toBe(300);
  });

  withServer('Redis down at start: report() never throws, one ERR_METER_REDIS_UNAVAILABLE, everything delivered once Redis is up', async () => {
    const server = await ownRedis(false);
    const { reporter, errors } = reporterOf(uniquePrefix(), { redis: server.url });
    for (let i = 0; i < 200; i += 1) reporter.report({ eventName: 'api_requests', customerId: 'cus_1', identifier: `evt_${i}` });
    await until(() => errors.some((e) => e.code === 'ERR_METER_REDIS_UNAVAILABLE'), 'the outage reported');
    expect(fake.events()).toHaveLength(0);
    await server.start();
    expect(await reporter.flush({ timeoutMs: 20_000 })).toEqual({ settled: true, pending: 0 });
    expect(accepted().ids.size).toBe(200);
    expect(errors.filter((e) => e.code === 'ERR_METER_REDIS_UNAVAILABLE')).toHaveLength(1);
  });

  // Its waits (three of up to 10 s, a flush of up to 30 s) can exceed the file's 30 s when the whole repository's tests share two cores.
  // It once left one entry pending in about one run of two (issue 13): a read Redis ran whose answer died with the
  // connection left its entry pending on this consumer, unseen until XAUTOCLAIM found it idle past claimIdleMs (30 s).
  withServer('Redis (AOF, every write fsynced) SIGKILLed and restarted mid-run: nothing lost, each event billed once', async () => {
    const server = await ownRedis(true);
    await server.start();
    const prefix = uniquePrefix();
    const { reporter } = reporterOf(prefix, { redis: server.url, maxBatchSize: 50 });
    let sent = 0;
    const reportSome = (n: number): void => {
      for (let i = 0; i < n; i += 1, sent += 1) reporter.report({ eventName: 'api_requests', customerId: `cus_${sent % 5}`, value: 2, identifier: `evt_${sent}` });
    };
    // Under load: a steady trickle of reports while Redis dies, stays down, and comes back.
    const trickle = setInterval(() => reportSome(50), 5);
    try {
      await until(() => fake.events().length >= 500, 'delivery under way');
      await server.stop('SIGKILL');
      await until(() => sent >= 2000 + fake.events().length, 'reports while Redis is down');
      await server.start();
      await until(() => sent >= 6000, 'reports after the restart');
    } finally {
      clearInterval(trickle);
    }
    expect(await reporter.flush({ timeoutMs: 30_000 })).toEqual({ settled: true, pending: 0 });
    const { ids, total } = accepted();
    expect(ids.size).toBe(sent);
    expect(total).toBe(BigInt(sent * 2));
  }, 120_000);
});

describeRedis('the shared rate limit', () => {
  it('three instances at L = 25 requests/s together deliver at least 0.95·L with zero 429s', async () => {
    fake = await startFakeStripe({ meters: ['api_requests'], rateLimit: { requestsPerSecond: 25 } });
    const prefix = uniquePrefix();
    // One event per request: the demand is far above L for the whole window.
    const instances = [0, 1, 2].map(() => reporterOf(prefix, { maxRequestsPerSecond: 25, maxBatchSize: 1, concurrency: 4 }).reporter);
    for (let i = 0; i < 3000; i += 1) instances[i % 3]!.report({ eventName: 'api_requests', customerId: 'cus_1', identifier: `evt_${i}` });
    await until(() => fake.events().length >= 10, 'delivery under way');
    const from = { at: Date.now(), requests: fake.stats().requests };
    await new Promise((resolve) => setTimeout(resolve, 6000));
    const to = { at: Date.now(), requests: fake.stats().requests };
    const rate = ((to.requests - from.requests) * 1000) / (to.at - from.at);
    expect(rate).toBeGreaterThanOrEqual(0.95 * 25);
    expect(fake.requests().filter((r) => r.status === 429)).toEqual([]);
    expect(instances.reduce((sum, r) => sum + r.stats().rateLimited, 0)).toBe(0);
  });

  it("one instance's 429 Retry-After pauses every instance", async () => {
    fake = await startFakeStripe({ meters: ['api_requests'] });
    const prefix = uniquePrefix();
    const [a, b] = [reporterOf(prefix).reporter, reporterOf(prefix).reporter];
    const raw = rawClient();
    await until(() => a.limiter!['redis'].status === 'ready' && raw.status === 'ready', 'the connections');
    a.limiter!.pauseUntil(Date.now() + 1500);
    await until(async () => (await raw.pttl(`{${prefix}}:pause`)) > 0, 'the shared pause');
    const started = Date.now();
    b.report({ eventName: 'api_requests', customerId: 'cus_1' });
    await b.flush({ timeoutMs: 10_000 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
  });
});
