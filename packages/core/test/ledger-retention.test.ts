// The in-memory ledger keeps each hour for ledgerRetentionMs (counted back from its newest hour): bounded over a process's life.
import { HOUR_MS } from '../src/store/ledger';
import { reporterFor, useFake } from './helpers';

const stripe = useFake({ meters: ['api_requests'] });

/** Reports one event three, two and zero hours ago, delivers them, and lists the ledger's hours (relative to now's, in hours). */
async function hoursKept(options: { ledgerRetentionMs?: number }): Promise<number[]> {
  const { reporter } = reporterFor(stripe.fake, options);
  const now = Date.now();
  const hour = now - (now % HOUR_MS);
  for (const ago of [3, 2, 0]) reporter.report({ eventName: 'api_requests', customerId: 'cus_kept', timestamp: now - ago * HOUR_MS });
  await reporter.flush();
  const rows = reporter.ledger({ from: now - 4 * HOUR_MS, to: now + HOUR_MS });
  expect(rows.every((row) => row.accepted.count === 1 && row.delivered.count === 1)).toBe(true);
  return rows.map((row) => (row.hour - hour) / HOUR_MS);
}

describe('the memory ledger', () => {
  it('keeps 48 hours by default', async () => {
    expect(await hoursKept({})).toEqual([-3, -2, 0]);
  });

  it('forgets hours past ledgerRetentionMs, counted back from its newest hour', async () => {
    expect(await hoursKept({ ledgerRetentionMs: HOUR_MS })).toEqual([0]);
    expect(await hoursKept({ ledgerRetentionMs: 2 * HOUR_MS })).toEqual([-2, 0]);
  });
});
