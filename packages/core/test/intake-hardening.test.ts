// Intake and HTTP hardening (issue 10): what report() accepts is what is sent, options say no loudly,
// no customer id hides white space, one event cannot sink a batch, and no server can hold a request open.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { MeterReporter, MeterValidationError, StripeApiError, redactSecrets } from '@metered/core';
import { startFakeStripe } from '@metered/testing';
import type { FakeStripe } from '@metered/testing';
import { MAX_DIMENSIONS_BYTES, MAX_EVENT_AGE_MS, EXPIRY_MARGIN_MS } from '../src/intake/validate';
import { MAX_RESPONSE_BYTES, StripeHttp } from '../src/transport/http';
import { resolveConfig } from '../src/config';
import { reporterFor } from './helpers';

const KEY = 'sk_test_intakehardening0123456789';

function validationError(fn: () => unknown): MeterValidationError {
  try {
    fn();
  } catch (error) {
    if (error instanceof MeterValidationError) return error;
    throw error;
  }
  throw new Error('expected a MeterValidationError');
}

describe('dimensions are copied when validated', () => {
  let fake: FakeStripe;
  beforeEach(async () => {
    fake = await startFakeStripe();
  });
  afterEach(async () => {
    await fake.close();
  });

  it('bills the dimension values given to report(), not what the caller changed afterwards', async () => {
    const { reporter } = reporterFor(fake);
    try {
      const dimensions: Record<string, unknown> = { region: 'eu' };
      reporter.report({ eventName: 'api_requests', customerId: 'cus_a', dimensions: dimensions as Record<string, string> });
      dimensions.region = 'us';
      reporter.report({ eventName: 'api_requests', customerId: 'cus_a', dimensions: dimensions as Record<string, string> });
      // A value turned into a number after report() would have made the whole batch of 100 fail.
      dimensions.region = 42;
      await reporter.flush();
      const sent = fake.events().map((e) => e.payload.region);
      expect(sent).toEqual(['eu', 'us']);
      expect(reporter.stats()).toMatchObject({ delivered: 2, failed: 0 });
    } finally {
      await reporter.close();
    }
  });

  it('keeps a "__proto__" dimension key a plain key', async () => {
    const { reporter } = reporterFor(fake);
    try {
      const dimensions = JSON.parse('{"__proto__": "x", "tier": "gold"}') as Record<string, string>;
      reporter.report({ eventName: 'api_requests', customerId: 'cus_a', dimensions });
      await reporter.flush();
      expect(fake.events()[0]?.payload).toMatchObject({ tier: 'gold' });
      expect(Object.keys(fake.events()[0]?.payload ?? {})).toContain('__proto__');
    } finally {
      await reporter.close();
    }
  });
});

describe('one event cannot make its batch too large', () => {
  const reporter = new MeterReporter({ apiKey: KEY, flushIntervalMs: 60_000, onDrop: () => undefined });
  afterAll(() => reporter.close({ timeoutMs: 0 }));
  const base = { eventName: 'api_requests', customerId: 'cus_a' };

  it.each<[string, Record<string, string>, string]>([
    ['a 1 MB dimension value', { blob: 'x'.repeat(1_000_000) }, 'dimensions.blob'],
    ['51 dimension keys', Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`k${i}`, 'v'])), 'dimensions'],
    ['a 101-character key', { ['k'.repeat(101)]: 'v' }, `dimensions.${'k'.repeat(100)}`],
    ['an empty key', { '': 'v' }, 'dimensions.'],
    ['dimensions over the byte budget', Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`key${i}`, 'é'.repeat(999)])), 'dimensions'],
  ])('refuses %s with a coded error naming the field', (_what, dimensions, field) => {
    const error = validationError(() => reporter.report({ ...base, dimensions }));
    expect(error.code).toBe('ERR_METER_INVALID_DIMENSIONS');
    expect(error.field).toBe(field);
    expect(reporter.stats().enqueued).toBe(0);
  });

  it('accepts dimensions up to the byte budget', () => {
    // Nine values of 990 ASCII characters: 9 × (990 + 2 quotes + ~8 for the key and punctuation) ≈ 9,000 bytes.
    const dimensions = Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`k${i}`, 'v'.repeat(990)]));
    expect(Buffer.byteLength(JSON.stringify(dimensions))).toBeLessThan(MAX_DIMENSIONS_BYTES);
    expect(() => reporter.report({ ...base, dimensions })).not.toThrow();
  });
});

describe('customer ids', () => {
  const reporter = new MeterReporter({ apiKey: KEY, flushIntervalMs: 60_000, onDrop: () => undefined });
  afterAll(() => reporter.close({ timeoutMs: 0 }));

  it.each(['\u00a0cus_a', 'cus_a\u00a0', 'cus_a\u2028', '\ufeffcus_a', 'cus_a\u3000', 'cus_a\u200a', '\tcus_a', 'cus_a\u0085', 'cus\u0000a', 'cus\u009fa', 'c'.repeat(256)])(
    'refuses %j, which would bill a customer that does not exist',
    (customerId) => {
      expect(validationError(() => reporter.report({ eventName: 'api_requests', customerId })).code).toBe('ERR_METER_INVALID_CUSTOMER');
    },
  );

  it.each(['cus_a', 'cus_Ünïcödé', 'c', 'c'.repeat(255), 'cus_a b'])('accepts %j', (customerId) => {
    expect(() => reporter.report({ eventName: 'api_requests', customerId })).not.toThrow();
  });
});

describe('timestamps inside the expiry margin', () => {
  const reporter = new MeterReporter({ apiKey: KEY, flushIntervalMs: 60_000, onDrop: () => undefined });
  afterAll(() => reporter.close({ timeoutMs: 0 }));

  it('refuses a timestamp that would be dropped as expired right after being accepted', () => {
    const now = Date.now();
    const error = validationError(() => reporter.report({ eventName: 'e', customerId: 'cus_a', timestamp: now - MAX_EVENT_AGE_MS + EXPIRY_MARGIN_MS / 2 }));
    expect(error.code).toBe('ERR_METER_INVALID_TIMESTAMP');
    expect(error.message).toMatch(/35 days/);
    expect(() => reporter.report({ eventName: 'e', customerId: 'cus_a', timestamp: now - MAX_EVENT_AGE_MS + 2 * EXPIRY_MARGIN_MS })).not.toThrow();
  });
});

describe('options that say no', () => {
  const ok = { apiKey: KEY } as const;

  it.each<[string, Partial<Record<string, unknown>>, string]>([
    ['an unknown retry key', { retry: { maxAttemps: 3 } }, 'maxAttemps'],
    ['an unknown payloadKeys key', { payloadKeys: { customerId: 'x' } }, 'customerId'],
    ['a retry that is not an object', { retry: 5 }, 'options'],
    ['flushIntervalMs past the largest timer', { flushIntervalMs: 2 ** 31 }, 'flushIntervalMs'],
    ['requestTimeoutMs past the largest timer', { requestTimeoutMs: 2 ** 31 }, 'requestTimeoutMs'],
    ['retry.maxDelayMs past the largest timer', { retry: { maxDelayMs: 2 ** 31 } }, 'retry.maxDelayMs'],
    ["retry.maxElapsedMs past Stripe's 24 h dedup window", { retry: { maxElapsedMs: 24 * 3600 * 1000 + 1 } }, 'retry.maxElapsedMs'],
  ])('refuses %s', (_what, options, option) => {
    expect(() => new MeterReporter({ ...ok, ...options })).toThrow(expect.objectContaining({ code: 'ERR_METER_INVALID_OPTION', option }));
  });

  it('accepts the largest timer and a 24 h retry budget', async () => {
    const reporter = new MeterReporter({ ...ok, flushIntervalMs: 2 ** 31 - 1, retry: { maxElapsedMs: 24 * 3600 * 1000 } });
    await reporter.close({ timeoutMs: 0 });
  });
});

describe('redaction', () => {
  it('redacts a key glued to a word', () => {
    expect(redactSecrets('apikey_sk_test_abcdefgh12345678 and xsk_live_abc123')).toBe('apikey_[REDACTED] and x[REDACTED]');
  });

  it('redacts the configured key literally, whatever its shape around it', async () => {
    const reporter = new MeterReporter({ apiKey: 'sk_test_LiteralKey987654321' });
    await reporter.close({ timeoutMs: 0 });
    expect(redactSecrets('key=sk_test_LiteralKey987654321;')).not.toContain('LiteralKey987654321');
  });
});

/** A server that answers the stream with headers at once and then a body that drips one byte every `dripMs`. */
async function drippingServer(dripMs: number, slowRequests: number): Promise<{ url: string; hits: () => number; close: () => Promise<void> }> {
  let hits = 0;
  const timers = new Set<NodeJS.Timeout>();
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      hits += 1;
      if (req.url === '/v2/billing/meter_event_session') {
        const expires = new Date(Date.now() + 15 * 60_000).toISOString();
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ id: 'mes_1', object: 'v2.billing.meter_event_session', authentication_token: 'tok_drip_0123456789', created: new Date().toISOString(), expires_at: expires, livemode: false }));
        return;
      }
      if (hits > slowRequests + 1) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{}');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '1000' });
      const timer = setInterval(() => res.write(' '), dripMs);
      timers.add(timer);
      res.on('close', () => {
        clearInterval(timer);
        timers.delete(timer);
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    hits: () => hits,
    close: async () => {
      for (const timer of timers) clearInterval(timer);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('a hostile slow body', () => {
  it('is cut off at requestTimeoutMs for the whole exchange, retried, and delivery goes on', async () => {
    // Four stream requests drip a byte every 100 ms (undici's idle bodyTimeout never trips); then the server answers.
    const server = await drippingServer(100, 4);
    const errors: unknown[] = [];
    const reporter = new MeterReporter({
      apiKey: KEY,
      apiBaseUrl: server.url,
      meterEventsBaseUrl: server.url,
      requestTimeoutMs: 400,
      concurrency: 4,
      maxBatchSize: 10,
      maxRequestsPerSecond: 1000,
      retry: { initialDelayMs: 1, maxDelayMs: 5 },
      onError: (error) => errors.push(error),
    });
    try {
      for (let i = 0; i < 40; i += 1) reporter.report({ eventName: 'api_requests', customerId: 'cus_a' });
      const started = Date.now();
      await reporter.flush();
      const elapsed = Date.now() - started;
      expect(reporter.stats()).toMatchObject({ delivered: 40, failed: 0 });
      expect(errors).toEqual([]);
      expect(reporter.stats().retries).toBeGreaterThanOrEqual(4);
      // Held by the drips alone, the first four requests would have lasted 100 s (1,000 bytes × 100 ms).
      expect(elapsed).toBeLessThan(5_000);
    } finally {
      await reporter.close({ timeoutMs: 0 });
      await server.close();
    }
  });
});

describe('a huge response body', () => {
  it('is read only up to MAX_RESPONSE_BYTES, then the connection is dropped', async () => {
    let written = 0;
    const server = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(500, { 'content-type': 'application/json' });
        const chunk = 'x'.repeat(64 * 1024);
        const pump = (): void => {
          while (written < 64 * 1024 * 1024 && res.write(chunk)) written += chunk.length;
          if (written >= 64 * 1024 * 1024) res.end();
        };
        res.on('drain', pump);
        pump();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const config = resolveConfig({ apiKey: KEY, apiBaseUrl: url });
    const client = new StripeHttp(config, { beforeRequest: () => Promise.resolve(), afterResponse: () => undefined });
    try {
      const error = await client.post(url, '/v2/billing/meter_events', { bearer: KEY, body: {} }).then(
        () => undefined,
        (e: unknown) => e,
      );
      // Read as the 500 it was, its message cut to a line, after reading at most MAX_RESPONSE_BYTES of 64 MB.
      expect(error).toBeInstanceOf(StripeApiError);
      expect((error as StripeApiError).status).toBe(500);
      expect((error as StripeApiError).message.length).toBeLessThan(400);
      expect(written).toBeLessThan(16 * 1024 * 1024);
      expect(MAX_RESPONSE_BYTES).toBeLessThan(1024 * 1024);
    } finally {
      await client.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
