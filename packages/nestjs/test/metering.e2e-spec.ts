// End-to-end: the fixture app on Express and on Fastify, metered against the fake Stripe.
import 'reflect-metadata';
import { MeterAdapterError, MeterReporter, getRequestUsage, setRequestUsage } from '@metered/core';
import type { MeterError } from '@metered/core';
import { Controller, Get, Injectable, Module, Param, Req, UseGuards } from '@nestjs/common';
import type { CanActivate, ExecutionContext, INestApplication } from '@nestjs/common';
import { ConfigModule, ConfigService } from '@nestjs/config';
import { meterUsage } from '@metered/express';
import { startFakeStripe } from '@metered/testing';
import type { FakeStripe } from '@metered/testing';
import { EventEmitter, once } from 'node:events';
import http from 'node:http';
import type { ServerResponse } from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { MeteringModule, MeterUsage, MeterUsageInterceptor } from '../src';
import { awaitingPasses } from '../src/guard-passes';
import type { MeteringModuleOptions, MeteringOptionsFactory } from '../src';
import { AiController, ClaimingMiddleware, DenyHeaderGuard, fakeReporterOptions, FlakyController, METERS, PacedController, PLATFORMS, settle, startApp } from './fixtures';

let fake: FakeStripe;

beforeAll(async () => {
  fake = await startFakeStripe({ meters: METERS });
});

afterAll(async () => {
  await fake.close();
});

beforeEach(() => {
  fake.reset();
});

/** Accepted events as [customer, event name, value] triples, in arrival order. */
function billed(): Array<[string, string, string]> {
  return fake.events().map((event) => [event.customer, event.eventName, event.value]);
}

/**
 * What HeldGuard (a route guard, so it runs after the module's global one) holds: requests to
 * /held/1 and /held/4 wait in it until `release()`; every request carrying `x-deny` is refused.
 */
class Hold {
  private arrived = 0;
  private readonly arrivals: Array<{ count: number; wake: () => void }> = [];
  private open!: () => void;
  private released!: Promise<void>;

  constructor() {
    this.reset();
  }

  reset(): void {
    this.arrived = 0;
    this.arrivals.length = 0;
    this.released = new Promise<void>((resolve) => (this.open = resolve));
  }

  /** Resolves once `count` requests are held. */
  waiting(count: number): Promise<void> {
    if (this.arrived >= count) return Promise.resolve();
    return new Promise<void>((wake) => this.arrivals.push({ count, wake }));
  }

  release(): void {
    this.open();
  }

  async enter(): Promise<void> {
    this.arrived += 1;
    for (const arrival of this.arrivals.splice(0)) {
      if (this.arrived >= arrival.count) arrival.wake();
      else this.arrivals.push(arrival);
    }
    await this.released;
  }
}

const held = new Hold();

@Injectable()
class HeldGuard implements CanActivate {
  async canActivate(context: ExecutionContext): Promise<boolean> {
    const req = context.switchToHttp().getRequest<{ headers: Record<string, unknown>; url: string }>();
    if (req.url === '/held/1' || req.url === '/held/4') await held.enter();
    return req.headers['x-deny'] === undefined;
  }
}

/** Routes metered from the guard (a static value), each request told apart by the value its handler sets: /held/2 bills 2. */
@Controller('held')
@UseGuards(HeldGuard)
class HeldController {
  @Get(':n')
  @MeterUsage('api_requests', { value: 1 })
  route(@Param('n') n: string, @Req() req: object): string {
    setRequestUsage(req, { value: Number(n) });
    return 'ok';
  }
}

@Module({ controllers: [HeldController] })
class HeldModule {}

describe.each(PLATFORMS)('on platform-%s', (platform) => {
  describe('a module created from reporter options', () => {
    let app: INestApplication;

    beforeAll(async () => {
      app = await startApp({ platform, metering: MeteringModule.forRoot({ reporter: fakeReporterOptions(fake) }) });
    });

    afterAll(async () => {
      await app.close();
    });

    it('bills a route of a decorated controller once, to the authenticated customer', async () => {
      await request(app.getHttpServer()).get('/items').set('x-api-key', 'key_alice').expect(200, { items: ['a', 'b'] });
      await settle(app);
      expect(billed()).toEqual([['cus_alice', 'api_requests', '1']]);
    });

    it('does not bill an undecorated route', async () => {
      await request(app.getHttpServer()).get('/public/ping').expect(200, { pong: true });
      await settle(app);
      expect(billed()).toEqual([]);
    });

    it("lets a method's @MeterUsage() win over its controller's, with a value from the request", async () => {
      await request(app.getHttpServer()).post('/items/bulk').set('x-api-key', 'key_bob').send({ items: [1, 2, 3] }).expect(201, { created: 3 });
      await settle(app);
      expect(billed()).toEqual([['cus_bob', 'bulk_items', '3']]);
    });

    it('does not bill a @SkipMetering() method of a metered controller', async () => {
      await request(app.getHttpServer()).get('/items/health').set('x-api-key', 'key_alice').expect(200, { ok: true });
      await settle(app);
      expect(billed()).toEqual([]);
    });

    it('does not bill a request whose handler threw an HttpException or an error', async () => {
      await request(app.getHttpServer()).get('/items/bad-request').set('x-api-key', 'key_alice').expect(400);
      await request(app.getHttpServer()).get('/items/crash').set('x-api-key', 'key_alice').expect(500);
      await settle(app);
      expect(billed()).toEqual([]);
    });

    it('does not bill requests a guard rejected', async () => {
      await request(app.getHttpServer()).get('/items').expect(401);
      await request(app.getHttpServer()).get('/items').set('x-api-key', 'key_mallory').expect(401);
      await request(app.getHttpServer()).get('/items/guarded').set('x-api-key', 'key_alice').expect(403);
      await settle(app);
      expect(billed()).toEqual([]);
    });

    it("bills a value computed from the handler's result", async () => {
      await request(app.getHttpServer()).post('/ai/complete').set('x-api-key', 'key_alice').send({ prompt: 'hello world' }).expect(201);
      await settle(app);
      expect(billed()).toEqual([['cus_alice', 'tokens', '11']]);
    });

    it('bills an async value', async () => {
      await request(app.getHttpServer()).get('/ai/async-value').set('x-api-key', 'key_bob').expect(200);
      await settle(app);
      expect(billed()).toEqual([['cus_bob', 'async_units', '5']]);
    });

    it('sends the response without waiting for a slow value, and bills it once the value settles', async () => {
      let release!: (value: number) => void;
      AiController.slowValue = new Promise<number>((resolve) => {
        release = resolve;
      });
      const enqueued = app.get(MeterReporter).stats().enqueued;
      await request(app.getHttpServer()).get('/ai/slow-value').set('x-api-key', 'key_alice').expect(200, { ok: true });
      expect(app.get(MeterReporter).stats().enqueued).toBe(enqueued);
      release(9);
      await settle(app);
      expect(billed()).toEqual([['cus_alice', 'async_units', '9']]);
    });

    it('bills a value set by the handler with setRequestUsage()', async () => {
      await request(app.getHttpServer()).get('/items/set-usage').set('x-api-key', 'key_alice').expect(200);
      await settle(app);
      expect(billed()).toEqual([['cus_alice', 'api_requests', '7']]);
    });

    it('bills a returned Observable once, with its last value', async () => {
      await request(app.getHttpServer()).get('/ai/observable').set('x-api-key', 'key_bob').expect(200, { tokens: 3 });
      await settle(app);
      expect(billed()).toEqual([['cus_bob', 'tokens', '3']]);
    });

    it('bills a server-sent event stream once, when it completes', async () => {
      const response = await request(app.getHttpServer()).get('/ai/stream').set('x-api-key', 'key_alice').expect(200);
      expect(response.text.match(/^data: /gm)).toHaveLength(4);
      await settle(app);
      expect(billed()).toEqual([['cus_alice', 'stream_chunks', '4']]);
    });

    it('bills a handler run again by an outer retrying interceptor by the run that answered, once', async () => {
      FlakyController.runs = 0;
      FlakyController.failures = 1;
      await request(app.getHttpServer()).get('/flaky').set('x-api-key', 'key_bob').expect(200, { tokens: 4 });
      expect(FlakyController.runs).toBe(2);
      await settle(app);
      expect(billed()).toEqual([['cus_bob', 'tokens', '4']]);
      // Both runs failing: the error is the answer, and nothing is billed.
      FlakyController.runs = 0;
      FlakyController.failures = 2;
      await request(app.getHttpServer()).get('/flaky').set('x-api-key', 'key_bob').expect(500);
      expect(FlakyController.runs).toBe(2);
      await settle(app);
      expect(billed()).toEqual([['cus_bob', 'tokens', '4']]);
    });

    it('never lets a client choose the customer through headers', async () => {
      await request(app.getHttpServer())
        .get('/items')
        .set('x-api-key', 'key_alice')
        .set('x-customer-id', 'cus_bob')
        .set('stripe-customer-id', 'cus_bob')
        .set('x-stripe-customer-id', 'cus_bob')
        .expect(200);
      // A decorated route without authentication has no payer: not billed, whatever the headers say.
      await request(app.getHttpServer()).get('/public/anonymous').set('x-customer-id', 'cus_bob').set('stripe-customer-id', 'cus_bob').expect(200);
      await settle(app);
      expect(billed()).toEqual([['cus_alice', 'api_requests', '1']]);
    });

    it('provides the reporter for manual reporting from controllers and services', async () => {
      await request(app.getHttpServer()).post('/manual').set('x-api-key', 'key_bob').expect(201);
      await settle(app);
      expect(billed()).toEqual([['cus_bob', 'manual_units', '3']]);
    });

    it('bills each of many concurrent requests exactly once', async () => {
      const server = app.getHttpServer();
      await Promise.all(Array.from({ length: 20 }, (_, i) => request(server).get('/items').set('x-api-key', i % 2 === 0 ? 'key_alice' : 'key_bob').expect(200)));
      await settle(app);
      expect(fake.totals()).toEqual({ cus_alice: { api_requests: 10 }, cus_bob: { api_requests: 10 } });
      expect(new Set(fake.events().map((event) => event.identifier)).size).toBe(20);
    });
  });

  it('never bills a request a guard rejected, before or after its own, even when billIf bills every response', async () => {
    const app = await startApp({
      platform,
      metering: MeteringModule.forRoot({ reporter: fakeReporterOptions(fake), billIf: () => true }),
      // A global guard of the app's own, which Nest may run before or after the module's.
      configure: (nest) => nest.useGlobalGuards(new DenyHeaderGuard()),
    });
    try {
      const server = app.getHttpServer();
      // Rejected by the controller's and the route's guards, which always run after the module's global one.
      await request(server).get('/items').expect(401);
      await request(server).get('/items/guarded').set('x-api-key', 'key_alice').expect(403);
      await request(server).get('/items').set('x-api-key', 'key_alice').set('x-deny', '1').expect(403);
      // Not rejected: a 4xx the handler itself answered is billIf's to decide, and it bills it.
      await request(server).get('/items/bad-request').set('x-api-key', 'key_bob').expect(400);
      await request(server).get('/items').set('x-api-key', 'key_alice').expect(200);
      await settle(app);
      expect(billed()).toEqual([
        ['cus_bob', 'api_requests', '1'],
        ['cus_alice', 'api_requests', '1'],
      ]);
      // Neither a rejected request nor a passed one is left waiting for its pass.
      expect(awaitingPasses()).toBe(0);
    } finally {
      await app.close();
    }
  });

  it('keeps apart the passes of requests whose guards interleave: one held in a later guard while others pass or are refused', async () => {
    const app = await startApp({
      platform,
      metering: MeteringModule.forRoot({ reporter: fakeReporterOptions(fake), billIf: () => true, customer: () => 'cus_alice' }),
      imports: [HeldModule],
    });
    held.reset();
    try {
      const server = app.getHttpServer();
      // /held/1 waits in its route's guard, after the module's: the requests after it pass theirs meanwhile.
      const first = request(server).get('/held/1').set('x-deny', '1').then((res) => res.status);
      await held.waiting(1);
      await request(server).get('/held/2').expect(200);
      await request(server).get('/held/3').set('x-deny', '1').expect(403);
      const fourth = request(server).get('/held/4').then((res) => res.status);
      await held.waiting(2);
      await request(server).get('/held/5').set('x-deny', '1').expect(403);
      held.release();
      expect(await first).toBe(403);
      expect(await fourth).toBe(200);
      await settle(app);
      expect(billed()).toEqual([
        ['cus_alice', 'api_requests', '2'],
        ['cus_alice', 'api_requests', '4'],
      ]);
      expect(awaitingPasses()).toBe(0);
    } finally {
      await app.close();
    }
  });

  it('meters undecorated routes with meterAllRoutes, still honouring @SkipMetering()', async () => {
    const app = await startApp({
      platform,
      metering: MeteringModule.forRoot({
        reporter: fakeReporterOptions(fake),
        meterAllRoutes: true,
        // The undecorated public route has no authenticated user: bill a house account.
        customer: () => 'cus_house',
      }),
    });
    try {
      await request(app.getHttpServer()).get('/public/ping').expect(200);
      await request(app.getHttpServer()).get('/items/health').set('x-api-key', 'key_alice').expect(200);
      await settle(app);
      expect(billed()).toEqual([['cus_house', 'api_requests', '1']]);
    } finally {
      await app.close();
    }
  });

  it('resolves the customer only after the response has been sent', async () => {
    const seenFinished: boolean[] = [];
    const app = await startApp({
      platform,
      metering: MeteringModule.forRoot({
        reporter: fakeReporterOptions(fake),
        customer: (context: ExecutionContext) => {
          const response = context.switchToHttp().getResponse<{ raw?: ServerResponse } & ServerResponse>();
          seenFinished.push((response.raw ?? response).writableEnded);
          return 'cus_alice';
        },
      }),
    });
    try {
      await request(app.getHttpServer()).get('/items').set('x-api-key', 'key_bob').expect(200);
      await settle(app);
      expect(seenFinished).toEqual([true]);
      expect(billed()).toEqual([['cus_alice', 'api_requests', '1']]);
    } finally {
      await app.close();
    }
  });

  it('is configured from ConfigService with forRootAsync', async () => {
    const app = await startApp({
      platform,
      imports: [ConfigModule.forRoot({ ignoreEnvFile: true, load: [() => ({ stripe: fakeReporterOptions(fake), meteringEventName: 'tokens' })] })],
      metering: MeteringModule.forRootAsync({
        imports: [ConfigModule],
        inject: [ConfigService],
        useFactory: (config: ConfigService): MeteringModuleOptions => ({
          reporter: config.getOrThrow<{ apiKey: string; apiBaseUrl: string; meterEventsBaseUrl: string }>('stripe'),
          eventName: config.getOrThrow<string>('meteringEventName'),
          meterAllRoutes: true,
          customer: () => 'cus_config',
        }),
      }),
    });
    try {
      await request(app.getHttpServer()).get('/public/ping').expect(200);
      await settle(app);
      expect(billed()).toEqual([['cus_config', 'tokens', '1']]);
    } finally {
      await app.close();
    }
  });

  it('is configured by an options factory class with forRootAsync({ useClass })', async () => {
    @Injectable()
    class MeteringConfig implements MeteringOptionsFactory {
      createMeteringOptions(): MeteringModuleOptions {
        return { reporter: fakeReporterOptions(fake) };
      }
    }
    const app = await startApp({ platform, metering: MeteringModule.forRootAsync({ useClass: MeteringConfig }) });
    try {
      await request(app.getHttpServer()).get('/items').set('x-api-key', 'key_bob').expect(200);
      await settle(app);
      expect(billed()).toEqual([['cus_bob', 'api_requests', '1']]);
    } finally {
      await app.close();
    }
  });

  it('delivers the events queued when the app closes, and closes the reporter it created', async () => {
    const app = await startApp({
      platform,
      // Nothing is sent before close(): no interval flush within the test, no full batch.
      metering: MeteringModule.forRoot({ reporter: fakeReporterOptions(fake, { flushIntervalMs: 3_600_000 }) }),
    });
    try {
      const reporter = app.get(MeterReporter);
      await request(app.getHttpServer()).get('/items').set('x-api-key', 'key_alice').expect(200);
      await request(app.getHttpServer()).post('/ai/complete').set('x-api-key', 'key_bob').send({ prompt: 'abc' }).expect(201);
      expect(await app.get(MeterUsageInterceptor).drain(5000)).toBe(true);
      expect(reporter.stats().queued).toBe(2);
      expect(fake.events()).toEqual([]);

      await app.close();
      expect(billed()).toEqual([
        ['cus_alice', 'api_requests', '1'],
        ['cus_bob', 'tokens', '3'],
      ]);
      expect(() => reporter.report({ eventName: 'api_requests', customerId: 'cus_alice' })).toThrow(expect.objectContaining({ code: 'ERR_METER_CLOSED' }));
    } finally {
      await app.close();
    }
  });

  it('flushes a reporter passed in at shutdown, and leaves closing it to its owner', async () => {
    const reporter = new MeterReporter(fakeReporterOptions(fake, { flushIntervalMs: 3_600_000 }));
    const app = await startApp({ platform, metering: MeteringModule.forRoot({ reporter }) });
    try {
      expect(app.get(MeterReporter)).toBe(reporter);
      // A request whose value is still being computed when close() starts is waited for.
      let release!: (value: number) => void;
      AiController.slowValue = new Promise<number>((resolve) => {
        release = resolve;
      });
      await request(app.getHttpServer()).get('/ai/slow-value').set('x-api-key', 'key_bob').expect(200);
      const closing = app.close();
      release(4);
      await closing;
      expect(billed()).toEqual([['cus_bob', 'async_units', '4']]);
      expect(() => reporter.report({ eventName: 'api_requests', customerId: 'cus_bob' })).not.toThrow();
    } finally {
      await app.close();
      await reporter.close();
    }
  });

  describe('with a reporter that fails', () => {
    const errors: MeterError[] = [];
    let failingReporter: MeterReporter;
    const baseline: Array<{ status: number; body: unknown }> = [];

    beforeEach(() => {
      errors.length = 0;
    });

    afterAll(async () => {
      await failingReporter.close();
    });

    async function responses(app: INestApplication): Promise<Array<{ status: number; body: unknown }>> {
      const server = app.getHttpServer();
      const all = [
        await request(server).get('/items').set('x-api-key', 'key_alice'),
        await request(server).post('/ai/complete').set('x-api-key', 'key_bob').send({ prompt: 'hi' }),
        await request(server).get('/items/crash').set('x-api-key', 'key_alice'),
      ];
      return all.map((response) => ({ status: response.status, body: response.body as unknown }));
    }

    beforeAll(async () => {
      failingReporter = new MeterReporter(
        fakeReporterOptions(fake, {
          onError: (error: MeterError) => {
            errors.push(error);
          },
        }),
      );
      const app = await startApp({ platform, metering: MeteringModule.forRoot({ reporter: fakeReporterOptions(fake) }) });
      baseline.push(...(await responses(app)));
      await app.close();
    });

    it('never changes the response when report() throws', async () => {
      jest.spyOn(failingReporter, 'report').mockImplementation(() => {
        throw new Error('report exploded');
      });
      const app = await startApp({ platform, metering: MeteringModule.forRoot({ reporter: failingReporter }) });
      try {
        expect(await responses(app)).toEqual(baseline);
        await settle(app);
        expect(errors).toHaveLength(2);
        expect(errors[0]).toBeInstanceOf(MeterAdapterError);
        expect(errors[0]!.message).toMatch(/ItemsController\.list: the report\(\) failed: report exploded/);
      } finally {
        jest.restoreAllMocks();
        await app.close();
      }
    });

    it('never changes the response when the customer resolver throws or handleError throws too', async () => {
      jest.spyOn(failingReporter, 'handleError').mockImplementation(() => {
        throw new Error('handleError exploded');
      });
      const app = await startApp({
        platform,
        metering: MeteringModule.forRoot({
          reporter: failingReporter,
          customer: () => {
            throw new Error('no session store');
          },
        }),
      });
      try {
        expect(await responses(app)).toEqual(baseline);
        await settle(app);
        expect(failingReporter.handleError).toHaveBeenCalledTimes(2);
      } finally {
        jest.restoreAllMocks();
        await app.close();
      }
    });
  });

  describe('next to middleware that meters requests too (as @metered/express does)', () => {
    afterEach(() => {
      ClaimingMiddleware.claims = [];
    });

    it('steps aside when the middleware claimed the request first', async () => {
      ClaimingMiddleware.mode = 'before';
      const app = await startApp({ platform, claimingMiddleware: true, metering: MeteringModule.forRoot({ reporter: fakeReporterOptions(fake) }) });
      try {
        await request(app.getHttpServer()).get('/items').set('x-api-key', 'key_alice').expect(200);
        await settle(app);
        expect(ClaimingMiddleware.claims).toEqual([true]);
        expect(billed()).toEqual([]);
      } finally {
        await app.close();
      }
    });

    it('keeps the request to itself when the middleware claims it later', async () => {
      ClaimingMiddleware.mode = 'after';
      const app = await startApp({ platform, claimingMiddleware: true, metering: MeteringModule.forRoot({ reporter: fakeReporterOptions(fake) }) });
      try {
        await request(app.getHttpServer()).get('/items').set('x-api-key', 'key_alice').expect(200);
        await settle(app);
        expect(ClaimingMiddleware.claims).toEqual([false]);
        expect(billed()).toEqual([['cus_alice', 'api_requests', '1']]);
      } finally {
        await app.close();
      }
    });
  });

  it("lets go of its claim on a request metered from the guard once it is billed or refused (no entry left in core's claim registry)", async () => {
    const seen: object[] = [];
    const app = await startApp({
      platform,
      // Express's request on platform-express, Node's own on platform-fastify: the objects claims are made on.
      configure: (nest) =>
        nest.use((req: object, _res: unknown, next: () => void) => {
          seen.push(req);
          next();
        }),
      metering: MeteringModule.forRoot({ reporter: fakeReporterOptions(fake) }),
    });
    try {
      await request(app.getHttpServer()).get('/items').set('x-api-key', 'key_alice').expect(200);
      await request(app.getHttpServer()).get('/items').expect(401);
      await settle(app);
      expect(billed()).toEqual([['cus_alice', 'api_requests', '1']]);
      expect(seen).toHaveLength(2);
      for (const req of seen) expect(getRequestUsage(req).claimed).toBeUndefined();
    } finally {
      await app.close();
    }
  });

  if (platform === 'express') {
    it('hands a value read from the handler’s result to @metered/express, which claimed the request first: the route’s meter and value are billed', async () => {
      const middlewareReporter = new MeterReporter(fakeReporterOptions(fake));
      const metering = meterUsage({ reporter: middlewareReporter });
      const app = await startApp({ platform, configure: (nest) => nest.use(metering), metering: MeteringModule.forRoot({ reporter: fakeReporterOptions(fake) }) });
      try {
        const server = app.getHttpServer();
        await request(server).post('/ai/complete').set('x-api-key', 'key_alice').send({ prompt: 'seven!!' }).expect(201);
        await request(server).get('/ai/async-value').set('x-api-key', 'key_bob').expect(200);
        await settle(app);
        await metering.flush();
        expect(billed().sort()).toEqual([
          ['cus_alice', 'tokens', '7'],
          ['cus_bob', 'async_units', '5'],
        ]);
        expect(metering.stats()).toMatchObject({ metered: 2 });
      } finally {
        await app.close();
        await middlewareReporter.close();
      }
    });

    it('bills each request once next to @metered/express, which then honours @SkipMetering() and static meters', async () => {
      const middlewareReporter = new MeterReporter(fakeReporterOptions(fake));
      const metering = meterUsage({ reporter: middlewareReporter });
      const app = await startApp({ platform, configure: (nest) => nest.use(metering), metering: MeteringModule.forRoot({ reporter: fakeReporterOptions(fake) }) });
      try {
        const server = app.getHttpServer();
        await request(server).get('/items').set('x-api-key', 'key_alice').expect(200);
        await request(server).get('/items/health').set('x-api-key', 'key_alice').expect(200);
        await request(server).get('/items/guarded').set('x-api-key', 'key_alice').expect(403);
        await request(server).post('/manual').set('x-api-key', 'key_bob').expect(201);
        await settle(app);
        await metering.flush();
        // /manual: the middleware bills the request (an undecorated route), the service its own event.
        expect(billed().sort()).toEqual([
          ['cus_alice', 'api_requests', '1'],
          ['cus_bob', 'api_requests', '1'],
          ['cus_bob', 'manual_units', '3'],
        ]);
        expect(metering.stats()).toMatchObject({ metered: 2, skipped: { skippedRoute: 1, notBillable: 1 } });
      } finally {
        await app.close();
        await middlewareReporter.close();
      }
    });
  }

  describe('a client that leaves early', () => {
    let app: INestApplication | undefined;

    afterEach(async () => {
      await app?.close();
      app = undefined;
    });

    /** Boots the app listening on 127.0.0.1, for a raw client that can walk away; returns its port. */
    async function listen(options: Partial<MeteringModuleOptions> = {}): Promise<number> {
      app = await startApp({ platform, metering: MeteringModule.forRoot({ reporter: fakeReporterOptions(fake), ...options }) });
      await app.listen(0, '127.0.0.1');
      return (app.getHttpServer().address() as AddressInfo).port;
    }

    /** Sends GET `path` as Alice; the caller destroys `client` to leave. */
    function get(port: number, path: string): { client: http.ClientRequest; response: Promise<http.IncomingMessage> } {
      const client = http.request({ host: '127.0.0.1', port, path, headers: { 'x-api-key': 'key_alice' } });
      client.on('error', () => undefined); // destroyed on purpose
      const response = new Promise<http.IncomingMessage>((resolve) => client.once('response', resolve));
      client.end();
      return { client, response };
    }

    /** Leaves a slow request once its handler runs; resolves when the server has seen the connection close. */
    async function leaveSlowRequest(port: number, path = '/paced/slow'): Promise<() => void> {
      const held = PacedController.hold();
      const { client } = get(port, path);
      const response = await held.arrived;
      client.destroy();
      if (!response.closed) await once(response, 'close');
      return held.release;
    }

    /** Reads `path` until `lines` lines matching `line` have arrived, then leaves. */
    async function leaveAfter(port: number, path: string, line: RegExp, lines: number): Promise<void> {
      const { client, response } = get(port, path);
      const res = await response;
      let body = '';
      await new Promise<void>((resolve) => {
        res.on('data', (data: Buffer) => {
          body += data.toString();
          if (body.match(line)?.length === lines) resolve();
        });
      });
      client.destroy();
    }

    it('is billed for a response it cut short after the headers (9 of 10 chunks)', async () => {
      await leaveAfter(await listen(), '/paced/chunks', /^chunk /gm, 9);
      await settle(app!);
      expect(billed()).toEqual([['cus_alice', 'stream_chunks', '9']]);
    });

    it('is billed for a server-sent event stream it left after 9 of 10 events, with the last value sent', async () => {
      await leaveAfter(await listen(), '/paced/stream', /^data: /gm, 9);
      await settle(app!);
      expect(billed()).toEqual([['cus_alice', 'stream_chunks', '9']]);
    });

    it('is not billed, by default, for work it left before the response started', async () => {
      const port = await listen();
      const release = await leaveSlowRequest(port);
      await settle(app!);
      release();
      await settle(app!);
      expect(billed()).toEqual([]);
    });

    it('is billed with abortGraceMs on a route metered without the interceptor, and not without it', async () => {
      const port = await listen({ abortGraceMs: 10_000 });
      const release = await leaveSlowRequest(port, '/paced/slow-static');
      release();
      await settle(app!);
      expect(billed()).toEqual([['cus_alice', 'async_units', '6']]);
      await app!.close();
      fake.reset();
      const releaseAgain = await leaveSlowRequest(await listen(), '/paced/slow-static');
      await settle(app!);
      releaseAgain();
      await settle(app!);
      expect(billed()).toEqual([]);
    });

    it('settles pipelined requests still queued behind a held one when their connection goes: billed once each, flush() returns', async () => {
      const port = await listen();
      const ended = new Set<string>();
      const endedNow = new EventEmitter();
      // Marks each handler's end of its Node response: the queued ones end without writing (their turn never comes).
      app!.getHttpServer().prependListener('request', (req: http.IncomingMessage, res: ServerResponse) => {
        const end = res.end.bind(res) as (...args: unknown[]) => ServerResponse;
        res.end = ((...args: unknown[]) => {
          ended.add(req.url ?? '');
          endedNow.emit('ended');
          return end(...args);
        }) as ServerResponse['end'];
      });
      const held = PacedController.hold();
      const socket = net.connect(port, '127.0.0.1');
      socket.on('error', () => undefined);
      await once(socket, 'connect');
      // The guard's path (/items) and the interceptor's (/ai/observable) behind one that is held.
      socket.write(['/paced/slow-static', '/items', '/ai/observable'].map((path) => `GET ${path} HTTP/1.1\r\nHost: x\r\nx-api-key: key_alice\r\n\r\n`).join(''));
      await held.arrived;
      while (!ended.has('/items') || !ended.has('/ai/observable')) await once(endedNow, 'ended');
      socket.destroy();
      await settle(app!);
      expect(billed().sort()).toEqual([
        ['cus_alice', 'api_requests', '1'],
        ['cus_alice', 'tokens', '3'],
      ]);
      held.release();
      await settle(app!);
      expect(billed()).toHaveLength(2);
    });

    it('is billed with abortGraceMs for the work the handler finished after it left', async () => {
      const port = await listen({ abortGraceMs: 10_000 });
      const release = await leaveSlowRequest(port);
      release();
      await settle(app!);
      expect(billed()).toEqual([['cus_alice', 'async_units', '5']]);
    });
  });

  it('bills an Idempotency-Key reused on another route or method again', async () => {
    const app = await startApp({ platform, metering: MeteringModule.forRoot({ reporter: fakeReporterOptions(fake), identifier: 'idempotency-key' }) });
    try {
      const server = app.getHttpServer();
      for (let attempt = 0; attempt < 2; attempt += 1) {
        await request(server).get('/items').set('x-api-key', 'key_alice').set('idempotency-key', 'reused').expect(200);
        await request(server).post('/items').set('x-api-key', 'key_alice').set('idempotency-key', 'reused').expect(201);
        await request(server).get('/items/set-usage').set('x-api-key', 'key_alice').set('idempotency-key', 'reused').expect(200);
      }
      await settle(app);
      expect(billed()).toEqual([
        ['cus_alice', 'api_requests', '1'],
        ['cus_alice', 'api_requests', '1'],
        ['cus_alice', 'api_requests', '7'],
      ]);
    } finally {
      await app.close();
    }
  });

  it('bills a client’s retries carrying one Idempotency-Key once', async () => {
    const app = await startApp({ platform, metering: MeteringModule.forRoot({ reporter: fakeReporterOptions(fake), identifier: 'idempotency-key' }) });
    try {
      for (let attempt = 0; attempt < 3; attempt += 1) {
        await request(app.getHttpServer()).get('/items').set('x-api-key', 'key_alice').set('idempotency-key', 'order-42').expect(200);
      }
      await request(app.getHttpServer()).get('/items').set('x-api-key', 'key_bob').set('idempotency-key', 'order-42').expect(200);
      await settle(app);
      expect(fake.totals()).toEqual({ cus_alice: { api_requests: 1 }, cus_bob: { api_requests: 1 } });
    } finally {
      await app.close();
    }
  });
});
