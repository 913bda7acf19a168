// Events in and out of stream entries: one entry carries up to a request's worth of events as one JSON array.
import type { QueuedEvent } from '@metered/core';

/** The field of an entry with one event (what earlier versions wrote; still read). */
export const ENTRY_FIELD = 'e';
/** The field of an entry with a JSON array of events. */
export const BATCH_FIELD = 'b';

/**
 * The JSON of an entry's events: every field the reporter set (future ones too). Their `seq` goes
 * along, as a copy without it per event cost more than its bytes; readers replace it.
 */
export function encodeEvents(events: readonly QueuedEvent[]): string {
  return JSON.stringify(events);
}

function isEvent(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const e = value as Record<string, unknown>;
  return typeof e.eventName === 'string' && typeof e.customerId === 'string' && typeof e.value === 'string' && typeof e.identifier === 'string' && typeof e.timestamp === 'number';
}

/**
 * The events of an entry, each with `seq` 0 (it counts for any flush of the process that reads it),
 * or undefined when the entry is not one this package wrote (a foreign or damaged entry).
 */
export function decodeEntry(fields: unknown): QueuedEvent[] | undefined {
  if (!Array.isArray(fields) || fields.length < 2) return undefined;
  const [field, json] = fields as unknown[];
  if ((field !== BATCH_FIELD && field !== ENTRY_FIELD) || typeof json !== 'string') return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    return undefined;
  }
  const list: unknown[] = field === BATCH_FIELD ? (Array.isArray(parsed) ? parsed : []) : [parsed];
  if (list.length === 0 || !list.every(isEvent)) return undefined;
  // Fresh objects of JSON.parse: set in place, not copied (one object less per event).
  for (const e of list) e.seq = 0;
  return list as unknown as QueuedEvent[];
}
