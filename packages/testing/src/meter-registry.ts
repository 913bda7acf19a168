// The fake's meters: lookup by event name on the hot path, by id for the v1 routes, and their Stripe representation.
import { resolveMeterDefinition } from './config';
import { FakeStripeError } from './errors';
import { randomId } from './random';
import type { FakeMeter, MeterDefinition, MeterRegistry } from './types';

export class Meters implements MeterRegistry {
  private readonly byId = new Map<string, FakeMeter>();
  private readonly byEventName = new Map<string, FakeMeter>();

  constructor(
    private readonly nowSeconds: () => number,
    private readonly livemode: boolean,
  ) {}

  add(definition: string | MeterDefinition): FakeMeter {
    const def = resolveMeterDefinition(definition, 'meter');
    const id = def.id ?? randomId('mtr_test_');
    if (this.byId.has(id)) throw new FakeStripeError('ERR_FAKE_STRIPE_DUPLICATE_METER', `A meter with id "${id}" already exists.`);
    if (this.byEventName.has(def.event_name)) {
      throw new FakeStripeError('ERR_FAKE_STRIPE_DUPLICATE_METER', `A meter for event_name "${def.event_name}" already exists.`);
    }
    const created = this.nowSeconds();
    const meter: FakeMeter = Object.freeze({
      id,
      event_name: def.event_name,
      customerKey: def.customerKey,
      valueKey: def.valueKey,
      formula: def.formula,
      status: def.status,
      displayName: def.displayName,
      created,
      updated: created,
      deactivatedAt: def.status === 'inactive' ? created : null,
    });
    this.store(meter);
    return meter;
  }

  get(idOrEventName: string): FakeMeter | undefined {
    return this.byId.get(idOrEventName) ?? this.byEventName.get(idOrEventName);
  }

  /** Hot-path lookup: events name their meter by event name only. */
  forEvent(eventName: string): FakeMeter | undefined {
    return this.byEventName.get(eventName);
  }

  list(): FakeMeter[] {
    return [...this.byId.values()];
  }

  archive(idOrEventName: string): FakeMeter {
    const meter = this.require(idOrEventName);
    if (meter.status === 'inactive') return meter;
    const at = this.nowSeconds();
    return this.store({ ...meter, status: 'inactive', updated: at, deactivatedAt: at });
  }

  reactivate(idOrEventName: string): FakeMeter {
    const meter = this.require(idOrEventName);
    if (meter.status === 'active') return meter;
    return this.store({ ...meter, status: 'active', updated: this.nowSeconds(), deactivatedAt: null });
  }

  remove(idOrEventName: string): boolean {
    const meter = this.get(idOrEventName);
    if (meter === undefined) return false;
    this.byId.delete(meter.id);
    this.byEventName.delete(meter.event_name);
    return true;
  }

  /** The `billing.meter` object of `GET /v1/billing/meters`. */
  toStripe(meter: FakeMeter): { id: string } & Record<string, unknown> {
    return {
      id: meter.id,
      object: 'billing.meter',
      created: meter.created,
      customer_mapping: { event_payload_key: meter.customerKey, type: 'by_id' },
      default_aggregation: { formula: meter.formula },
      display_name: meter.displayName,
      event_name: meter.event_name,
      event_time_window: null,
      livemode: this.livemode,
      status: meter.status,
      status_transitions: { deactivated_at: meter.deactivatedAt },
      updated: meter.updated,
      value_settings: { event_payload_key: meter.valueKey },
    };
  }

  private require(idOrEventName: string): FakeMeter {
    const meter = this.get(idOrEventName);
    if (meter === undefined) throw new FakeStripeError('ERR_FAKE_STRIPE_UNKNOWN_METER', `No meter with id or event_name "${idOrEventName}".`);
    return meter;
  }

  private store(meter: FakeMeter): FakeMeter {
    const frozen = Object.freeze(meter);
    this.byId.set(frozen.id, frozen);
    this.byEventName.set(frozen.event_name, frozen);
    return frozen;
  }
}
