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
});
