// Intake: report()'s validation into a queued event, and the overflow policy when the queue is full.
import type { ResolvedConfig } from '../config';
import { MeterClosedError, MeterQueueFullError } from '../errors';
import type { Counters } from '../delivery/counters';
import type { Delivery } from '../delivery/delivery';
import type { QueuedEvent } from '../store/queue';
import type { DurableEventStore } from '../store/types';
import type { MeterEventInput } from '../types';
import { checkEvent } from './validate-event';

export class Intake {
  private seq = 0;

  constructor(
    private readonly config: ResolvedConfig,
    private readonly store: DurableEventStore,
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

    if (this.delivery.queuedCount() >= this.config.maxQueueSize || !this.store.hasRoomFor(event)) {
      if (this.config.overflow === 'reject') {
        this.counters.rejected += 1;
        throw new MeterQueueFullError(this.config.maxQueueSize);
      }
      this.accept();
      if (this.config.overflow === 'drop-newest' || !this.makeRoom(event)) {
        this.delivery.dropOverflow(event, false);
        return event.identifier;
      }
    } else {
      this.accept();
    }
    try {
      this.store.push(event);
    } catch (error) {
      // A store of the user's own refused it (MeterStoreError): not accepted after all, and the caller
      // hears so. Its sequence number stays used (flush waiters allow gaps): the store may have kept it.
      this.counters.enqueued -= 1;
      this.counters.rejected += 1;
      throw error;
    }
    if (this.store.size >= this.config.maxBatchSize) this.delivery.schedulePump();
    return event.identifier;
  }

  /**
   * drop-oldest: drops queued events, oldest first, until `event` fits under both bounds. False when
   * it cannot (the store's bytes are held by events in flight): the new event is dropped instead.
   * Queued events are in the store or, in direct mode, held for their customer and meter (the store
   * is then often empty): both count toward the bound, so both give way.
   */
  private makeRoom(event: QueuedEvent): boolean {
    // Held events left the store's head before anything still in it: they are the older ones.
    if (this.delivery.queuedCount() >= this.config.maxQueueSize) {
      const oldest = this.delivery.shiftHeld() ?? this.store.shift();
      if (oldest !== undefined) this.delivery.dropOverflow(oldest, true);
    }
    while (!this.store.hasRoomFor(event)) {
      const oldest = this.delivery.shiftHeld() ?? this.store.shift();
      if (oldest === undefined) return false;
      this.delivery.dropOverflow(oldest, true);
    }
    return true;
  }

  private accept(): void {
    this.seq += 1;
    this.counters.enqueued += 1;
  }
}
