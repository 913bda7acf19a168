// Framework-agnostic pieces of request metering, shared by @metered/express and @metered/nestjs.
import { deriveIdentifier } from './identifier';
import type { RequestUsageEvent } from './request-events';
import { cancellableSleep } from './timers';

/** What a request carries about its own metering. */
export interface RequestMeteringState {
  /**
   * True once an adapter has taken charge of metering this request: exactly one event per request.
   * Kept in the claim registry (below), never on the request, and reported here by `getRequestUsage()`.
   */
  claimed?: boolean;
  /** A value set by the handler (e.g. tokens known only at the end); wins over configured values. */
  value?: number | bigint | string;
  /** An event name set by the handler or a route; wins over configured names. */
  eventName?: string;
  /** Set by the handler or a route to not bill this request. */
  skip?: boolean;
  /**
   * Several events set by the handler (`setRequestUsage(req, [...])`): they replace the single
   * configured event, each with an identifier derived from the request's.
   */
  events?: readonly RequestUsageEvent[];
  /**
   * The route's usage as another adapter tells it once the handler has answered (`handOverRequestUsage()`),
   * asked by the adapter that claimed the request when it bills, unless the handler set usage itself.
   */
  handedOver?: () => HandedOverUsage | Promise<HandedOverUsage>;
}

/** What an adapter that stepped aside hands over: the route's event name and value, or its several events. */
export type HandedOverUsage = { readonly eventName?: string | undefined; readonly value?: number | bigint | string | undefined } | readonly RequestUsageEvent[];

/**
 * What handlers and routes set on their requests (`setRequestUsage()`, `skipRequestMetering()`),
 * shared by every adapter and every copy of this package in the process, as the claims are: beside
 * the request rather than on it, for the reason the claims give (below). Every metered request asks
 * for its state and few have one; on Express's req a property it lacks is looked up along its whole
 * prototype chain, uncached, where a weak table answers from the request's identity hash.
 */
const STATES_KEY = Symbol.for('@metered/request-states');
const states: WeakMap<object, RequestMeteringState> = ((globalThis as { [STATES_KEY]?: WeakMap<object, RequestMeteringState> })[STATES_KEY] ??= new WeakMap<object, RequestMeteringState>());

function stateOf(req: object): RequestMeteringState {
  let state = states.get(req);
  if (state === undefined) {
    state = {};
    states.set(req, state);
  }
  return state;
}

/**
 * The requests an adapter has taken charge of, shared by every copy of this package in the process
 * (a global registry key, as `Symbol.for` is). A table beside the request rather than a property on
 * it: Express swaps the prototypes of req and res on every request and each request ends up with
 * an object map of its own, so a property added to one costs V8 a new map. Under callgrind
 * (single-threaded Node, 3,000 keep-alive requests of an Express hello world), claiming through
 * the property added ~88,000 instructions per request to a ~690,000 one; through a weak table it
 * was within run-to-run noise (bench/NOTES.md).
 */
const CLAIMS_KEY = Symbol.for('@metered/claimed-requests');
const claims: WeakSet<object> = ((globalThis as { [CLAIMS_KEY]?: WeakSet<object> })[CLAIMS_KEY] ??= new WeakSet<object>());

/** What the claim rules read of a response: whether its handler has ended it. */
export interface EndableResponse {
  readonly writableEnded?: boolean;
}

/**
 * Takes charge of metering `req`. Returns true for the first caller only, so that a middleware
 * mounted twice, or Express middleware plus a Nest interceptor, still emit one event. Given the
 * response, it also refuses one that has already ended: a mount reached after the route answered
 * (`next()` after `res.send()`), where a first mount may already have billed the request and let go
 * of its claim (`releaseClaim`).
 */
export function claimRequest(req: object, res?: EndableResponse): boolean {
  // Nothing is read from the request itself: on Express's req (a map of its own per request, above)
  // a property it lacks is looked up along its whole prototype chain, uncached.
  if (claims.has(req)) return false;
  if (res?.writableEnded === true) return false;
  claims.add(req);
  return true;
}

/**
 * Ends the claim on `req` once its metering is over: every claim that stays in the registry is an
 * entry the garbage collector must visit until the request itself is collected, and that cost every
 * request of a Nest-on-Fastify hello world ~8% of its throughput (bench/NOTES.md). Only a response its
 * handler ended lets go (a later mount then sees it ended, above); one whose client left first keeps
 * its claim, since the route may still reach another mount, which must not bill it. Only the adapter
 * that claimed `req` calls this, after the last read of the claim.
 */
export function releaseClaim(req: object, res: EndableResponse): void {
  if (res.writableEnded === true) claims.delete(req);
}

/**
 * Lets a handler adjust how its own request is billed: the value, the event name, or not at all; or,
 * given an array, bill several meters at once (input and output tokens), one event per entry.
 *
 * @example
 * setRequestUsage(req, [
 *   { eventName: 'input_tokens', value: usage.input },
 *   { eventName: 'output_tokens', value: usage.output },
 * ]);
 */
export function setRequestUsage(req: object, usage: Omit<RequestMeteringState, 'claimed' | 'events' | 'handedOver'> | readonly RequestUsageEvent[]): void {
  const state = stateOf(req);
  if (isEventList(usage)) {
    // A copy: the handler may reuse or change its array after the call; each entry is checked by report().
    state.events = Object.freeze(usage.map((event) => Object.freeze({ ...event })));
    return;
  }
  if (usage.value !== undefined) state.value = usage.value;
  if (usage.eventName !== undefined) state.eventName = usage.eventName;
  if (usage.skip !== undefined) state.skip = usage.skip;
}

// Array.isArray does not narrow a readonly array out of a union.
function isEventList(usage: unknown): usage is readonly RequestUsageEvent[] {
  return Array.isArray(usage);
}

/**
 * For an adapter that found `req` claimed by another (Nest's interceptor beside `@metered/express`):
 * the route's usage, worked out by `resolve` only when the claiming adapter bills, after the
 * response (a value read from the handler's result is known only then). Its answers are checked as
 * a value resolver's are; what the handler sets with `setRequestUsage()` wins.
 */
export function handOverRequestUsage(req: object, resolve: () => HandedOverUsage | Promise<HandedOverUsage>): void {
  stateOf(req).handedOver = resolve;
}

/** Excludes a request from metering (a health check, an internal route). */
export function skipRequestMetering(req: object): void {
  stateOf(req).skip = true;
}

const NO_USAGE: Readonly<RequestMeteringState> = Object.freeze({});

/**
 * The metering state of `req` as set so far, itself rather than a copy (or an empty one): for an
 * adapter's `usage()`, which core reads once, at once. Saves an object per request.
 */
export function requestUsageOf(req: object): Readonly<RequestMeteringState> {
  return states.get(req) ?? NO_USAGE;
}

/** Whether a handler or route set anything on `req` (an adapter with two objects per request reads both only then). */
export function hasRequestUsage(req: object): boolean {
  return states.has(req);
}

/** The metering state of `req` as set so far (a copy), `claimed` included. */
export function getRequestUsage(req: object): Readonly<RequestMeteringState> {
  const state = requestUsageOf(req);
  return claims.has(req) ? { ...state, claimed: true } : { ...state };
}

/**
 * The default payer of a request: the authenticated user's `stripeCustomerId` (`req.user`), then
 * `locals.stripeCustomerId` (Express's `res.locals`). Never a header or query parameter: a client
 * must not be able to choose who is billed.
 */
export function defaultCustomerId(req: object, locals?: object): string | undefined {
  const user = (req as { user?: unknown }).user;
  const fromUser = typeof user === 'object' && user !== null ? (user as { stripeCustomerId?: unknown }).stripeCustomerId : undefined;
  if (typeof fromUser === 'string' && fromUser.length > 0) return fromUser;
  const fromLocals = locals === undefined ? undefined : (locals as { stripeCustomerId?: unknown }).stripeCustomerId;
  return typeof fromLocals === 'string' && fromLocals.length > 0 ? fromLocals : undefined;
}

/**
 * The identifier of a request billed under a client's `Idempotency-Key`: derived from customer,
 * event name, operation (method and route pattern, `GET /v1/items/:id`) and key together, so a
 * client can only collapse its own retries of one operation: a key reused on another route or
 * method bills again.
 */
export function identifierFromIdempotencyKey(customerId: string, eventName: string, operation: string, idempotencyKey: string): string {
  return deriveIdentifier('idempotency-key', customerId, eventName, operation, idempotencyKey);
}

/** Settles with `fn()`'s result, or rejects after `timeoutMs` (the timer never keeps the process alive). */
export async function withTimeout<T>(fn: () => T | Promise<T>, timeoutMs: number, what: string): Promise<T> {
  // A long wait in chunks: a plain timer of 2^31 ms or more would fire after 1 ms.
  const timer = cancellableSleep(timeoutMs);
  try {
    return await Promise.race([
      Promise.resolve().then(fn),
      timer.done.then((): never => {
        throw new Error(`${what} did not settle within ${timeoutMs} ms`);
      }),
    ]);
  } finally {
    timer.cancel();
  }
}
