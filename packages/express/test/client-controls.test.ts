// A client can neither choose who is billed nor suppress billing; Idempotency-Key (opt-in) only collapses its own retries.
import request from 'supertest';
import { ALICE, BOB, EXPRESS_VERSIONS, billed, buildApp, useMeteringSuite } from './helpers';

describe.each(EXPRESS_VERSIONS)('what a client controls, on %s', (_name, express) => {
  const suite = useMeteringSuite();
  const { meter } = suite;

  const SPOOFED_HEADERS = {
    'x-stripe-customer-id': 'cus_bob',
    'stripe-customer-id': 'cus_bob',
    'x-customer-id': 'cus_bob',
    'stripe-account': 'acct_bob',
  };
  const SPOOFED_QUERY = '?customer=cus_bob&stripeCustomerId=cus_bob&stripe_customer_id=cus_bob';

  it('bills the authenticated customer whatever customer the headers or query name', async () => {
    const mw = meter();
    await request(buildApp(express, [mw])).get(`/v1/search${SPOOFED_QUERY}`).set(ALICE).set(SPOOFED_HEADERS).expect(200);
    await mw.flush();
    expect(billed(suite.fake)).toEqual([{ customer: 'cus_alice', eventName: 'api_requests', value: '1' }]);
  });

  it('bills no one for an unauthenticated request that names a customer', async () => {
    const mw = meter();
    const app = buildApp(express, [mw], (a) => a.get('/public', (_req, res) => res.send('hi')));
    await request(app).get(`/public${SPOOFED_QUERY}`).set(SPOOFED_HEADERS).expect(200);
    await mw.flush();
    expect(billed(suite.fake)).toEqual([]);
    expect(mw.stats().skipped.noCustomer).toBe(1);
  });

  it('a body field naming a customer changes nothing', async () => {
    const mw = meter();
    await request(buildApp(express, [mw]))
      .post('/v1/generate')
      .set(ALICE)
      .send({ prompt: 'a b', stripeCustomerId: 'cus_bob', user: { stripeCustomerId: 'cus_bob' } })
      .expect(200);
    await mw.flush();
    expect(billed(suite.fake)).toEqual([{ customer: 'cus_alice', eventName: 'llm_tokens', value: '6' }]);
  });

  it('headers and query parameters cannot skip metering or change the value', async () => {
    const mw = meter();
    await request(buildApp(express, [mw]))
      .get('/v1/search?skipMetering=true&metering=off&value=0&eventName=free')
      .set(ALICE)
      .set({ 'x-skip-metering': '1', 'x-metering': 'off', 'x-meter-value': '0', 'x-meter-event-name': 'free', 'cache-control': 'no-store' })
      .expect(200);
    await mw.flush();
    expect(billed(suite.fake)).toEqual([{ customer: 'cus_alice', eventName: 'api_requests', value: '1' }]);
  });

  it('ignores Idempotency-Key unless opted in: two requests bill twice', async () => {
    const mw = meter();
    const app = buildApp(express, [mw]);
    await request(app).get('/v1/search').set(ALICE).set('Idempotency-Key', 'k1').expect(200);
    await request(app).get('/v1/search').set(ALICE).set('Idempotency-Key', 'k1').expect(200);
    await mw.flush();
    expect(suite.fake.totals()).toEqual({ cus_alice: { api_requests: 2 } });
  });

  describe("with identifier: 'idempotency-key'", () => {
    it('bills a client retry carrying the same key once', async () => {
      const mw = meter({ identifier: 'idempotency-key' });
      const app = buildApp(express, [mw]);
      await request(app).post('/v1/generate').set(ALICE).set('Idempotency-Key', 'op-1').send({ prompt: 'a b c' }).expect(200);
      await request(app).post('/v1/generate').set(ALICE).set('Idempotency-Key', 'op-1').send({ prompt: 'a b c' }).expect(200);
      await request(app).post('/v1/generate').set(ALICE).set('Idempotency-Key', 'op-2').send({ prompt: 'a b c' }).expect(200);
      await request(app).post('/v1/generate').set(ALICE).send({ prompt: 'a b c' }).expect(200);
      await mw.flush();
      expect(suite.fake.totals()).toEqual({ cus_alice: { llm_tokens: 27 } });
      expect(billed(suite.fake)).toHaveLength(3);
    });

    it('bills the same key sent by two customers to each of them', async () => {
      const mw = meter({ identifier: 'idempotency-key' });
      const app = buildApp(express, [mw]);
      await request(app).get('/v1/search').set(ALICE).set('Idempotency-Key', 'shared').expect(200);
      await request(app).get('/v1/search').set(BOB).set('Idempotency-Key', 'shared').expect(200);
      await mw.flush();
      expect(suite.fake.totals()).toEqual({ cus_alice: { api_requests: 1 }, cus_bob: { api_requests: 1 } });
    });

    it('keeps the same key on two meters apart', async () => {
      const mw = meter({ identifier: 'idempotency-key' });
      const app = buildApp(express, [mw]);
      await request(app).get('/v1/search').set(ALICE).set('Idempotency-Key', 'same').expect(200);
      await request(app).post('/v1/generate').set(ALICE).set('Idempotency-Key', 'same').send({ prompt: 'x' }).expect(200);
      await mw.flush();
      expect(suite.fake.totals()).toEqual({ cus_alice: { api_requests: 1, llm_tokens: 3 } });
    });

    it('bills a key reused on other routes and methods again (one key cannot buy 30 requests)', async () => {
      const mw = meter({ identifier: 'idempotency-key' });
      const app = buildApp(express, [mw], (a) => {
        a.get('/v1/items/:id', (_req, res) => res.send('item'));
        a.post('/v1/items/:id', (_req, res) => res.send('updated'));
      });
      for (let i = 0; i < 10; i += 1) {
        await request(app).get('/v1/search').set(ALICE).set('Idempotency-Key', 'reused').expect(200);
        await request(app).get(`/v1/items/${i}`).set(ALICE).set('Idempotency-Key', 'reused').expect(200);
        await request(app).post(`/v1/items/${i}`).set(ALICE).set('Idempotency-Key', 'reused').expect(200);
      }
      await mw.flush();
      // One event per operation (method and route pattern); within one, the key marks retries,
      // whatever the ids in the URL.
      expect(suite.fake.totals()).toEqual({ cus_alice: { api_requests: 3 } });
    });

    it('keeps one router mounted at two paths apart, by its mount path', async () => {
      const mw = meter({ identifier: 'idempotency-key' });
      const app = buildApp(express, [mw], (a) => {
        const router = express.Router();
        router.get('/report', (_req, res) => res.send('report'));
        a.use(['/v1/team', '/v1/org'], router);
      });
      await request(app).get('/v1/team/report').set(ALICE).set('Idempotency-Key', 'k').expect(200);
      await request(app).get('/v1/org/report').set(ALICE).set('Idempotency-Key', 'k').expect(200);
      await request(app).get('/v1/org/report').set(ALICE).set('Idempotency-Key', 'k').expect(200);
      await mw.flush();
      expect(suite.fake.totals()).toEqual({ cus_alice: { api_requests: 2 } });
    });

    it('scopes a request no route matched by its path', async () => {
      const mw = meter({ identifier: 'idempotency-key' });
      const app = buildApp(express, [mw], (a) => a.use('/v1/files', (_req, res) => res.send('file')));
      await request(app).get('/v1/files/a.txt').set(ALICE).set('Idempotency-Key', 'k').expect(200);
      await request(app).get('/v1/files/b.txt').set(ALICE).set('Idempotency-Key', 'k').expect(200);
      await request(app).get('/v1/files/b.txt?download=1').set(ALICE).set('Idempotency-Key', 'k').expect(200);
      await mw.flush();
      expect(suite.fake.totals()).toEqual({ cus_alice: { api_requests: 2 } });
    });

    it('reads a custom header name', async () => {
      const mw = meter({ identifier: 'idempotency-key', idempotencyKeyHeader: 'X-Request-Key' });
      const app = buildApp(express, [mw]);
      await request(app).get('/v1/search').set(ALICE).set('x-request-key', 'r1').expect(200);
      await request(app).get('/v1/search').set(ALICE).set('x-request-key', 'r1').expect(200);
      await mw.flush();
      expect(suite.fake.totals()).toEqual({ cus_alice: { api_requests: 1 } });
    });
  });
});
