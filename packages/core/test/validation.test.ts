// report() refuses every input Stripe would refuse, with a code naming the field and the rule, and enqueues nothing.
import { MeterReporter, MeterValidationError, validateMeterEvent } from '@metered/core';
import type { MeterEventInput } from '@metered/core';

const DAY = 24 * 60 * 60 * 1000;
const silent = { warn: () => undefined, error: () => undefined };

function reporter(): MeterReporter {
  // Never started sending: nothing leaves the process in these tests.
  return new MeterReporter({ apiKey: 'sk_test_validation', logger: silent, apiBaseUrl: 'http://127.0.0.1:9', meterEventsBaseUrl: 'http://127.0.0.1:9' });
}

function refusal(input: unknown): MeterValidationError {
  const r = reporter();
  try {
    r.report(input as MeterEventInput);
  } catch (error) {
    expect(error).toBeInstanceOf(MeterValidationError);
    expect(r.stats().enqueued).toBe(0);
    expect(r.stats().rejected).toBe(1);
    return error as MeterValidationError;
  }
  throw new Error('report() accepted an invalid event');
}

const base = { eventName: 'api_requests', customerId: 'cus_123' };

describe('value', () => {
  it.each([
    ['zero', 0],
    ['negative', -5],
    ['a decimal', 1.5],
    ['NaN', Number.NaN],
    ['Infinity', Number.POSITIVE_INFINITY],
    ['16 significant digits', 1234567890123456],
    // eslint-disable-next-line no-loss-of-precision -- the point: a literal that lost digits must be refused
    ['a number past 2^53 that lost precision', 12345678901234567890],
    ['a decimal string', '1.5'],
    ['a negative string', '-3'],
    ['a string with a leading zero', '07'],
    ['an empty string', ''],
    ['a string of 16 significant digits', '1234567890123456'],
    ['a bigint zero', 0n],
    ['a boolean', true],
  ])('refuses %s with ERR_METER_INVALID_VALUE', (_label, value) => {
    const error = refusal({ ...base, value });
    expect(error.code).toBe('ERR_METER_INVALID_VALUE');
    expect(error.field).toBe('value');
    expect(error.message).toContain('"value"');
  });

  it.each([
    [undefined, '1'],
    [1, '1'],
    [25, '25'],
    [123456789012345, '123456789012345'],
    [1e20, '100000000000000000000'],
    ['1000000000000000000000', '1000000000000000000000'],
    [12345678901234567890n * 10n ** 0n / 10n ** 5n, '123456789012345'],
  ])('accepts %p as the string %p', async (value, wire) => {
    const r = reporter();
    const seen: string[] = [];
    const r2 = new MeterReporter({
      apiKey: 'sk_test_validation',
      apiBaseUrl: 'http://127.0.0.1:9',
      meterEventsBaseUrl: 'http://127.0.0.1:9',
      logger: silent,
      overflow: 'drop-newest',
      maxQueueSize: 1,
      onDrop: (events) => seen.push(...events.map((e) => e.value)),
    });
    r2.report({ ...base, value: 1 });
    r2.report({ ...base, value });
    // Overflow drops reach onDrop once per turn.
    await new Promise(setImmediate);
    expect(seen).toEqual([wire]);
    expect(() => r.report({ ...base, value })).not.toThrow();
    await r.close({ timeoutMs: 0 });
    await r2.close({ timeoutMs: 0 });
  });
});

describe('timestamp', () => {
  it.each([
    ['older than 35 days', () => Date.now() - 35 * DAY - 60_000],
    ['more than 5 minutes ahead', () => Date.now() + 6 * 60_000],
    ['not RFC 3339', () => '2026/11/25 10:00'],
    ['a date without time', () => '2026-11-25'],

    ['an invalid Date', () => new Date('nope')],
    ['an object', () => ({})],
  ])('refuses a timestamp %s with ERR_METER_INVALID_TIMESTAMP', (_label, make) => {
    const error = refusal({ ...base, timestamp: make() });
    expect(error.code).toBe('ERR_METER_INVALID_TIMESTAMP');
    expect(error.field).toBe('timestamp');
  });

  // Refused as malformed, not merely out of the window (Date.parse would roll Feb 30 over to March).
  it.each([
    ['an impossible day', '2026-02-30T00:00:00Z'],
    ['day 31 of a 30-day month', '2026-11-31T00:00:00Z'],
    ['hour 24', '2026-11-25T24:00:00Z'],
    ['a leap second', '2026-11-25T10:00:60Z'],
    ['an offset past 23 hours', '2026-11-25T10:00:00+24:00'],
    ['a space instead of T', '2026-11-25 10:00:00Z'],
  ])('refuses %s as not RFC 3339', (_label, timestamp) => {
    const error = refusal({ ...base, timestamp });
    expect(error.code).toBe('ERR_METER_INVALID_TIMESTAMP');
    expect(error.rule).toContain('RFC 3339');
  });

  it('accepts a Date, epoch ms and an RFC 3339 string with an offset', async () => {
    const r = reporter();
    r.report({ ...base, timestamp: new Date(Date.now() - DAY) });
    r.report({ ...base, timestamp: Date.now() - 34 * DAY });
    r.report({ ...base, timestamp: new Date(Date.now() + 4 * 60_000).toISOString().replace('Z', '+00:00') });
    expect(r.stats().enqueued).toBe(3);
    await r.close({ timeoutMs: 0 });
  });
});

describe('names and identifiers', () => {
  it('refuses a bad customer id right after a good one (only the last id that passed is remembered)', () => {
    for (const good of ['cus_ok', 'cus_', 'cus_ok']) expect(validateMeterEvent({ ...base, customerId: good }).customerId).toBe(good);
    for (const bad of ['', ' cus_ok', 'cus_ok ', 'cus_\u0007ok', 'cus_ok\u0085']) expect(refusal({ ...base, customerId: bad }).code).toBe('ERR_METER_INVALID_CUSTOMER');
    expect(validateMeterEvent({ ...base, customerId: 'cus_ok' }).customerId).toBe('cus_ok');
  });

  it.each([
    ['eventName', { ...base, eventName: '' }, 'ERR_METER_INVALID_EVENT_NAME'],
    ['eventName', { ...base, eventName: 'x'.repeat(101) }, 'ERR_METER_INVALID_EVENT_NAME'],
    ['eventName', { customerId: 'cus_1' }, 'ERR_METER_INVALID_EVENT_NAME'],
    ['customerId', { ...base, customerId: '' }, 'ERR_METER_INVALID_CUSTOMER'],
    ['customerId', { ...base, customerId: ' cus_1' }, 'ERR_METER_INVALID_CUSTOMER'],
    ['customerId', { ...base, customerId: 42 }, 'ERR_METER_INVALID_CUSTOMER'],
    ['identifier', { ...base, identifier: '' }, 'ERR_METER_INVALID_IDENTIFIER'],
    ['identifier', { ...base, identifier: 'i'.repeat(101) }, 'ERR_METER_INVALID_IDENTIFIER'],
    ['dimensions.region', { ...base, dimensions: { region: 5 } }, 'ERR_METER_INVALID_DIMENSIONS'],
    ['dimensions.value', { ...base, dimensions: { value: '3' } }, 'ERR_METER_INVALID_DIMENSIONS'],
    ['dimensions.stripe_customer_id', { ...base, dimensions: { stripe_customer_id: 'cus_other' } }, 'ERR_METER_INVALID_DIMENSIONS'],
    ['event', null, 'ERR_METER_INVALID_EVENT'],
  ])('refuses a bad %s', (field, input, code) => {
    const error = refusal(input);
    expect(error.code).toBe(code);
    expect(error.field).toBe(field);
  });

  it('returns the identifier it was given, and distinct generated ones otherwise', async () => {
    const r = reporter();
    expect(r.report({ ...base, identifier: 'req_42' })).toBe('req_42');
    const generated = new Set(Array.from({ length: 1000 }, () => r.report(base)));
    expect(generated.size).toBe(1000);
    for (const id of generated) expect(id.length).toBeLessThanOrEqual(100);
    await r.close({ timeoutMs: 0 });
  });

  it('keeps earlier accepted events when a later one is refused', async () => {
    const r = reporter();
    r.report(base);
    r.report(base);
    expect(() => r.report({ ...base, value: -1 })).toThrow(MeterValidationError);
    expect(r.stats()).toMatchObject({ enqueued: 2, pending: 2, rejected: 1 });
    await r.close({ timeoutMs: 0 });
  });
});
