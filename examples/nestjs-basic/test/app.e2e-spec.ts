// Boots the example against the fake Stripe and checks what gets billed.
import type { INestApplication } from '@nestjs/common';
import request from 'supertest';
import { createApp } from '../src/app';
import { stripeTarget } from '../src/stripe';
import type { StripeTarget } from '../src/stripe';

describe('examples/nestjs-basic', () => {
  let target: StripeTarget;
  let app: INestApplication;

  beforeAll(async () => {
    // An empty environment: never real Stripe from a test, whatever the shell exports.
    target = await stripeTarget({});
    app = await createApp(target.reporter, false);
    await app.init();
  });

  afterAll(async () => {
    // The app first (it delivers what is queued), then the fake; both even when a test failed early.
    // close() is idempotent, so the test's own close() below leaves nothing for this one.
    try {
      await app?.close();
    } finally {
      await target?.fake?.close();
    }
  });

  it('bills an authenticated request once, and nothing for free or rejected ones, by the time the app has closed', async () => {
    const server = app.getHttpServer();
    await request(server).get('/reports').set('authorization', 'Bearer demo-key-alice').expect(200, { reports: ['revenue', 'churn'] });
    await request(server).get('/reports/status').set('authorization', 'Bearer demo-key-alice').expect(200);
    await request(server).get('/reports').expect(401);
    await request(server).get('/health').expect(200);
    await request(server).post('/reports/export').set('authorization', 'Bearer demo-key-bob').send({ rows: 250 }).expect(201);
    await app.close();
    expect(target.fake!.totals()).toEqual({
      cus_demo_alice: { api_requests: 1 },
      cus_demo_bob: { export_rows: 250 },
    });
  });
});
