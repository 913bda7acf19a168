// Intake: report()'s validation into a queued event, and the overflow policy when the queue is full.
import type { ResolvedConfig } from '../config';
import { MeterClosedError, MeterQueueFullError } from '../errors';
import type { Counters } from '../delivery/counters';
import type { Delivery } from '../delivery/delivery';
import type { EventStore, QueuedEvent } from '../store/queue';
import type { MeterEventInput } from '../types';
import { checkEvent } from './validate-event';

export class Intake {
  private seq = 0;

  constructor(
    private readonly config: ResolvedConfig,
    private readonly store: EventStore,
    private readonly delivery: Delivery,
    private readonly counters: Counters,
  ) {}

  /** The sequence number of the last accepted event (flush() waits for events up to it). */
  get lastSeq(): number {
    return this.seq;
  }

  /** See `MeterReporter.report()`. */
  report(input: MeterEventInput): string {
    if (this.delivery.closed) {
      this.counters.rejected += 1;
      throw new MeterClosedError();
    }
    let event: QueuedEvent;
    try {
      event = checkEvent(input, this.config.customerKey, this.config.valueKey, Date.now(), this.seq + 1);
    } catch (error) {
      this.counters.rejected += 1;
      throw error;
    }

    if (this.delivery.queuedCount() >= this.config.maxQueueSize) {
      if (this.config.overflow === 'reject') {
        this.counters.rejected += 1;
        throw new MeterQueueFullError(this.config.maxQueueSize);
      }
      this.accept();
      if (this.config.overflow === 'drop-newest') {
        this.delivery.dropOverflow(event);
        return event.identifier;
      }
      const oldest = this.store.shift();
      if (oldest !== undefined) this.delivery.dropOverflow(oldest);
    } else {
      this.accept();
    }
    this.store.push(event);
    if (this.store.size >= this.config.maxBatchSize) this.delivery.schedulePump();
    return event.identifier;
  }

  private accept(): void {
    this.seq += 1;
    this.counters.enqueued += 1;
  }
}
