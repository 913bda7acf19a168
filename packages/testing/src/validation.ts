// Stripe's meter event rules: request-shape checks (always synchronous) and business rules (asynchronous on the stream).
import {
  IDENTIFIER_MAX_LENGTH,
  STREAM_MAX_EVENTS,
  TIMESTAMP_MAX_AGE_MS,
  TIMESTAMP_MAX_FUTURE_MS,
  VALUE_MAX_SIGNIFICANT_DIGITS,
} from './config';
import type { AsyncErrorCode, FakeMeter, SyncErrorCode } from './types';

/** A meter event whose shape matches the spec; business rules not yet applied. */
export interface EventInput {
  event_name: string;
  payload: Record<string, string>;
  identifier?: string;
  timestamp?: string;
}

export type ShapeResult<T> = { ok: true; value: T } | { ok: false; message: string };

// Module-level copies: hot paths should not go through a module binding per event.
const MAX_IDENTIFIER = IDENTIFIER_MAX_LENGTH;
const MAX_EVENTS = STREAM_MAX_EVENTS;
const MAX_AGE_MS = TIMESTAMP_MAX_AGE_MS;
const MAX_FUTURE_MS = TIMESTAMP_MAX_FUTURE_MS;
const MAX_DIGITS = VALUE_MAX_SIGNIFICANT_DIGITS;
const EVENT_KEYS = new Set(['event_name', 'payload', 'identifier', 'timestamp']);

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
let cachedDayKey = -1;
let cachedDayMs = 0;

/** The value of `count` decimal digits at `at`, or -1 if any is not a digit. */
function digits(text: string, at: number, count: number): number {
  let n = 0;
  for (let i = at; i < at + count; i++) {
    const d = text.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}

/**
 * Parses an RFC 3339 date-time (`2025-01-31T12:00:00Z`, `…:00.123+01:00`) to epoch ms, or NaN when it is not one,
 * including impossible dates such as Feb 30. Date.parse is not used: it also takes "2025-01-31" or "Jan 31".
 * Hand-rolled over char codes because it runs twice for every event of every stream request.
 */
export function parseRfc3339(text: string): number {
  const length = text.length;
  if (length < 20 || text.charCodeAt(4) !== 45 || text.charCodeAt(7) !== 45 || text.charCodeAt(13) !== 58 || text.charCodeAt(16) !== 58) {
    return Number.NaN;
  }
  const t = text.charCodeAt(10);
  if (t !== 84 && t !== 116) return Number.NaN;
  const year = digits(text, 0, 4);
  const month = digits(text, 5, 2);
  const day = digits(text, 8, 2);
  const hour = digits(text, 11, 2);
  const minute = digits(text, 14, 2);
  const second = digits(text, 17, 2);
  if (year < 0 || month < 1 || month > 12 || day < 1 || hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 60) {
    return Number.NaN;
  }
  const leap = month === 2 && year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  if (day > DAYS_IN_MONTH[month - 1]! + (leap ? 1 : 0)) return Number.NaN;
  let i = 19;
  let fractionMs = 0;
  if (text.charCodeAt(i) === 46) {
    let scale = 100;
    const start = ++i;
    while (i < length) {
      const d = text.charCodeAt(i) - 48;
      if (d < 0 || d > 9) break;
      fractionMs += d * scale;
      scale /= 10;
      i++;
    }
    if (i === start) return Number.NaN;
    fractionMs = Math.floor(fractionMs);
  }
  let offsetMinutes = 0;
  const zone = text.charCodeAt(i);
  if (zone === 90 || zone === 122) {
    if (i + 1 !== length) return Number.NaN;
  } else if (zone === 43 || zone === 45) {
    const hours = digits(text, i + 1, 2);
    const minutes = digits(text, i + 4, 2);
    if (i + 6 !== length || text.charCodeAt(i + 3) !== 58 || hours < 0 || hours > 23 || minutes < 0 || minutes > 59) return Number.NaN;
    offsetMinutes = (zone === 45 ? -1 : 1) * (hours * 60 + minutes);
  } else {
    return Number.NaN;
  }
  const dayKey = year * 10_000 + month * 100 + day;
  // Events of one batch share a date: remember the last day's epoch instead of calling Date.UTC per event.
  if (dayKey !== cachedDayKey) {
    cachedDayKey = dayKey;
    cachedDayMs = Date.UTC(year, month - 1, day);
  }
  return cachedDayMs + ((hour * 60 + minute - offsetMinutes) * 60 + Math.min(second, 59)) * 1000 + fractionMs;
}

function field(where: string, name: string): string {
  return where === '' ? name : `${where}.${name}`;
}

/**
 * Why an event does not match the request schema (checked synchronously on both endpoints), or null when it does.
 * A message rather than a result object, so the 100 valid events of a stream request allocate nothing.
 */
export function eventShapeError(raw: unknown, where: string): string | null {
  if (!isPlainObject(raw)) return where === '' ? 'The request body must be a JSON object.' : `${where} must be an object.`;
  for (const key in raw) {
    if (!EVENT_KEYS.has(key)) return `${field(where, key)} is not a recognized parameter.`;
  }
  if (typeof raw.event_name !== 'string' || raw.event_name.length === 0) {
    return `${field(where, 'event_name')} is required and must be a non-empty string.`;
  }
  const payload = raw.payload;
  if (!isPlainObject(payload)) return `${field(where, 'payload')} is required and must be an object.`;
  for (const key in payload) {
    if (typeof payload[key] !== 'string') {
      return `${field(where, 'payload')}.${key} must be a string (meter event payload values are strings, e.g. "25").`;
    }
  }
  const identifier = raw.identifier;
  if (identifier !== undefined && (typeof identifier !== 'string' || identifier.length === 0 || identifier.length > MAX_IDENTIFIER)) {
    return `${field(where, 'identifier')} must be a string of 1 to ${MAX_IDENTIFIER} characters.`;
  }
  const timestamp = raw.timestamp;
  if (timestamp !== undefined && (typeof timestamp !== 'string' || Number.isNaN(parseRfc3339(timestamp)))) {
    return `${field(where, 'timestamp')} must be an RFC 3339 date-time string, e.g. "2025-01-31T12:00:00Z".`;
  }
  return null;
}

/** Checks a stream body: `{ events: [...] }` with 1 to 100 well-shaped events. */
export function checkStreamShape(raw: unknown): ShapeResult<EventInput[]> {
  if (!isPlainObject(raw)) return { ok: false, message: 'The request body must be a JSON object.' };
  for (const key of Object.keys(raw)) {
    if (key !== 'events') return { ok: false, message: `${key} is not a recognized parameter.` };
  }
  const events = raw.events;
  if (!Array.isArray(events)) return { ok: false, message: 'events is required and must be an array.' };
  if (events.length === 0 || events.length > MAX_EVENTS) {
    return { ok: false, message: `events must contain 1 to ${MAX_EVENTS} events; got ${events.length}.` };
  }
  for (let i = 0; i < events.length; i++) {
    const message = eventShapeError(events[i], `events[${i}]`);
    if (message !== null) return { ok: false, message };
  }
  return { ok: true, value: events as EventInput[] };
}

/** The outcome of the value rule: a positive integer with at most 15 significant digits. */
export type ValueVerdict = 'ok' | 'invalid' | 'too_many_digits';

/**
 * Trailing zeros are not significant, so "1000000000000000000000" passes and "1234567890123456" does not.
 * Leading zeros, signs, decimals and blanks are refused: a reporter should send canonical integers.
 */
export function checkValue(value: string): ValueVerdict {
  if (!/^[1-9][0-9]*$/.test(value)) return 'invalid';
  let end = value.length;
  while (value.charCodeAt(end - 1) === 48) end--;
  return end > MAX_DIGITS ? 'too_many_digits' : 'ok';
}

/** A business-rule failure, with the code each endpoint reports. */
export interface RuleViolation {
  syncCode: SyncErrorCode;
  asyncCode: AsyncErrorCode;
  message: string;
}

// Business rules return a violation or null: the success path of a 100-event stream request allocates nothing.

/** `no_meter` / `archived_meter`, or null when the meter takes events. */
export function meterViolation(meter: FakeMeter | undefined, eventName: string): RuleViolation | null {
  if (meter === undefined) {
    return { syncCode: 'no_meter', asyncCode: 'no_meter', message: `No active meter was found for event_name "${eventName}".` };
  }
  if (meter.status !== 'active') {
    const message = `The meter for event_name "${eventName}" is inactive; only active meters accept events.`;
    return { syncCode: 'archived_meter', asyncCode: 'archived_meter', message };
  }
  return null;
}

/** The customer under the meter's customer key, or undefined when absent or empty. */
export function customerOf(meter: FakeMeter, payload: Record<string, string>): string | undefined {
  const customer = payload[meter.customerKey];
  return customer === undefined || customer.length === 0 ? undefined : customer;
}

/** The violation for an event without a customer. */
export function noCustomer(meter: FakeMeter): RuleViolation {
  return {
    syncCode: 'payload_no_customer_defined',
    asyncCode: 'meter_event_no_customer_defined',
    message: `The payload must contain the customer under "${meter.customerKey}" (the meter's customer_mapping.event_payload_key).`,
  };
}

/** The value and timestamp rules, for an event whose meter and customer are known. */
export function valueOrTimeViolation(meter: FakeMeter, event: EventInput, nowMs: number): RuleViolation | null {
  const value = event.payload[meter.valueKey];
  if (value === undefined) {
    return {
      syncCode: 'payload_no_value_defined',
      asyncCode: 'meter_event_invalid_value',
      message: `The payload must contain the value under "${meter.valueKey}" (the meter's value_settings.event_payload_key).`,
    };
  }
  const verdict = checkValue(value);
  if (verdict === 'invalid') {
    const message = `The value under "${meter.valueKey}" must be a positive integer written as a string.`;
    return { syncCode: 'payload_invalid_value', asyncCode: 'meter_event_invalid_value', message };
  }
  if (verdict === 'too_many_digits') {
    const message = `The value under "${meter.valueKey}" may have at most ${MAX_DIGITS} significant digits.`;
    return { syncCode: 'payload_invalid_value', asyncCode: 'meter_event_value_too_many_digits', message };
  }
  const timestampMs = eventTimeMs(event, nowMs);
  if (nowMs - timestampMs > MAX_AGE_MS) {
    const message = 'The timestamp must be within the past 35 calendar days.';
    return { syncCode: 'timestamp_too_far_in_past', asyncCode: 'timestamp_too_far_in_past', message };
  }
  if (timestampMs - nowMs > MAX_FUTURE_MS) {
    return { syncCode: 'timestamp_in_future', asyncCode: 'timestamp_in_future', message: 'The timestamp must be at most 5 minutes in the future.' };
  }
  return null;
}

/** The event's time in epoch ms: its timestamp, or the receive time when it has none. */
export function eventTimeMs(event: EventInput, nowMs: number): number {
  return event.timestamp === undefined ? nowMs : parseRfc3339(event.timestamp);
}
