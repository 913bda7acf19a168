// @MeterUsage() and @SkipMetering(): which routes are billed, under which meter, for how much.
import { MeterConfigError } from '@metered/core';
import { SetMetadata, UseInterceptors, applyDecorators } from '@nestjs/common';
import { MeterUsageInterceptor } from './meter-usage.interceptor';
import { METER_USAGE_METADATA, SKIP_METERING_METADATA } from './metering.constants';
import { checkEventName, checkValue } from './metering.options';
import { checkRouteMeters } from './route-meters';
import type { RouteMeter } from './route-meters';
import type { MeterUsageMeter, MeterUsageRouteOptions, MeterValue, ValueResolver } from './types';

/** What `@MeterUsage()` records on a route or controller. */
export interface RouteMetering {
  /** Undefined: the module's `eventName`. */
  readonly eventName: string | undefined;
  /** Undefined: a value of 1. */
  readonly value: MeterValue | ValueResolver<unknown> | undefined;
  readonly dimensions: Readonly<Record<string, string>> | undefined;
  /** Several meters (`@MeterUsage([...])`), billed instead of the one above; undefined for one. */
  readonly meters?: readonly RouteMeter[] | undefined;
}

/** A decorator usable on a controller class or on one of its route methods. */
export type ClassOrMethodDecorator = ClassDecorator & MethodDecorator;

const OPTION_KEYS = new Set(['value', 'dimensions']);

function checkDimensions(value: unknown): Readonly<Record<string, string>> | undefined {
  if (value === undefined) return undefined;
  if (value === null || typeof value !== 'object' || Object.values(value).some((v) => typeof v !== 'string')) {
    throw new MeterConfigError('@MeterUsage.dimensions', 'must be an object whose values are strings');
  }
  return Object.freeze({ ...(value as Record<string, string>) });
}

/**
 * Bills each successful request to the decorated route (or every route of the decorated controller)
 * as one meter event, sent after the response. On a method it wins over the controller's.
 *
 * @param eventName The meter's `event_name`; defaults to the module's `eventName`.
 * @param options The value billed per request (a number, or a function of the context and the
 * handler's result) and the event's dimensions.
 *
 * Given an array, the route bills several meters per request, one event each, every identifier
 * derived from the request's (so a retried request with an `Idempotency-Key` bills each meter once).
 *
 * @example
 * ```ts
 * @MeterUsage('completion_tokens', { value: (_ctx, result: Completion) => result.usage.tokens })
 * @Post('completions')
 * complete(@Body() body: CompletionRequest): Promise<Completion> { … }
 *
 * @MeterUsage<Completion>([
 *   { eventName: 'input_tokens', value: (_ctx, result) => result.usage.input },
 *   { eventName: 'output_tokens', value: (_ctx, result) => result.usage.output },
 * ])
 * @Post('chat')
 * chat(@Body() body: ChatRequest): Promise<Completion> { … }
 * ```
 */
export function MeterUsage<TResult = unknown>(eventName?: string, options?: MeterUsageRouteOptions<TResult>): ClassOrMethodDecorator;
export function MeterUsage<TResult = unknown>(options: MeterUsageRouteOptions<TResult>): ClassOrMethodDecorator;
export function MeterUsage<TResult = unknown>(meters: readonly MeterUsageMeter<TResult>[]): ClassOrMethodDecorator;
export function MeterUsage<TResult = unknown>(
  eventNameOrOptions?: string | MeterUsageRouteOptions<TResult> | readonly MeterUsageMeter<TResult>[],
  maybeOptions?: MeterUsageRouteOptions<TResult>,
): ClassOrMethodDecorator {
  if (isMeterList(eventNameOrOptions)) {
    const several: RouteMetering = Object.freeze({ eventName: undefined, value: undefined, dimensions: undefined, meters: checkRouteMeters(eventNameOrOptions) });
    return recorded(several);
  }
  const named = typeof eventNameOrOptions === 'string' || eventNameOrOptions === undefined;
  const eventName = named ? eventNameOrOptions : undefined;
  const options: MeterUsageRouteOptions<TResult> = (named ? maybeOptions : (eventNameOrOptions as MeterUsageRouteOptions<TResult>)) ?? {};
  // Checked when the class is declared, so a bad route fails at startup rather than on each request.
  if (typeof options !== 'object' || options === null) throw new MeterConfigError('@MeterUsage.options', 'must be an object with value and/or dimensions');
  for (const key of Object.keys(options)) {
    if (!OPTION_KEYS.has(key)) throw new MeterConfigError(`@MeterUsage.${key}`, `is not an option of @MeterUsage (known: ${[...OPTION_KEYS].join(', ')})`);
  }
  const metering: RouteMetering = Object.freeze({
    eventName: eventName === undefined ? undefined : checkEventName('@MeterUsage.eventName', eventName),
    value: options.value === undefined ? undefined : (checkValue<TResult>('@MeterUsage.value', options.value) as MeterValue | ValueResolver<unknown>),
    dimensions: checkDimensions(options.dimensions),
  });
  return recorded(metering);
}

/**
 * Records the route's metering, with `MeterUsageInterceptor` on just this route (or controller)
 * when a value reads the handler's result, which only an interceptor sees. Every other route is
 * metered by the module's guard, without Nest's interceptor pipeline (docs/BENCHMARKS.md).
 */
function recorded(metering: RouteMetering): ClassOrMethodDecorator {
  const readsResult = typeof metering.value === 'function' || (metering.meters?.some((meter) => typeof meter.value === 'function') ?? false);
  const record = SetMetadata(METER_USAGE_METADATA, metering);
  return readsResult ? applyDecorators(record, UseInterceptors(MeterUsageInterceptor)) : record;
}

// Array.isArray does not narrow a readonly array out of a union.
function isMeterList<TResult>(value: unknown): value is readonly MeterUsageMeter<TResult>[] {
  return Array.isArray(value);
}

/**
 * Excludes the decorated route (or controller) from metering: a health check in a metered
 * controller, or a free route when `meterAllRoutes` is on. On a method it wins over the controller's
 * `@MeterUsage()`.
 *
 * @example
 * ```ts
 * @SkipMetering()
 * @Get('status')
 * status() { return { ok: true }; }
 * ```
 */
export function SkipMetering(): ClassOrMethodDecorator {
  return SetMetadata(SKIP_METERING_METADATA, true);
}
