// The wire encoding's shortcuts must write exactly what Date#toISOString and JSON.stringify write.
import type { MeterEvent } from '@metered/core';
import { encodeStreamBody, isoTimestamp, toWireEvent } from '../src/transport/wire';

describe('isoTimestamp', () => {
  it('matches Date#toISOString across second boundaries, out-of-order times and fractional milliseconds', () => {
    const start = Date.UTC(2026, 10, 25, 23, 59, 58, 990);
    const times: number[] = [];
    for (let ms = 0; ms < 2500; ms += 7) times.push(start + ms);
    times.push(start - 86_400_000 * 34, start + 1000, start, start + 0.75, start + 999.999, Date.UTC(2028, 1, 29, 12, 0, 0, 5));
    for (const ms of times) expect(isoTimestamp(ms)).toBe(new Date(ms).toISOString());
  });

  it('gives events of the same millisecond the same string, and the next millisecond its own', () => {
    const at = Date.UTC(2026, 10, 25, 12, 0, 0, 7);
    for (const ms of [at, at, at + 0.4, at + 1, at + 1, at, at + 1000, at + 1000]) expect(isoTimestamp(ms)).toBe(new Date(ms).toISOString());
  });
});

describe('encodeStreamBody', () => {
  const generic = (batch: MeterEvent[], customerKey: string, valueKey: string): string =>
    JSON.stringify({ events: batch.map((event) => toWireEvent(event, customerKey, valueKey)) });
  const at = Date.UTC(2026, 10, 25, 12, 0, 0, 7);
  const batch: MeterEvent[] = [
    { eventName: 'api_requests', customerId: 'cus_1', value: '1', timestamp: at, identifier: 'mtr_a_1', dimensions: undefined },
    { eventName: 'tokens "in"\n', customerId: 'cus_\u2028é', value: '123456789012345', timestamp: at + 999, identifier: 'id\\"\ud800', dimensions: undefined },
    { eventName: 'api_requests', customerId: 'cus_2', value: '7', timestamp: at + 1.5, identifier: 'mtr_a_3', dimensions: { region: 'eu', '0': 'x' } },
  ];

  it('writes byte for byte what JSON.stringify writes for the wire events', () => {
    expect(encodeStreamBody(batch, 'stripe_customer_id', 'value')).toBe(generic(batch, 'stripe_customer_id', 'value'));
    expect(encodeStreamBody(batch, 'customer "key"', 'amount')).toBe(generic(batch, 'customer "key"', 'amount'));
    expect(encodeStreamBody([], 'stripe_customer_id', 'value')).toBe('{"events":[]}');
  });

  it('quotes each event name and customer as its own, in runs of one and when they alternate with strings to escape', () => {
    const event = (eventName: string, customerId: string, i: number): MeterEvent => ({ eventName, customerId, value: '1', timestamp: at + i, identifier: `mtr_b_${i}`, dimensions: undefined });
    const names = ['api_requests', 'api_requests', 'tokens "in"', 'api_requests', 'a\\b', 'a\\b', 'api_requests'];
    const customers = ['cus_1', 'cus_1', 'cus_1', 'cus_"2"', 'cus_"2"', 'cus_1', 'cus_\n3'];
    const mixed = names.map((name, i) => event(name, customers[i]!, i));
    expect(encodeStreamBody(mixed, 'stripe_customer_id', 'value')).toBe(generic(mixed, 'stripe_customer_id', 'value'));
    // A second body starts from what the first left remembered.
    const again = [event('a\\b', 'cus_\n3', 9), event('api_requests', 'cus_1', 10)];
    expect(encodeStreamBody(again, 'stripe_customer_id', 'value')).toBe(generic(again, 'stripe_customer_id', 'value'));
  });

  it('keeps JSON.stringify key order when a payload key is integer-like', () => {
    expect(encodeStreamBody(batch, 'customer', '1')).toBe(generic(batch, 'customer', '1'));
  });
});
