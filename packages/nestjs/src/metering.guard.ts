// The global guard through which metering enters a request without Nest's interceptor (rxjs) pipeline.
import { Inject, Injectable } from '@nestjs/common';
import type { CanActivate, ExecutionContext, OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { MeterUsageInterceptor } from './meter-usage.interceptor';
import { awaitPass, markPassed } from './guard-passes';

/**
 * Marks an HTTP adapter whose `status()` already records passes in the table of guard-passes.ts, so
 * two modules (or copies of this package) sharing that table wrap it once. Named after the table's
 * key: a copy with another table wraps status() for its own.
 */
const WRAPPED = Symbol.for('@metered/nestjs:status-wrapped:awaiting-passes');

interface StatusAdapter {
  status(response: unknown, statusCode: number): unknown;
  [WRAPPED]?: true;
}

/**
 * Lets every request through, and meters the routes whose value does not read the handler's
 * result from here, with one `'close'` listener on the response: Nest calls guards without rxjs,
 * where an interceptor costs every request its pipeline (docs/BENCHMARKS.md). Routes whose value
 * reads the result carry `MeterUsageInterceptor` themselves (`@MeterUsage()` adds it) and are
 * left to it.
 *
 * Global guards run before a controller's and a route's own, so a guard after this one may still
 * reject the request. Nest sets the route's status code (`HttpAdapter#status()`) once every guard
 * has let a request through, and only then: the module records that call, and a request whose
 * guards did not all pass is never billed, whatever `billIf` says.
 */
@Injectable()
export class MeteringGuard implements CanActivate, OnModuleInit {
  /** Whether passes are recorded; without an HTTP adapter (a unit test) every request counts as passed. */
  private recording = false;

  constructor(
    @Inject(MeterUsageInterceptor) private readonly interceptor: MeterUsageInterceptor,
    @Inject(HttpAdapterHost) private readonly adapterHost: HttpAdapterHost,
  ) {}

  onModuleInit(): void {
    const adapter = this.adapterHost.httpAdapter as unknown as StatusAdapter | undefined;
    if (adapter === undefined || typeof adapter.status !== 'function') return;
    this.recording = true;
    if (adapter[WRAPPED] === true) return;
    // Own property on this application's adapter only: called once per request that passed its guards.
    // eslint-disable-next-line @typescript-eslint/unbound-method
    const status = adapter.status;
    adapter.status = function (this: StatusAdapter, response: unknown, statusCode: number): unknown {
      markPassed(response);
      return status.call(this, response, statusCode);
    };
    adapter[WRAPPED] = true;
  }

  canActivate(context: ExecutionContext): true {
    if (context.getType() !== 'http') return true;
    const guarded = this.interceptor.meterFromGuard(context, this.recording);
    // Marked by the adapter's status(), which Nest calls after the last guard, with this response.
    if (guarded !== undefined && this.recording) awaitPass(guarded.response, guarded);
    return true;
  }
}
