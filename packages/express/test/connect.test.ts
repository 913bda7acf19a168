// Stripe Connect through meterUsage({ account }): each request billed under the connected account the server resolves.
import { meterUsage } from '@metered/express';
import type { MeteredRequest } from '@metered/express';
import type { Request, Response } from 'express';
import request from 'supertest';
import { ALICE, BOB, EXPRESS_VERSIONS, buildApp, reporterFor, useMeteringSuite } from './helpers';

// Server-side tenancy: which connected account each customer belongs to (a client never names it).
const ACCOUNT_OF_CUSTOMER: Readonly<Record<string, string>> = { cus_alice: 'acct_1Alice', cus_bob: 'acct_2Bob' };

function accountOf(req: MeteredRequest): string | undefined {
  const customer = req.user?.stripeCustomerId;
  return customer === undefined ? undefined : ACCOUNT_OF_CUSTOMER[customer];
}

describe.each(EXPRESS_VERSIONS)('meterUsage({ account }) on %s', (_name, express) => {
  const suite = useMeteringSuite();

  it.each(['stream', 'direct'] as const)('bills each request under the account the resolver names (%s mode)', async (mode) => {
    const { reporter, errors } = reporterFor(suite.fake, { mode });
    const mw = suite.closeAfterTest(meterUsage({ reporter, account: (req) => accountOf(req) }));
    const app = buildApp(express, [mw]);
    await request(app).get('/v1/search').set(ALICE).expect(200);
    await request(app).get('/v1/search').set(ALICE).expect(200);
    await request(app).get('/v1/search').set(BOB).expect(200);
    await mw.flush();
    expect(errors).toEqual([]);
    expect(suite.fake.totals({ account: 'acct_1Alice' })).toEqual({ cus_alice: { api_requests: 2 } });
    expect(suite.fake.totals({ account: 'acct_2Bob' })).toEqual({ cus_bob: { api_requests: 1 } });
    expect(suite.fake.totals()).toEqual({});
  });

  it('awaits an async resolver, and bills the platform when it answers undefined', async () => {
    const mw = suite.meter({ account: (req) => Promise.resolve(req.user?.stripeCustomerId === 'cus_alice' ? 'acct_1Alice' : undefined) });
    const app = buildApp(express, [mw]);
    await request(app).get('/v1/search').set(ALICE).expect(200);
    await request(app).get('/v1/search').set(BOB).expect(200);
    await mw.flush();
    expect(suite.fake.totals({ account: 'acct_1Alice' })).toEqual({ cus_alice: { api_requests: 1 } });
    expect(suite.fake.totals()).toEqual({ cus_bob: { api_requests: 1 } });
  });

  it('never lets a client choose the account: a Stripe-Context header sent to the app bills the platform', async () => {
    const mw = suite.meter();
    const app = buildApp(express, [mw]);
    await request(app).get('/v1/search').set(ALICE).set('stripe-context', 'acct_1Alice').set('stripe-account', 'acct_1Alice').expect(200);
    await mw.flush();
    expect(suite.fake.totals()).toEqual({ cus_alice: { api_requests: 1 } });
    expect(suite.fake.totals({ account: 'acct_1Alice' })).toEqual({});
  });

  it('reports a resolver answer that is no acct_ id to onError, bills nothing for it, and leaves the response alone', async () => {
    const { reporter, errors } = reporterFor(suite.fake);
    const mw = suite.closeAfterTest(meterUsage({ reporter, account: (_req: Request, res: Response) => (res.statusCode === 200 ? 'cus_notAnAccount' : undefined) }));
    const app = buildApp(express, [mw]);
    const res = await request(app).get('/v1/search').set(ALICE).expect(200);
    expect(res.body).toEqual({ query: null, results: ['a', 'b'] });
    await mw.flush();
    expect(errors).toEqual([expect.objectContaining({ code: 'ERR_METER_ADAPTER', cause: expect.objectContaining({ code: 'ERR_METER_INVALID_ACCOUNT', field: 'account' }) })]);
    expect(suite.fake.events()).toEqual([]);
    expect(mw.stats()).toMatchObject({ metered: 0, errors: 1 });
  });
});

describe('the account option', () => {
  const suite = useMeteringSuite();

  it('is refused at construction unless it is a function, naming the option', () => {
    const { reporter } = reporterFor(suite.fake);
    expect(() => meterUsage({ reporter, account: 'acct_1Alice' as never })).toThrow(expect.objectContaining({ code: 'ERR_METER_INVALID_OPTION', option: 'account' }));
  });
});
