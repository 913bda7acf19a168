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

  it('keeps JSON.stringify key order when a payload key is integer-like', () => {
    expect(encodeStreamBody(batch, 'customer', '1')).toBe(generic(batch, 'customer', '1'));
  });
});
