// The official stripe-node client (v23.1.0) against the fake: every call a meter-event reporter makes, and its error mapping.
import Stripe from 'stripe';

import { createManualClock, meterEvent, startFakeStripe } from '../src';
import type { FakeStripe } from '../src';
import { rejectionOf, stripeAt, stripeRouted } from './support/clients';
import { expectTrafficMatchesSpecThenReset } from './support/spec';

const clock = createManualClock(Date.UTC(2026, 0, 15, 12, 0, 0));
let fake: FakeStripe;
let stripe: Stripe;

beforeAll(async () => {
  fake = await startFakeStripe({
    now: clock.now,
    meters: ['api_requests', { event_name: 'retired', status: 'inactive' }, { event_name: 'tokens', formula: 'count', id: 'mtr_tokens' }],
  });
  stripe = stripeAt(fake, fake.apiKey);
});

afterEach(() => expectTrafficMatchesSpecThenReset(fake));

afterAll(() => fake.close());

describe('v2.billing.meterEvents.create', () => {
  it('returns the meter event and counts it', async () => {
    const event = await stripe.v2.billing.meterEvents.create({
      event_name: 'api_requests',
      identifier: 'req-1',
      payload: { stripe_customer_id: 'cus_a', value: '25' },
      timestamp: new Date(clock.now() - 60_000).toISOString(),
    });
    expect(event).toMatchObject({
      object: 'v2.billing.meter_event',
      event_name: 'api_requests',
      identifier: 'req-1',
      livemode: false,
      payload: { stripe_customer_id: 'cus_a', value: '25' },
      timestamp: new Date(clock.now() - 60_000).toISOString(),
      created: new Date(clock.now()).toISOString(),
    });
    expect(fake.totals()).toEqual({ cus_a: { api_requests: 25 } });
    expect(fake.events()).toEqual([expect.objectContaining({ identifier: 'req-1', customer: 'cus_a', value: '25', numericValue: 25, via: 'direct' })]);
  });

  it('generates an identifier when none is sent', async () => {
    const event = await stripe.v2.billing.meterEvents.create(meterEvent('cus_a', 1));
    expect(event.identifier).toMatch(/^[0-9a-f-]{36}$/);
  });

  it.each([
    ['no_meter', meterEvent('cus_a', 1, { event_name: 'unknown' })],
    ['archived_meter', meterEvent('cus_a', 1, { event_name: 'retired' })],
    ['payload_invalid_value', meterEvent('cus_a', '1.5')],
    ['payload_no_customer_defined', { event_name: 'api_requests', payload: { value: '1' } }],
    ['payload_no_value_defined', { event_name: 'api_requests', payload: { stripe_customer_id: 'cus_a' } }],
  ])('maps a 400 %s to StripeInvalidRequestError with that code', async (code, params) => {
    const error = await rejectionOf(stripe.v2.billing.meterEvents.create(params));
    expect(error).toBeInstanceOf(Stripe.errors.StripeInvalidRequestError);
    expect(error).toMatchObject({ statusCode: 400, code, rawType: 'invalid_request_error' });
    expect(fake.events()).toEqual([]);
  });

  it('maps a duplicate identifier to StripeInvalidRequestError duplicate_meter_event and counts the event once', async () => {
    await stripe.v2.billing.meterEvents.create(meterEvent('cus_a', 3, { identifier: 'dup-1' }));
    const error = await rejectionOf(stripe.v2.billing.meterEvents.create(meterEvent('cus_a', 3, { identifier: 'dup-1' })));
    expect(error).toBeInstanceOf(Stripe.errors.StripeInvalidRequestError);
    expect(error.code).toBe('duplicate_meter_event');
    expect(fake.totals()).toEqual({ cus_a: { api_requests: 3 } });
  });

  it('rejects a numeric value, which the SDK types forbid but JavaScript callers can send', async () => {
    const params = { event_name: 'api_requests', payload: { stripe_customer_id: 'cus_a', value: 25 } } as unknown as Stripe.V2.Billing.MeterEventCreateParams;
    const error = await rejectionOf(stripe.v2.billing.meterEvents.create(params));
    expect(error).toBeInstanceOf(Stripe.errors.StripeInvalidRequestError);
    expect(error.code).toBe('invalid_fields');
  });

  it('maps a 409 too_many_concurrent_requests to StripeAPIError (and stripe-node would retry it by default)', async () => {
    fake.faults.fail({ endpoint: 'meter_events', status: 409 });
    const error = await rejectionOf(stripe.v2.billing.meterEvents.create(meterEvent('cus_a')));
    expect(error).toBeInstanceOf(Stripe.errors.StripeAPIError);
    expect(error).toMatchObject({ statusCode: 409, code: 'too_many_concurrent_requests' });
  });

  it('maps a wrong secret key to StripeAuthenticationError', async () => {
    const error = await rejectionOf(stripeAt(fake, 'sk_test_wrong').v2.billing.meterEvents.create(meterEvent('cus_a')));
    expect(error).toBeInstanceOf(Stripe.errors.StripeAuthenticationError);
    expect(error.statusCode).toBe(401);
  });
});

describe('meter event sessions and the stream', () => {
  it('creates a session whose token authenticates meterEventStream.create on the meter-events host', async () => {
    const session = await stripe.v2.billing.meterEventSession.create();
    expect(session).toMatchObject({
      object: 'v2.billing.meter_event_session',
      livemode: false,
      created: new Date(clock.now()).toISOString(),
      expires_at: new Date(clock.now() + 15 * 60_000).toISOString(),
    });
    expect(session.id).toMatch(/^mes_/);
    const streamer = stripeAt(fake, session.authentication_token, 'meter_events');
    const result = await streamer.v2.billing.meterEventStream.create({
      events: [meterEvent('cus_a', 2, { identifier: 's-1' }), meterEvent('cus_b', 5, { identifier: 's-2' })],
    });
    expect(result).toEqual({});
    expect(fake.totals()).toEqual({ cus_a: { api_requests: 2 }, cus_b: { api_requests: 5 } });
    expect(fake.events().map((e) => e.via)).toEqual(['stream', 'stream']);
  });

  it("follows stripe-node's own routing: the stream to meter-events.stripe.com, everything else to api.stripe.com", async () => {
    const api = stripeRouted(fake, fake.apiKey);
    const session = await api.v2.billing.meterEventSession.create();
    await stripeRouted(fake, session.authentication_token).v2.billing.meterEventStream.create({ events: [meterEvent('cus_a', 4)] });
    await api.v2.billing.meterEvents.create(meterEvent('cus_a', 1));
    expect(fake.requests().map((r) => [r.host, r.path, r.status])).toEqual([
      ['api', '/v2/billing/meter_event_session', 200],
      ['meter_events', '/v2/billing/meter_event_stream', 200],
      ['api', '/v2/billing/meter_events', 200],
    ]);
    expect(fake.totals()).toEqual({ cus_a: { api_requests: 5 } });
  });

  it('answers 404 when a client sends the stream to the API host', async () => {
    const token = fake.createSession().authentication_token;
    const error = await rejectionOf(stripeAt(fake, token, 'api').v2.billing.meterEventStream.create({ events: [meterEvent('cus_a')] }));
    expect(error).toBeInstanceOf(Stripe.errors.StripeInvalidRequestError);
    expect(error.statusCode).toBe(404);
    expect(fake.events()).toEqual([]);
  });

  it('throws TemporarySessionExpiredError once the token has lived 15 minutes', async () => {
    const session = await stripe.v2.billing.meterEventSession.create();
    const streamer = stripeAt(fake, session.authentication_token, 'meter_events');
    clock.advance(15 * 60_000 - 1);
    await streamer.v2.billing.meterEventStream.create({ events: [meterEvent('cus_a')] });
    clock.advance(1);
    const error = await rejectionOf(streamer.v2.billing.meterEventStream.create({ events: [meterEvent('cus_a')] }));
    expect(error).toBeInstanceOf(Stripe.errors.TemporarySessionExpiredError);
    expect(error).toMatchObject({ statusCode: 401, code: 'billing_meter_event_session_expired', rawType: 'temporary_session_expired' });
    expect(fake.totals()).toEqual({ cus_a: { api_requests: 1 } });
  });

  it('refuses the secret key on the stream with StripeAuthenticationError', async () => {
    const error = await rejectionOf(stripeAt(fake, fake.apiKey, 'meter_events').v2.billing.meterEventStream.create({ events: [meterEvent('cus_a')] }));
    expect(error).toBeInstanceOf(Stripe.errors.StripeAuthenticationError);
  });

  it('maps a 429 to StripeRateLimitError with the Retry-After header', async () => {
    fake.faults.fail({ endpoint: 'meter_event_stream', status: 429, retryAfter: 2 });
    const streamer = stripeAt(fake, fake.createSession().authentication_token, 'meter_events');
    const error = await rejectionOf(streamer.v2.billing.meterEventStream.create({ events: [meterEvent('cus_a')] }));
    expect(error).toBeInstanceOf(Stripe.errors.StripeRateLimitError);
    expect(error).toMatchObject({ statusCode: 429, code: 'rate_limit' });
    expect(error.headers['retry-after']).toBe('2');
  });
});

describe('v2.billing.meterEventAdjustments.create', () => {
  it('cancels an event received within 24 hours', async () => {
    await stripe.v2.billing.meterEvents.create(meterEvent('cus_a', 7, { identifier: 'to-cancel' }));
    await stripe.v2.billing.meterEvents.create(meterEvent('cus_a', 1, { identifier: 'kept' }));
    const adjustment = await stripe.v2.billing.meterEventAdjustments.create({
      event_name: 'api_requests',
      type: 'cancel',
      cancel: { identifier: 'to-cancel' },
    });
    expect(adjustment).toMatchObject({
      object: 'v2.billing.meter_event_adjustment',
      event_name: 'api_requests',
      type: 'cancel',
      cancel: { identifier: 'to-cancel' },
      status: 'pending',
    });
    expect(fake.totals()).toEqual({ cus_a: { api_requests: 1 } });
    expect(fake.adjustments()).toEqual([expect.objectContaining({ identifier: 'to-cancel', applied: true, reason: null })]);
  });
});

describe('v1 billing meters', () => {
  it('lists meters as billing.meter objects', async () => {
    const list = await stripe.billing.meters.list();
    expect(list.object).toBe('list');
    expect(list.data.map((m) => [m.event_name, m.status, m.default_aggregation.formula])).toEqual([
      ['tokens', 'active', 'count'],
      ['retired', 'inactive', 'sum'],
      ['api_requests', 'active', 'sum'],
    ]);
    expect(list.data[2]).toMatchObject({
      object: 'billing.meter',
      customer_mapping: { event_payload_key: 'stripe_customer_id', type: 'by_id' },
      value_settings: { event_payload_key: 'value' },
    });
    const active = await stripe.billing.meters.list({ status: 'active', limit: 1 });
    expect(active.data.map((m) => m.event_name)).toEqual(['tokens']);
    expect(active.has_more).toBe(true);
  });

  it('summarises a customer over a minute-aligned window with listEventSummaries', async () => {
    const minute = Math.floor(clock.now() / 60_000) * 60;
    await stripe.v2.billing.meterEvents.create(meterEvent('cus_a', 1, { event_name: 'tokens', timestamp: clock.now() - 1000 }));
    await stripe.v2.billing.meterEvents.create(meterEvent('cus_a', 9, { event_name: 'tokens', timestamp: clock.now() - 2000 }));
    await stripe.v2.billing.meterEvents.create(meterEvent('cus_b', 9, { event_name: 'tokens' }));
    const summaries = await stripe.billing.meters.listEventSummaries('mtr_tokens', {
      customer: 'cus_a',
      start_time: minute - 3600,
      end_time: minute + 60,
    });
    expect(summaries.data).toEqual([
      expect.objectContaining({
        object: 'billing.meter_event_summary',
        aggregated_value: 2,
        meter: 'mtr_tokens',
        start_time: minute - 3600,
        end_time: minute + 60,
      }),
    ]);
  });

  it('maps a misaligned window to StripeInvalidRequestError naming the parameter', async () => {
    const error = await rejectionOf(stripe.billing.meters.listEventSummaries('mtr_tokens', { customer: 'cus_a', start_time: 61, end_time: 600 }));
    expect(error).toBeInstanceOf(Stripe.errors.StripeInvalidRequestError);
    expect(error.param).toBe('start_time');
  });
});
