// The counters behind stats(), shared by intake, delivery and the HTTP observer: one object, so the invariant is read at one instant.
import type { DropReason } from '../types';

/** Mutable tallies; `enqueued = delivered + failed + dropped + kept + pending` holds between any two statements of a turn. */
export class Counters {
  enqueued = 0;
  delivered = 0;
  failed = 0;
  readonly dropped: Record<DropReason, number> = { overflow: 0, shutdown: 0, expired: 0 };
  /** Events left in a durable store at shutdown for the next process. */
  kept = 0;
  rejected = 0;
  requests = 0;
  batchesSent = 0;
  retries = 0;
  rateLimited = 0;
  sessionRefreshes = 0;

  get droppedTotal(): number {
    return this.dropped.overflow + this.dropped.shutdown + this.dropped.expired;
  }
}
