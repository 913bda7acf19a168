// reconcile() against a reporter's own ledger after real faults: what the reporter dropped is no difference, what Stripe dropped is.
import { formatReconcileTable, reconcile } from '@metered/core';
import type { LedgerQuery, LedgerRow } from '../../src/store/types';
import { startFakeStripe } from '@metered/testing';
import type { FakeStripe } from '@metered/testing';
import { closeReporters, reporterFor, until } from '../helpers';

const HOUR = 3_600_000;

let fake: FakeStripe;

afterEach(async () => {
  await closeReporters();
  await fake?.close();
});

function sum(rows: readonly LedgerRow[], column: 'accepted' | 'delivered' | 'dropped'): bigint {
  return rows.reduce((total, row) => total + BigInt(row[column].value), 0n);
}

it('reports zero difference after an outage overflowed the queue and a lost response was retried, and finds the events Stripe dropped after accepting them', async () => {
  // cus_ghost is no customer of Stripe's: the stream answers {} for its events, and Stripe rejects them later.
  fake = await startFakeStripe({ customers: ['cus_a'], meters: ['api_requests'] });
  const { reporter, recorded } = reporterFor(fake, { maxQueueSize: 4, overflow: 'drop-oldest', retry: { initialDelayMs: 5, maxDelayMs: 20, maxAttempts: 1000 } });
  const from = Math.floor(Date.now() / HOUR) * HOUR;

  // An outage while the app keeps reporting: the queue of 4 overflows, and the oldest queued events are dropped.
  fake.faults.outage(true);
  reporter.report({ eventName: 'api_requests', customerId: 'cus_a', value: 1 });
  await until(() => fake.requests().some((r) => r.status === 503), 'a first request to fail in the outage');
  for (let value = 2; value <= 12; value += 1) reporter.report({ eventName: 'api_requests', customerId: 'cus_a', value });
  await until(() => recorded.drops.length > 0, 'the overflow to drop events');
  fake.faults.outage(false);
  // The next stream request is processed, then its connection is cut: the reporter resends what Stripe already has.
  const lost = fake.faults.resetConnection({ endpoint: 'meter_event_stream', afterProcessing: true });
  await reporter.flush();
  expect(lost.triggered).toBe(1);
  expect(recorded.errors).toEqual([]);

  const dropped = recorded.drops.flatMap((drop) => drop.events);
  expect(recorded.drops.every((drop) => drop.reason === 'overflow')).toBe(true);
  const droppedValue = dropped.reduce((total, event) => total + BigInt(event.value), 0n);
  expect(droppedValue).toBeGreaterThan(0n);
  const rows = reporter.ledger({ from, to: from + HOUR });
  expect(sum(rows, 'accepted')).toBe(78n); // 1 + 2 + … + 12
  expect(sum(rows, 'dropped')).toBe(droppedValue);
  expect(sum(rows, 'delivered')).toBe(78n - droppedValue);

  const connection = { apiKey: fake.apiKey, apiBaseUrl: fake.url, from, to: from + HOUR, ledger: (query: LedgerQuery) => reporter.ledger(query) };
  const clean = await reconcile(connection);
  // The ledger knows what it dropped; Stripe holds exactly what it acknowledged, the resent batch once.
  expect(clean.clean).toBe(true);
  expect(clean.rows).toEqual([expect.objectContaining({ customerId: 'cus_a', eventName: 'api_requests', expected: String(78n - droppedValue), stripe: String(78n - droppedValue), difference: '0' })]);
  expect(formatReconcileTable(clean)).toContain('clean: Stripe matches the ledger');

  // Acknowledged on the stream, counted as delivered, then rejected by Stripe: a difference only Stripe's side shows.
  for (let i = 0; i < 3; i += 1) reporter.report({ eventName: 'api_requests', customerId: 'cus_ghost', value: 5 });
  await reporter.flush();
  expect(fake.rejected()).toHaveLength(3);
  const off = await reconcile(connection);
  expect(off.clean).toBe(false);
  expect(off.rows.map((r) => [r.customerId, r.expected, r.stripe, r.difference])).toEqual([
    ['cus_a', String(78n - droppedValue), String(78n - droppedValue), '0'],
    ['cus_ghost', '15', '0', '-15'],
  ]);
  expect(formatReconcileTable(off)).toMatch(/cus_ghost\s+api_requests\s+15\s+0\s+-15[\s\S]*DIFFERENCE/);
});
