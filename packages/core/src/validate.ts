// Stripe's meter-event rules, checked synchronously in report() so bad input fails at the call site.
import { MeterValidationError } from './errors';

/** Stripe accepts timestamps within the past 35 days… */
export const MAX_EVENT_AGE_MS = 35 * 24 * 60 * 60 * 1000;
/** …and at most 5 minutes ahead. */
export const MAX_EVENT_LEAD_MS = 5 * 60 * 1000;
/** Event names and identifiers are 1–100 characters. */
export const MAX_NAME_LENGTH = 100;
/** Stripe's limit on a value's significant digits. */
export const MAX_SIGNIFICANT_DIGITS = 15;

const DIGITS = /^[1-9][0-9]*$/;
// RFC 3339 date-time: full date, 'T', time, optional fraction, zone 'Z' or ±hh:mm.
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(?:[Zz]|[+-](\d{2}):(\d{2}))$/;
const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** Epoch ms of an RFC 3339 date-time, or NaN. Date.parse alone would roll Feb 30 over to March and take 24:00. */
function parseRfc3339(text: string): number {
  const m = RFC3339.exec(text);
  if (m === null) return Number.NaN;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const leap = month === 2 && year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  const valid =
    month >= 1 && month <= 12 && day >= 1 && day <= DAYS_IN_MONTH[month - 1]! + (leap ? 1 : 0) &&
    hour <= 23 && minute <= 59 && second <= 59 &&
    (m[7] === undefined || (Number(m[7]) <= 23 && Number(m[8]) <= 59));
  return valid ? Date.parse(text) : Number.NaN;
}
// Precomputed strings for the common small values: the hot path then allocates nothing for them.
const SMALL_VALUES: readonly string[] = Array.from({ length: 1025 }, (_, i) => String(i));

/** A value as Stripe wants it: a string of digits, positive, ≤ 15 significant digits. */
export function normalizeValue(value: unknown): string {
  if (value === undefined) return '1';
  let digits: string;
  if (typeof value === 'number') {
    if (Number.isInteger(value) && value > 0 && value < SMALL_VALUES.length) return SMALL_VALUES[value]!;
    if (!Number.isFinite(value) || !Number.isInteger(value) || value <= 0) {
      throw new MeterValidationError('ERR_METER_INVALID_VALUE', 'value', `must be a positive integer, got ${String(value)}`);
    }
    // BigInt gives the exact digits of the double, so a number past 2^53 that lost precision
    // shows more significant digits than it was written with and is refused below.
    digits = BigInt(value).toString();
  } else if (typeof value === 'bigint') {
    if (value <= 0n) {
      throw new MeterValidationError('ERR_METER_INVALID_VALUE', 'value', `must be a positive integer, got ${value}`);
    }
    digits = value.toString();
  } else if (typeof value === 'string') {
    if (!DIGITS.test(value)) {
      throw new MeterValidationError(
        'ERR_METER_INVALID_VALUE',
        'value',
        `must be a positive integer written in digits, got ${JSON.stringify(value.slice(0, 40))}`,
      );
    }
    digits = value;
  } else {
    throw new MeterValidationError('ERR_METER_INVALID_VALUE', 'value', `must be a number, bigint or string of digits, got ${typeof value}`);
  }
  const significant = digits.replace(/0+$/, '').length;
  if (significant > MAX_SIGNIFICANT_DIGITS) {
    throw new MeterValidationError(
      'ERR_METER_INVALID_VALUE',
      'value',
      `must have at most ${MAX_SIGNIFICANT_DIGITS} significant digits, got ${significant} (${digits})`,
    );
  }
  return digits;
}

/** A timestamp in milliseconds, within Stripe's window around `now`. */
export function normalizeTimestamp(timestamp: unknown, now: number): number {
  if (timestamp === undefined) return now;
  let ms: number;
  if (timestamp instanceof Date) {
    ms = timestamp.getTime();
  } else if (typeof timestamp === 'number') {
    ms = timestamp;
  } else if (typeof timestamp === 'string') {
    ms = parseRfc3339(timestamp);
    if (Number.isNaN(ms)) {
      throw new MeterValidationError('ERR_METER_INVALID_TIMESTAMP', 'timestamp', `must be an RFC 3339 date-time, got ${JSON.stringify(timestamp.slice(0, 40))}`);
    }
  } else {
    throw new MeterValidationError('ERR_METER_INVALID_TIMESTAMP', 'timestamp', `must be a Date, epoch milliseconds or RFC 3339 string, got ${typeof timestamp}`);
  }
  if (!Number.isFinite(ms)) {
    throw new MeterValidationError('ERR_METER_INVALID_TIMESTAMP', 'timestamp', 'must be a valid date');
  }
  if (ms < now - MAX_EVENT_AGE_MS) {
    throw new MeterValidationError('ERR_METER_INVALID_TIMESTAMP', 'timestamp', `must be within the past 35 days, got ${new Date(ms).toISOString()}`);
  }
  if (ms > now + MAX_EVENT_LEAD_MS) {
    throw new MeterValidationError('ERR_METER_INVALID_TIMESTAMP', 'timestamp', `must be at most 5 minutes in the future, got ${new Date(ms).toISOString()}`);
  }
  return ms;
}

/** An event name: a string of 1–100 characters. */
export function checkEventName(eventName: unknown): string {
  if (typeof eventName !== 'string' || eventName.length === 0 || eventName.length > MAX_NAME_LENGTH) {
    throw new MeterValidationError('ERR_METER_INVALID_EVENT_NAME', 'eventName', `must be a string of 1–${MAX_NAME_LENGTH} characters`);
  }
  return eventName;
}

/** A customer id: a non-empty string without surrounding white space. */
export function checkCustomerId(customerId: unknown): string {
  // Char codes instead of trim(): no allocation on the hot path.
  if (typeof customerId !== 'string' || customerId.length === 0 || customerId.charCodeAt(0) <= 32 || customerId.charCodeAt(customerId.length - 1) <= 32) {
    throw new MeterValidationError('ERR_METER_INVALID_CUSTOMER', 'customerId', 'must be a non-empty string without surrounding white space');
  }
  return customerId;
}

/** A caller's identifier: a string of 1–100 characters. */
export function checkIdentifier(identifier: unknown): string {
  if (typeof identifier !== 'string' || identifier.length === 0 || identifier.length > MAX_NAME_LENGTH) {
    throw new MeterValidationError('ERR_METER_INVALID_IDENTIFIER', 'identifier', `must be a string of 1–${MAX_NAME_LENGTH} characters`);
  }
  return identifier;
}

/** Dimensions: string values under keys that do not clash with the customer and value keys. */
export function checkDimensions(
  dimensions: unknown,
  customerKey: string,
  valueKey: string,
): Readonly<Record<string, string>> | undefined {
  if (dimensions === undefined) return undefined;
  if (dimensions === null || typeof dimensions !== 'object' || Array.isArray(dimensions)) {
    throw new MeterValidationError('ERR_METER_INVALID_DIMENSIONS', 'dimensions', 'must be an object of string values');
  }
  for (const [key, val] of Object.entries(dimensions)) {
    if (key === customerKey || key === valueKey) {
      throw new MeterValidationError('ERR_METER_INVALID_DIMENSIONS', `dimensions.${key}`, `must not reuse the meter's ${key === customerKey ? 'customer' : 'value'} payload key`);
    }
    if (typeof val !== 'string') {
      throw new MeterValidationError('ERR_METER_INVALID_DIMENSIONS', `dimensions.${key}`, `must be a string, got ${typeof val}`);
    }
  }
  return dimensions as Readonly<Record<string, string>>;
}
