// meterUsage() options are parsed once, here, into a frozen config; core checks what every adapter shares.
import { DEFAULT_BILL_ABORTED, DEFAULT_EVENT_NAME, DEFAULT_RESOLVE_TIMEOUT_MS, DEFAULT_VALUE, billsByDefault, checkVerifyMetersMode, defaultCustomerId, resolveAdapterOptions } from '@metered/core';
import type { VerifyMetersMode } from '@metered/core';
import { checkEventNameOption as checkEventName, checkValueOption as checkValue, optionalBoolean, optionalFunction, optionalMilliseconds } from '@metered/core';
import type { ResolvedAdapterOptions } from '@metered/core';
import type { Request, Response } from 'express';
import type { AccountResolver, BillIf, CustomerResolver, EventNameResolver, MeterUsageOptions, MeterValue, ValueResolver } from './types';

/** Bills responses the client received as a success. */
export function defaultBillIf(_req: Request, res: Response): boolean {
  return billsByDefault(res.statusCode);
}

/** The authenticated user's customer, never anything the client sends. */
export function defaultCustomer(req: Request, res: Response): string | undefined {
  return defaultCustomerId(req, res.locals);
}

const KNOWN_OPTIONS = new Set<string>([
  'reporter', 'eventName', 'customer', 'account', 'value', 'billIf', 'billAborted', 'abortGraceMs', 'identifier', 'idempotencyKeyHeader', 'resolveTimeoutMs', 'verifyMeters',
]);

export interface ResolvedOptions extends ResolvedAdapterOptions {
  readonly eventName: string | EventNameResolver;
  readonly customer: CustomerResolver;
  /** Undefined: no account resolver, so core never asks and every event bills the platform. */
  readonly account: AccountResolver | undefined;
  readonly value: MeterValue | ValueResolver;
  readonly billIf: BillIf;
  readonly billAborted: boolean;
  readonly resolveTimeoutMs: number;
  readonly verifyMeters: VerifyMetersMode;
}

/** Checks a static event name the way Stripe will, or accepts a resolver. */
export function checkEventNameOption(option: string, value: unknown): string | EventNameResolver {
  return checkEventName<EventNameResolver>(option, value, '(req, res) => string');
}

/** Checks a static value (a positive integer) or accepts a resolver. */
export function checkValueOption(option: string, value: unknown): MeterValue | ValueResolver {
  return checkValue<ValueResolver>(option, value, '(req, res) => number');
}

/** Checks every option and fills in defaults; throws `MeterConfigError` naming the first bad option. */
export function resolveOptions(options: MeterUsageOptions): ResolvedOptions {
  const spec = { owner: 'meterUsage', knownOptions: KNOWN_OPTIONS, notAnObject: () => 'must be an object with at least reporter' };
  return resolveAdapterOptions(options, spec, (o) => ({
    // `?? undefined`: meterUsage has always read null as "not set" for these two.
    billAborted: optionalBoolean('billAborted', o.billAborted ?? undefined, DEFAULT_BILL_ABORTED),
    resolveTimeoutMs: optionalMilliseconds('resolveTimeoutMs', o.resolveTimeoutMs ?? undefined, DEFAULT_RESOLVE_TIMEOUT_MS),
    eventName: checkEventNameOption('eventName', o.eventName ?? DEFAULT_EVENT_NAME),
    customer: optionalFunction<CustomerResolver>('customer', o.customer, defaultCustomer),
    account: optionalFunction<AccountResolver | undefined>('account', o.account, undefined),
    value: checkValueOption('value', o.value ?? DEFAULT_VALUE),
    billIf: optionalFunction<BillIf>('billIf', o.billIf, defaultBillIf),
    verifyMeters: checkVerifyMetersMode(o.verifyMeters),
  }));
}
