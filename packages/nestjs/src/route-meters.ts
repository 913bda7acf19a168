// @MeterUsage([...]): a route billing several meters, checked when the class is declared and resolved after the response.
import { MeterConfigError } from '@metered/core';
import type { RequestUsageEvent } from '@metered/core';
import type { ExecutionContext } from '@nestjs/common';
import { checkEventName, checkValue } from './metering.options';
import type { MeterUsageMeter, MeterValue, ValueResolver } from './types';

/** One meter of a route, as `@MeterUsage([...])` records it. */
export interface RouteMeter {
  readonly eventName: string;
  readonly value: MeterValue | ValueResolver<unknown> | undefined;
  readonly dimensions: Readonly<Record<string, string>> | undefined;
}

const METER_KEYS = new Set(['eventName', 'value', 'dimensions']);

function checkDimensions(option: string, value: unknown): Readonly<Record<string, string>> | undefined {
  if (value === undefined) return undefined;
  if (value === null || typeof value !== 'object' || Object.values(value).some((v) => typeof v !== 'string')) {
    throw new MeterConfigError(option, 'must be an object whose values are strings');
  }
  return Object.freeze({ ...(value as Record<string, string>) });
}

/** Checks each meter of `@MeterUsage([...])` (named `@MeterUsage[i]` in errors), so a bad route fails at startup. */
export function checkRouteMeters<TResult>(meters: readonly MeterUsageMeter<TResult>[]): readonly RouteMeter[] {
  if (meters.length === 0) throw new MeterConfigError('@MeterUsage', 'needs at least one meter in its array');
  return Object.freeze(
    meters.map((meter, index): RouteMeter => {
      const at = `@MeterUsage[${index}]`;
      if (meter === null || typeof meter !== 'object') throw new MeterConfigError(at, 'must be an object with eventName and optionally value and dimensions');
      for (const key of Object.keys(meter)) {
        if (!METER_KEYS.has(key)) throw new MeterConfigError(`${at}.${key}`, `is not an option of a meter (known: ${[...METER_KEYS].join(', ')})`);
      }
      return Object.freeze({
        eventName: checkEventName(`${at}.eventName`, meter.eventName),
        value: meter.value === undefined ? undefined : (checkValue<TResult>(`${at}.value`, meter.value) as MeterValue | ValueResolver<unknown>),
        dimensions: checkDimensions(`${at}.dimensions`, meter.dimensions),
      });
    }),
  );
}

/** Whether every meter's value is known before the handler runs (none is a function of its result). */
export function staticMeters(meters: readonly RouteMeter[]): RequestUsageEvent[] | undefined {
  if (meters.some((meter) => typeof meter.value === 'function')) return undefined;
  return meters.map((meter) => ({ eventName: meter.eventName, value: meter.value as MeterValue | undefined, dimensions: meter.dimensions }));
}

/**
 * The route's events for one request: each meter's value function run on the context and the
 * handler's result (together, so a slow one does not hold the others).
 */
export function resolveRouteMeters(meters: readonly RouteMeter[], context: ExecutionContext, result: unknown): RequestUsageEvent[] | Promise<RequestUsageEvent[]> {
  const known = staticMeters(meters);
  if (known !== undefined) return known;
  return Promise.all(
    meters.map(async (meter): Promise<RequestUsageEvent> => {
      const value = typeof meter.value === 'function' ? await meter.value(context, result) : meter.value;
      return { eventName: meter.eventName, value, dimensions: meter.dimensions };
    }),
  );
}
