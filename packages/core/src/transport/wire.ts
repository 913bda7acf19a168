// Stripe's wire format of a meter event: string payload values, RFC 3339 timestamp.
import type { MeterEvent } from '../types';

/** A meter event as Stripe's V2 API takes it. */
export interface WireMeterEvent {
  event_name: string;
  identifier: string;
  timestamp: string;
  payload: Record<string, string>;
}

// `new Date(ms).toISOString()` costs ~1.4 µs on the 2-core benchmark machine, once per event, and
// was the largest part of encoding a batch (docs/BENCHMARKS.md). Events of a batch mostly share
// their second, so the part up to the second is formatted once per second.
let cachedSecond = Number.NaN;
let cachedPrefix = '';
// Events reported in the same millisecond (a busy server's) share the whole string.
let cachedMs = Number.NaN;
let cachedTimestamp = '';

/** The RFC 3339 form of epoch milliseconds, exactly as `new Date(ms).toISOString()` writes it. */
export function isoTimestamp(ms: number): string {
  const time = Math.trunc(ms);
  if (time === cachedMs) return cachedTimestamp;
  const second = Math.floor(time / 1000);
  if (second !== cachedSecond) {
    // "2026-11-25T15:16:00." — everything before the milliseconds.
    cachedPrefix = new Date(second * 1000).toISOString().slice(0, 20);
    cachedSecond = second;
  }
  const milli = time - second * 1000;
  cachedTimestamp = `${cachedPrefix}${milli < 10 ? '00' : milli < 100 ? '0' : ''}${milli}Z`;
  cachedMs = time;
  return cachedTimestamp;
}

/** Encodes an accepted event under the meter's payload keys. */
export function toWireEvent(event: MeterEvent, customerKey: string, valueKey: string): WireMeterEvent {
  const payload: Record<string, string> = event.dimensions === undefined ? {} : { ...event.dimensions };
  payload[customerKey] = event.customerId;
  payload[valueKey] = event.value;
  return {
    event_name: event.eventName,
    identifier: event.identifier,
    timestamp: isoTimestamp(event.timestamp),
    payload,
  };
}

const ARRAY_INDEX = /^(?:0|[1-9][0-9]*)$/;

/**
 * A string as a JSON string literal, as JSON.stringify writes it. Customer ids, event names and
 * identifiers are almost always plain ASCII with nothing to escape; checking that is a few
 * nanoseconds per character, where JSON.stringify costs ~100 ns a call on the benchmark machine.
 */
function quote(text: string): string {
  for (let i = 0; i < text.length; i += 1) {
    const code = text.charCodeAt(i);
    // Control characters, '"', '\\' and surrogates (lone ones are escaped): the generic path.
    if (code < 0x20 || code === 0x22 || code === 0x5c || (code >= 0xd800 && code <= 0xdfff)) return JSON.stringify(text);
  }
  return `"${text}"`;
}

/** `quote()` with the last string remembered: a batch's events mostly share their event name and customer. */
class QuoteCache {
  private text = '';
  private quoted = '""';

  of(text: string): string {
    if (text !== this.text) {
      this.quoted = quote(text);
      this.text = text;
    }
    return this.quoted;
  }
}

const eventNames = new QuoteCache();
const customers = new QuoteCache();

/**
 * The body of one meter_event_stream request, byte for byte what
 * `JSON.stringify({ events: batch.map((e) => toWireEvent(e, customerKey, valueKey)) })` writes.
 * Written out by hand because encoding a batch was the largest part of the reporter's CPU per event
 * in the delivery benchmark (docs/BENCHMARKS.md): building the wire objects and running the generic
 * serializer over them costs ~2.5× this template, which escapes only the strings callers chose.
 */
export function encodeStreamBody(batch: readonly MeterEvent[], customerKey: string, valueKey: string): string {
  // JSON.stringify writes integer-like keys first; such payload keys take the generic path to keep its order.
  const generic = ARRAY_INDEX.test(customerKey) || ARRAY_INDEX.test(valueKey);
  const customerField = JSON.stringify(customerKey);
  const valueField = `,${JSON.stringify(valueKey)}:"`;
  let body = '{"events":[';
  for (let i = 0; i < batch.length; i += 1) {
    const event = batch[i]!;
    if (i > 0) body += ',';
    if (generic || event.dimensions !== undefined) {
      body += JSON.stringify(toWireEvent(event, customerKey, valueKey));
      continue;
    }
    // A value is digits and a timestamp is RFC 3339 (both checked by report()): nothing in them to escape.
    body += `{"event_name":${eventNames.of(event.eventName)},"identifier":${quote(event.identifier)},"timestamp":"${isoTimestamp(event.timestamp)}","payload":{${customerField}:${customers.of(event.customerId)}${valueField}${event.value}"}}`;
  }
  return `${body}]}`;
}
