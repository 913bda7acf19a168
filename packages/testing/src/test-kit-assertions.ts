// Billing assertions over a test reporter or a fake Stripe, for any runner: they throw node's AssertionError, never use a runner's globals.
import { AssertionError } from 'node:assert';

import { TestReporter } from './test-kit';
import type { BilledTotalsSource, ExpectedTotals, FakeStripe, MeterTotals } from './types';

/** `totals[customer][eventName]` from a test reporter or a fake Stripe (what Stripe would invoice). */
export function billedTotals(source: BilledTotalsSource): MeterTotals<number> {
  return source.totals();
}

function describeTotal(value: number | undefined): string {
  return value === undefined ? 'nothing' : String(value);
}

/** Lines naming each customer and meter whose total differs; with `onlyThese`, also what was billed beyond `expected`. */
function differences(actual: MeterTotals<number>, expected: ExpectedTotals, onlyThese: boolean): string[] {
  const lines: string[] = [];
  for (const [customer, meters] of Object.entries(expected)) {
    for (const [eventName, want] of Object.entries(meters)) {
      const got = actual[customer]?.[eventName];
      // An expected 0 is met by nothing billed: Stripe shows no total for a customer it never billed.
      if ((got ?? 0) !== want) lines.push(`  ${customer} ${eventName}: expected ${want}, billed ${describeTotal(got)}`);
    }
  }
  if (onlyThese) {
    for (const [customer, meters] of Object.entries(actual)) {
      for (const [eventName, got] of Object.entries(meters)) {
        if (expected[customer]?.[eventName] === undefined && got !== 0) lines.push(`  ${customer} ${eventName}: billed ${got}, expected nothing`);
      }
    }
  }
  return lines;
}

function check(source: BilledTotalsSource, expected: ExpectedTotals, onlyThese: boolean, operator: string): void {
  const actual = source.totals();
  const lines = differences(actual, expected, onlyThese);
  if (lines.length === 0) return;
  throw new AssertionError({
    message: `${operator}: billed totals differ (customer, event name: expected vs billed)\n${lines.join('\n')}`,
    actual,
    expected,
    operator,
  });
}

/**
 * Asserts that each listed customer was billed exactly the listed total on each listed meter; other
 * customers and meters are not looked at (see `expectOnlyBilled`). Read after the metering settled:
 * `await metering.flush()` (Express), `await app.get(MeterUsageInterceptor).flush()` (Nest).
 * Throws an `AssertionError` listing every difference.
 *
 * @example
 * expectBilled(reporter, { cus_alice: { api_requests: 2 } });
 */
export function expectBilled(source: BilledTotalsSource, expected: ExpectedTotals): void {
  check(source, expected, false, 'expectBilled');
}

/**
 * Asserts the listed totals and that nothing else was billed: no other customer, no other meter.
 *
 * @example
 * expectOnlyBilled(fake, { cus_alice: { api_requests: 2 }, cus_bob: { llm_tokens: 30 } });
 */
export function expectOnlyBilled(source: BilledTotalsSource, expected: ExpectedTotals): void {
  check(source, expected, true, 'expectOnlyBilled');
}

/**
 * Asserts that nobody was billed anything.
 *
 * @example
 * expectNothingBilled(reporter); // after a request that must be free
 */
export function expectNothingBilled(source: BilledTotalsSource): void {
  check(source, {}, true, 'expectNothingBilled');
}

/**
 * Asserts that metering failed nowhere: for a test reporter, nothing reached `handleError()` (a
 * resolver that threw or timed out, an event `report()` refused); for a fake Stripe, no event was
 * rejected after acceptance (an unknown or archived meter in stream mode).
 *
 * @example
 * expectNoMeteringErrors(reporter);
 */
export function expectNoMeteringErrors(source: TestReporter | FakeStripe): void {
  const problems =
    source instanceof TestReporter
      ? source.errors().map(({ error }) => `  ${error.code}: ${error.message}`)
      : source.rejected().map((event) => `  ${event.code} (${event.eventName}, ${event.identifier}): ${event.message}`);
  if (problems.length === 0) return;
  throw new AssertionError({
    message: `expectNoMeteringErrors: ${problems.length} metering error(s)\n${problems.join('\n')}`,
    actual: problems.length,
    expected: 0,
    operator: 'expectNoMeteringErrors',
  });
}
