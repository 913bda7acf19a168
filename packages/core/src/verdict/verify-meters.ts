// The meter check: does every event name the app bills have an active meter that reads the reporter's payload keys?
// Meter shape: https://docs.stripe.com/api/billing/meter/object (customer_mapping.event_payload_key,
// value_settings.event_payload_key, default_aggregation.formula, status); listed by GET /v1/billing/meters.
import { listAll } from './stripe-reader';
import type { MeterCheck, MeterProblem, StripeReader, VerifyMetersResult } from './types';

/** The fields of Stripe's `billing.meter` the checks read. */
export interface StripeMeter {
  readonly id: string;
  readonly event_name?: string;
  readonly status?: string;
  readonly customer_mapping?: { readonly event_payload_key?: string };
  readonly value_settings?: { readonly event_payload_key?: string };
  readonly default_aggregation?: { readonly formula?: string };
}

/** Every meter of the account, active and inactive. */
export function listMeters(read: StripeReader): Promise<StripeMeter[]> {
  return listAll<StripeMeter>(read, '/v1/billing/meters');
}

/** The meter for each event name: an active one wins over archived ones of the same name. */
export function metersByEventName(meters: readonly StripeMeter[]): Map<string, StripeMeter> {
  const byName = new Map<string, StripeMeter>();
  for (const meter of meters) {
    if (typeof meter.event_name !== 'string') continue;
    const seen = byName.get(meter.event_name);
    if (seen === undefined || (seen.status !== 'active' && meter.status === 'active')) byName.set(meter.event_name, meter);
  }
  return byName;
}

function check(eventName: string, meter: StripeMeter | undefined, keys: { customer: string; value: string }): MeterCheck {
  const problems: MeterProblem[] = [];
  const customerKey = meter?.customer_mapping?.event_payload_key;
  const valueKey = meter?.value_settings?.event_payload_key;
  if (meter === undefined) {
    problems.push({ code: 'meter_missing', eventName, message: `No meter has event_name "${eventName}": Stripe drops its events (no_meter); create the meter or fix the event name` });
  } else {
    if (meter.status !== 'active') {
      problems.push({ code: 'meter_inactive', eventName, message: `The meter ${meter.id} for "${eventName}" is ${String(meter.status)}: Stripe rejects its events (archived_meter); reactivate it` });
    }
    if (customerKey !== keys.customer) {
      problems.push({ code: 'customer_key_mismatch', eventName, message: `The meter ${meter.id} reads the customer from "${String(customerKey)}" but the reporter sends it under "${keys.customer}" (payloadKeys.customer)` });
    }
    if (valueKey !== keys.value) {
      problems.push({ code: 'value_key_mismatch', eventName, message: `The meter ${meter.id} reads the value from "${String(valueKey)}" but the reporter sends it under "${keys.value}" (payloadKeys.value)` });
    }
  }
  return Object.freeze({
    eventName,
    found: meter !== undefined,
    active: meter?.status === 'active',
    meterId: meter?.id,
    customerKey,
    valueKey,
    expectedCustomerKey: keys.customer,
    expectedValueKey: keys.value,
    formula: meter?.default_aggregation?.formula,
    problems: Object.freeze(problems),
  });
}

/** Lists the account's meters once and checks each event name against them. */
export async function verifyMeters(read: StripeReader, eventNames: readonly string[], keys: { customer: string; value: string }): Promise<VerifyMetersResult> {
  const byName = metersByEventName(await listMeters(read));
  const meters = [...new Set(eventNames)].map((name) => check(name, byName.get(name), keys));
  const problems = meters.flatMap((m) => m.problems);
  return Object.freeze({ ok: problems.length === 0, meters: Object.freeze(meters), problems: Object.freeze(problems) });
}
