// Shared fixtures: both Express majors, a fake Stripe, a reporter aimed at it, and a small authenticated API.
import type { AddressInfo } from 'node:net';
import { MeterReporter, setRequestUsage } from '@metered/core';
import type { MeterError, MeterReporterOptions } from '@metered/core';
import { meterUsage, skipMetering } from '@metered/express';
import type { MeteringMiddleware, MeteringMiddlewareOptions } from '@metered/express';
import { startFakeStripe } from '@metered/testing';
import type { FakeStripe } from '@metered/testing';
import express5 from 'express';
import type { Express, NextFunction, Request, RequestHandler, Response } from 'express';
import express4 from 'express4';
import express4Package from 'express4/package.json';
import express5Package from 'express/package.json';

export type ExpressFactory = typeof express5;

/** Both supported majors, for `describe.each`. */
export const EXPRESS_VERSIONS: ReadonlyArray<readonly [string, ExpressFactory]> = [
  [`Express ${express5Package.version}`, express5],
  [`Express ${express4Package.version}`, express4],
];

// A fixed key keeps failures reproducible (the fake otherwise generates one per start).
export const FAKE_API_KEY = 'sk_test_meteredExpressSuite';

/** API keys the test app accepts, server-side, and the customer each one bills. */
export const API_KEYS: Readonly<Record<string, string>> = {
  key_alice: 'cus_alice',
  key_bob: 'cus_bob',
};

export const ALICE = { authorization: 'Bearer key_alice' } as const;
export const BOB = { authorization: 'Bearer key_bob' } as const;

export function startFake(): Promise<FakeStripe> {
  return startFakeStripe({ apiKey: FAKE_API_KEY, meters: ['api_requests', 'llm_tokens', 'exports'] });
}

/** A suite's fake Stripe, and the metering its tests create. */
export interface MeteringSuite {
  /** Started before the suite's tests, reset before each, closed after the last. */
  readonly fake: FakeStripe;
  /** `meterUsage()` over a reporter aimed at the fake; the reporter is closed after the test. */
  meter(options?: Partial<MeteringMiddlewareOptions>): MeteringMiddleware;
  /** Closes `mw`'s reporter after the test (for middleware made with a reporter of the test's own). */
  closeAfterTest(mw: MeteringMiddleware): MeteringMiddleware;
}

/** Registers the suite's hooks: call it at the top of a `describe`. */
export function useMeteringSuite(): MeteringSuite {
  let fake: FakeStripe | undefined;
  const opened: MeteringMiddleware[] = [];
  beforeAll(async () => {
    fake = await startFake();
  });
  afterAll(async () => {
    await fake?.close();
  });
  beforeEach(() => {
    suite.fake.reset();
  });
  afterEach(async () => {
    // Every reporter is closed even when one close fails, and reporterFor()'s ones even when the
    // test failed before closing them: a test's failure must never keep jest from exiting.
    const closing = opened.splice(0).map((mw) => mw.reporter.close());
    closing.push(...[...openReporters].map((reporter) => reporter.close({ timeoutMs: 0 })));
    openReporters.clear();
    await Promise.allSettled(closing);
  });
  const suite: MeteringSuite = {
    get fake(): FakeStripe {
      if (fake === undefined) throw new Error('the fake Stripe starts in beforeAll');
      return fake;
    },
    meter(options = {}) {
      const { reporter } = reporterFor(suite.fake);
      return suite.closeAfterTest(meterUsage({ reporter, ...options }));
    },
    closeAfterTest(mw) {
      opened.push(mw);
      return mw;
    },
  };
  return suite;
}

// Reporters reporterFor() made; a suite's afterEach closes those its test left open.
const openReporters = new Set<MeterReporter>();

/** A reporter aimed at the fake that collects what it hands to onError; closed after the test in a metering suite. */
export function reporterFor(fake: FakeStripe, options: Partial<MeterReporterOptions> = {}): { reporter: MeterReporter; errors: MeterError[] } {
  const errors: MeterError[] = [];
  const reporter = new MeterReporter({ ...reporterOptionsFor(fake), onError: (error) => errors.push(error), ...options });
  openReporters.add(reporter);
  return { reporter, errors };
}

export function reporterOptionsFor(fake: FakeStripe): MeterReporterOptions {
  return { apiKey: fake.apiKey, apiBaseUrl: fake.url, meterEventsBaseUrl: fake.meterEventsUrl, flushIntervalMs: 10, maxRequestsPerSecond: 1000 };
}

/** Bearer API keys mapped to customers; the keys never leave the server. */
export function authenticate(req: Request, _res: Response, next: NextFunction): void {
  const match = /^Bearer (\S+)$/.exec(req.get('authorization') ?? '');
  const customer = match ? API_KEYS[match[1]!] : undefined;
  if (customer !== undefined) (req as Request & { user?: object }).user = { stripeCustomerId: customer };
  next();
}

function requireUser(req: Request, res: Response, next: NextFunction): void {
  if ((req as Request & { user?: object }).user === undefined) {
    res.status(401).json({ error: 'unauthorized' });
    return;
  }
  next();
}

/**
 * The API under test: `before` is mounted first (metering, usually), then authentication and the
 * routes. `extra` adds routes before the 404 handler.
 */
export function buildApp(express: ExpressFactory, before: RequestHandler[] = [], extra?: (app: Express) => void): Express {
  const app = express();
  app.disable('x-powered-by');
  for (const handler of before) app.use(handler);
  app.use(authenticate);
  app.get('/health', skipMetering(), (_req, res) => {
    res.send('ok');
  });
  app.use('/v1', requireUser);
  app.get('/v1/search', (req, res) => {
    res.json({ query: req.query.q ?? null, results: ['a', 'b'] });
  });
  app.post('/v1/generate', express.json(), (req: Request, res: Response) => {
    const prompt = typeof (req.body as { prompt?: unknown } | undefined)?.prompt === 'string' ? (req.body as { prompt: string }).prompt : '';
    const tokens = prompt.split(/\s+/).filter(Boolean).length * 3;
    setRequestUsage(req, { value: tokens, eventName: 'llm_tokens' });
    res.json({ text: 'done', usage: { tokens } });
  });
  app.get('/v1/fail', () => {
    throw new Error('handler failed');
  });
  app.get('/v1/invalid', (_req, res) => {
    res.status(422).json({ error: 'invalid' });
  });
  extra?.(app);
  // An API's own error handler: a fixed body, no stack trace (which would name the middleware's frames).
  app.use((_error: unknown, _req: Request, res: Response, _next: NextFunction) => {
    res.status(500).json({ error: 'internal' });
  });
  return app;
}

/** `fake.events()` reduced to what a test asserts on. */
export function billed(fake: FakeStripe): Array<{ customer: string; eventName: string; value: string }> {
  return fake.events().map((event) => ({ customer: event.customer, eventName: event.eventName, value: event.value }));
}

export interface Deferred<T = void> {
  promise: Promise<T>;
  resolve(value: T): void;
}

export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

export function portOf(address: AddressInfo | string | null): number {
  if (address === null || typeof address === 'string') throw new Error('server is not listening on TCP');
  return address.port;
}
