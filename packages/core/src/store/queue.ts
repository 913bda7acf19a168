// Where accepted events wait for a request: a small storage interface and its in-memory ring buffer.
import type { MeterEvent } from '../types';

/** An accepted event with its place in the intake order (used by `flush()`). */
export interface QueuedEvent extends MeterEvent {
  readonly seq: number;
}

/**
 * Storage of events waiting to be sent. The reporter is its only user and the transports never see
 * it, so a durable spool or a shared queue can replace the in-memory one without touching delivery.
 * Calls are synchronous because `report()` is: a durable store buffers in memory and persists behind.
 */
export interface EventStore {
  /** Events stored. */
  readonly size: number;
  /** Appends an event at the tail. */
  push(event: QueuedEvent): void;
  /** Removes and returns the oldest event. */
  shift(): QueuedEvent | undefined;
  /** Removes and returns up to `max` of the oldest events, oldest first. */
  take(max: number): QueuedEvent[];
  /** Puts events back at the head, in order (a batch that could not start). */
  unshift(events: readonly QueuedEvent[]): void;
  /** Removes and returns every event. */
  drain(): QueuedEvent[];
}

const INITIAL_CAPACITY = 1024;

/** A growable ring buffer: O(1) push and shift, no array shifting, memory kept to what is queued. */
export class MemoryEventStore implements EventStore {
  private buffer: (QueuedEvent | undefined)[] = new Array<QueuedEvent | undefined>(INITIAL_CAPACITY);
  private head = 0;
  private count = 0;

  get size(): number {
    return this.count;
  }

  push(event: QueuedEvent): void {
    if (this.count === this.buffer.length) this.grow();
    this.buffer[(this.head + this.count) % this.buffer.length] = event;
    this.count += 1;
  }

  shift(): QueuedEvent | undefined {
    if (this.count === 0) return undefined;
    const event = this.buffer[this.head];
    this.buffer[this.head] = undefined;
    this.head = (this.head + 1) % this.buffer.length;
    this.count -= 1;
    if (this.count === 0) this.head = 0;
    this.maybeShrink();
    return event;
  }

  take(max: number): QueuedEvent[] {
    const n = Math.min(max, this.count);
    const out = new Array<QueuedEvent>(n);
    for (let i = 0; i < n; i += 1) {
      out[i] = this.buffer[this.head]!;
      this.buffer[this.head] = undefined;
      this.head = (this.head + 1) % this.buffer.length;
    }
    this.count -= n;
    if (this.count === 0) this.head = 0;
    this.maybeShrink();
    return out;
  }

  unshift(events: readonly QueuedEvent[]): void {
    while (this.count + events.length > this.buffer.length) this.grow();
    for (let i = events.length - 1; i >= 0; i -= 1) {
      this.head = (this.head - 1 + this.buffer.length) % this.buffer.length;
      this.buffer[this.head] = events[i];
    }
    this.count += events.length;
  }

  drain(): QueuedEvent[] {
    return this.take(this.count);
  }

  private grow(): void {
    const next = new Array<QueuedEvent | undefined>(this.buffer.length * 2);
    for (let i = 0; i < this.count; i += 1) next[i] = this.buffer[(this.head + i) % this.buffer.length];
    this.buffer = next;
    this.head = 0;
  }

  // After a burst (an outage's backlog) the buffer gives its memory back once mostly empty.
  private maybeShrink(): void {
    if (this.buffer.length <= INITIAL_CAPACITY || this.count > this.buffer.length / 8) return;
    const next = new Array<QueuedEvent | undefined>(Math.max(INITIAL_CAPACITY, this.buffer.length / 4));
    for (let i = 0; i < this.count; i += 1) next[i] = this.buffer[(this.head + i) % this.buffer.length];
    this.buffer = next;
    this.head = 0;
  }
}
