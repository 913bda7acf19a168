// Module options are parsed once, here, into a frozen config; core checks what every adapter shares.
import { DEFAULT_BILL_ABORTED, DEFAULT_EVENT_NAME, DEFAULT_RESOLVE_TIMEOUT_MS, billsByDefault, defaultCustomerId, resolveAdapterOptions } from '@metered/core';
import { checkEventNameOption, checkValueOption, optionalBoolean, optionalFunction, optionalMilliseconds } from '@metered/core';
import type { ResolvedAdapterOptions } from '@metered/core';
import type { ExecutionContext } from '@nestjs/common';
import type { AccountResolver, BillIf, CustomerResolver, MeteringModuleOptions, MeteringOutcome, MeterValue, ValueResolver } from './types';

export const DEFAULT_METER_ALL_ROUTES = false;
export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 10_000;

/** Bills what the client received as a success. */
export function defaultBillIf(_context: ExecutionContext, outcome: MeteringOutcome): boolean {
  return billsByDefault(outcome.statusCode, outcome.error);
}

/** The authenticated user's customer (set by a guard), never anything the client sends. */
export function defaultCustomer(context: ExecutionContext): string | undefined {
  // getArgByIndex, not switchToHttp(), which assigns three new closures to the context on every call.
  const request = context.getArgByIndex<object>(0);
  const locals = context.getArgByIndex<{ locals?: object }>(1).locals;
  return defaultCustomerId(request, typeof locals === 'object' && locals !== null ? locals : undefined);
}

export interface ResolvedMeteringConfig extends ResolvedAdapterOptions {
  readonly eventName: string;
  readonly customer: CustomerResolver;
  /** Undefined: no account resolver, so core never asks and every event bills the platform. */
  readonly account: AccountResolver | undefined;
  readonly billIf: BillIf;
  readonly billAborted: boolean;
  readonly meterAllRoutes: boolean;
  readonly resolveTimeoutMs: number;
  readonly shutdownTimeoutMs: number;
}

const KNOWN_OPTIONS = new Set<string>([
  'reporter', 'eventName', 'customer', 'account', 'billIf', 'billAborted', 'abortGraceMs', 'meterAllRoutes', 'identifier', 'idempotencyKeyHeader',
  'resolveTimeoutMs', 'shutdownTimeoutMs',
  // Parsed by metering-verdict.ts.
  'verifyMeters', 'webhook',
]);

/** Checks an event name the way Stripe will, so a typo fails at startup rather than on every request. */
export function checkEventName(option: string, value: unknown): string {
  return checkEventNameOption(option, value);
}

/** Checks a static value (a positive integer) or accepts a resolver. */
export function checkValue<TResult>(option: string, value: unknown): MeterValue | ValueResolver<TResult> {
  return checkValueOption<ValueResolver<TResult>>(option, value, '(context, result) => number');
}

/** Checks every option and fills in defaults; throws `MeterConfigError` naming the first bad option. */
export function resolveMeteringOptions(options: MeteringModuleOptions): ResolvedMeteringConfig {
  const spec = {
    owner: 'MeteringModule',
    knownOptions: KNOWN_OPTIONS,
    notAnObject: (shown: string) => `MeteringModule needs an options object with at least reporter, got ${shown}`,
  };
  return resolveAdapterOptions(options, spec, (o) => ({
    eventName: checkEventName('eventName', o.eventName ?? DEFAULT_EVENT_NAME),
    customer: optionalFunction<CustomerResolver>('customer', o.customer, defaultCustomer),
    account: optionalFunction<AccountResolver | undefined>('account', o.account, undefined),
    billIf: optionalFunction<BillIf>('billIf', o.billIf, defaultBillIf),
    billAborted: optionalBoolean('billAborted', o.billAborted, DEFAULT_BILL_ABORTED),
    meterAllRoutes: optionalBoolean('meterAllRoutes', o.meterAllRoutes, DEFAULT_METER_ALL_ROUTES),
    resolveTimeoutMs: optionalMilliseconds('resolveTimeoutMs', o.resolveTimeoutMs, DEFAULT_RESOLVE_TIMEOUT_MS),
    shutdownTimeoutMs: optionalMilliseconds('shutdownTimeoutMs', o.shutdownTimeoutMs, DEFAULT_SHUTDOWN_TIMEOUT_MS),
  }));
}
