// How to test what an Express app bills, with @metered/testing's in-memory reporter: supertest in, totals out, no Stripe at all.
import { createTestReporter, expectNoMeteringErrors, expectNothingBilled, expectOnlyBilled } from '@metered/testing';
import { meterUsage } from '@metered/express';
import request from 'supertest';
import { createApp } from '../src/app';

const API_KEYS = { key_acme: 'cus_acme', key_globex: 'cus_globex' };

describe('what the example API bills', () => {
  // One reporter for the suite, emptied before each test; the middleware reports to it.
  const reporter = createTestReporter();
  const metering = meterUsage({ reporter });
  const app = createApp({ metering, apiKeys: API_KEYS });

  beforeEach(() => reporter.reset());
  afterAll(() => metering.close());

  it('bills a search once, an export ten times, and generated tokens on their own meter', async () => {
    await request(app).get('/v1/search?q=shoes').set('authorization', 'Bearer key_acme').expect(200);
    await request(app).get('/v1/export').set('authorization', 'Bearer key_acme').expect(200);
    await request(app).post('/v1/generate').set('authorization', 'Bearer key_globex').send({ prompt: 'four words right here' }).expect(200);
    // The middleware reports after each response: wait for it before reading the reporter.
    await metering.flush();

    expectOnlyBilled(reporter, {
      cus_acme: { api_requests: 11 },
      cus_globex: { llm_tokens: 12 },
    });
    expectNoMeteringErrors(reporter);
  });

  it('bills nothing for failures, unauthenticated calls and free routes', async () => {
    await request(app).get('/v1/unstable').set('authorization', 'Bearer key_acme').expect(500);
    await request(app).post('/v1/generate').set('authorization', 'Bearer key_acme').send({}).expect(400);
    await request(app).get('/v1/search').expect(401);
    await request(app).get('/health').expect(200);
    await metering.flush();

    expectNothingBilled(reporter);
  });
});
