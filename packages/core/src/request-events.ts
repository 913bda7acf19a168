// Several meter events for one request: each identifier derived from one per-request base, so retries and double mounts bill each meter once.
import type { MeterValue } from './adapter-options';
import { deriveIdentifier, generateIdentifier } from './identifier';
import type { MeterEventInput } from './types';

/** One of several usage events a request bills (`setRequestUsage(req, [...])`, Nest's `@MeterUsage([...])`). */
export interface RequestUsageEvent {
  /** The meter's `event_name`. */
  readonly eventName: string;
  /**
   * How much of that meter the request used; 0 bills nothing for this meter.
   * @default 1
   */
  readonly value?: MeterValue;
  /**
   * Extra payload keys for this meter's dimensions, over the adapter's own.
   * @default undefined
   */
  readonly dimensions?: Readonly<Record<string, string>>;
}

/** What `eventsOfRequest()` needs to know about the request beyond its events. */
export interface RequestEventsContext {
  readonly customerId: string;
  /** When the request arrived: every event of the request is dated then. */
  readonly arrivedAt: number;
  /** The client's idempotency key with the operation it is scoped to, when the request carries one. */
  readonly idempotency?: { readonly key: string; readonly operation: string } | undefined;
  /** The adapter's dimensions for the request, under each event's own. */
  readonly dimensions?: Readonly<Record<string, string>> | undefined;
  /** The connected account (`acct_…`) the events belong to, when the adapter names one. */
  readonly account?: string | undefined;
}

function isZero(value: MeterValue): boolean {
  return value === 0 || value === 0n || value === '0';
}

/**
 * The identifier every event of one request derives from: from the client's idempotency key (scoped
 * to customer and operation, so a retry of the same operation derives the same identifiers), or
 * fresh for a request without one (it is metered once anyway: only the adapter that claimed it reports).
 */
export function requestBaseIdentifier(customerId: string, idempotency: RequestEventsContext['idempotency']): string {
  return idempotency === undefined ? generateIdentifier() : deriveIdentifier('idempotency-key-request', customerId, idempotency.operation, idempotency.key);
}

/**
 * The meter events of a request billing several meters, ready for `report()`. The event at index `i`
 * gets the identifier derived from (base, event name, `i`): stable across retries of the request,
 * distinct between meters, and between two entries of the same meter. Events of value 0 are left
 * out without shifting the others' indexes, so their identifiers never depend on which were zero.
 */
export function eventsOfRequest(events: readonly RequestUsageEvent[], context: RequestEventsContext): MeterEventInput[] {
  const base = requestBaseIdentifier(context.customerId, context.idempotency);
  const inputs: MeterEventInput[] = [];
  events.forEach((usage, index) => {
    const value = usage.value ?? 1;
    if (isZero(value)) return;
    const dimensions = context.dimensions === undefined && usage.dimensions === undefined ? undefined : { ...context.dimensions, ...usage.dimensions };
    const input: MeterEventInput = {
      eventName: usage.eventName,
      customerId: context.customerId,
      value,
      timestamp: context.arrivedAt,
      identifier: deriveIdentifier(base, String(usage.eventName), String(index)),
    };
    if (dimensions !== undefined) input.dimensions = dimensions;
    if (context.account !== undefined) input.account = context.account;
    inputs.push(input);
  });
  return inputs;
}
