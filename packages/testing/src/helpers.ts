// Small helpers for tests written against the fake: valid events, session tokens without HTTP, a hand-driven clock.
import { DEFAULT_CUSTOMER_PAYLOAD_KEY, DEFAULT_METER_EVENT_NAME, DEFAULT_VALUE_PAYLOAD_KEY } from './config';
import type { FakeStripe, ManualClock, MeterEventBody, MeterEventOverrides } from './types';

/**
 * A valid meter event for the default payload keys; the value is stringified, as Stripe requires.
 *
 * @example
 * await stripe.v2.billing.meterEvents.create(meterEvent('cus_123', 5, { identifier: 'req-1' }));
 */
export function meterEvent(customer: string, value: string | number | bigint = 1, overrides: MeterEventOverrides = {}): MeterEventBody {
  const event: MeterEventBody = {
    event_name: overrides.event_name ?? DEFAULT_METER_EVENT_NAME,
    payload: { [DEFAULT_CUSTOMER_PAYLOAD_KEY]: customer, [DEFAULT_VALUE_PAYLOAD_KEY]: String(value), ...overrides.payload },
  };
  if (overrides.identifier !== undefined) event.identifier = overrides.identifier;
  if (overrides.timestamp !== undefined) {
    const t = overrides.timestamp;
    event.timestamp = typeof t === 'string' ? t : new Date(t).toISOString();
  }
  return event;
}

/** A live session token issued by `fake`, without a round trip; the token authenticates on `fake.meterEventsUrl`. */
export function createSessionToken(fake: FakeStripe): string {
  return fake.createSession().authentication_token;
}

/**
 * A hand-driven clock, so tests can expire tokens or leave the dedup window without waiting.
 *
 * @example
 * const clock = createManualClock();
 * const fake = await startFakeStripe({ now: clock.now });
 * clock.advance(15 * 60 * 1000); // every session token has now expired
 */
export function createManualClock(startMs: number = Date.now()): ManualClock {
  let current = startMs;
  return {
    now: () => current,
    advance(ms: number) {
      current += ms;
    },
    set(epochMs: number) {
      current = epochMs;
    },
  };
}
