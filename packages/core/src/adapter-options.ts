// The options every framework adapter shares, checked once and the same way; each adapter adds its own.
import { checkOptionKeys, show } from './config';
import { MeterConfigError } from './errors';
import { MeterReporter } from './meter-reporter';
import type { MeterReporterOptions } from './types';
import { MAX_NAME_LENGTH } from './intake/validate';

/** Where a request's meter event identifier comes from. */
export type IdentifierSource = 'generated' | 'idempotency-key';

/** A usage amount as core accepts it: a positive integer as a number, bigint or string of digits. */
export type MeterValue = number | bigint | string;

export const DEFAULT_EVENT_NAME = 'api_requests';
export const DEFAULT_VALUE = 1;
export const DEFAULT_BILL_ABORTED = false;
export const DEFAULT_IDENTIFIER: IdentifierSource = 'generated';
export const DEFAULT_IDEMPOTENCY_KEY_HEADER = 'idempotency-key';
export const DEFAULT_RESOLVE_TIMEOUT_MS = 1000;
/** No grace: work a handler finishes after its client left before the response started is not billed. */
export const DEFAULT_ABORT_GRACE_MS = 0;
// The grace holds a request's metering, and close(), that long: minutes would only hide a stuck handler.
export const MAX_ABORT_GRACE_MS = 60_000;

/**
 * Every adapter's default `billIf`: what the client received as a success, a 2xx status code, and
 * no error from the handler (where the adapter can see one).
 *
 * @example
 * billsByDefault(res.statusCode); // Express
 * billsByDefault(outcome.statusCode, outcome.error); // Nest
 */
export function billsByDefault(statusCode: number, error?: unknown): boolean {
  return error === undefined && statusCode >= 200 && statusCode < 300;
}

const IDENTIFIER_SOURCES: readonly IdentifierSource[] = ['generated', 'idempotency-key'];
// RFC 9110 token characters: what a header name may contain.
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const POSITIVE_DIGITS = /^[1-9][0-9]*$/;

/** The options every adapter takes, whatever else it adds. */
export interface AdapterOptions {
  reporter: MeterReporter | MeterReporterOptions;
  identifier?: IdentifierSource;
  idempotencyKeyHeader?: string;
  /**
   * How long, after a client left, the handler may still finish to have its work billed; 0 is off.
   * @default 0
   */
  abortGraceMs?: number;
}

/** How an adapter's options are named in messages. */
export interface AdapterOptionsSpec {
  /** Who takes the options, as messages name it (`meterUsage`, `MeteringModule`). */
  readonly owner: string;
  /** Every option the adapter takes, in the order messages list them. */
  readonly knownOptions: ReadonlySet<string>;
  /** The message when the options are not an object, given that value as it reads in a message. */
  notAnObject(shown: string): string;
}

/** What every adapter's resolved config holds besides its own options. */
export interface ResolvedAdapterOptions {
  readonly reporter: MeterReporter;
  /** Whether the adapter created the reporter (and closes it). */
  readonly ownsReporter: boolean;
  /** The lower-cased header to read an idempotency key from, or undefined when identifiers are generated. */
  readonly idempotencyKeyHeader: string | undefined;
  /** How long, after a client left, the handler may still finish its work and have it billed (0: off). */
  readonly abortGraceMs: number;
}

/** A MeterReporter, or something shaped like one (another copy of @metered/core, a test double). */
function isReporter(value: object): value is MeterReporter {
  if (value instanceof MeterReporter) return true;
  const candidate = value as Partial<Record<'report' | 'handleError' | 'flush' | 'close', unknown>>;
  return typeof candidate.report === 'function' && typeof candidate.handleError === 'function' && typeof candidate.flush === 'function' && typeof candidate.close === 'function';
}

function idempotencyKeyHeaderOf(options: AdapterOptions): string | undefined {
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
  return identifier === 'idempotency-key' ? header.toLowerCase() : undefined;
}

/**
 * Checks an adapter's options and fills in defaults: the shared ones here, the adapter's own in
 * `resolveOwn`; throws `MeterConfigError` naming the first bad option. A reporter is created from
 * reporter options last, so a bad option never leaves a reporter's timer behind.
 *
 * @example
 * const config = resolveAdapterOptions(options, { owner: 'meterUsage', knownOptions, notAnObject: () => 'must be an object' }, (o) => ({
 *   billIf: optionalFunction('billIf', o.billIf, defaultBillIf),
 * }));
 */
export function resolveAdapterOptions<TOptions extends AdapterOptions, TOwn extends object>(
  options: TOptions,
  spec: AdapterOptionsSpec,
  resolveOwn: (options: TOptions) => TOwn,
): Readonly<TOwn & ResolvedAdapterOptions> {
  checkOptionKeys(options, spec.owner, spec.knownOptions, (shown) => spec.notAnObject(shown));
  const reporterOption: unknown = options.reporter;
  if (reporterOption === null || typeof reporterOption !== 'object') {
    throw new MeterConfigError('reporter', `is required: a MeterReporter, or MeterReporter options such as { apiKey }, got ${show(reporterOption)}`);
  }
  const idempotencyKeyHeader = idempotencyKeyHeaderOf(options);
  const abortGraceMs = abortGraceOption(options.abortGraceMs);
  const own = resolveOwn(options);

  const ownsReporter = !isReporter(reporterOption);
  const reporter = ownsReporter ? new MeterReporter(reporterOption as MeterReporterOptions) : reporterOption;
  return Object.freeze({ ...own, idempotencyKeyHeader, abortGraceMs, reporter, ownsReporter });
}

/** `value` if it is a function, `fallback` if it is undefined; throws `MeterConfigError` otherwise. */
export function optionalFunction<T>(option: string, value: unknown, fallback: T): T {
  if (value === undefined) return fallback;
  if (typeof value !== 'function') throw new MeterConfigError(option, `must be a function, got ${show(value)}`);
  return value as T;
}

/** `value` if it is a boolean, `fallback` if it is undefined; throws `MeterConfigError` otherwise. */
export function optionalBoolean(option: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw new MeterConfigError(option, `must be a boolean, got ${show(value)}`);
  return value;
}

/** `value` if it is a whole number of milliseconds of 1 or more, `fallback` if it is undefined; throws `MeterConfigError` otherwise. */
export function optionalMilliseconds(option: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new MeterConfigError(option, `must be an integer number of milliseconds of 1 or more, got ${show(value)}`);
  }
  return value;
}

/** `abortGraceMs`: 0 (off) to `MAX_ABORT_GRACE_MS`, `DEFAULT_ABORT_GRACE_MS` if undefined; throws `MeterConfigError` otherwise. */
function abortGraceOption(value: unknown): number {
  if (value === undefined) return DEFAULT_ABORT_GRACE_MS;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_ABORT_GRACE_MS) {
    throw new MeterConfigError('abortGraceMs', `must be an integer number of milliseconds from 0 (off) to ${MAX_ABORT_GRACE_MS}, got ${show(value)}`);
  }
  return value;
}

/**
 * Checks a static event name the way Stripe will, so a typo fails at startup rather than on every
 * request. With `resolverShape` (how the adapter's resolver reads, `(req, res) => string`), a
 * function is accepted too.
 */
export function checkEventNameOption<TResolver = never>(option: string, value: unknown, resolverShape?: string): string | TResolver {
  if (resolverShape !== undefined && typeof value === 'function') return value as TResolver;
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_NAME_LENGTH) {
    const accepted = resolverShape === undefined ? '' : ` or a function ${resolverShape}`;
    throw new MeterConfigError(option, `must be a meter event name of 1–${MAX_NAME_LENGTH} characters${accepted}, got ${show(value)}`);
  }
  return value;
}

/** Checks a static value (a positive integer) or accepts a resolver, whose shape the message names (`(req, res) => number`). */
export function checkValueOption<TResolver>(option: string, value: unknown, resolverShape: string): MeterValue | TResolver {
  if (typeof value === 'function') return value as TResolver;
  const ok =
    (typeof value === 'number' && Number.isSafeInteger(value) && value > 0) ||
    (typeof value === 'bigint' && value > 0n) ||
    (typeof value === 'string' && POSITIVE_DIGITS.test(value));
  if (!ok) throw new MeterConfigError(option, `must be a positive integer or a function ${resolverShape}, got ${show(value)}`);
  return value;
}
