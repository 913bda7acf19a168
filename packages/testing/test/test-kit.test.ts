// The test kit: createTestReporter() validates as core does and records what it accepted; the assertions say exactly what differs.
import { AssertionError } from 'node:assert';
import { MeterAdapterError, MeterReporter } from '@metered/core';
import type { MeterError } from '@metered/core';

import {
  billedTotals,
  createTestReporter,
  expectBilled,
  expectNoMeteringErrors,
  expectNothingBilled,
  expectOnlyBilled,
  meterEvent,
  startFakeStripe,
} from '../src';
import { sendDirect, sendStream } from './support/clients';

/** The error `fn` throws, for asserting on its message. */
function thrown(fn: () => void): Error {
  try {
    fn();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a throw');
}

describe('createTestReporter', () => {
  it('is a MeterReporter, so every adapter and Nest injection takes it as one', async () => {
    const reporter = createTestReporter();
    expect(reporter).toBeInstanceOf(MeterReporter);
    await reporter.close();
  });

  it('records what it accepted, with value and timestamp normalized as core sends them', async () => {
    const reporter = createTestReporter({ now: () => Date.UTC(2026, 0, 1) });
    const id = reporter.report({ eventName: 'api_requests', customerId: 'cus_a', value: 5n, timestamp: '2025-12-31T23:00:00Z', dimensions: { region: 'eu' } });
    reporter.report({ eventName: 'api_requests', customerId: 'cus_a' });
    expect(id).toMatch(/^mtr_/);
    expect(reporter.events()).toEqual([
      { eventName: 'api_requests', customerId: 'cus_a', value: '5', timestamp: Date.UTC(2025, 11, 31, 23), identifier: id, dimensions: { region: 'eu' } },
      expect.objectContaining({ value: '1', timestamp: Date.UTC(2026, 0, 1) }),
    ]);
    expect(reporter.totals()).toEqual({ cus_a: { api_requests: 6 } });
    await reporter.flush();
    expect(reporter.stats()).toMatchObject({ enqueued: 2, delivered: 2, pending: 0, rejected: 0 });
    await reporter.close();
  });

  it("refuses what a real reporter refuses, with core's coded errors, and records nothing for it", () => {
    const reporter = createTestReporter();
    expect(() => reporter.report({ eventName: 'api_requests', customerId: 'cus_a', value: 1.5 })).toThrow(expect.objectContaining({ code: 'ERR_METER_INVALID_VALUE', field: 'value' }));
    expect(() => reporter.report({ eventName: '', customerId: 'cus_a' })).toThrow(expect.objectContaining({ code: 'ERR_METER_INVALID_EVENT_NAME' }));
    expect(() => reporter.report({ eventName: 'e', customerId: ' cus_a' })).toThrow(expect.objectContaining({ code: 'ERR_METER_INVALID_CUSTOMER' }));
    expect(() => reporter.report({ eventName: 'e', customerId: 'cus_a', timestamp: Date.now() - 40 * 86_400_000 })).toThrow(
      expect.objectContaining({ code: 'ERR_METER_INVALID_TIMESTAMP' }),
    );
    expect(() => reporter.report({ eventName: 'e', customerId: 'cus_a', dimensions: { stripe_customer_id: 'cus_b' } })).toThrow(
      expect.objectContaining({ code: 'ERR_METER_INVALID_DIMENSIONS' }),
    );
    expect(reporter.events()).toEqual([]);
    expect(reporter.stats().rejected).toBe(5);
  });

  it('checks dimensions against the payload keys it was given', () => {
    const reporter = createTestReporter({ payloadKeys: { customer: 'cust', value: 'qty' } });
    expect(() => reporter.report({ eventName: 'e', customerId: 'cus_a', dimensions: { qty: '1' } })).toThrow(expect.objectContaining({ code: 'ERR_METER_INVALID_DIMENSIONS' }));
    expect(() => reporter.report({ eventName: 'e', customerId: 'cus_a', dimensions: { stripe_customer_id: 'x' } })).not.toThrow();
  });

  it('refuses bad payload keys at creation, as MeterReporter does', () => {
    expect(() => createTestReporter({ payloadKeys: { customer: 'same', value: 'same' } })).toThrow(expect.objectContaining({ code: 'ERR_METER_INVALID_OPTION' }));
  });

  it('counts a repeated identifier once, as Stripe does, and keeps the repeat in duplicates()', () => {
    const reporter = createTestReporter();
    reporter.report({ eventName: 'api_requests', customerId: 'cus_a', value: 3, identifier: 'req-1' });
    reporter.report({ eventName: 'api_requests', customerId: 'cus_a', value: 3, identifier: 'req-1' });
    expect(reporter.totals()).toEqual({ cus_a: { api_requests: 3 } });
    expect(reporter.duplicates()).toEqual([expect.objectContaining({ identifier: 'req-1' })]);
  });

  it('cancels a recorded event, which then no longer bills', async () => {
    const reporter = createTestReporter();
    reporter.report({ eventName: 'api_requests', customerId: 'cus_a', identifier: 'keep' });
    reporter.report({ eventName: 'api_requests', customerId: 'cus_a', identifier: 'undo' });
    await expect(reporter.cancel({ eventName: 'api_requests', identifier: 'undo' })).resolves.toMatchObject({ type: 'cancel', status: 'pending', cancel: { identifier: 'undo' } });
    expect(reporter.totals()).toEqual({ cus_a: { api_requests: 1 } });
    await expect(reporter.cancel({ eventName: 'api_requests', identifier: '' })).rejects.toMatchObject({ code: 'ERR_METER_INVALID_IDENTIFIER' });
  });

  it("never reaches Stripe from an adapter's start-up meter check (verifyMeters reads through readStripe)", async () => {
    const reporter = createTestReporter();
    // A request to api.stripe.com would fail with a network or API error instead of this coded refusal.
    await expect(reporter.verifyMeters({ eventNames: ['api_requests'] })).rejects.toMatchObject({ code: 'ERR_METER_INVALID_OPTION', option: 'reporter' });
    await reporter.close();
  });

  it('refuses reports after close(), as a real reporter does', async () => {
    const reporter = createTestReporter();
    await expect(reporter.close()).resolves.toEqual({ delivered: 0, failed: 0, dropped: 0, kept: 0 });
    expect(() => reporter.report({ eventName: 'api_requests', customerId: 'cus_a' })).toThrow(expect.objectContaining({ code: 'ERR_METER_CLOSED' }));
    await expect(reporter.cancel({ eventName: 'api_requests', identifier: 'x' })).rejects.toMatchObject({ code: 'ERR_METER_CLOSED' });
  });

  it('records what adapters hand to handleError, and calls onError without letting it throw', () => {
    const seen: MeterError[] = [];
    const reporter = createTestReporter({
      onError: (error) => {
        seen.push(error);
        throw new Error('a broken hook');
      },
    });
    const error = new MeterAdapterError('customer resolver threw');
    expect(() => reporter.handleError(error)).not.toThrow();
    expect(reporter.errors()).toEqual([{ error, events: [] }]);
    expect(seen).toEqual([error]);
  });

  it('reset() forgets events, duplicates and errors between tests', () => {
    const reporter = createTestReporter();
    reporter.report({ eventName: 'api_requests', customerId: 'cus_a', identifier: 'r' });
    reporter.report({ eventName: 'api_requests', customerId: 'cus_a', identifier: 'r' });
    reporter.handleError(new MeterAdapterError('x'));
    reporter.reset();
    expect([reporter.events(), reporter.duplicates(), reporter.errors(), reporter.totals()]).toEqual([[], [], [], {}]);
    reporter.report({ eventName: 'api_requests', customerId: 'cus_a', identifier: 'r' });
    expect(reporter.totals()).toEqual({ cus_a: { api_requests: 1 } });
  });

  it('refuses to round a total past Number.MAX_SAFE_INTEGER and gives it exactly', () => {
    const reporter = createTestReporter();
    reporter.report({ eventName: 'bytes', customerId: 'cus_a', value: '900000000000000' });
    for (let i = 0; i < 11; i += 1) reporter.report({ eventName: 'bytes', customerId: 'cus_a', value: '900000000000000' });
    expect(() => reporter.totals()).toThrow(expect.objectContaining({ code: 'ERR_FAKE_STRIPE_PRECISION' }));
    expect(reporter.exactTotals()).toEqual({ cus_a: { bytes: 10_800_000_000_000_000n } });
  });
});

describe('billing assertions', () => {
  function billedReporter() {
    const reporter = createTestReporter();
    reporter.report({ eventName: 'api_requests', customerId: 'cus_alice', value: 2 });
    reporter.report({ eventName: 'llm_tokens', customerId: 'cus_bob', value: 30 });
    return reporter;
  }

  it('pass when the totals match', () => {
    const reporter = billedReporter();
    expect(billedTotals(reporter)).toEqual({ cus_alice: { api_requests: 2 }, cus_bob: { llm_tokens: 30 } });
    expectBilled(reporter, { cus_alice: { api_requests: 2 } });
    expectBilled(reporter, { cus_carol: { api_requests: 0 } });
    expectOnlyBilled(reporter, { cus_alice: { api_requests: 2 }, cus_bob: { llm_tokens: 30 } });
    expectNothingBilled(createTestReporter());
    expectNoMeteringErrors(reporter);
  });

  it('name every customer and meter that differs, in an AssertionError any runner shows', () => {
    const error = thrown(() => expectBilled(billedReporter(), { cus_alice: { api_requests: 3 }, cus_bob: { api_requests: 1 } }));
    expect(error).toBeInstanceOf(AssertionError);
    expect(error.message).toBe(
      'expectBilled: billed totals differ (customer, event name: expected vs billed)\n' +
        '  cus_alice api_requests: expected 3, billed 2\n' +
        '  cus_bob api_requests: expected 1, billed nothing',
    );
  });

  it('expectOnlyBilled also names what was billed beyond the expected totals', () => {
    const error = thrown(() => expectOnlyBilled(billedReporter(), { cus_alice: { api_requests: 2 } }));
    expect(error.message).toMatch(/^expectOnlyBilled: .*\n {2}cus_bob llm_tokens: billed 30, expected nothing$/);
    expect(thrown(() => expectNothingBilled(billedReporter())).message).toContain('cus_alice api_requests: billed 2, expected nothing');
  });

  it('expectNoMeteringErrors lists the errors adapters reported', () => {
    const reporter = createTestReporter();
    reporter.handleError(new MeterAdapterError('The customer resolver of GET /search threw: boom'));
    const error = thrown(() => expectNoMeteringErrors(reporter));
    expect(error).toBeInstanceOf(AssertionError);
    expect(error.message).toBe('expectNoMeteringErrors: 1 metering error(s)\n  ERR_METER_ADAPTER: The customer resolver of GET /search threw: boom');
  });

  it('read a fake Stripe the same way: its totals, and the events it rejected after accepting them', async () => {
    const fake = await startFakeStripe({ meters: ['api_requests'] });
    try {
      await sendDirect(fake, meterEvent('cus_alice', 4));
      expectOnlyBilled(fake, { cus_alice: { api_requests: 4 } });
      expectNoMeteringErrors(fake);
      await sendStream(fake, [meterEvent('cus_alice', 1, { event_name: 'no_such_meter' })]);
      expect(thrown(() => expectNoMeteringErrors(fake)).message).toMatch(/^expectNoMeteringErrors: 1 metering error\(s\)\n {2}no_meter \(no_such_meter, /);
    } finally {
      await fake.close();
    }
  });
});
