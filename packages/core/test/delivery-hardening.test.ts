// Delivery under hostile conditions: long timers, bad close/flush options, Retry-After, a refused key, refused batches, secrets in inspect.
import { format, inspect } from 'node:util';
import { MockAgent } from 'undici';
import { MeterConfigError, MeterReporter, withTimeout } from '@metered/core';
import { startFakeStripe, trafficProblems } from '@metered/testing';
import type { FakeStripe } from '@metered/testing';
import { MAX_RETRY_AFTER_MS, classifyFailure, retryAfterMs } from '../src/delivery/retry';
import { StripeApiError } from '../src/errors';
import { closeReporters, expectInvariant, reporterFor, totalsFor, until } from './helpers';

let fake: FakeStripe;

beforeEach(async () => {
  fake = await startFakeStripe();
});

afterEach(async () => {
  await closeReporters();
  expect(trafficProblems(fake, { allRequests: true })).toEqual([]);
  fake.faults.clear();
  await fake.close();
});

const stream = () => fake.requests().filter((r) => r.endpoint === 'meter_event_stream');

describe('long timers', () => {
  it('close({ timeoutMs: 2 ** 31 }) waits for delivery instead of overflowing to 1 ms and dropping', async () => {
    const { reporter, recorded } = reporterFor(fake);
    const held = fake.faults.hold({ endpoint: 'meter_event_stream' });
    for (let i = 0; i < 10; i += 1) reporter.report({ eventName: 'api_requests', customerId: 'cus_1' });
    let closed = false;
    const closing = reporter.close({ timeoutMs: 2 ** 31 }).then((result) => {
      closed = true;
      return result;
    });
    await until(() => held.triggered >= 1, 'the batch to be parked');
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(closed).toBe(false);
    held.release();
    expect(await closing).toEqual({ delivered: 10, failed: 0, dropped: 0, kept: 0 });
    expect(recorded.drops).toEqual([]);
  });

  it('withTimeout(fn, 2 ** 31) waits for fn instead of timing out after 1 ms', async () => {
    await expect(withTimeout(() => new Promise((resolve) => setTimeout(() => resolve('done'), 50)), 2 ** 31, 'a slow step')).resolves.toBe('done');
  });

  it('a 429 with Retry-After: 3000000 neither spins the CPU nor pauses past the cap', async () => {
    const warnings: Error[] = [];
    const onWarning = (warning: Error): void => void warnings.push(warning);
    process.on('warning', onWarning);
    try {
      const { reporter } = reporterFor(fake);
      fake.faults.fail({ endpoint: 'meter_event_stream', status: 429, retryAfter: 3_000_000, count: 1 });
      reporter.report({ eventName: 'api_requests', customerId: 'cus_1' });
      const flushed = reporter.flush({ timeoutMs: 0 });
      await until(() => stream().length === 1, 'the 429');
      const cpu = process.cpuUsage();
      await new Promise((resolve) => setTimeout(resolve, 500));
      const used = process.cpuUsage(cpu);
      expect((used.user + used.system) / 1000).toBeLessThan(200);
      expect(stream()).toHaveLength(1);
      await flushed;
      expect(warnings.filter((w) => w.name === 'TimeoutOverflowWarning')).toEqual([]);
      expect(reporter.stats()).toMatchObject({ pending: 1, failed: 0 });
    } finally {
      process.off('warning', onWarning);
    }
    expect(retryAfterMs(3_000_000)).toBe(MAX_RETRY_AFTER_MS);
    expect(retryAfterMs(2)).toBe(2000);
  });
});

describe('close and flush options', () => {
  it('a bad close({ timeoutMs: -1 }) rejects with a coded error, is not cached, and leaves the reporter running', async () => {
    const { reporter } = reporterFor(fake);
    reporter.report({ eventName: 'api_requests', customerId: 'cus_1' });
    const bad = reporter.close({ timeoutMs: -1 });
    await expect(bad).rejects.toBeInstanceOf(MeterConfigError);
    await expect(bad).rejects.toMatchObject({ code: 'ERR_METER_INVALID_OPTION', option: 'timeoutMs' });
    // Not half-closed: intake goes on and the next close() delivers everything.
    expect(() => reporter.report({ eventName: 'api_requests', customerId: 'cus_1' })).not.toThrow();
    expect(await reporter.close()).toEqual({ delivered: 2, failed: 0, dropped: 0, kept: 0 });
  });

  it('a bad flush({ timeoutMs }) rejects with a coded error', async () => {
    const { reporter } = reporterFor(fake);
    await expect(reporter.flush({ timeoutMs: Number.NaN })).rejects.toMatchObject({ code: 'ERR_METER_INVALID_OPTION', option: 'timeoutMs' });
  });

  it('flush({ timeoutMs }) resolves when the bound passes, says what is pending, and drops nothing', async () => {
    const { reporter, recorded } = reporterFor(fake, { flushIntervalMs: 60_000 });
    const held = fake.faults.hold({ endpoint: 'meter_event_stream' });
    for (let i = 0; i < 3; i += 1) reporter.report({ eventName: 'api_requests', customerId: 'cus_1' });
    expect(await reporter.flush({ timeoutMs: 100 })).toEqual({ settled: false, pending: 3 });
    expect(recorded.drops).toEqual([]);
    expect(reporter.stats().pending).toBe(3);
    held.release();
    expect(await reporter.flush()).toEqual({ settled: true, pending: 0 });
    expect(totalsFor(fake, 'api_requests')).toEqual({ cus_1: 3 });
  });
});

describe('Retry-After and 429', () => {
  it('a 429 never uses up maxAttempts nor sends a batch to onError', async () => {
    const { reporter, recorded } = reporterFor(fake, { retry: { initialDelayMs: 1, maxDelayMs: 2, maxAttempts: 1 } });
    fake.faults.fail({ endpoint: 'meter_event_stream', status: 429, count: 20 });
    reporter.report({ eventName: 'api_requests', customerId: 'cus_1' });
    await reporter.flush();
    expect(recorded.errors).toEqual([]);
    expect(reporter.stats()).toMatchObject({ delivered: 1, rateLimited: 20, retries: 20 });
  });

  it('maxAttempts bounds only answers retriable by Stripe-Should-Retry', () => {
    const api = (status: number, shouldRetry?: boolean) => new StripeApiError(status, undefined, undefined, undefined, undefined, shouldRetry, undefined);
    expect(classifyFailure(api(400, true))).toBe('retriable');
    expect(classifyFailure(api(503))).toBe('transient');
    expect(classifyFailure(api(429))).toBe('transient');
    expect(classifyFailure(api(503, false))).toBe('final');
    expect(classifyFailure(Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }))).toBe('transient');
  });
});

describe('a refused API key', () => {
  it('direct mode with a wrong key makes a handful of requests, tells onError once, and keeps the events', async () => {
    const { reporter, recorded } = reporterFor(fake, { mode: 'direct', apiKey: 'sk_test_wrongkey0000000000' });
    for (let i = 0; i < 200; i += 1) reporter.report({ eventName: 'api_requests', customerId: `cus_${i}` });
    await until(() => recorded.errors.length > 0, 'the breaker to open');
    await new Promise((resolve) => setTimeout(resolve, 500));
    // The first wave of concurrent requests (concurrency 8), then nothing until the first probe 5 s later.
    expect(fake.requests().length).toBeLessThanOrEqual(8);
    expect(recorded.errors).toHaveLength(1);
    expect(recorded.errors[0]!.error).toMatchObject({ code: 'ERR_METER_UNAUTHORIZED', name: 'MeterUnauthorizedError', status: 401 });
    expect(recorded.errors[0]!.events).toEqual([]);
    expect(recorded.errors[0]!.error.message).not.toContain('wrongkey');
    expect(reporter.stats()).toMatchObject({ pending: 200, failed: 0 });
    await expect(reporter.cancel({ eventName: 'api_requests', identifier: 'x' })).rejects.toMatchObject({ code: 'ERR_METER_UNAUTHORIZED' });
    expect(fake.requests().length).toBeLessThanOrEqual(8);
    // close() while the breaker is open drops the rest as shutdown, as for any undelivered event.
    expect(await reporter.close({ timeoutMs: 0 })).toMatchObject({ dropped: 200, failed: 0 });
    expectInvariant(reporter.stats());
  });

  it('stream mode with a wrong key tries one session, not one per batch', async () => {
    const { reporter, recorded } = reporterFor(fake, { apiKey: 'sk_test_wrongkey0000000000', concurrency: 4 });
    for (let i = 0; i < 400; i += 1) reporter.report({ eventName: 'api_requests', customerId: 'cus_1' });
    await until(() => recorded.errors.length > 0, 'the breaker to open');
    expect(fake.requests().filter((r) => r.endpoint === 'meter_event_session')).toHaveLength(1);
    expect(stream()).toEqual([]);
    expect(recorded.errors.map((e) => e.error.code)).toEqual(['ERR_METER_UNAUTHORIZED']);
  });

  it('gives a batch held at the breaker longer than its retry budget the whole budget once the key works', async () => {
    // The probe comes 5 s after the refusal, past maxElapsedMs; then one 503, which the budget must still cover.
    const { reporter, recorded } = reporterFor(fake, { mode: 'direct', concurrency: 1, retry: { maxElapsedMs: 2_000, initialDelayMs: 10, maxDelayMs: 50 } });
    fake.faults.fail({ endpoint: 'meter_events', status: 401, count: 1 });
    fake.faults.fail({ endpoint: 'meter_events', status: 503, count: 1 });
    reporter.report({ eventName: 'api_requests', customerId: 'cus_held' });
    await until(() => reporter.stats().delivered + reporter.stats().failed === 1, 'the held event to be settled', 15_000);
    expect(reporter.stats()).toMatchObject({ delivered: 1, failed: 0 });
    expect(fake.requests().map((r) => r.status)).toEqual([401, 503, 200]);
    expect(recorded.errors.map((e) => e.error.code)).toEqual(['ERR_METER_UNAUTHORIZED']);
  }, 20_000);

  it('resumes when a probe succeeds, delivering every held event once', async () => {
    const { reporter, recorded } = reporterFor(fake, { mode: 'direct', concurrency: 2 });
    // A key refused for a moment (rotated late): both concurrent requests are refused, the probe is not.
    fake.faults.fail({ endpoint: 'meter_events', status: 401, count: 2 });
    for (let i = 0; i < 20; i += 1) reporter.report({ eventName: 'api_requests', customerId: `cus_${i % 4}` });
    await until(() => reporter.stats().delivered === 20, 'delivery after the probe', 15_000);
    expect(recorded.errors.map((e) => e.error.code)).toEqual(['ERR_METER_UNAUTHORIZED']);
    expect(fake.requests().filter((r) => r.status === 401)).toHaveLength(2);
    expect(totalsFor(fake, 'api_requests')).toEqual({ cus_0: 5, cus_1: 5, cus_2: 5, cus_3: 5 });
  }, 20_000);
});

describe('a batch Stripe refuses whole', () => {
  it('is split in halves with the same identifiers until the refused event is alone; the other 99 are delivered', async () => {
    const agent = new MockAgent();
    agent.disableNetConnect();
    agent
      .get('https://api.stripe.com')
      .intercept({ path: '/v2/billing/meter_event_session', method: 'POST' })
      .reply(200, { authentication_token: 'ek_test_splittoken1234567', expires_at: new Date(Date.now() + 900_000).toISOString() })
      .persist();
    const bodies: { key: string; ids: string[] }[] = [];
    agent
      .get('https://meter-events.stripe.com')
      .intercept({ path: '/v2/billing/meter_event_stream', method: 'POST' })
      .reply<object>((options) => {
        const ids = (JSON.parse(options.body as string) as { events: { identifier: string }[] }).events.map((e) => e.identifier);
        bodies.push({ key: (options.headers as Record<string, string>)['idempotency-key']!, ids });
        // Like Stripe for a body it cannot take: a 400 for the request, naming no event.
        return ids.includes('poison') ? { statusCode: 400, data: { error: { type: 'invalid_request_error', code: 'parameter_invalid', message: 'bad request' } } } : { statusCode: 200, data: {} };
      })
      .persist();
    const errors: { code: string; ids: string[] }[] = [];
    const reporter = new MeterReporter({
      apiKey: 'sk_test_split',
      dispatcher: agent,
      flushIntervalMs: 60_000,
      maxRequestsPerSecond: 10_000,
      concurrency: 1,
      onError: (error, events) => errors.push({ code: error.code, ids: events.map((e) => e.identifier) }),
    });
    const ids = Array.from({ length: 100 }, (_, i) => (i === 37 ? 'poison' : `good-${i}`));
    for (const identifier of ids) reporter.report({ eventName: 'api_requests', customerId: 'cus_1', identifier });
    await reporter.flush();
    expect(errors).toEqual([{ code: 'ERR_METER_DELIVERY_FAILED', ids: ['poison'] }]);
    expect(reporter.stats()).toMatchObject({ delivered: 99, failed: 1, pending: 0 });
    const accepted = bodies.filter((b) => !b.ids.includes('poison')).flatMap((b) => b.ids);
    expect(accepted.sort()).toEqual(ids.filter((id) => id !== 'poison').sort());
    // One Idempotency-Key per distinct body; ~2·log2(100) requests, not one per event.
    expect(new Set(bodies.map((b) => b.key)).size).toBe(bodies.length);
    expect(bodies.length).toBeLessThanOrEqual(15);
    await reporter.close();
    await agent.close();
  });

  it('resends the halves of a batch refused for no event of its own, and every event is recorded once', async () => {
    const { reporter, recorded } = reporterFor(fake, { concurrency: 1, flushIntervalMs: 60_000 });
    fake.faults.fail({ endpoint: 'meter_event_stream', status: 400, code: 'request_too_large', count: 1 });
    for (let i = 0; i < 100; i += 1) reporter.report({ eventName: 'api_requests', customerId: 'cus_1', identifier: `half-${i}` });
    await reporter.flush();
    expect(recorded.errors).toEqual([]);
    expect(stream().map((r) => (r.body as { events: unknown[] }).events.length)).toEqual([100, 50, 50]);
    expect(totalsFor(fake, 'api_requests')).toEqual({ cus_1: 100 });
  });
});

describe('secrets in util.inspect', () => {
  it('shows no API key and no session token, with a session live', async () => {
    const { reporter } = reporterFor(fake);
    reporter.report({ eventName: 'api_requests', customerId: 'cus_1' });
    await reporter.flush();
    expect(reporter.stats().sessionRefreshes).toBe(1);
    const views = [
      inspect(reporter, { depth: 10 }),
      inspect(reporter, { depth: 10, showHidden: true }),
      inspect(reporter, { depth: 10, showHidden: true, customInspect: false }),
      format('%o', reporter),
      format('%O', { holder: reporter }),
      JSON.stringify(reporter),
      JSON.stringify({ holder: reporter }),
    ];
    for (const view of views) {
      expect(view).not.toContain(fake.apiKey);
      expect(view).not.toMatch(/ek_test_[A-Za-z0-9_-]{10,}/);
    }
    expect(JSON.parse(views[5]!)).toMatchObject({ mode: 'stream', closed: false, stats: { delivered: 1 } });
  });
});

describe('a retry where Stripe may no longer deduplicate', () => {
  it('is not sent: events whose request may have landed 23 h ago go to onError as uncertain, not sent again', async () => {
    let offset = 0;
    const realNow = Date.now.bind(Date);
    jest.spyOn(Date, 'now').mockImplementation(() => realNow() + offset);
    try {
      const agent = new MockAgent();
      agent.disableNetConnect();
      agent
        .get('https://api.stripe.com')
        .intercept({ path: '/v2/billing/meter_event_session', method: 'POST' })
        .reply(200, () => ({ authentication_token: 'ek_test_windowtoken12345', expires_at: new Date(Date.now() + 900_000).toISOString() }))
        .persist();
      let sent = 0;
      agent
        .get('https://meter-events.stripe.com')
        .intercept({ path: '/v2/billing/meter_event_stream', method: 'POST' })
        .reply<object>(() => {
          sent += 1;
          // Stripe may have taken it; the answer, a 500, comes back as if 23 h had passed meanwhile.
          offset += 23 * 3_600_000;
          return { statusCode: 500, data: { error: { type: 'api_error', message: 'boom' } } };
        })
        .persist();
      const errors: { code: string; ids: string[] }[] = [];
      const reporter = new MeterReporter({
        apiKey: 'sk_test_window',
        dispatcher: agent,
        flushIntervalMs: 60_000,
        maxRequestsPerSecond: 10_000,
        // Allowed: a day of retries. The loop still stops where Stripe's duplicate window ends.
        retry: { initialDelayMs: 1, maxDelayMs: 1, maxElapsedMs: 24 * 3_600_000 },
        onError: (error, events) => errors.push({ code: error.code, ids: events.map((e) => e.identifier) }),
      });
      reporter.report({ eventName: 'api_requests', customerId: 'cus_1', identifier: 'late-1' });
      await reporter.flush();
      expect(sent).toBe(1);
      expect(errors).toEqual([{ code: 'ERR_METER_DELIVERY_UNCERTAIN', ids: ['late-1'] }]);
      expect(reporter.stats()).toMatchObject({ failed: 1, pending: 0, delivered: 0 });
      await reporter.close();
    } finally {
      jest.restoreAllMocks();
    }
  });
});
