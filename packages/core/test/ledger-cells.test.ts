// The ledger's cells: what report() adds per event, found without a lookup for a run of one cell.
import type { MeterEvent } from '@metered/core';
import { HOUR_MS, MemoryLedger } from '../src/store/ledger';

const at = Date.UTC(2026, 10, 25, 12, 0, 0);

function event(customerId: string, eventName: string, timestamp: number, value = '1'): MeterEvent {
  return { eventName, customerId, value, timestamp, identifier: `mtr_l_${timestamp}`, dimensions: undefined };
}

function counts(ledger: MemoryLedger): Array<[number, string, string, number, string]> {
  return ledger.query({ from: at - 2 * HOUR_MS, to: at + 2 * HOUR_MS }).map((row) => [row.hour, row.customerId, row.eventName, row.accepted.count, row.accepted.value]);
}

describe('LedgerCells', () => {
  it('counts runs and alternations of customer, event name and hour into their own cells', () => {
    const ledger = new MemoryLedger();
    const events = [
      event('cus_a', 'api', at),
      event('cus_a', 'api', at + 1, '3'),
      event('cus_b', 'api', at + 2),
      event('cus_a', 'api', at + 3),
      event('cus_a', 'tokens', at + 4, '10'),
      event('cus_a', 'api', at + HOUR_MS),
      event('cus_a', 'api', at + 5),
    ];
    for (const e of events) ledger.add(e, 'accepted');
    expect(counts(ledger)).toEqual([
      [at, 'cus_a', 'api', 4, '6'],
      [at, 'cus_a', 'tokens', 1, '10'],
      [at, 'cus_b', 'api', 1, '1'],
      [at + HOUR_MS, 'cus_a', 'api', 1, '1'],
    ]);
  });

  it('starts a new cell for an event whose cell was taken back to nothing, and after clear()', () => {
    const ledger = new MemoryLedger();
    const e = event('cus_a', 'api', at);
    ledger.add(e, 'accepted');
    ledger.remove(e, 'accepted');
    expect(ledger.size).toBe(0);
    ledger.add(e, 'accepted');
    expect(counts(ledger)).toEqual([[at, 'cus_a', 'api', 1, '1']]);
    ledger.clear();
    ledger.add(e, 'accepted');
    expect(counts(ledger)).toEqual([[at, 'cus_a', 'api', 1, '1']]);
  });

  it('keeps each hour for its retention counted back from the newest hour, so memory stays bounded over months', () => {
    const ledger = new MemoryLedger(3 * HOUR_MS);
    // 30 days of 20 customers, every hour.
    for (let h = 0; h < 30 * 24; h += 1) for (let c = 0; c < 20; c += 1) ledger.add(event(`cus_${c}`, 'api', at + h * HOUR_MS), 'accepted');
    const newest = at + (30 * 24 - 1) * HOUR_MS;
    expect(ledger.size).toBe(4 * 20);
    const rows = ledger.query({ from: 0, to: newest + HOUR_MS });
    expect([...new Set(rows.map((row) => row.hour))]).toEqual([newest - 3 * HOUR_MS, newest - 2 * HOUR_MS, newest - HOUR_MS, newest]);
    expect(rows.every((row) => row.accepted.count === 1)).toBe(true);
  });

  it('counts a customer idle past the retention into a kept cell again, and an event of a forgotten hour not at all', () => {
    const ledger = new MemoryLedger(HOUR_MS);
    ledger.add(event('cus_idle', 'api', at), 'accepted');
    ledger.add(event('cus_busy', 'api', at + 5 * HOUR_MS), 'accepted');
    // cus_idle's shortcut pointed at a forgotten cell: the event of the same old hour and a current one each land in a kept cell.
    ledger.add(event('cus_idle', 'api', at + 5 * HOUR_MS), 'accepted');
    ledger.add(event('cus_idle', 'api', at + 5 * HOUR_MS + 1, '2'), 'delivered');
    expect(ledger.query({ from: 0, to: at + 6 * HOUR_MS }).map((row) => [row.hour - at, row.customerId, row.accepted.count, row.delivered.value])).toEqual([
      [5 * HOUR_MS, 'cus_busy', 1, '0'],
      [5 * HOUR_MS, 'cus_idle', 1, '2'],
    ]);
    // A late event, or the settlement of one accepted before its hour was forgotten: a cell of that hour would hold half a story.
    ledger.add(event('cus_idle', 'api', at + 1), 'accepted');
    ledger.add(event('cus_idle', 'api', at + 2), 'delivered');
    expect(ledger.query({ from: at, to: at + HOUR_MS })).toEqual([]);
    expect(ledger.size).toBe(2);
    // clear() forgets the cut-off too: the old hour counts again.
    ledger.clear();
    ledger.add(event('cus_idle', 'api', at), 'accepted');
    expect(ledger.size).toBe(1);
  });
});
