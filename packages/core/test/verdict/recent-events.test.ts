// The identifiers a reporter remembers for the meter error webhook: a fixed ring, kept only once a webhook asks.
import { MeterReporter } from '@metered/core';
import { RecentEvents } from '../../src/verdict/recent-events';

describe('RecentEvents', () => {
  it('forgets the oldest identifiers first, past its size, and finds the newest', () => {
    const recent = new RecentEvents(1000);
    for (let i = 0; i < 5500; i += 1) recent.remember(`id_${i}`, 'api_requests', `cus_${i % 7}`);
    expect(recent.lookup('id_4499')).toBeUndefined();
    expect(recent.lookup('id_4500')).toEqual({ eventName: 'api_requests', customerId: `cus_${4500 % 7}` });
    expect(recent.lookup('id_5499')).toEqual({ eventName: 'api_requests', customerId: `cus_${5499 % 7}` });
  });

  it('keeps an identifier reported again until its newest slot is reused', () => {
    const recent = new RecentEvents(3);
    recent.remember('a', 'e1', 'cus_1');
    recent.remember('b', 'e1', 'cus_1');
    recent.remember('a', 'e2', 'cus_2');
    // The slot 'a' first held is reused now; 'a' lives on in its newer slot.
    recent.remember('c', 'e1', 'cus_1');
    expect(recent.lookup('a')).toEqual({ eventName: 'e2', customerId: 'cus_2' });
    recent.remember('d', 'e1', 'cus_1');
    expect(recent.lookup('b')).toBeUndefined();
  });
});

describe('a reporter remembers identifiers only for a meter error webhook', () => {
  it('keeps none until rememberIdentifiers() is called, then finds what it reported', async () => {
    const reporter = new MeterReporter({ apiKey: 'sk_test_recent0000000000', flushIntervalMs: 60_000, onDrop: () => undefined });
    try {
      const before = reporter.report({ eventName: 'api_requests', customerId: 'cus_1' });
      expect(reporter.lookupIdentifier(before)).toBeUndefined();
      reporter.rememberIdentifiers();
      const after = reporter.report({ eventName: 'api_requests', customerId: 'cus_2' });
      expect(reporter.lookupIdentifier(after)).toEqual({ eventName: 'api_requests', customerId: 'cus_2' });
    } finally {
      await reporter.close({ timeoutMs: 0 });
    }
  });
});
