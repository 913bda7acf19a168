// The identifiers a reporter sent lately, so that a sample error naming only an identifier finds its customer and event name.
import type { RecentEvent } from './types';

/**
 * Stripe's error reports arrive seconds to minutes after the events; 50 000 entries (a few MB) cover that at
 * hundreds of events a second. Older identifiers are forgotten first, and their errors carry no customer.
 */
export const RECENT_EVENTS_MAX = 50_000;

export class RecentEvents {
  // Insertion-ordered: the first key is always the oldest, so eviction is O(1).
  private readonly byIdentifier = new Map<string, RecentEvent>();

  constructor(private readonly max = RECENT_EVENTS_MAX) {}

  remember(identifier: string, eventName: string, customerId: string): void {
    if (this.byIdentifier.size >= this.max) this.byIdentifier.delete(this.byIdentifier.keys().next().value as string);
    this.byIdentifier.set(identifier, { eventName, customerId });
  }

  lookup(identifier: string): RecentEvent | undefined {
    return this.byIdentifier.get(identifier);
  }
}
