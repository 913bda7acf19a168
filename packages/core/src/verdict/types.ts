// Public types of Stripe's verdict: meter checks, meter error webhooks and reconciliation.
import type { Dispatcher } from 'undici';
import type { MeterError } from '../errors';
import type { LedgerQuery, LedgerRow } from '../store/types';
import type { MeterRejectedEventError } from './errors';

/** GETs a Stripe API path (with its query string) using a secret key; resolves with the parsed JSON, throws `StripeApiError`. */
export type StripeReader = (pathAndQuery: string, context?: string) => Promise<unknown>;

/** Where a standalone verdict call reaches Stripe. */
export interface StripeConnection {
  /** The secret key (`sk_…` / `rk_…`; a restricted key needs read access to billing meters and events). */
  apiKey: string;
  /**
   * Base URL of Stripe's API.
   * @default 'https://api.stripe.com'
   */
  apiBaseUrl?: string;
  /**
   * undici dispatcher for the requests (a MockAgent in tests, a proxy agent).
   * @default a private keep-alive Agent, closed when the call ends
   */
  dispatcher?: Dispatcher;
  /**
   * Deadline of each request, headers and body together, in milliseconds.
   * @default 10_000
   */
  requestTimeoutMs?: number;
}

/** What a meter check found wrong. */
export type MeterProblemCode = 'meter_missing' | 'meter_inactive' | 'customer_key_mismatch' | 'value_key_mismatch';

/** One problem `verifyMeters()` found, with the event name it concerns. */
export interface MeterProblem {
  readonly code: MeterProblemCode;
  readonly eventName: string;
  /** What is wrong and what to change, in words. */
  readonly message: string;
}

/** The check of one event name against Stripe's meters. */
export interface MeterCheck {
  readonly eventName: string;
  /** A meter with this event name exists (active or not). */
  readonly found: boolean;
  /** The meter is active (an inactive, archived meter rejects every event). */
  readonly active: boolean;
  /** The meter's id (`mtr_…`), when found. */
  readonly meterId: string | undefined;
  /** The meter's `customer_mapping.event_payload_key`, when found. */
  readonly customerKey: string | undefined;
  /** The meter's `value_settings.event_payload_key`, when found. */
  readonly valueKey: string | undefined;
  /** The reporter's `payloadKeys.customer`. */
  readonly expectedCustomerKey: string;
  /** The reporter's `payloadKeys.value`. */
  readonly expectedValueKey: string;
  /** The meter's `default_aggregation.formula` (`sum`, `count`, `last`), when found. */
  readonly formula: string | undefined;
  readonly problems: readonly MeterProblem[];
}

/** What `verifyMeters()` resolves with. */
export interface VerifyMetersResult {
  /** True when no event name has a problem. */
  readonly ok: boolean;
  /** One check per event name, in the order given (duplicates removed). */
  readonly meters: readonly MeterCheck[];
  /** Every problem of every check. */
  readonly problems: readonly MeterProblem[];
}

/** Options of `reporter.verifyMeters()`. */
export interface VerifyMetersOptions {
  /** The event names the app reports; each must have an active meter reading the reporter's payload keys. */
  eventNames: readonly string[];
}

/** What the adapters do with the meter check at start-up. */
export type VerifyMetersMode = 'warn' | 'fail' | 'off';

/** What the webhook handler knows about an identifier the reporter sent recently. */
export interface RecentEvent {
  readonly eventName: string;
  readonly customerId: string;
}

/** What the webhook handler needs of a reporter: a way to read Stripe, the recent identifiers, and `onError`. */
export interface VerdictReporter {
  readStripe(pathAndQuery: string, context?: string): Promise<unknown>;
  lookupIdentifier(identifier: string): RecentEvent | undefined;
  /** Starts remembering identifiers for `lookupIdentifier` (a reporter keeps none until asked). */
  rememberIdentifiers?(): void;
  handleError(error: MeterError): void;
}

/** Options of `createMeterErrorWebhook()`, the framework-neutral handler the adapters wrap. */
export interface MeterErrorWebhookOptions {
  /** The reporter whose `onError` hears of rejected events, and whose key fetches thin events. */
  reporter: VerdictReporter;
  /** The event destination's signing secret(s) (`whsec_…`); several during a rotation, any one may sign. */
  secrets: string | readonly string[];
  /**
   * Largest difference between the signature's timestamp and now, in seconds; older (or further ahead) is refused.
   * @default 300
   */
  toleranceSeconds?: number;
  /**
   * Clock in epoch milliseconds, for the timestamp check.
   * @default Date.now
   */
  now?: () => number;
}

/** What the handler answers a webhook request with, and the work it started. */
export interface WebhookAnswer {
  /** 200 once the signature holds (the event is processed after the answer), 400 otherwise. */
  readonly status: 200 | 400;
  readonly body: { readonly received: true } | { readonly error: { readonly code: string; readonly message: string } };
  /** Settles when the event has been fetched and every rejected event reported (never rejects). */
  readonly processed: Promise<readonly MeterRejectedEventError[]>;
}

/** The framework-neutral webhook handler. */
export interface MeterErrorWebhook {
  /** Verifies and answers one request; the raw body must be the exact bytes received. */
  handle(rawBody: Buffer | string, signatureHeader: string | readonly string[] | undefined): WebhookAnswer;
}

/** Ledger rows, or a function that reads them for a range. */
export type LedgerSource = readonly LedgerRow[] | ((query: LedgerQuery) => readonly LedgerRow[] | Promise<readonly LedgerRow[]>);

/** Options of `reconcile()`. */
export interface ReconcileOptions extends StripeConnection {
  /** Start of the window (rounded down to the hour: Stripe summarizes by event time, the ledger by hour). */
  from: Date | number;
  /** End of the window, exclusive (rounded up to the hour). */
  to: Date | number;
  /**
   * The local ledger (`reporter.ledger` or its rows); without one, only Stripe's totals are listed.
   * @default undefined (Stripe's totals only; `customers` is then required)
   */
  ledger?: LedgerSource;
  /**
   * Only these event names.
   * @default every event name in the ledger; without a ledger, every active meter
   */
  eventNames?: readonly string[];
  /**
   * Only these customers (Stripe summarizes per customer, so without a ledger these are the customers listed).
   * @default every customer in the ledger
   */
  customers?: readonly string[];
}

/** One customer × event name of a reconciliation. */
export interface ReconcileRow {
  readonly customerId: string;
  readonly eventName: string;
  /** The meter's id, or undefined when no meter has this event name. */
  readonly meterId: string | undefined;
  /** The meter's formula; `last` cannot be compared with a ledger of sums. */
  readonly formula: string | undefined;
  /** What the ledger says Stripe acknowledged (sum of values, or count for a `count` meter); undefined without a ledger. */
  readonly expected: string | undefined;
  /** Stripe's aggregated value for the window. */
  readonly stripe: string;
  /** `stripe − expected`; undefined without a ledger or for a `last` meter. */
  readonly difference: string | undefined;
  /** Events the ledger cannot vouch for (left by a crashed process with an attempt too old to resend). */
  readonly uncertain: number;
}

/** What `reconcile()` resolves with. */
export interface ReconcileResult {
  /** The window actually compared, hour-aligned, in ms since the epoch. */
  readonly from: number;
  readonly to: number;
  /** Whether a ledger was compared (false: Stripe's totals only). */
  readonly withLedger: boolean;
  readonly rows: readonly ReconcileRow[];
  /** True when every comparable row has a zero difference. */
  readonly clean: boolean;
}
