// The entry codec: events by column round-trip with every field, older entries still read, damaged ones refused.
import type { QueuedEvent } from '@metered/core';
import { BATCH_FIELD, COLUMNS_FIELD, decodeEntry, encodeEvents, ENTRY_FIELD } from '../src/codec';
import { event } from './helpers';

/** What a reader gets back for `events`: the same fields, seq 0, and dimensions present as core's report() sets it. */
function asRead(events: readonly QueuedEvent[]): QueuedEvent[] {
  return events.map((e) => ({ ...e, dimensions: e.dimensions, seq: 0 }));
}

function roundTrip(events: readonly QueuedEvent[]): QueuedEvent[] | undefined {
  return decodeEntry([COLUMNS_FIELD, encodeEvents(events)]);
}

describe('entry codec', () => {
  it('round-trips events that differ in every field, with dimensions, accounts and a field it does not know', () => {
    const events = [
      event(0, { dimensions: { region: 'eu', tier: 'pro' } }),
      event(1, { value: '12345678901234567890', timestamp: 1_700_000_000_123 }),
      { ...event(2, { eventName: 'tokens', customerId: 'cus_"quoted"\u2028' }), account: 'acct_123' } as QueuedEvent,
      { ...event(3), futureField: { nested: [1, 'two'] } } as unknown as QueuedEvent,
    ];
    const read = roundTrip(events);
    expect(read).toStrictEqual(asRead(events));
  });

  it('decoded events have the shape core gives a reported one (dimensions always, account only when set)', () => {
    const [plain, withAccount] = roundTrip([event(0), { ...event(1), account: 'acct_1' }])!;
    expect(Object.keys(plain!)).toEqual(['eventName', 'customerId', 'value', 'timestamp', 'identifier', 'dimensions', 'seq']);
    expect(Object.keys(withAccount!)).toEqual(['eventName', 'customerId', 'value', 'timestamp', 'identifier', 'dimensions', 'seq', 'account']);
  });

  it('writes a value shared by every event once, and is far smaller than an array of events', () => {
    const events = Array.from({ length: 100 }, (_, i) => event(i, { customerId: 'cus_same', value: '1', timestamp: 1_700_000_000_000 }));
    const json = encodeEvents(events);
    expect(json.split('cus_same')).toHaveLength(2);
    expect(json.split('api_requests')).toHaveLength(2);
    expect(json.length).toBeLessThan(JSON.stringify(events).length / 2);
    expect(decodeEntry([COLUMNS_FIELD, json])).toStrictEqual(asRead(events));
  });

  it('still reads the entries earlier versions wrote (one event, or an array of events)', () => {
    const events = [event(1, { dimensions: { region: 'eu' } }), event(2)];
    expect(decodeEntry([BATCH_FIELD, JSON.stringify(events)])).toEqual(events.map((e) => ({ ...e, seq: 0 })));
    expect(decodeEntry([ENTRY_FIELD, JSON.stringify(events[0])])).toEqual([{ ...events[0], seq: 0 }]);
  });

  it('refuses entries it did not write or that are damaged', () => {
    const good = JSON.parse(encodeEvents([event(1), event(2, { customerId: 'cus_other' })])) as Record<string, unknown>;
    const damaged = (change: Record<string, unknown>): unknown => decodeEntry([COLUMNS_FIELD, JSON.stringify({ ...good, ...change })]);
    expect(decodeEntry([COLUMNS_FIELD, JSON.stringify(good)])).toHaveLength(2);
    expect(damaged({ k: 3 })).toBeUndefined();
    expect(damaged({ k: 0, i: [] })).toBeUndefined();
    expect(damaged({ c: ['cus_1'] })).toBeUndefined();
    expect(damaged({ i: ['evt_1', 2] })).toBeUndefined();
    expect(damaged({ v: 1 })).toBeUndefined();
    expect(damaged({ d: [0] })).toBeUndefined();
    expect(damaged({ a: [0, 7] })).toBeUndefined();
    expect(damaged({ r: [0, 'text'] })).toBeUndefined();
    expect(decodeEntry([COLUMNS_FIELD, '{not json'])).toBeUndefined();
    expect(decodeEntry([COLUMNS_FIELD, '[]'])).toBeUndefined();
    expect(decodeEntry(['x', JSON.stringify(good)])).toBeUndefined();
  });

  it('an extra field cannot replace a core field or the prototype', () => {
    const json = JSON.stringify({ ...JSON.parse(encodeEvents([event(1)])), r: [JSON.parse('{"__proto__": {"polluted": true}, "identifier": "evt_other", "note": "kept"}')] });
    const [read] = decodeEntry([COLUMNS_FIELD, json])!;
    expect(Object.getPrototypeOf(read)).toBe(Object.prototype);
    expect(read!.identifier).toBe('evt_1');
    expect((read as unknown as { note: string }).note).toBe('kept');
  });
});
