// Defaults and Stripe's limits as named constants, and the one place options are checked and frozen.
import { randomBytes } from 'node:crypto';

import { FakeStripeConfigError } from './errors';
import type { FakeEndpoint, FakeStripeOptions, MeterDefinition, MeterFormula, MeterStatus } from './types';

/** Event name of the meter a fake registers when `meters` is not given. */
export const DEFAULT_METER_EVENT_NAME = 'api_requests';
/** Payload key Stripe reads the customer from unless the meter overrides it. */
export const DEFAULT_CUSTOMER_PAYLOAD_KEY = 'stripe_customer_id';
/** Payload key Stripe reads the value from unless the meter overrides it. */
export const DEFAULT_VALUE_PAYLOAD_KEY = 'value';
/** Lifetime of a meter event session token at Stripe. */
export const SESSION_TTL_MS = 15 * 60 * 1000;
/** Events Stripe accepts in one `POST /v2/billing/meter_event_stream`. */
export const STREAM_MAX_EVENTS = 100;
/** Longest identifier Stripe accepts. */
export const IDENTIFIER_MAX_LENGTH = 100;
/** Most significant digits a value may have. */
export const VALUE_MAX_SIGNIFICANT_DIGITS = 15;
/** How far back an event timestamp may lie. */
export const TIMESTAMP_MAX_AGE_MS = 35 * 24 * 60 * 60 * 1000;
/** How far ahead an event timestamp may lie. */
export const TIMESTAMP_MAX_FUTURE_MS = 5 * 60 * 1000;
/** Window in which identifiers are unique and events can be cancelled. */
export const DEDUP_WINDOW_MS = 24 * 60 * 60 * 1000;

export const DEFAULT_HOST = '127.0.0.1';
export const DEFAULT_PORT = 0;
export const DEFAULT_SEED = 1;
export const DEFAULT_LATENCY_MS = 0;
export const DEFAULT_MAX_LOGGED_REQUESTS = 10_000;
/** Largest request body read; Stripe's limit is larger, but no valid meter request comes close. */
export const MAX_BODY_BYTES = 1024 * 1024;

export const ENDPOINTS: readonly FakeEndpoint[] = Object.freeze([
  'meter_events',
  'meter_event_session',
  'meter_event_stream',
  'meter_event_adjustments',
  'meters',
  'events',
]);

const FORMULAS: readonly MeterFormula[] = ['sum', 'count', 'last'];
const STATUSES: readonly MeterStatus[] = ['active', 'inactive'];
const KNOWN_OPTIONS = new Set([
  'host',
  'port',
  'meterEventsPort',
  'apiKey',
  'sessionTtlMs',
  'meters',
  'rateLimit',
  'seed',
  'now',
  'latencyMs',
  'maxLoggedRequests',
  'logBodies',
  'livemode',
  'customers',
  'webhook',
]);
/** How long rejections gather into one meter error report before it is sent. */
export const DEFAULT_WEBHOOK_BATCH_WINDOW_MS = 1000;

export interface ResolvedRateLimit {
  readonly requestsPerSecond: number;
  readonly burst: number;
  readonly endpoints: ReadonlySet<FakeEndpoint>;
  readonly retryAfter: boolean;
}

export interface ResolvedMeterDefinition {
  readonly event_name: string;
  readonly customerKey: string;
  readonly valueKey: string;
  readonly formula: MeterFormula;
  readonly status: MeterStatus;
  readonly id: string | undefined;
  readonly displayName: string;
}

export interface ResolvedConfig {
  readonly host: string;
  readonly port: number;
  readonly meterEventsPort: number;
  readonly apiKey: string;
  readonly sessionTtlMs: number;
  readonly meters: readonly ResolvedMeterDefinition[];
  readonly rateLimit: ResolvedRateLimit | null;
  readonly seed: number;
  readonly now: () => number;
  readonly latencyMs: number;
  readonly maxLoggedRequests: number;
  readonly logBodies: boolean;
  readonly livemode: boolean;
  /** Existing customers, or null when every id exists. */
  readonly customers: ReadonlySet<string> | null;
  readonly webhook: { readonly url: string | null; readonly secrets: readonly string[]; readonly batchWindowMs: number };
}

function fail(option: string, accepted: string, got: unknown): never {
  const shown = typeof got === 'string' ? JSON.stringify(got) : typeof got === 'function' ? 'a function' : String(got);
  throw new FakeStripeConfigError(`startFakeStripe: option "${option}" must be ${accepted}; got ${shown}.`);
}

function integerIn(option: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    fail(option, `an integer from ${min} to ${max}`, value);
  }
  return value;
}

function positiveNumber(option: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) fail(option, 'a positive finite number', value);
  return value;
}

function nonEmptyString(option: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0) fail(option, 'a non-empty string', value);
  return value;
}

/** Validates a meter definition; used at start and by `meters.add`. */
export function resolveMeterDefinition(definition: unknown, option = 'meters[]'): ResolvedMeterDefinition {
  if (typeof definition === 'string') definition = { event_name: definition };
  if (typeof definition !== 'object' || definition === null) fail(option, 'an event name or a meter definition', definition);
  const def = definition as Partial<Record<keyof MeterDefinition, unknown>>;
  const eventName = nonEmptyString(`${option}.event_name`, def.event_name);
  const formula = def.formula ?? 'sum';
  if (!FORMULAS.includes(formula as MeterFormula)) fail(`${option}.formula`, `one of ${FORMULAS.join(', ')}`, formula);
  const status = def.status ?? 'active';
  if (!STATUSES.includes(status as MeterStatus)) fail(`${option}.status`, `one of ${STATUSES.join(', ')}`, status);
  return Object.freeze({
    event_name: eventName,
    customerKey: def.customerKey === undefined ? DEFAULT_CUSTOMER_PAYLOAD_KEY : nonEmptyString(`${option}.customerKey`, def.customerKey),
    valueKey: def.valueKey === undefined ? DEFAULT_VALUE_PAYLOAD_KEY : nonEmptyString(`${option}.valueKey`, def.valueKey),
    formula: formula as MeterFormula,
    status: status as MeterStatus,
    id: def.id === undefined ? undefined : nonEmptyString(`${option}.id`, def.id),
    displayName: def.displayName === undefined ? eventName : nonEmptyString(`${option}.displayName`, def.displayName),
  });
}

function resolveRateLimit(value: unknown): ResolvedRateLimit | null {
  if (value === undefined || value === false) return null;
  if (typeof value !== 'object' || value === null) fail('rateLimit', 'false or { requestsPerSecond, burst?, endpoints? }', value);
  const raw = value as Record<string, unknown>;
  const requestsPerSecond = positiveNumber('rateLimit.requestsPerSecond', raw.requestsPerSecond);
  const burst = raw.burst === undefined ? requestsPerSecond : positiveNumber('rateLimit.burst', raw.burst);
  if (burst < 1) fail('rateLimit.burst', 'at least 1', burst);
  let endpoints: ReadonlySet<FakeEndpoint> = new Set(ENDPOINTS);
  if (raw.endpoints !== undefined) {
    if (!Array.isArray(raw.endpoints) || raw.endpoints.some((e) => !ENDPOINTS.includes(e as FakeEndpoint))) {
      fail('rateLimit.endpoints', `an array of ${ENDPOINTS.join(', ')}`, raw.endpoints);
    }
    endpoints = new Set(raw.endpoints as FakeEndpoint[]);
  }
  const retryAfter = raw.retryAfter ?? true;
  if (typeof retryAfter !== 'boolean') fail('rateLimit.retryAfter', 'a boolean', retryAfter);
  return Object.freeze({ requestsPerSecond, burst, endpoints, retryAfter });
}

function resolveWebhook(value: unknown): ResolvedConfig['webhook'] {
  if (value === undefined) value = {};
  if (typeof value !== 'object' || value === null) fail('webhook', '{ url?, secrets?, batchWindowMs? }', value);
  const raw = value as Record<string, unknown>;
  for (const key of Object.keys(raw)) if (!['url', 'secrets', 'batchWindowMs'].includes(key)) fail(`webhook.${key}`, 'absent (known: url, secrets, batchWindowMs)', '(set)');
  const url = raw.url ?? null;
  if (url !== null && (typeof url !== 'string' || !/^https?:\/\//.test(url))) fail('webhook.url', 'an http(s) URL or null', url);
  const secrets = raw.secrets ?? [`whsec_${randomBytes(24).toString('base64url')}`];
  if (!Array.isArray(secrets) || secrets.length === 0 || secrets.some((s) => typeof s !== 'string' || s.length === 0)) {
    fail('webhook.secrets', 'a non-empty array of non-empty strings', '(not one)');
  }
  const batchWindowMs = integerIn('webhook.batchWindowMs', raw.batchWindowMs ?? DEFAULT_WEBHOOK_BATCH_WINDOW_MS, 0, 2 ** 31 - 1);
  return Object.freeze({ url, secrets: Object.freeze([...(secrets as string[])]), batchWindowMs });
}

function resolveCustomers(value: unknown): ReadonlySet<string> | null {
  if (value === undefined) return null;
  if (!Array.isArray(value) || value.some((c) => typeof c !== 'string' || c.length === 0)) fail('customers', 'an array of customer ids', value);
  return new Set(value as string[]);
}

/** A fresh secret key in Stripe's format; random so that tests can assert it never leaks. */
export function generateApiKey(): string {
  return `sk_test_${randomBytes(24).toString('base64url')}`;
}

/** Checks every option once and returns the frozen configuration; throws `FakeStripeConfigError` on the first bad one. */
export function resolveConfig(options: FakeStripeOptions = {}): ResolvedConfig {
  if (typeof options !== 'object' || options === null) fail('options', 'an object', options);
  for (const key of Object.keys(options)) {
    if (!KNOWN_OPTIONS.has(key)) fail(key, `absent (unknown option; known: ${[...KNOWN_OPTIONS].join(', ')})`, '(set)');
  }
  const apiKey = options.apiKey ?? generateApiKey();
  if (typeof apiKey !== 'string' || !/^(sk|rk)_(test|live)_[A-Za-z0-9_-]+$/.test(apiKey)) {
    fail('apiKey', 'a Stripe secret key such as "sk_test_…" or "rk_test_…"', '(a string that is not one)');
  }
  const now = options.now ?? Date.now;
  if (typeof now !== 'function') fail('now', 'a function returning epoch milliseconds', now);
  const meters = (options.meters ?? [DEFAULT_METER_EVENT_NAME]).map((m, i) => resolveMeterDefinition(m, `meters[${i}]`));
  const seen = new Set<string>();
  for (const [i, m] of meters.entries()) {
    for (const key of [`event:${m.event_name}`, ...(m.id === undefined ? [] : [`id:${m.id}`])]) {
      if (seen.has(key)) fail(`meters[${i}]`, 'unique by event_name and id', key.slice(key.indexOf(':') + 1));
      seen.add(key);
    }
  }
  const logBodies = options.logBodies ?? true;
  if (typeof logBodies !== 'boolean') fail('logBodies', 'a boolean', logBodies);
  const livemode = options.livemode ?? false;
  if (typeof livemode !== 'boolean') fail('livemode', 'a boolean', livemode);
  return Object.freeze({
    host: options.host === undefined ? DEFAULT_HOST : nonEmptyString('host', options.host),
    port: integerIn('port', options.port ?? DEFAULT_PORT, 0, 65535),
    meterEventsPort: integerIn('meterEventsPort', options.meterEventsPort ?? DEFAULT_PORT, 0, 65535),
    apiKey,
    sessionTtlMs: integerIn('sessionTtlMs', options.sessionTtlMs ?? SESSION_TTL_MS, 1, 2 ** 31 - 1),
    meters: Object.freeze(meters),
    rateLimit: resolveRateLimit(options.rateLimit),
    seed: integerIn('seed', options.seed ?? DEFAULT_SEED, -(2 ** 31), 2 ** 32 - 1),
    now,
    latencyMs: integerIn('latencyMs', options.latencyMs ?? DEFAULT_LATENCY_MS, 0, 2 ** 31 - 1),
    maxLoggedRequests: integerIn('maxLoggedRequests', options.maxLoggedRequests ?? DEFAULT_MAX_LOGGED_REQUESTS, 0, 10_000_000),
    logBodies,
    livemode,
    customers: resolveCustomers(options.customers),
    webhook: resolveWebhook(options.webhook),
  });
}
