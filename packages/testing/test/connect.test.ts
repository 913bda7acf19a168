// Stripe Connect at the fake: sessions bound to their Stripe-Context, events and totals kept per account.
import { meterEvent, startFakeStripe } from '../src';
import type { FakeStripe } from '../src';
import { call, sendDirect, sendStream, stripeRouted } from './support/clients';
import { expectTrafficMatchesSpecThenReset } from './support/spec';

let fake: FakeStripe;

beforeAll(async () => {
  fake = await startFakeStripe({ meters: ['api_requests'] });
});
afterEach(() => expectTrafficMatchesSpecThenReset(fake));
afterAll(() => fake.close());

/** A session created over HTTP under `context` (none: the platform's). */
async function sessionToken(context?: string): Promise<string> {
  const res = await call(fake, '/v2/billing/meter_event_session', { headers: context === undefined ? {} : { 'stripe-context': context } });
  expect(res.status).toBe(200);
  return res.json.authentication_token as string;
}

describe('stream sessions bound to their Stripe-Context', () => {
  it('records a stream request under the account its session was created for, with or without the header', async () => {
    const token = await sessionToken('acct_1A');
    expect((await sendStream(fake, [meterEvent('cus_1', 2)], { auth: token })).status).toBe(200);
    expect((await sendStream(fake, [meterEvent('cus_1', 3)], { auth: token, headers: { 'stripe-context': 'acct_1A' } })).status).toBe(200);
    expect(fake.totals({ account: 'acct_1A' })).toEqual({ cus_1: { api_requests: 5 } });
    expect(fake.totals()).toEqual({});
    expect(fake.events().map((e) => e.account)).toEqual(['acct_1A', 'acct_1A']);
  });

  it("refuses a stream request whose Stripe-Context is not its session's, recording nothing", async () => {
    const connected = await sessionToken('acct_1A');
    const platform = await sessionToken();
    const other = await sendStream(fake, [meterEvent('cus_1', 2)], { auth: connected, headers: { 'stripe-context': 'acct_2B' } });
    expect(other.status).toBe(400);
    expect(other.json.error).toMatchObject({ type: 'invalid_request_error', code: 'stripe_context_mismatch' });
    const intoPlatform = await sendStream(fake, [meterEvent('cus_1', 2)], { auth: platform, headers: { 'stripe-context': 'acct_1A' } });
    expect(intoPlatform.status).toBe(400);
    expect(fake.events()).toEqual([]);
    expect(fake.stats().acceptedEvents).toBe(0);
  });

  it('keeps platform events without an account field, so platform-only records keep their shape', async () => {
    expect((await sendStream(fake, [meterEvent('cus_p', 1)])).status).toBe(200);
    expect(fake.events()[0]).not.toHaveProperty('account');
    expect(fake.totals()).toEqual({ cus_p: { api_requests: 1 } });
  });

  it('issues sessions for an account from the JavaScript API too', async () => {
    const token = fake.createSession('acct_9Z').authentication_token;
    expect((await sendStream(fake, [meterEvent('cus_9', 4)], { auth: token })).status).toBe(200);
    expect(fake.exactTotals({ account: 'acct_9Z' })).toEqual({ cus_9: { api_requests: 4n } });
  });
});

describe('direct meter events under the request Stripe-Context', () => {
  it("records each event under its request's account and totals each account apart", async () => {
    await sendDirect(fake, meterEvent('cus_1', 1));
    await sendDirect(fake, meterEvent('cus_1', 10), { headers: { 'stripe-context': 'acct_1A' } });
    await sendDirect(fake, meterEvent('cus_1', 100), { headers: { 'stripe-context': 'acct_2B' } });
    expect(fake.totals()).toEqual({ cus_1: { api_requests: 1 } });
    expect(fake.totals({ account: 'acct_1A' })).toEqual({ cus_1: { api_requests: 10 } });
    expect(fake.totals({ account: 'acct_2B' })).toEqual({ cus_1: { api_requests: 100 } });
  });

  it('keeps one identifier window per account, as each connected account is its own Stripe account', async () => {
    const event = meterEvent('cus_1', 1, { identifier: 'req_same' });
    expect((await sendDirect(fake, event, { headers: { 'stripe-context': 'acct_1A' } })).status).toBe(200);
    expect((await sendDirect(fake, event, { headers: { 'stripe-context': 'acct_2B' } })).status).toBe(200);
    const again = await sendDirect(fake, event, { headers: { 'stripe-context': 'acct_1A' } });
    expect(again.status).toBe(400);
    expect(again.json.error.code).toBe('duplicate_meter_event');
  });

  it("cancels only the event of the adjustment's account", async () => {
    const event = meterEvent('cus_1', 5, { identifier: 'req_cancel' });
    await sendDirect(fake, event);
    await sendDirect(fake, event, { headers: { 'stripe-context': 'acct_1A' } });
    const body = { event_name: 'api_requests', type: 'cancel', cancel: { identifier: 'req_cancel' } };
    expect((await call(fake, '/v2/billing/meter_event_adjustments', { body, headers: { 'stripe-context': 'acct_1A' } })).status).toBe(200);
    expect(fake.totals({ account: 'acct_1A' })).toEqual({});
    expect(fake.totals()).toEqual({ cus_1: { api_requests: 5 } });
    expect(fake.adjustments()[0]).toMatchObject({ applied: true, account: 'acct_1A' });
  });
});

describe('stripe-node stripeContext', () => {
  it("lands events sent through the official SDK's stripeContext option under that account", async () => {
    const stripe = stripeRouted(fake, fake.apiKey);
    const session = await stripe.v2.billing.meterEventSession.create({}, { stripeContext: 'acct_1A' });
    const streamer = stripeRouted(fake, session.authentication_token);
    await streamer.v2.billing.meterEventStream.create(
      { events: [{ event_name: 'api_requests', payload: { stripe_customer_id: 'cus_1', value: '7' } }] },
      { stripeContext: 'acct_1A' },
    );
    expect(fake.totals({ account: 'acct_1A' })).toEqual({ cus_1: { api_requests: 7 } });
  });
});
