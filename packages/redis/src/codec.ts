// Events in and out of stream entries: one JSON field per entry, every field of the event but its local sequence number.
import type { QueuedEvent } from '@metered/core';

export const ENTRY_FIELD = 'e';

/** The entry's JSON: every field the reporter set (future ones too), none of this process's own bookkeeping. */
export function encodeEvent(event: QueuedEvent): string {
  const { seq: _seq, ...rest } = event;
  return JSON.stringify(rest);
}

/**
 * The event of an entry, with `seq` 0 (it counts for any flush of the process that reads it), or
 * undefined when the entry is not one this package wrote (a foreign or damaged entry).
 */
export function decodeEntry(fields: unknown): QueuedEvent | undefined {
  if (!Array.isArray(fields)) return undefined;
  const at = fields.indexOf(ENTRY_FIELD);
  const json: unknown = at >= 0 && at % 2 === 0 ? fields[at + 1] : undefined;
  if (typeof json !== 'string') return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  const e = parsed as Record<string, unknown>;
  if (typeof e.eventName !== 'string' || typeof e.customerId !== 'string' || typeof e.value !== 'string' || typeof e.identifier !== 'string' || typeof e.timestamp !== 'number') {
    return undefined;
  }
  return { ...(e as unknown as QueuedEvent), seq: 0 };
}
