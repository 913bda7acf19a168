// One event checked against Stripe's rules exactly as report() checks it, for code that takes events without sending them (the test kit's reporter).
import { DEFAULT_CUSTOMER_KEY, DEFAULT_VALUE_KEY } from '../config';
import { MeterValidationError } from '../errors';
import { generateIdentifier } from '../identifier';
import type { QueuedEvent } from '../store/queue';
import type { MeterEvent, MeterEventInput, PayloadKeys } from '../types';
import { checkAccount, checkCustomerId, checkDimensions, checkEventName, checkIdentifier, normalizeTimestamp, normalizeValue } from './validate';

/**
 * Validates and normalizes one event as `MeterReporter.report()` does (value as a string of digits,
 * timestamp in epoch ms, an identifier generated when none is given); throws the same
 * `MeterValidationError` naming the field and the rule.
 *
 * @example
 * const event = validateMeterEvent({ eventName: 'api_requests', customerId: 'cus_123', value: 5 });
 * event.value; // '5'
 */
export function validateMeterEvent(input: MeterEventInput, options: { payloadKeys?: PayloadKeys; now?: number } = {}): MeterEvent {
  const { seq: _seq, ...event } = checkEvent(input, options.payloadKeys?.customer ?? DEFAULT_CUSTOMER_KEY, options.payloadKeys?.value ?? DEFAULT_VALUE_KEY, options.now ?? Date.now(), 0);
  return event;
}

/** report()'s checks: the event normalized, with its intake sequence number `seq`. */
export function checkEvent(input: MeterEventInput, customerKey: string, valueKey: string, now: number, seq: number): QueuedEvent {
  if (input === null || typeof input !== 'object') {
    throw new MeterValidationError('ERR_METER_INVALID_EVENT', 'event', 'must be an object with eventName and customerId');
  }
  const event: QueuedEvent = {
    eventName: checkEventName(input.eventName),
    customerId: checkCustomerId(input.customerId),
    value: normalizeValue(input.value),
    timestamp: normalizeTimestamp(input.timestamp, now),
    identifier: input.identifier === undefined ? generateIdentifier() : checkIdentifier(input.identifier),
    dimensions: checkDimensions(input.dimensions, customerKey, valueKey),
    seq,
  };
  // Only set when given: platform events keep the shape (and the encoder's fast path) they always had.
  if (input.account !== undefined) (event as { account?: string }).account = checkAccount(input.account);
  return event;
}

/** Validates a cancellation as `MeterReporter.cancel()` does; throws `MeterValidationError`. */
export function validateCancellation(input: { eventName: string; identifier: string }): { eventName: string; identifier: string } {
  return { eventName: checkEventName(input?.eventName), identifier: checkIdentifier(input?.identifier) };
}
