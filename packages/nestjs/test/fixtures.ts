// Fixture controllers, guards and app boot shared by the e2e specs: one app per platform adapter.
import {
  BadRequestException,
  Body,
  Controller,
  ForbiddenException,
  Get,
  Injectable,
  Module,
  Post,
  Req,
  Res,
  Sse,
  UnauthorizedException,
  UseGuards,
  UseInterceptors,
} from '@nestjs/common';
import type { CallHandler, CanActivate, DynamicModule, ExecutionContext, INestApplication, MessageEvent, MiddlewareConsumer, ModuleMetadata, NestInterceptor, NestMiddleware, NestModule } from '@nestjs/common';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import { claimRequest, MeterReporter } from '@metered/core';
import type { FakeStripe } from '@metered/testing';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { from, Observable, retry } from 'rxjs';
import { MeterUsage, MeterUsageInterceptor, setRequestUsage, SkipMetering } from '../src';

export type Platform = 'express' | 'fastify';
export const PLATFORMS: Platform[] = ['express', 'fastify'];

/** Every meter the fixture routes bill, registered on the fake. */
export const METERS = ['api_requests', 'bulk_items', 'tokens', 'stream_chunks', 'async_units', 'manual_units', 'guarded_units'];

/** API keys and the customers they authenticate. */
export const API_KEYS: Readonly<Record<string, string>> = { key_alice: 'cus_alice', key_bob: 'cus_bob' };

/** Reporter options aimed at the fake; nothing ever leaves 127.0.0.1. */
export function fakeReporterOptions(fake: FakeStripe, extra: object = {}): { apiKey: string; apiBaseUrl: string; meterEventsBaseUrl: string } {
  return { apiKey: fake.apiKey, apiBaseUrl: fake.url, meterEventsBaseUrl: fake.meterEventsUrl, ...extra };
}

/** Authenticates `x-api-key` and puts the customer on `request.user`, as a real auth guard would. */
@Injectable()
export class ApiKeyGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    const request = context.switchToHttp().getRequest<{ headers: Record<string, unknown>; user?: unknown }>();
    const key = request.headers['x-api-key'];
    const customer = typeof key === 'string' ? API_KEYS[key] : undefined;
    if (customer === undefined) throw new UnauthorizedException('unknown API key');
    request.user = { id: key, stripeCustomerId: customer };
    return true;
  }
}

/** A global guard of the app's own: refuses any request carrying `x-deny`. */
export class DenyHeaderGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    return context.switchToHttp().getRequest<{ headers: Record<string, unknown> }>().headers['x-deny'] === undefined;
  }
}

@Injectable()
export class DenyGuard implements CanActivate {
  canActivate(): boolean {
    throw new ForbiddenException('plan does not include this');
  }
}

/** A class-level meter with method overrides, a skipped route and failing routes. */
@Controller('items')
@UseGuards(ApiKeyGuard)
@MeterUsage('api_requests')
export class ItemsController {
  @Get()
  list(): { items: string[] } {
    return { items: ['a', 'b'] };
  }

  @Post('bulk')
  @MeterUsage('bulk_items', { value: (context) => context.switchToHttp().getRequest<{ body: { items: unknown[] } }>().body.items.length })
  bulk(@Body() body: { items: unknown[] }): { created: number } {
    return { created: body.items.length };
  }

  @Get('health')
  @SkipMetering()
  health(): { ok: true } {
    return { ok: true };
  }

  @Get('bad-request')
  badRequest(): never {
    throw new BadRequestException('no');
  }

  @Get('crash')
  crash(): never {
    throw new Error('boom');
  }

  @Post()
  create(): { created: true } {
    return { created: true };
  }

  @Get('set-usage')
  setUsage(@Req() req: object): { ok: true } {
    setRequestUsage(req, { value: 7 });
    return { ok: true };
  }

  @Get('guarded')
  @UseGuards(DenyGuard)
  @MeterUsage('guarded_units')
  guarded(): { ok: true } {
    return { ok: true };
  }
}

/** Values computed from the handler's result, asynchronously, and from a stream. */
@Controller('ai')
@UseGuards(ApiKeyGuard)
export class AiController {
  /** Resolves the value of `/ai/slow-value`; tests release it after the response has arrived. */
  static slowValue: Promise<number> = Promise.resolve(1);

  @Post('complete')
  @MeterUsage('tokens', { value: (_context, result: { usage: { tokens: number } }) => result.usage.tokens })
  complete(@Body() body: { prompt: string }): { text: string; usage: { tokens: number } } {
    return { text: body.prompt.toUpperCase(), usage: { tokens: body.prompt.length } };
  }

  @Get('async-value')
  @MeterUsage('async_units', { value: async () => Promise.resolve(5) })
  async asyncValue(): Promise<{ ok: true }> {
    return Promise.resolve({ ok: true });
  }

  @Get('slow-value')
  @MeterUsage('async_units', { value: () => AiController.slowValue })
  slowValue(): { ok: true } {
    return { ok: true };
  }

  @Get('observable')
  @MeterUsage('tokens', { value: (_context, result: { tokens: number }) => result.tokens })
  observable(): Observable<{ tokens: number }> {
    return from([{ tokens: 1 }, { tokens: 2 }, { tokens: 3 }]);
  }

  @Sse('stream')
  @MeterUsage('stream_chunks', { value: (_context, last: MessageEvent) => (last.data as { sent: number }).sent })
  stream(): Observable<MessageEvent> {
    return from([1, 2, 3, 4].map((sent) => ({ data: { sent } })));
  }
}

/** An app's own interceptor that runs its route's handler again once if it fails (rxjs `retry`). */
@Injectable()
export class RetryOnceInterceptor implements NestInterceptor {
  intercept(_context: ExecutionContext, next: CallHandler): Observable<unknown> {
    return next.handle().pipe(retry(1));
  }
}

/** A handler whose first runs fail (`failures` of them), under an outer interceptor that retries once. */
@Controller('flaky')
@UseGuards(ApiKeyGuard)
@UseInterceptors(RetryOnceInterceptor)
export class FlakyController {
  /** Runs of the handler so far, and how many of the first ones fail; set by the test. */
  static runs = 0;
  static failures = 1;

  @Get()
  @MeterUsage('tokens', { value: (_context, result: { tokens: number }) => result.tokens })
  flaky(): { tokens: number } {
    FlakyController.runs += 1;
    if (FlakyController.runs <= FlakyController.failures) throw new Error(`run ${FlakyController.runs} fails`);
    return { tokens: 4 };
  }
}

/** Routes whose pace the test sets, for clients that leave: a slow answer, and a stream that stalls. */
@Controller('paced')
@UseGuards(ApiKeyGuard)
export class PacedController {
  private static arrive: (response: ServerResponse) => void = () => undefined;
  private static release: Promise<void> = Promise.resolve();

  /**
   * Holds the next `/paced/slow`: `arrived` resolves with its Node response once the handler runs,
   * and the handler answers when `release()` is called.
   */
  static hold(): { arrived: Promise<ServerResponse>; release: () => void } {
    const arrived = new Promise<ServerResponse>((resolve) => {
      PacedController.arrive = resolve;
    });
    let release!: () => void;
    PacedController.release = new Promise<void>((resolve) => {
      release = resolve;
    });
    return { arrived, release };
  }

  @Get('slow')
  @MeterUsage('async_units', { value: (_context, result: { units: number }) => result.units })
  async slow(@Res({ passthrough: true }) res: { raw?: ServerResponse } & ServerResponse): Promise<{ units: number }> {
    PacedController.arrive(res.raw ?? res);
    await PacedController.release;
    return { units: 5 };
  }

  /** Like `/paced/slow`, with a value known up front: metered from the guard, without the interceptor. */
  @Get('slow-static')
  @MeterUsage('async_units', { value: 6 })
  async slowStatic(@Res({ passthrough: true }) res: { raw?: ServerResponse } & ServerResponse): Promise<{ units: number }> {
    PacedController.arrive(res.raw ?? res);
    await PacedController.release;
    return { units: 6 };
  }

  /** Writes 9 of 10 chunks to the Node response itself, then waits for a 10th that never comes. */
  @Get('chunks')
  @MeterUsage('stream_chunks', { value: 9 })
  chunks(@Res() res: { raw?: ServerResponse } & ServerResponse): void {
    const raw = res.raw ?? res;
    raw.writeHead(200, { 'content-type': 'text/plain' });
    for (let n = 1; n <= 9; n += 1) raw.write(`chunk ${n}\n`);
  }

  /** Sends 9 of 10 events, then waits for a 10th that never comes. */
  @Sse('stream')
  @MeterUsage('stream_chunks', { value: (_context, last: MessageEvent) => (last.data as { sent: number }).sent })
  stream(): Observable<MessageEvent> {
    return new Observable<MessageEvent>((subscriber) => {
      for (let sent = 1; sent <= 9; sent += 1) subscriber.next({ data: { sent } });
    });
  }
}

/** Not decorated: billed only with `meterAllRoutes`. */
@Controller('public')
export class PublicController {
  @Get('ping')
  ping(): { pong: true } {
    return { pong: true };
  }

  @Get('anonymous')
  @MeterUsage()
  anonymous(): { ok: true } {
    return { ok: true };
  }
}

/** Reports by hand through the injected reporter. */
@Controller('manual')
@UseGuards(ApiKeyGuard)
export class ManualController {
  constructor(private readonly reporter: MeterReporter) {}

  @Post()
  record(@Req() req: { user: { stripeCustomerId: string } }): { identifier: string } {
    return { identifier: this.reporter.report({ eventName: 'manual_units', customerId: req.user.stripeCustomerId, value: 3 }) };
  }
}

export const CONTROLLERS = [ItemsController, AiController, PacedController, PublicController, ManualController, FlakyController];

/**
 * Express-style middleware that meters requests itself (like @metered/express): it claims each
 * request on the Node request object, up front or once the response has finished.
 */
export class ClaimingMiddleware implements NestMiddleware {
  static mode: 'before' | 'after' = 'before';
  static claims: boolean[] = [];

  use(req: IncomingMessage, res: { once(event: 'finish', fn: () => void): void }, next: () => void): void {
    if (ClaimingMiddleware.mode === 'before') ClaimingMiddleware.claims.push(claimRequest(req));
    else res.once('finish', () => ClaimingMiddleware.claims.push(claimRequest(req)));
    next();
  }
}

@Module({})
class ClaimingMiddlewareModule implements NestModule {
  configure(consumer: MiddlewareConsumer): void {
    consumer.apply(ClaimingMiddleware).forRoutes('*path');
  }
}

export interface AppOptions {
  platform: Platform;
  metering: DynamicModule;
  imports?: NonNullable<ModuleMetadata['imports']>;
  claimingMiddleware?: boolean;
  /** Runs before `init()`: global middleware (`app.use`) goes here. */
  configure?: (app: INestApplication) => void;
}

/** Boots the fixture app on one platform, listening on an ephemeral port for supertest. */
export async function startApp({ platform, metering, imports = [], claimingMiddleware = false, configure }: AppOptions): Promise<INestApplication> {
  const moduleRef = await Test.createTestingModule({
    imports: [metering, ...imports, ...(claimingMiddleware ? [ClaimingMiddlewareModule] : [])],
    controllers: CONTROLLERS,
  }).compile();
  const app =
    platform === 'express'
      ? moduleRef.createNestApplication({ logger: false })
      : moduleRef.createNestApplication<NestFastifyApplication>(new FastifyAdapter(), { logger: false });
  configure?.(app);
  // close() runs once however often it is called, so a test can close in its body (to assert on
  // what shutdown delivered) and again in a finally that runs when an assertion failed first.
  const closeApp = app.close.bind(app);
  let closing: Promise<void> | undefined;
  app.close = () => (closing ??= closeApp());
  await app.init();
  if (platform === 'fastify') await (app as NestFastifyApplication).getHttpAdapter().getInstance().ready();
  return app;
}

/** Waits until every finished request is reported and the reporter has delivered it. */
export async function settle(app: INestApplication): Promise<void> {
  await app.get(MeterUsageInterceptor).flush();
}
