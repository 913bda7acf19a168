// Module options are parsed once, here, into a frozen config; every default is named below.
import { MeterConfigError, MeterReporter, defaultCustomerId } from '@metered/core';
import type { MeterReporterOptions } from '@metered/core';
import type { ExecutionContext } from '@nestjs/common';
import type { BillIf, CustomerResolver, IdentifierSource, MeteringModuleOptions, MeteringOutcome, MeterValue, ValueResolver } from './types';

export const DEFAULT_EVENT_NAME = 'api_requests';
export const DEFAULT_VALUE = 1;
export const DEFAULT_BILL_ABORTED = false;
export const DEFAULT_METER_ALL_ROUTES = false;
export const DEFAULT_IDENTIFIER: IdentifierSource = 'generated';
export const DEFAULT_IDEMPOTENCY_KEY_HEADER = 'idempotency-key';
export const DEFAULT_RESOLVE_TIMEOUT_MS = 1000;
export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 10_000;
/** Stripe's limit on an event name's length. */
export const MAX_EVENT_NAME_LENGTH = 100;

/** Bills what the client received as a success. */
export function defaultBillIf(_context: ExecutionContext, outcome: MeteringOutcome): boolean {
  return outcome.error === undefined && outcome.statusCode >= 200 && outcome.statusCode < 300;
}

/** The authenticated user's customer (set by a guard), never anything the client sends. */
export function defaultCustomer(context: ExecutionContext): string | undefined {
  const http = context.switchToHttp();
  const request = http.getRequest<object>();
  const locals = (http.getResponse<{ locals?: object }>()).locals;
  return defaultCustomerId(request, typeof locals === 'object' && locals !== null ? locals : undefined);
}

export interface ResolvedMeteringConfig {
  readonly reporter: MeterReporter;
  /** Whether the module created the reporter (and closes it on shutdown). */
  readonly ownsReporter: boolean;
  readonly eventName: string;
  readonly customer: CustomerResolver;
  readonly billIf: BillIf;
  readonly billAborted: boolean;
  readonly meterAllRoutes: boolean;
  /** The lower-cased header to read an idempotency key from, or undefined when identifiers are generated. */
  readonly idempotencyKeyHeader: string | undefined;
  readonly resolveTimeoutMs: number;
  readonly shutdownTimeoutMs: number;
}

const IDENTIFIER_SOURCES: readonly IdentifierSource[] = ['generated', 'idempotency-key'];
// RFC 9110 token characters: what a header name may contain.
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const KNOWN_OPTIONS = new Set<string>([
  'reporter', 'eventName', 'customer', 'billIf', 'billAborted', 'meterAllRoutes', 'identifier', 'idempotencyKeyHeader',
  'resolveTimeoutMs', 'shutdownTimeoutMs',
]);

/** A value as it reads in an error message. */
function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean' || value === undefined || value === null) return String(value);
  return typeof value;
}

/** A MeterReporter, or something shaped like one (another copy of @metered/core, a test double). */
function isReporter(value: object): value is MeterReporter {
  if (value instanceof MeterReporter) return true;
  const candidate = value as Partial<Record<'report' | 'handleError' | 'flush' | 'close', unknown>>;
  return typeof candidate.report === 'function' && typeof candidate.handleError === 'function' && typeof candidate.flush === 'function' && typeof candidate.close === 'function';
}

function optionalFunction<T>(option: string, value: unknown, fallback: T): T {
  if (value === undefined) return fallback;
  if (typeof value !== 'function') throw new MeterConfigError(option, `must be a function, got ${show(value)}`);
  return value as T;
}

function optionalBoolean(option: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw new MeterConfigError(option, `must be a boolean, got ${show(value)}`);
  return value;
}

function optionalMs(option: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new MeterConfigError(option, `must be an integer number of milliseconds of 1 or more, got ${show(value)}`);
  }
  return value;
}

/** Checks an event name the way Stripe will, so a typo fails at startup rather than on every request. */
export function checkEventName(option: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_EVENT_NAME_LENGTH) {
    throw new MeterConfigError(option, `must be a meter event name of 1–${MAX_EVENT_NAME_LENGTH} characters, got ${show(value)}`);
  }
  return value;
}

/** Checks a static value (a positive integer) or accepts a resolver. */
export function checkValue<TResult>(option: string, value: unknown): MeterValue | ValueResolver<TResult> {
  if (typeof value === 'function') return value as ValueResolver<TResult>;
  const ok =
    (typeof value === 'number' && Number.isSafeInteger(value) && value > 0) ||
    (typeof value === 'bigint' && value > 0n) ||
    (typeof value === 'string' && /^[1-9][0-9]*$/.test(value));
  if (!ok) throw new MeterConfigError(option, `must be a positive integer or a function (context, result) => number, got ${show(value)}`);
  return value;
}

/** Checks every option and fills in defaults; throws `MeterConfigError` naming the first bad option. */
export function resolveMeteringOptions(options: MeteringModuleOptions): ResolvedMeteringConfig {
  if (options === null || typeof options !== 'object') {
    throw new MeterConfigError('options', `MeteringModule needs an options object with at least reporter, got ${show(options)}`);
  }
  for (const key of Object.keys(options)) {
    if (!KNOWN_OPTIONS.has(key)) {
      throw new MeterConfigError(key, `is not an option of MeteringModule (known: ${[...KNOWN_OPTIONS].join(', ')})`);
    }
  }

  const reporterOption: unknown = options.reporter;
  if (reporterOption === null || typeof reporterOption !== 'object') {
    throw new MeterConfigError('reporter', `is required: a MeterReporter, or MeterReporter options such as { apiKey }, got ${show(reporterOption)}`);
  }

  const identifier = options.identifier ?? DEFAULT_IDENTIFIER;
  if (!IDENTIFIER_SOURCES.includes(identifier)) {
    throw new MeterConfigError('identifier', `must be one of ${IDENTIFIER_SOURCES.map((s) => `'${s}'`).join(', ')}, got ${show(identifier)}`);
  }
  const header: unknown = options.idempotencyKeyHeader ?? DEFAULT_IDEMPOTENCY_KEY_HEADER;
  if (typeof header !== 'string' || !HEADER_NAME.test(header)) {
    throw new MeterConfigError('idempotencyKeyHeader', `must be an HTTP header name, got ${show(header)}`);
  }
  if (options.idempotencyKeyHeader !== undefined && identifier !== 'idempotency-key') {
    // A header that is never read is a misconfiguration, not a harmless extra.
    throw new MeterConfigError('idempotencyKeyHeader', "is only read with identifier: 'idempotency-key'");
  }

  const resolved: Omit<ResolvedMeteringConfig, 'reporter' | 'ownsReporter'> = {
    eventName: checkEventName('eventName', options.eventName ?? DEFAULT_EVENT_NAME),
    customer: optionalFunction<CustomerResolver>('customer', options.customer, defaultCustomer),
    billIf: optionalFunction<BillIf>('billIf', options.billIf, defaultBillIf),
    billAborted: optionalBoolean('billAborted', options.billAborted, DEFAULT_BILL_ABORTED),
    meterAllRoutes: optionalBoolean('meterAllRoutes', options.meterAllRoutes, DEFAULT_METER_ALL_ROUTES),
    idempotencyKeyHeader: identifier === 'idempotency-key' ? header.toLowerCase() : undefined,
    resolveTimeoutMs: optionalMs('resolveTimeoutMs', options.resolveTimeoutMs, DEFAULT_RESOLVE_TIMEOUT_MS),
    shutdownTimeoutMs: optionalMs('shutdownTimeoutMs', options.shutdownTimeoutMs, DEFAULT_SHUTDOWN_TIMEOUT_MS),
  };

  // The reporter is created last, so a bad option above never leaves a reporter's timer behind.
  const owns = !isReporter(reporterOption);
  const reporter = owns ? new MeterReporter(reporterOption as MeterReporterOptions) : reporterOption;
  return Object.freeze({ ...resolved, reporter, ownsReporter: owns });
}
