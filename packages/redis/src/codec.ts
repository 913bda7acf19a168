// Events in and out of stream entries: one entry carries up to a request's worth of events, stored by column.
import type { QueuedEvent } from '@metered/core';

/** The field of an entry with one event as JSON (what the first versions wrote; still read). */
export const ENTRY_FIELD = 'e';
/** The field of an entry with a JSON array of events (what earlier versions wrote; still read). */
export const BATCH_FIELD = 'b';
/** The field of an entry with its events stored by column (what this version writes). */
export const COLUMNS_FIELD = 'c';

/**
 * An entry by column: `k` events; `n`, `c`, `v`, `t` hold their eventName, customerId, value and
 * timestamp, one value when every event has the same one, else one per event; `i` their
 * identifiers; `d` and `a` their dimensions and account (0 when none has any, else one per event, 0
 * for none); `r` any other field an event carries (0, or one object or 0 per event). A third of the
 * bytes of an array of events (its keys are written once, not per event) and less to parse.
 */
interface Columns {
  k: number;
  n: string | string[];
  c: string | string[];
  v: string | string[];
  t: number | number[];
  i: string[];
  d: 0 | unknown[];
  a: 0 | unknown[];
  r: 0 | unknown[];
}

type Column = 'eventName' | 'customerId' | 'value' | 'timestamp';

/** The events' values of `key`: one value when they all share it. */
function column<K extends Column>(events: readonly QueuedEvent[], key: K): QueuedEvent[K] | QueuedEvent[K][] {
  const first = events[0]![key];
  let at = 1;
  while (at < events.length && events[at]![key] === first) at += 1;
  if (at === events.length) return first;
  const values = new Array<QueuedEvent[K]>(events.length);
  for (let i = 0; i < events.length; i += 1) values[i] = events[i]![key];
  return values;
}

/**
 * The JSON of an entry's events: every field the reporter set (future ones too, in `r`); `seq` is
 * not kept (readers set 0). `events` is never empty.
 */
export function encodeEvents(events: readonly QueuedEvent[]): string {
  const count = events.length;
  const identifiers = new Array<string>(count);
  let dimensions: 0 | unknown[] = 0;
  let accounts: 0 | unknown[] = 0;
  let rest: 0 | unknown[] = 0;
  for (let i = 0; i < count; i += 1) {
    const event = events[i]!;
    identifiers[i] = event.identifier;
    if (event.dimensions !== undefined) (dimensions === 0 ? (dimensions = new Array<unknown>(count).fill(0)) : dimensions)[i] = event.dimensions;
    if (event.account !== undefined) (accounts === 0 ? (accounts = new Array<unknown>(count).fill(0)) : accounts)[i] = event.account;
    for (const key in event) {
      if (key === 'eventName' || key === 'customerId' || key === 'value' || key === 'timestamp' || key === 'identifier' || key === 'dimensions' || key === 'account' || key === 'seq') continue;
      const value = (event as unknown as Record<string, unknown>)[key];
      if (value === undefined) continue;
      if (rest === 0) rest = new Array<unknown>(count).fill(0);
      const own = rest[i] === 0 ? (rest[i] = {}) : rest[i];
      (own as Record<string, unknown>)[key] = value;
    }
  }
  const columns: Columns = {
    k: count,
    n: column(events, 'eventName'),
    c: column(events, 'customerId'),
    v: column(events, 'value'),
    t: column(events, 'timestamp'),
    i: identifiers,
    d: dimensions,
    a: accounts,
    r: rest,
  };
  return JSON.stringify(columns);
}

function isEvent(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const e = value as Record<string, unknown>;
  return typeof e.eventName === 'string' && typeof e.customerId === 'string' && typeof e.value === 'string' && typeof e.identifier === 'string' && typeof e.timestamp === 'number';
}

/** A column of `count` values: one value for all, or an array of exactly `count`. */
function fits(value: unknown, count: number): boolean {
  return !Array.isArray(value) || value.length === count;
}

function pick(value: unknown, at: number): unknown {
  return Array.isArray(value) ? value[at] : value;
}

/** An optional column: 0, or exactly `count` values. */
function optional(value: unknown, count: number): value is 0 | unknown[] {
  return value === 0 || (Array.isArray(value) && value.length === count);
}

function decodeColumns(json: string): QueuedEvent[] | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  const { k: count, n, c, v, t, i: identifiers, d, a, r } = parsed as Record<string, unknown>;
  if (typeof count !== 'number' || !Number.isInteger(count) || count < 1 || !Array.isArray(identifiers) || identifiers.length !== count) return undefined;
  if (!fits(n, count) || !fits(c, count) || !fits(v, count) || !fits(t, count) || !optional(d, count) || !optional(a, count) || !optional(r, count)) return undefined;
  const events = new Array<QueuedEvent>(count);
  for (let at = 0; at < count; at += 1) {
    const dimensions = d === 0 ? 0 : d[at];
    // The shape core's report() gives an event (dimensions always, account only when set): the encoder's fast path holds.
    const event = { eventName: pick(n, at), customerId: pick(c, at), value: pick(v, at), timestamp: pick(t, at), identifier: identifiers[at], dimensions: dimensions === 0 ? undefined : dimensions, seq: 0 } as Record<string, unknown>;
    const account = a === 0 ? 0 : a[at];
    if (account !== 0) event.account = account;
    const extra = r === 0 ? 0 : r[at];
    if (extra !== 0) {
      if (typeof extra !== 'object' || extra === null || Array.isArray(extra)) return undefined;
      for (const key of Object.keys(extra)) if (key !== '__proto__' && !(key in event)) event[key] = (extra as Record<string, unknown>)[key];
    }
    if (!isEvent(event) || (dimensions !== 0 && (typeof dimensions !== 'object' || dimensions === null)) || (account !== 0 && typeof account !== 'string')) return undefined;
    events[at] = event as unknown as QueuedEvent;
  }
  return events;
}

/**
 * The events of an entry, each with `seq` 0 (it counts for any flush of the process that reads it),
 * or undefined when the entry is not one this package wrote (a foreign or damaged entry).
 */
export function decodeEntry(fields: unknown): QueuedEvent[] | undefined {
  if (!Array.isArray(fields) || fields.length < 2) return undefined;
  const [field, json] = fields as unknown[];
  if (typeof json !== 'string') return undefined;
  if (field === COLUMNS_FIELD) return decodeColumns(json);
  if (field !== BATCH_FIELD && field !== ENTRY_FIELD) return undefined;
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
