// The identifiers a reporter sent lately, so that a sample error naming only an identifier finds its customer and event name.
import type { RecentEvent } from './types';

/**
 * Stripe's error reports arrive seconds to minutes after the events; 50 000 entries (a few MB) cover that at
 * hundreds of events a second. Older identifiers are forgotten first, and their errors carry no customer.
 */
export const RECENT_EVENTS_MAX = 50_000;

/**
 * A fixed ring of the last `max` identifiers with an index by identifier. `remember()` runs in every
 * `report()`, so it must stay O(1) for ever: evicting through `map.keys().next()` looked O(1) but is not —
 * V8 keeps deleted Map entries as holes until it rehashes, and finding the first live key walks past all
 * of them, which took report() from ~0.5 µs to 20–40 µs once 50 000 events had gone by. Here the ring
 * names the key to evict, and Map.delete(key) is a hash lookup.
 */
export class RecentEvents {
  private readonly slotOf = new Map<string, number>();
  private readonly identifiers: (string | undefined)[];
  private readonly eventNames: string[];
  private readonly customerIds: string[];
  private next = 0;

  constructor(private readonly max = RECENT_EVENTS_MAX) {
    this.identifiers = new Array<string | undefined>(max);
    this.eventNames = new Array<string>(max);
    this.customerIds = new Array<string>(max);
  }

  remember(identifier: string, eventName: string, customerId: string): void {
    const slot = this.next;
    const evicted = this.identifiers[slot];
    // Only if the slot still owns it: an identifier reported again moved to a newer slot.
    if (evicted !== undefined && this.slotOf.get(evicted) === slot) this.slotOf.delete(evicted);
    this.identifiers[slot] = identifier;
    this.eventNames[slot] = eventName;
    this.customerIds[slot] = customerId;
    this.slotOf.set(identifier, slot);
    this.next = slot + 1 === this.max ? 0 : slot + 1;
  }

  lookup(identifier: string): RecentEvent | undefined {
    const slot = this.slotOf.get(identifier);
    return slot === undefined ? undefined : { eventName: this.eventNames[slot]!, customerId: this.customerIds[slot]! };
  }
}
