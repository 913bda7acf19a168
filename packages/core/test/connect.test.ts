// Stripe Connect: events of each connected account go under its own Stripe-Context, in its own session and requests.
import { reporterFor, useFake } from './helpers';

const stripe = useFake({ meters: ['api_requests'] });

const ACCOUNT_OF: Record<string, string | undefined> = { cus_p1: undefined, cus_a1: 'acct_1A', cus_a2: 'acct_1A', cus_b1: 'acct_2B' };

describe.each(['stream', 'direct'] as const)('connected accounts in %s mode', (mode) => {
  it('never mixes accounts in a request, and sends each under its own Stripe-Context', async () => {
    const { reporter, recorded } = reporterFor(stripe.fake, { mode });
    const customers = Object.keys(ACCOUNT_OF);
    for (let i = 0; i < 40; i += 1) {
      const customerId = customers[i % customers.length]!;
      const account = ACCOUNT_OF[customerId];
      reporter.report({ eventName: 'api_requests', customerId, ...(account === undefined ? {} : { account }) });
    }
    await reporter.flush();
    expect(recorded.errors).toEqual([]);
    // The stripe.fake files each event under its session's (stream) or request's (direct) Stripe-Context.
    expect(stripe.fake.totals()).toEqual({ cus_p1: { api_requests: 10 } });
    expect(stripe.fake.totals({ account: 'acct_1A' })).toEqual({ cus_a1: { api_requests: 10 }, cus_a2: { api_requests: 10 } });
    expect(stripe.fake.totals({ account: 'acct_2B' })).toEqual({ cus_b1: { api_requests: 10 } });
    for (const event of stripe.fake.events()) expect(event.account).toBe(ACCOUNT_OF[event.customer]);
    expect(stripe.fake.events()).toHaveLength(40);
    if (mode === 'stream') {
      // One session per account, each created under the account's context.
      const contexts = stripe.fake.requests().filter((r) => r.endpoint === 'meter_event_session').map((r) => r.headers['stripe-context'] ?? 'platform');
      expect(contexts.sort()).toEqual(['acct_1A', 'acct_2B', 'platform']);
    }
  });
});

describe('account validation', () => {
  it('refuses an account that is not an acct_ id, naming the field', () => {
    const { reporter } = reporterFor(stripe.fake);
    expect(() => reporter.report({ eventName: 'api_requests', customerId: 'cus_x', account: 'acct_1/acct_2' })).toThrow(
      expect.objectContaining({ code: 'ERR_METER_INVALID_ACCOUNT', field: 'account' }),
    );
    expect(() => reporter.report({ eventName: 'api_requests', customerId: 'cus_x', account: 'cus_x' })).toThrow(expect.objectContaining({ code: 'ERR_METER_INVALID_ACCOUNT' }));
    expect(reporter.stats().rejected).toBe(2);
  });
});
