// meterUsage() options are parsed once, here, into a frozen config; every default is named below.
import { MeterConfigError, MeterReporter, defaultCustomerId } from '@metered/core';
import type { MeterReporterOptions } from '@metered/core';
import type { Request, Response } from 'express';
import type { BillIf, CustomerResolver, EventNameResolver, IdentifierSource, MeterUsageOptions, MeterValue, ValueResolver } from './types';

export const DEFAULT_EVENT_NAME = 'api_requests';
export const DEFAULT_VALUE = 1;
export const DEFAULT_BILL_ABORTED = false;
export const DEFAULT_IDENTIFIER: IdentifierSource = 'generated';
export const DEFAULT_IDEMPOTENCY_KEY_HEADER = 'idempotency-key';
export const DEFAULT_RESOLVE_TIMEOUT_MS = 1000;
/** Stripe's limit on an event name's length. */
export const MAX_EVENT_NAME_LENGTH = 100;

/** Bills responses the client received as a success. */
export function defaultBillIf(_req: Request, res: Response): boolean {
  return res.statusCode >= 200 && res.statusCode < 300;
}

/** The authenticated user's customer, never anything the client sends. */
export function defaultCustomer(req: Request, res: Response): string | undefined {
  return defaultCustomerId(req, res.locals);
}

const IDENTIFIER_SOURCES: readonly IdentifierSource[] = ['generated', 'idempotency-key'];
// RFC 9110 token characters: what a header name may contain.
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const KNOWN_OPTIONS = new Set<string>([
  'reporter', 'eventName', 'customer', 'value', 'billIf', 'billAborted', 'identifier', 'idempotencyKeyHeader', 'resolveTimeoutMs',
]);

export interface ResolvedOptions {
  readonly reporter: MeterReporter;
  readonly ownsReporter: boolean;
  readonly eventName: string | EventNameResolver;
  readonly customer: CustomerResolver;
  readonly value: MeterValue | ValueResolver;
  readonly billIf: BillIf;
  readonly billAborted: boolean;
  /** The lower-cased header to read an idempotency key from, or undefined when identifiers are generated. */
  readonly idempotencyKeyHeader: string | undefined;
  readonly resolveTimeoutMs: number;
}

/** A value as it reads in an error message. */
function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean' || value === undefined || value === null) return String(value);
  return typeof value;
}

/** A MeterReporter, or something shaped like one (another copy of @metered/core). */
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

/** Checks a static event name the way Stripe will, so a typo fails at startup rather than on every request. */
export function checkEventNameOption(option: string, value: unknown): string | EventNameResolver {
  if (typeof value === 'function') return value as EventNameResolver;
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_EVENT_NAME_LENGTH) {
    throw new MeterConfigError(option, `must be a meter event name of 1–${MAX_EVENT_NAME_LENGTH} characters or a function (req, res) => string, got ${show(value)}`);
  }
  return value;
}

function isPositiveInteger(value: unknown): value is MeterValue {
  return (
    (typeof value === 'number' && Number.isSafeInteger(value) && value > 0) ||
    (typeof value === 'bigint' && value > 0n) ||
    (typeof value === 'string' && /^[1-9][0-9]*$/.test(value))
  );
}

/** Checks a static value (a positive integer) or accepts a resolver. */
export function checkValueOption(option: string, value: unknown): MeterValue | ValueResolver {
  if (typeof value === 'function') return value as ValueResolver;
  if (!isPositiveInteger(value)) throw new MeterConfigError(option, `must be a positive integer or a function (req, res) => number, got ${show(value)}`);
  return value;
}

function createReporter(options: MeterReporterOptions): MeterReporter {
  return new MeterReporter(options);
}

/** Checks every option and fills in defaults; throws `MeterConfigError` naming the first bad option. */
export function resolveOptions(options: MeterUsageOptions): ResolvedOptions {
  if (options === null || typeof options !== 'object') {
    throw new MeterConfigError('options', 'must be an object with at least reporter');
  }
  for (const key of Object.keys(options)) {
    if (!KNOWN_OPTIONS.has(key)) {
      throw new MeterConfigError(key, `is not an option of meterUsage (known: ${[...KNOWN_OPTIONS].join(', ')})`);
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

  const billAborted: unknown = options.billAborted ?? DEFAULT_BILL_ABORTED;
  if (typeof billAborted !== 'boolean') throw new MeterConfigError('billAborted', `must be a boolean, got ${show(billAborted)}`);

  const resolveTimeoutMs: unknown = options.resolveTimeoutMs ?? DEFAULT_RESOLVE_TIMEOUT_MS;
  if (typeof resolveTimeoutMs !== 'number' || !Number.isInteger(resolveTimeoutMs) || resolveTimeoutMs < 1) {
    throw new MeterConfigError('resolveTimeoutMs', `must be an integer number of milliseconds of 1 or more, got ${show(resolveTimeoutMs)}`);
  }

  const resolved: Omit<ResolvedOptions, 'reporter' | 'ownsReporter'> = {
    eventName: checkEventNameOption('eventName', options.eventName ?? DEFAULT_EVENT_NAME),
    customer: optionalFunction<CustomerResolver>('customer', options.customer, defaultCustomer),
    value: checkValueOption('value', options.value ?? DEFAULT_VALUE),
    billIf: optionalFunction<BillIf>('billIf', options.billIf, defaultBillIf),
    billAborted,
    idempotencyKeyHeader: identifier === 'idempotency-key' ? header.toLowerCase() : undefined,
    resolveTimeoutMs,
  };

  // The reporter is created last, so a bad option above never leaves a reporter's timer behind.
  if (isReporter(reporterOption)) return Object.freeze({ ...resolved, reporter: reporterOption, ownsReporter: false });
  return Object.freeze({ ...resolved, reporter: createReporter(reporterOption as MeterReporterOptions), ownsReporter: true });
}
