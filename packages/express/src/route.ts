// Route-level metering: per-route event name and value, and opting a route out (health checks).
import { MeterConfigError, skipRequestMetering } from '@metered/core';
import type { NextFunction, Request, Response } from 'express';
import { checkEventNameOption, checkValueOption } from './config';
import type { EventNameResolver, MeterValue, RouteMeteringOptions, ValueResolver } from './types';

/** A route's overrides as the middleware reads them after the response. */
export interface RouteMetering {
  readonly eventName?: string | EventNameResolver;
  readonly value?: MeterValue | ValueResolver;
}

// Kept beside the request rather than on it: route overrides may hold functions, which core's
// shared request state (plain values, read by every adapter) is not meant to carry.
const routeMetering = new WeakMap<object, RouteMetering>();
// Every static event name a meterRoute() was created with, for the start-up meter check.
const declaredEventNames = new Set<string>();

/** The static event names of every `meterRoute()` created so far. */
export function routeEventNames(): string[] {
  return [...declaredEventNames];
}

/** The overrides set on `req` by `meterRoute()`, if any. */
export function routeMeteringOf(req: object): RouteMetering | undefined {
  return routeMetering.get(req);
}

/** Express's route middleware signature, spelled out so it fits Express 4 and 5 typings alike. */
export type RouteMiddleware = (req: Request, res: Response, next: NextFunction) => void;

/**
 * A route-level middleware that sets this route's event name and/or value; a handler's
 * `setRequestUsage(req, …)` still wins. It only configures: the app-level `meterUsage()` bills.
 *
 * @example
 * app.post('/v1/generate', meterRoute({ eventName: 'llm_tokens' }), generate);
 * app.get('/v1/export', meterRoute({ value: 10 }), exportAll);
 */
export function meterRoute(options: RouteMeteringOptions): RouteMiddleware {
  if (options === null || typeof options !== 'object') {
    throw new MeterConfigError('options', 'must be an object with eventName and/or value');
  }
  for (const key of Object.keys(options)) {
    if (key !== 'eventName' && key !== 'value') {
      throw new MeterConfigError(key, 'is not an option of meterRoute (known: eventName, value)');
    }
  }
  if (options.eventName === undefined && options.value === undefined) {
    throw new MeterConfigError('options', 'meterRoute needs eventName and/or value');
  }
  const own: RouteMetering = Object.freeze({
    ...(options.eventName === undefined ? {} : { eventName: checkEventNameOption('eventName', options.eventName) }),
    ...(options.value === undefined ? {} : { value: checkValueOption('value', options.value) }),
  });

  if (typeof own.eventName === 'string') declaredEventNames.add(own.eventName);
  return function meterRouteMiddleware(req: Request, _res: Response, next: NextFunction): void {
    // A router-level meterRoute and a route-level one combine; the one closest to the handler wins.
    const outer = routeMetering.get(req);
    routeMetering.set(req, outer === undefined ? own : { ...outer, ...own });
    next();
  };
}

/**
 * A route-level middleware that excludes the route from metering (counted as `skipped.skippedRoute`).
 *
 * @example
 * app.get('/health', skipMetering(), (_req, res) => res.send('ok'));
 */
export function skipMetering(): RouteMiddleware {
  return function skipMeteringMiddleware(req: Request, _res: Response, next: NextFunction): void {
    skipRequestMetering(req);
    next();
  };
}
