// Pre-aggregation of sum meters: exact sums per customer × meter × window, stable fold identifiers, refused for non-sum meters.
import { MeterConfigError, MeterReporter } from '@metered/core';
import type { MeterEventInput } from '@metered/core';
import { Aggregator, GIVEN_IDENTIFIERS_MAX, GIVEN_IDENTIFIER_MS } from '../src/aggregate/aggregator';
import { expectInvariant, reporterFor, until, useFake } from './helpers';

const stripe = useFake({ meters: ['api_requests', 'tokens', { event_name: 'seats', formula: 'last' }, 'unfolded'] });

const HOUR = 3_600_000;

function streamRequests(): number {
  return stripe.fake.requests().filter((r) => r.endpoint === 'meter_event_stream').length;
}

/** An aggregator of 1 s windows over `api_requests` on a clock the test sets, handing its folds to `emit`. */
function aggregatorAt(now: () => number, emit: (event: MeterEventInput) => void): Aggregator {
  return new Aggregator({
    config: { windowMs: 1000, graceMs: 0, meters: new Set(['api_requests']), instanceId: 'pod-a' },
    customerKey: 'stripe_customer_id',
    valueKey: 'value',
    emit,
    onEmitError: (error) => {
      throw error;
    },
    now,
  });
}

/** What an aggregator holds in its collections, whatever they are called. */
function held(aggregator: Aggregator): number {
  return Object.values(aggregator).reduce((sum: number, field: unknown) => sum + (field instanceof Map || field instanceof Set ? field.size : 0), 0);
}

describe('aggregate', () => {
  it('folds events per customer and meter into one event each, with values summed exactly', async () => {
    const { reporter, recorded } = reporterFor(stripe.fake, { aggregate: { windowMs: HOUR, meters: { api_requests: 'sum', tokens: 'sum' } } });
    let expectedTokens = 0;
    for (let i = 0; i < 1000; i += 1) {
      reporter.report({ eventName: 'api_requests', customerId: i % 2 === 0 ? 'cus_a' : 'cus_b' });
      reporter.report({ eventName: 'tokens', customerId: 'cus_a', value: i + 1 });
      expectedTokens += i + 1;
    }
    reporter.report({ eventName: 'unfolded', customerId: 'cus_a', value: 2 });
    await reporter.flush();
    expect(stripe.fake.totals()).toEqual({ cus_a: { api_requests: 500, tokens: expectedTokens, unfolded: 2 }, cus_b: { api_requests: 500 } });
    // Three folds and the one unfolded event, where 2001 events went in.
    expect(stripe.fake.events()).toHaveLength(4);
    expect(streamRequests()).toBe(1);
    expect(recorded.errors).toEqual([]);
    expectInvariant(reporter.stats());
  });

  it('sums digit strings exactly with BigInt, and splits a fold rather than send more than 15 significant digits', async () => {
    const { reporter } = reporterFor(stripe.fake, { aggregate: { windowMs: HOUR, meters: { tokens: 'sum' } } });
    reporter.report({ eventName: 'tokens', customerId: 'cus_big', value: '999999999999999' });
    reporter.report({ eventName: 'tokens', customerId: 'cus_big', value: '1' });
    // 10^15 has one significant digit: still one event.
    reporter.report({ eventName: 'tokens', customerId: 'cus_split', value: '999999999999999' });
    reporter.report({ eventName: 'tokens', customerId: 'cus_split', value: 2n });
    await reporter.flush();
    expect(stripe.fake.exactTotals()).toEqual({ cus_big: { tokens: 1_000_000_000_000_000n }, cus_split: { tokens: 1_000_000_000_000_001n } });
    const values = stripe.fake.events().map((e) => [e.customer, e.value]).sort();
    expect(values).toEqual([['cus_big', '1000000000000000'], ['cus_split', '2'], ['cus_split', '999999999999999']]);
  });

  it('keeps dimensions and windows apart, and dates each fold inside its window', async () => {
    const { reporter } = reporterFor(stripe.fake, { aggregate: { windowMs: 60_000, meters: { api_requests: 'sum' } } });
    const now = Date.now();
    const windowStart = Math.floor(now / 60_000) * 60_000;
    reporter.report({ eventName: 'api_requests', customerId: 'cus_a', timestamp: now });
    reporter.report({ eventName: 'api_requests', customerId: 'cus_a', timestamp: now, dimensions: { region: 'eu' } });
    reporter.report({ eventName: 'api_requests', customerId: 'cus_a', timestamp: windowStart - 1 });
    reporter.report({ eventName: 'api_requests', customerId: 'cus_a', timestamp: windowStart - 2 });
    await reporter.flush();
    const events = stripe.fake.events();
    expect(events).toHaveLength(3);
    const previous = events.find((e) => e.value === '2')!;
    expect(Date.parse(previous.timestamp)).toBe(windowStart - 2);
    expect(events.filter((e) => Date.parse(e.timestamp) >= windowStart)).toHaveLength(2);
  });

  it('closes a window at its end plus the grace, without a flush', async () => {
    const { reporter } = reporterFor(stripe.fake, { aggregate: { windowMs: 40, graceMs: 0, meters: { api_requests: 'sum' } } });
    reporter.report({ eventName: 'api_requests', customerId: 'cus_t', value: 3 });
    reporter.report({ eventName: 'api_requests', customerId: 'cus_t', value: 4 });
    await until(() => stripe.fake.events().length === 1, 'the window to close and its fold to be delivered');
    expect(stripe.fake.totals()).toEqual({ cus_t: { api_requests: 7 } });
  });

  it('adds a report retried with the same identifier within the window once', async () => {
    const { reporter } = reporterFor(stripe.fake, { aggregate: { windowMs: HOUR, meters: { api_requests: 'sum' } } });
    const first = reporter.report({ eventName: 'api_requests', customerId: 'cus_r', value: 5, identifier: 'req-1' });
    const retry = reporter.report({ eventName: 'api_requests', customerId: 'cus_r', value: 5, identifier: 'req-1' });
    reporter.report({ eventName: 'api_requests', customerId: 'cus_r', value: 1, identifier: 'req-2' });
    expect(retry).toBe(first);
    await reporter.flush();
    expect(stripe.fake.totals()).toEqual({ cus_r: { api_requests: 6 } });
  });

  it('adds a report retried with the same identifier after its fold closed once too (as Stripe takes a repeated identifier once)', async () => {
    const { reporter } = reporterFor(stripe.fake, { aggregate: { windowMs: HOUR, meters: { api_requests: 'sum' } } });
    const first = reporter.report({ eventName: 'api_requests', customerId: 'cus_r', value: 5, identifier: 'req-1' });
    await reporter.flush();
    // The retry arrives after a flush closed the fold that counted it, and once more after the next fold opened.
    expect(reporter.report({ eventName: 'api_requests', customerId: 'cus_r', value: 5, identifier: 'req-1' })).toBe(first);
    reporter.report({ eventName: 'api_requests', customerId: 'cus_r', value: 1, identifier: 'req-2' });
    expect(reporter.report({ eventName: 'api_requests', customerId: 'cus_r', value: 5, identifier: 'req-1' })).toBe(first);
    await reporter.flush();
    expect(stripe.fake.totals()).toEqual({ cus_r: { api_requests: 6 } });
  });

  it('never lets a restart in the same window reuse a delivered fold’s identifier (usage after a restart is not lost as a duplicate)', async () => {
    const options = { aggregate: { windowMs: HOUR, meters: { api_requests: 'sum' as const } }, instanceId: 'pod-a' };
    const before = reporterFor(stripe.fake, options).reporter;
    before.report({ eventName: 'api_requests', customerId: 'cus_x', value: 2 });
    await before.close();
    const after = reporterFor(stripe.fake, options).reporter;
    after.report({ eventName: 'api_requests', customerId: 'cus_x', value: 3 });
    await after.close();
    expect(stripe.fake.totals()).toEqual({ cus_x: { api_requests: 5 } });
    expect(stripe.fake.stats()).toMatchObject({ acceptedEvents: 2, duplicateEvents: 0 });
  });

  it('retries a fold with its identifier: Stripe counts it once', async () => {
    const { reporter } = reporterFor(stripe.fake, { aggregate: { windowMs: HOUR, meters: { api_requests: 'sum' } } });
    stripe.fake.faults.resetConnection({ endpoint: 'meter_event_stream', count: 1, afterProcessing: true });
    reporter.report({ eventName: 'api_requests', customerId: 'cus_retry', value: 9 });
    await reporter.flush();
    expect(stripe.fake.totals()).toEqual({ cus_retry: { api_requests: 9 } });
    expect(stripe.fake.stats()).toMatchObject({ acceptedEvents: 1, duplicateEvents: 1 });
    expect(reporter.stats().retries).toBeGreaterThan(0);
  });

  it('sends a fold reported again (a dead letter from onError or onDrop) as it is, never folded anew: Stripe takes its identifier once', async () => {
    const { reporter } = reporterFor(stripe.fake, { aggregate: { windowMs: HOUR, meters: { api_requests: 'sum' } } });
    const fold = reporter.report({ eventName: 'api_requests', customerId: 'cus_dead', value: 5 });
    reporter.report({ eventName: 'api_requests', customerId: 'cus_dead', value: 2 });
    await reporter.flush();
    const [sent] = stripe.fake.events();
    expect(sent).toMatchObject({ identifier: fold, value: '7' });
    // What a user keeps of a fold whose request timed out after Stripe took it, reported again within 24 h.
    expect(reporter.report({ eventName: 'api_requests', customerId: 'cus_dead', value: 7, identifier: fold, timestamp: sent!.timestamp })).toBe(fold);
    await reporter.flush();
    expect(stripe.fake.totals()).toEqual({ cus_dead: { api_requests: 7 } });
    expect(stripe.fake.stats()).toMatchObject({ acceptedEvents: 1, duplicateEvents: 1 });
  });

  it('answers a report naming a fold still open with that fold, adding nothing: its usage is already in it', async () => {
    const { reporter } = reporterFor(stripe.fake, { aggregate: { windowMs: HOUR, meters: { api_requests: 'sum' } } });
    const fold = reporter.report({ eventName: 'api_requests', customerId: 'cus_open', value: 5 });
    reporter.report({ eventName: 'api_requests', customerId: 'cus_open', value: 7 });
    // A caller retrying its report with the identifier report() gave it, before the window closed.
    expect(reporter.report({ eventName: 'api_requests', customerId: 'cus_open', value: 5, identifier: fold })).toBe(fold);
    await reporter.flush();
    expect(stripe.fake.events().map((e) => [e.identifier, e.value])).toEqual([[fold, '12']]);
    expect(stripe.fake.stats()).toMatchObject({ acceptedEvents: 1, duplicateEvents: 0 });
  });

  it('refuses a meter declared with a formula other than sum, naming it', () => {
    expect(() => new MeterReporter({ apiKey: 'sk_test_x', aggregate: { windowMs: 1000, meters: { seats: 'last' as 'sum' } } })).toThrow(
      expect.objectContaining({ code: 'ERR_METER_INVALID_OPTION', option: 'aggregate.meters.seats' }),
    );
    expect(() => new MeterReporter({ apiKey: 'sk_test_x', aggregate: { windowMs: 0, meters: { a: 'sum' } } })).toThrow(MeterConfigError);
    expect(() => new MeterReporter({ apiKey: 'sk_test_x', aggregate: { windowMs: 1000, meters: {} } })).toThrow(expect.objectContaining({ option: 'aggregate.meters' }));
    expect(() => new MeterReporter({ apiKey: 'sk_test_x', instanceId: 'has space' })).toThrow(expect.objectContaining({ option: 'instanceId' }));
  });

  it('stops folding a meter the meter check reads as not sum, with a coded error', async () => {
    const { reporter, recorded } = reporterFor(stripe.fake, { aggregate: { windowMs: HOUR, meters: { seats: 'sum', api_requests: 'sum' } } });
    const result = await reporter.verifyMeters({ eventNames: ['seats', 'api_requests'] });
    expect(result.meters.map((m) => [m.eventName, m.formula])).toEqual([['seats', 'last'], ['api_requests', 'sum']]);
    expect(recorded.errors.map((e) => [e.error.code, (e.error as MeterConfigError).option])).toEqual([['ERR_METER_INVALID_OPTION', 'aggregate.meters.seats']]);
    reporter.report({ eventName: 'seats', customerId: 'cus_s', value: 3 });
    reporter.report({ eventName: 'seats', customerId: 'cus_s', value: 4 });
    reporter.report({ eventName: 'api_requests', customerId: 'cus_s' });
    reporter.report({ eventName: 'api_requests', customerId: 'cus_s' });
    await reporter.flush();
    // Two seats events (the last one counts), one folded api_requests event of 2.
    expect(stripe.fake.events().map((e) => [e.eventName, e.value])).toEqual([['seats', '3'], ['seats', '4'], ['api_requests', '2']]);
  });

  it('validates each report as report() does, and counts a refused one as rejected', () => {
    const { reporter } = reporterFor(stripe.fake, { aggregate: { windowMs: HOUR, meters: { api_requests: 'sum' } } });
    expect(() => reporter.report({ eventName: 'api_requests', customerId: 'cus_v', value: -1 })).toThrow(expect.objectContaining({ code: 'ERR_METER_INVALID_VALUE' }));
    expect(reporter.stats().rejected).toBe(1);
  });

  it('keeps nothing per window once its folds are closed: memory stays flat however many windows pass', () => {
    let now = Date.parse('2026-12-01T00:00:00Z');
    const emitted: MeterEventInput[] = [];
    const aggregator = aggregatorAt(() => now, (event) => emitted.push(event));
    const identifiers = new Set<string>();
    for (let window = 0; window < 500; window += 1) {
      for (let customer = 0; customer < 20; customer += 1) identifiers.add(aggregator.add({ eventName: 'api_requests', customerId: `cus_${customer}`, timestamp: now }));
      aggregator.closeAll();
      now += 1000;
      expect(held(aggregator)).toBe(0);
    }
    // A split and a second fold of one key in one window still get identifiers of their own.
    identifiers.add(aggregator.add({ eventName: 'api_requests', customerId: 'cus_0', timestamp: now }));
    aggregator.closeAll();
    identifiers.add(aggregator.add({ eventName: 'api_requests', customerId: 'cus_0', timestamp: now }));
    aggregator.closeAll();
    aggregator.dispose();
    expect(emitted).toHaveLength(500 * 20 + 2);
    expect(identifiers.size).toBe(emitted.length);
    expect(new Set(emitted.map((event) => event.identifier)).size).toBe(emitted.length);
  });

  it('remembers a caller identifier for Stripe’s 24 hours and at most GIVEN_IDENTIFIERS_MAX of them, the oldest forgotten first', () => {
    let now = Date.parse('2026-12-01T00:00:00Z');
    const aggregator = aggregatorAt(() => now, () => undefined);
    const report = (identifier: string): string => aggregator.add({ eventName: 'api_requests', customerId: 'cus_g', identifier, timestamp: now });
    const first = report('req-0');
    now += GIVEN_IDENTIFIER_MS - 1;
    expect(report('req-0')).toBe(first);
    expect(aggregator.folded).toBe(1);
    now += 1;
    // Past Stripe's window Stripe itself would bill it again: so is it folded again.
    report('req-0');
    expect(aggregator.folded).toBe(2);
    for (let i = 1; i <= GIVEN_IDENTIFIERS_MAX; i += 1) report(`req-${i}`);
    aggregator.closeAll();
    expect(held(aggregator)).toBe(GIVEN_IDENTIFIERS_MAX);
    // req-0 was the oldest: forgotten, so it folds again; req-1 is still known.
    const before = aggregator.folded;
    report('req-0');
    report(`req-${GIVEN_IDENTIFIERS_MAX}`);
    expect(aggregator.folded).toBe(before + 1);
    aggregator.dispose();
  });
});
