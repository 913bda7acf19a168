// Stripe's meter error events, read back: a thin event in, the full event and its meter fetched, one coded error per sample.
// Shapes: https://docs.stripe.com/api/v2/core/events/event-types (v1.billing.meter.error_report_triggered and
// v1.billing.meter.no_meter_found: thin, `data` only when fetched), https://docs.stripe.com/api/v2/core/events/object
// (data.reason.error_types[].{code,error_count,sample_errors[].{error_message,request.identifier}}, validation_start/end),
// https://docs.stripe.com/event-destinations (thin events carry ids only: fetch the event with GET /v2/core/events/{id}).
import { MeterRejectedEventError } from './errors';
import type { RecentEvent, StripeReader } from './types';

/** The two event types Stripe reports asynchronously rejected meter events with. */
export const METER_ERROR_EVENT_TYPES: readonly string[] = Object.freeze(['v1.billing.meter.error_report_triggered', 'v1.billing.meter.no_meter_found']);

interface SampleError {
  readonly error_message?: string;
  readonly request?: { readonly identifier?: string };
}

interface ErrorType {
  readonly code?: string;
  readonly error_count?: number;
  readonly sample_errors?: readonly SampleError[];
}

/** A `v2.core.event` as pushed (thin: no `data`) or fetched (with `data`). */
export interface ThinEvent {
  readonly id: string;
  readonly object: 'v2.core.event';
  readonly type: string;
  readonly related_object?: { readonly id?: string; readonly type?: string; readonly url?: string } | null;
  /** The account the event belongs to (a connected account's id), which fetching it or its related object needs as `Stripe-Context`. */
  readonly context?: string | null;
  readonly data?: { readonly reason?: { readonly error_types?: readonly ErrorType[] } } | null;
}

/** Whether a parsed body is a Stripe v2 event. */
export function isThinEvent(value: unknown): value is ThinEvent {
  const event = value as Partial<ThinEvent> | null;
  return typeof event === 'object' && event !== null && event.object === 'v2.core.event' && typeof event.id === 'string' && typeof event.type === 'string';
}

/** What mapping an event back needs: reading Stripe, the reporter's recent identifiers, and a cache of meter names. */
export interface MappingContext {
  readonly read: StripeReader;
  readonly lookup: (identifier: string) => RecentEvent | undefined;
  /** Meter id → event name; filled as meters are fetched. */
  readonly meterNames: Map<string, string>;
}

const METER_NAME_CACHE_MAX = 1000;

/** The connected account a v2 event belongs to, undefined for the platform's own. */
function contextOf(event: ThinEvent): string | undefined {
  return typeof event.context === 'string' && event.context !== '' ? event.context : undefined;
}

async function meterEventName(event: ThinEvent, context: MappingContext): Promise<string | undefined> {
  const related = event.related_object;
  if (related?.type !== 'billing.meter' || typeof related.id !== 'string') return undefined;
  const account = contextOf(event);
  const key = `${account ?? ''}\u0000${related.id}`;
  const cached = context.meterNames.get(key);
  if (cached !== undefined) return cached;
  // related_object.url is a path on the API host (`/v1/billing/meters/mtr_…`); fall back to building it.
  const path = typeof related.url === 'string' && related.url.startsWith('/v1/billing/meters/') ? related.url : `/v1/billing/meters/${encodeURIComponent(related.id)}`;
  const meter = (await context.read(path, account)) as { event_name?: unknown } | undefined;
  if (typeof meter?.event_name !== 'string') return undefined;
  if (context.meterNames.size >= METER_NAME_CACHE_MAX) context.meterNames.clear();
  context.meterNames.set(key, meter.event_name);
  return meter.event_name;
}

/**
 * The rejected events a meter error event reports, one `MeterRejectedEventError` per sample error. The event is
 * fetched when it arrived thin; other event types give no errors. Throws what reading Stripe throws.
 */
export async function rejectedEventsOf(notification: ThinEvent, context: MappingContext): Promise<MeterRejectedEventError[]> {
  if (!METER_ERROR_EVENT_TYPES.includes(notification.type)) return [];
  const event = notification.data == null ? ((await context.read(`/v2/core/events/${encodeURIComponent(notification.id)}`, contextOf(notification))) as ThinEvent) : notification;
  const meterName = await meterEventName(event, context);
  const errors: MeterRejectedEventError[] = [];
  for (const type of event.data?.reason?.error_types ?? []) {
    const code = typeof type.code === 'string' ? type.code : 'unknown';
    const count = typeof type.error_count === 'number' ? type.error_count : 0;
    const samples = type.sample_errors ?? [];
    // Stripe's docs do not say how many samples a type carries; a type without any still reaches onError once.
    if (samples.length === 0) errors.push(new MeterRejectedEventError(undefined, code, undefined, meterName, undefined, event.id, count));
    for (const sample of samples) {
      const identifier = typeof sample.request?.identifier === 'string' ? sample.request.identifier : undefined;
      const known = identifier === undefined ? undefined : context.lookup(identifier);
      const message = typeof sample.error_message === 'string' ? sample.error_message : undefined;
      errors.push(new MeterRejectedEventError(identifier, code, message, meterName ?? known?.eventName, known?.customerId, event.id, count));
    }
  }
  return errors;
}
