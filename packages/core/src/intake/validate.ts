// Stripe's meter-event rules, checked synchronously in report() so bad input fails at the call site.
import { MeterValidationError } from '../errors';

/** Stripe accepts timestamps within the past 35 days… */
export const MAX_EVENT_AGE_MS = 35 * 24 * 60 * 60 * 1000;
/** …and at most 5 minutes ahead. */
export const MAX_EVENT_LEAD_MS = 5 * 60 * 1000;
/**
 * An event this close to Stripe's 35-day limit is refused by report() and, when it ages past it while
 * waiting, dropped as expired rather than sent to be refused: a minute of slack for clock skew and transit.
 */
export const EXPIRY_MARGIN_MS = 60_000;
/** Event names and identifiers are 1–100 characters. */
export const MAX_NAME_LENGTH = 100;
/** Stripe customer ids are short (`cus_` and ~14 characters); this bounds what a resolver bug can put in an event. */
export const MAX_CUSTOMER_ID_LENGTH = 255;
/** Dimension keys per event. */
export const MAX_DIMENSIONS = 50;
/** A dimension key's length, as a payload key of Stripe's. */
export const MAX_DIMENSION_KEY_LENGTH = 100;
/** A dimension value's length. */
export const MAX_DIMENSION_VALUE_LENGTH = 1000;
/**
 * The most bytes one event's dimensions may take, JSON-encoded. With everything else an event carries
 * (under 1 KB), 100 events stay under 1 MiB, the body size the fake (and any sane proxy) accepts: one
 * large event can never make a batch of 100 too large to send.
 */
export const MAX_DIMENSIONS_BYTES = 9000;
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
  // Refused up to EXPIRY_MARGIN_MS early: an event accepted here must not be dropped as expired a moment later.
  if (ms < now - MAX_EVENT_AGE_MS + EXPIRY_MARGIN_MS) {
    throw new MeterValidationError(
      'ERR_METER_INVALID_TIMESTAMP',
      'timestamp',
      `must be within the past 35 days (less ${EXPIRY_MARGIN_MS / 1000} s of margin), got ${new Date(ms).toISOString()}`,
    );
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

// Past ASCII: every character String.prototype.trim() removes (WhiteSpace and LineTerminator), and DEL and the C1 controls.
const SPACE_OR_CONTROL = /[\s\u007f-\u009f]/;

/** Whether a character code may open or close a customer id: printable ASCII but the space, or anything past it that is not white space or a control. */
function isEdgeOk(code: number): boolean {
  if (code > 32 && code < 127) return true;
  return code >= 127 && !SPACE_OR_CONTROL.test(String.fromCharCode(code));
}

// The last customer id that passed: a server's events mostly come from a few customers in a row, and
// each check otherwise reads every character. Starts as an id that passes the checks (never '').
let lastValidCustomerId = 'cus_';

/** A customer id: 1–255 characters, no white space (Unicode's included) at either end, no control characters. */
export function checkCustomerId(customerId: unknown): string {
  if (customerId === lastValidCustomerId) return lastValidCustomerId;
  // Char codes at the ends instead of trim(): no allocation on the hot path, where ids are plain ASCII.
  if (
    typeof customerId !== 'string' ||
    customerId.length === 0 ||
    customerId.length > MAX_CUSTOMER_ID_LENGTH ||
    !isEdgeOk(customerId.charCodeAt(0)) ||
    !isEdgeOk(customerId.charCodeAt(customerId.length - 1))
  ) {
    throw new MeterValidationError(
      'ERR_METER_INVALID_CUSTOMER',
      'customerId',
      `must be a string of 1–${MAX_CUSTOMER_ID_LENGTH} characters without white space at either end (a Stripe customer id such as cus_…)`,
    );
  }
  for (let i = 1; i < customerId.length - 1; i += 1) {
    const code = customerId.charCodeAt(i);
    if (code < 32 || (code >= 127 && code <= 159)) {
      throw new MeterValidationError('ERR_METER_INVALID_CUSTOMER', 'customerId', `must not contain control characters (found U+${code.toString(16).padStart(4, '0')})`);
    }
  }
  lastValidCustomerId = customerId;
  return customerId;
}

/** A caller's identifier: a string of 1–100 characters. */
export function checkIdentifier(identifier: unknown): string {
  if (typeof identifier !== 'string' || identifier.length === 0 || identifier.length > MAX_NAME_LENGTH) {
    throw new MeterValidationError('ERR_METER_INVALID_IDENTIFIER', 'identifier', `must be a string of 1–${MAX_NAME_LENGTH} characters`);
  }
  return identifier;
}

function dimensionsError(field: string, rule: string): MeterValidationError {
  return new MeterValidationError('ERR_METER_INVALID_DIMENSIONS', field, rule);
}

/**
 * Dimensions: string values under keys that do not clash with the customer and value keys, bounded in
 * count and size. Returns a frozen copy: the caller's object may change after report() returns, and
 * what is sent must be what was validated.
 */
export function checkDimensions(
  dimensions: unknown,
  customerKey: string,
  valueKey: string,
): Readonly<Record<string, string>> | undefined {
  if (dimensions === undefined) return undefined;
  if (dimensions === null || typeof dimensions !== 'object' || Array.isArray(dimensions)) {
    throw dimensionsError('dimensions', 'must be an object of string values');
  }
  const entries = Object.entries(dimensions);
  if (entries.length > MAX_DIMENSIONS) throw dimensionsError('dimensions', `must have at most ${MAX_DIMENSIONS} keys, got ${entries.length}`);
  // A prototype-less copy: a key such as "__proto__" stays a plain key.
  const copy = Object.create(null) as Record<string, string>;
  let bytes = 2;
  for (const [key, val] of entries) {
    const field = `dimensions.${key.slice(0, MAX_DIMENSION_KEY_LENGTH)}`;
    if (key.length === 0 || key.length > MAX_DIMENSION_KEY_LENGTH) {
      throw dimensionsError(field, `keys must be 1–${MAX_DIMENSION_KEY_LENGTH} characters, got ${key.length}`);
    }
    if (key === customerKey || key === valueKey) {
      throw dimensionsError(field, `must not reuse the meter's ${key === customerKey ? 'customer' : 'value'} payload key`);
    }
    if (typeof val !== 'string') throw dimensionsError(field, `must be a string, got ${typeof val}`);
    if (val.length > MAX_DIMENSION_VALUE_LENGTH) {
      throw dimensionsError(field, `must be at most ${MAX_DIMENSION_VALUE_LENGTH} characters, got ${val.length}`);
    }
    copy[key] = val;
    // Key and value as JSON writes them, with the quotes, colon and comma around them.
    bytes += Buffer.byteLength(JSON.stringify(key)) + Buffer.byteLength(JSON.stringify(val)) + 2;
  }
  if (bytes > MAX_DIMENSIONS_BYTES) {
    throw dimensionsError('dimensions', `must take at most ${MAX_DIMENSIONS_BYTES} bytes as JSON (one event must never make its batch too large to send), got ${bytes}`);
  }
  return Object.freeze(copy);
}

// Stripe account ids are `acct_` and letters and digits; a context path (`acct_1/acct_2`) is not taken:
// meter events name the one account they bill.
const ACCOUNT_ID = /^acct_[A-Za-z0-9]{1,250}$/;

/** A connected account: `acct_` and 1–250 letters or digits, or undefined for the platform. */
export function checkAccount(account: unknown): string | undefined {
  if (account === undefined) return undefined;
  if (typeof account !== 'string' || !ACCOUNT_ID.test(account)) {
    throw new MeterValidationError('ERR_METER_INVALID_ACCOUNT', 'account', `must be a Stripe connected account id (acct_ and letters or digits), got ${typeof account === 'string' ? JSON.stringify(account.slice(0, 40)) : typeof account}`);
  }
  return account;
}
