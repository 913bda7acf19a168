// The usage ledger: hourly cells per customer and event name, exact sums past 2^53 and 2^63, the same answers from memory and disk (older spools' figures: migration.test.ts).
import path from 'node:path';
import { MeterConfigError } from '../../src/errors';
import { MemoryDurableStore } from '../../src/store/memory-store';
import { SpoolStore } from '../../src/store/spool-store';
import type { DurableEventStore } from '../../src/store/types';
import { event, tempDir } from './helpers';

const HOUR = 3_600_000;
const H0 = Date.UTC(2026, 5, 15, 10);

const stores: Array<[string, () => DurableEventStore]> = [
  ['memory', () => new MemoryDurableStore()],
  ['spool', () => SpoolStore.open({ path: path.join(tempDir(), 'ledger.spool') })],
];

describe.each(stores)('the %s ledger', (_, make) => {
  let store: DurableEventStore;
  beforeEach(() => {
    store = make();
  });
  afterEach(() => store.close());

  it('counts accepted and every outcome per customer × event name × hour of the event', () => {
    const a = event(0, { customerId: 'cus_a', timestamp: H0 + 5, value: '3' });
    const b = event(1, { customerId: 'cus_a', timestamp: H0 + HOUR - 1, value: '4' });
    const c = event(2, { customerId: 'cus_a', timestamp: H0 + HOUR, value: '5' });
    const d = event(3, { customerId: 'cus_b', timestamp: H0 + 10, value: '6', eventName: 'tokens' });
    const e = event(4, { customerId: 'cus_b', timestamp: H0 + 20, value: '9', eventName: 'tokens' });
    for (const x of [a, b, c, d, e]) store.push(x);
    store.take(5);
    store.settle([a, c], 'delivered');
    store.settle([b], 'failed');
    store.settle([d], 'dropped');
    store.discard([event(5, { customerId: 'cus_b', timestamp: H0 + 30, value: '2', eventName: 'tokens' })]);

    const zero = { count: 0, value: '0' };
    expect(store.ledger({ from: H0, to: H0 + 2 * HOUR })).toEqual([
      { hour: H0, customerId: 'cus_a', eventName: 'api_requests', accepted: { count: 2, value: '7' }, delivered: { count: 1, value: '3' }, failed: { count: 1, value: '4' }, dropped: zero, uncertain: zero },
      { hour: H0, customerId: 'cus_b', eventName: 'tokens', accepted: { count: 3, value: '17' }, delivered: zero, failed: zero, dropped: { count: 2, value: '8' }, uncertain: zero },
      { hour: H0 + HOUR, customerId: 'cus_a', eventName: 'api_requests', accepted: { count: 1, value: '5' }, delivered: { count: 1, value: '5' }, failed: zero, dropped: zero, uncertain: zero },
    ]);
  });

  it('selects hours overlapping [from, to) and one customer when asked', () => {
    for (let h = 0; h < 4; h += 1) {
      store.push(event(h, { customerId: 'cus_a', timestamp: H0 + h * HOUR + 1 }));
      store.push(event(h + 10, { customerId: 'cus_b', timestamp: H0 + h * HOUR + 2 }));
    }
    const hours = (rows: ReturnType<DurableEventStore['ledger']>) => rows.map((r) => [(r.hour - H0) / HOUR, r.customerId]);
    // `from` inside hour 1 still selects hour 1; `to` at the start of hour 3 excludes it.
    expect(hours(store.ledger({ from: H0 + HOUR + 1234, to: new Date(H0 + 3 * HOUR) }))).toEqual([[1, 'cus_a'], [1, 'cus_b'], [2, 'cus_a'], [2, 'cus_b']]);
    expect(hours(store.ledger({ from: H0, to: H0 + 10 * HOUR, customerId: 'cus_b' }))).toEqual([[0, 'cus_b'], [1, 'cus_b'], [2, 'cus_b'], [3, 'cus_b']]);
    expect(store.ledger({ from: H0, to: H0 + 10 * HOUR, customerId: 'cus_none' })).toEqual([]);
  });

  it('sums 15-digit values exactly, past 2^53 and past 2^63', () => {
    const max = '999999999999999';
    const n = 10_000;
    for (let i = 0; i < n; i += 1) store.push(event(i, { customerId: 'cus_big', timestamp: H0, value: max, identifier: `big_${i}` }));
    store.settle(store.take(n), 'delivered');
    const [row] = store.ledger({ from: H0, to: H0 + HOUR });
    const expected = (BigInt(max) * BigInt(n)).toString();
    expect(BigInt(expected) > 2n ** 63n).toBe(true);
    expect(row!.accepted).toEqual({ count: n, value: expected });
    expect(row!.delivered).toEqual({ count: n, value: expected });
  });

  it('refuses a query without a usable range, naming the field', () => {
    expect(() => store.ledger({ from: Number.NaN, to: H0 })).toThrow(expect.objectContaining({ option: 'ledger.from' }));
    expect(() => store.ledger({ from: H0, to: 'tomorrow' as unknown as number })).toThrow(MeterConfigError);
  });
});

describe('the spool ledger across processes', () => {
  it('keeps its counts through a reopen and adds to them', () => {
    const file = path.join(tempDir(), 'ledger.spool');
    // A recent hour: reopening prunes hours past the retention (40 days).
    const hour = Date.now() - (Date.now() % HOUR);
    const first = SpoolStore.open({ path: file });
    first.push(event(0, { timestamp: hour, value: '40' }));
    first.close();
    const second = SpoolStore.open({ path: file });
    const [left] = second.recover(hour).resend;
    second.settle([left!], 'delivered');
    second.push(event(1, { timestamp: hour, value: '2', customerId: 'cus_0' }));
    const [row] = second.ledger({ from: hour, to: hour + HOUR });
    expect([row!.accepted, row!.delivered]).toEqual([{ count: 2, value: '42' }, { count: 1, value: '40' }]);
    second.close();
  });

  it('forgets hours older than ledgerRetentionMs when it opens', () => {
    const file = path.join(tempDir(), 'ledger.spool');
    const first = SpoolStore.open({ path: file });
    const now = Date.now();
    first.push(event(0, { timestamp: now - 3 * HOUR }));
    first.push(event(1, { timestamp: now }));
    first.close();
    const second = SpoolStore.open({ path: file, ledgerRetentionMs: 2 * HOUR });
    expect(second.ledger({ from: now - 10 * HOUR, to: now + HOUR }).map((r) => r.hour)).toEqual([now - (now % HOUR)]);
    // The old event's row is still held: settling it counts its outcome, never its forgotten acceptance.
    const old = second.recover(now).resend.find((e) => e.timestamp === now - 3 * HOUR)!;
    second.settle([old], 'delivered');
    const [oldRow] = second.ledger({ from: now - 10 * HOUR, to: now - HOUR });
    expect([oldRow!.accepted, oldRow!.delivered]).toEqual([{ count: 0, value: '0' }, { count: 1, value: '1' }]);
    second.close();
  });
});
