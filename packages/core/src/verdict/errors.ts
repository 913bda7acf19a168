// The errors of Stripe's verdict: an event Stripe rejected after accepting it, a webhook that failed its checks, meters that do not match.
import { MeterError } from '../errors';
import type { MeterProblem } from './types';

/**
 * Stripe rejected a meter event asynchronously (reported by `v1.billing.meter.error_report_triggered` or
 * `v1.billing.meter.no_meter_found`); the event was answered `{}` on the stream but is not billed.
 */
export class MeterRejectedEventError extends MeterError {
  override readonly name = 'MeterRejectedEventError';
  constructor(
    /** The rejected event's identifier, as Stripe's sample error names it (`request.identifier`). */
    readonly identifier: string | undefined,
    /** Stripe's error code (`meter_event_customer_not_found`, `archived_meter`, `no_meter`, …). */
    readonly stripeCode: string,
    /** Stripe's message for this sample. */
    readonly stripeMessage: string | undefined,
    /** The event's event name: from the meter Stripe names, else from the reporter's recent events; undefined when neither knows. */
    readonly eventName: string | undefined,
    /** The event's customer, from the reporter's recent events; undefined when the identifier is no longer remembered. */
    readonly customerId: string | undefined,
    /** The id of Stripe's event (`evt_…`) that reported it. */
    readonly stripeEventId: string,
    /** How many events Stripe counted under this code in the report's window (samples are a subset). */
    readonly errorCount: number,
  ) {
    const who = [eventName === undefined ? undefined : `event "${eventName}"`, customerId === undefined ? undefined : `customer ${customerId}`, identifier === undefined ? undefined : `identifier ${identifier}`]
      .filter((part) => part !== undefined)
      .join(', ');
    super('ERR_METER_EVENT_REJECTED', `Stripe rejected a meter event after accepting it (${stripeCode}${who === '' ? '' : `; ${who}`})${stripeMessage === undefined ? '' : `: ${stripeMessage}`}`);
  }
}

/** Why a webhook request was refused before anything in it was processed. */
export type WebhookSignatureFailure = 'missing_header' | 'malformed_header' | 'no_matching_signature' | 'timestamp_outside_tolerance';

/** A webhook request whose `Stripe-Signature` does not prove it came from Stripe; answered 400, nothing processed. */
export class MeterWebhookSignatureError extends MeterError {
  override readonly name = 'MeterWebhookSignatureError';
  constructor(
    readonly reason: WebhookSignatureFailure,
    message: string,
  ) {
    super('ERR_METER_WEBHOOK_SIGNATURE', message);
  }
}

/** A signed webhook whose event could not be read: its body is not a Stripe event, or fetching the thin event failed. */
export class MeterWebhookError extends MeterError {
  override readonly name = 'MeterWebhookError';
  constructor(
    /** Stripe's event id, when the body named one: fetch it again with `GET /v2/core/events/{id}` (kept 30 days). */
    readonly stripeEventId: string | undefined,
    message: string,
    cause?: unknown,
  ) {
    super('ERR_METER_WEBHOOK_EVENT', message, { cause });
  }
}

/** `verifyMeters: 'fail'` found problems: the meters Stripe has do not take the events this app sends. */
export class MeterVerifyError extends MeterError {
  override readonly name = 'MeterVerifyError';
  constructor(readonly problems: readonly MeterProblem[]) {
    super('ERR_METER_VERIFY_FAILED', `Stripe's meters do not match what this app reports:\n${problems.map((p) => `  - [${p.code}] ${p.message}`).join('\n')}`);
  }
}
