// Stripe's wire format of a meter event: string payload values, RFC 3339 timestamp.
import type { MeterEvent } from './types';

/** A meter event as Stripe's V2 API takes it. */
export interface WireMeterEvent {
  event_name: string;
  identifier: string;
  timestamp: string;
  payload: Record<string, string>;
}

/** Encodes an accepted event under the meter's payload keys. */
export function toWireEvent(event: MeterEvent, customerKey: string, valueKey: string): WireMeterEvent {
  const payload: Record<string, string> = event.dimensions === undefined ? {} : { ...event.dimensions };
  payload[customerKey] = event.customerId;
  payload[valueKey] = event.value;
  return {
    event_name: event.eventName,
    identifier: event.identifier,
    timestamp: new Date(event.timestamp).toISOString(),
    payload,
  };
}
