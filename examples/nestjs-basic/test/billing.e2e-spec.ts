// How to test what a Nest app bills, with @nestjs/testing and @metered/testing's in-memory reporter: no Stripe, not even a fake one.
import 'reflect-metadata';
import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { MeterUsageInterceptor } from '@metered/nestjs';
import { createTestReporter, expectNoMeteringErrors, expectNothingBilled, expectOnlyBilled } from '@metered/testing';
import request from 'supertest';
import { AppModule } from '../src/app.module';

describe('what the example Nest API bills', () => {
  const reporter = createTestReporter();
  let app: INestApplication;

  beforeAll(async () => {
    const moduleRef = await Test.createTestingModule({ imports: [AppModule.register(reporter)] }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    await app.init();
  });

  beforeEach(() => reporter.reset());

  afterAll(async () => {
    await app?.close();
  });

  /** Waits until every finished request is reported: metering happens after the response. */
  const settle = (): Promise<void> => app.get(MeterUsageInterceptor).flush();

  it('bills a report to the signed-in customer and an export per row', async () => {
    const server = app.getHttpServer();
    await request(server).get('/reports').set('authorization', 'Bearer demo-key-alice').expect(200);
    await request(server).post('/reports/export').set('authorization', 'Bearer demo-key-bob').send({ rows: 250 }).expect(201);
    await settle();

    expectOnlyBilled(reporter, {
      cus_demo_alice: { api_requests: 1 },
      cus_demo_bob: { export_rows: 250 },
    });
    expectNoMeteringErrors(reporter);
  });

  it('bills nothing for a free route, a rejected key or an undecorated route', async () => {
    const server = app.getHttpServer();
    await request(server).get('/reports/status').set('authorization', 'Bearer demo-key-alice').expect(200);
    await request(server).get('/reports').set('authorization', 'Bearer wrong-key').expect(401);
    await request(server).get('/health').expect(200);
    await settle();

    expectNothingBilled(reporter);
  });
});
