// Shared by the core tests: a reporter pointed at the fake, invariant checks, and condition waits.
import { MeterReporter } from '@metered/core';
import type { MeterError, MeterEvent, MeterReporterOptions, MeterStats, DropReason } from '@metered/core';
import { startFakeStripe } from '@metered/testing';
import type { FakeStripe, FakeStripeOptions } from '@metered/testing';

export interface Recorded {
  errors: { error: MeterError; events: readonly MeterEvent[] }[];
  drops: { events: readonly MeterEvent[]; reason: DropReason }[];
  logs: { level: string; obj: object; msg?: string }[];
}

// Every reporter reporterFor() made, so a test that fails before its own close() still leaves none running.
const openReporters = new Set<MeterReporter>();

/** Closes every reporter reporterFor() made that is still open; call it from afterEach, before closing the fake. */
export async function closeReporters(): Promise<void> {
  const reporters = [...openReporters];
  openReporters.clear();
  await Promise.allSettled(reporters.map((reporter) => reporter.close({ timeoutMs: 0 })));
}

/**
 * One fake for a test file: started before its tests, reset before each, closed after all; every
 * reporter reporterFor() made is closed after each test. Read the fake as `stripe.fake` inside tests.
 */
export function useFake(options: FakeStripeOptions): { readonly fake: FakeStripe } {
  let fake: FakeStripe | undefined;
  beforeAll(async () => {
    fake = await startFakeStripe(options);
  });
  afterAll(async () => {
    await fake?.close();
  });
  beforeEach(() => {
    fake?.reset();
  });
  afterEach(closeReporters);
  return {
    get fake(): FakeStripe {
      if (fake === undefined) throw new Error('useFake: the fake is read before beforeAll started it');
      return fake;
    },
  };
}

/** A reporter aimed at the fake, fast retries, and hooks that record everything; closed by closeReporters(). */
export function reporterFor(fake: FakeStripe, options: Partial<MeterReporterOptions> = {}): { reporter: MeterReporter; recorded: Recorded } {
  const recorded: Recorded = { errors: [], drops: [], logs: [] };
  const log = (level: string) => (obj: object, msg?: string) => {
    recorded.logs.push({ level, obj, msg });
  };
  const reporter = new MeterReporter({
    apiKey: fake.apiKey,
    apiBaseUrl: fake.url,
    meterEventsBaseUrl: fake.meterEventsUrl,
    maxRequestsPerSecond: 10_000,
    flushIntervalMs: 50,
    retry: { initialDelayMs: 5, maxDelayMs: 50, maxAttempts: 20 },
    logger: { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') },
    onError: (error, events) => recorded.errors.push({ error, events }),
    onDrop: (events, reason) => recorded.drops.push({ events, reason }),
    ...options,
  });
  openReporters.add(reporter);
  return { reporter, recorded };
}

/** `enqueued = delivered + failed + dropped + pending`, and the parts add up. */
export function expectInvariant(stats: MeterStats): void {
  expect(stats.enqueued).toBe(stats.delivered + stats.failed + stats.dropped.total + stats.pending);
  expect(stats.dropped.total).toBe(stats.dropped.overflow + stats.dropped.shutdown + stats.dropped.expired);
  expect(stats.pending).toBe(stats.queued + stats.inFlight);
}

/** Samples the invariant on every turn of the event loop until stopped; returns the violations seen. */
export function watchInvariant(reporter: MeterReporter): () => string[] {
  const violations: string[] = [];
  let running = true;
  const check = (): void => {
    const s = reporter.stats();
    if (s.enqueued !== s.delivered + s.failed + s.dropped.total + s.pending) violations.push(JSON.stringify(s));
    if (running) setImmediate(check);
  };
  setImmediate(check);
  return () => {
    running = false;
    return violations;
  };
}

/** Resolves when `condition()` holds, checking after each macrotask; fails after `timeoutMs`. */
export async function until(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** Sum of values per customer for one event name, as the reporter was told. */
export function expectedTotals(reports: readonly { customerId: string; value: number }[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of reports) out[r.customerId] = (out[r.customerId] ?? 0) + r.value;
  return out;
}

/** The fake's totals for one event name, per customer. */
export function totalsFor(fake: FakeStripe, eventName: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [customer, byEvent] of Object.entries(fake.totals())) {
    const value = byEvent[eventName];
    if (value !== undefined) out[customer] = value;
  }
  return out;
}

/** A small deterministic generator (mulberry32) for seeded runs. */
export { seededRandom as seeded } from '@metered/testing';
