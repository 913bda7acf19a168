// The default store as a DurableEventStore: the in-memory ring buffer plus an in-memory ledger; nothing survives the process.
import { MemoryEventStore } from './queue';
import type { QueuedEvent } from './queue';
import { MemoryLedger } from './ledger';
import type { DurableEventStore, LedgerQuery, LedgerRow, RecoveredEvents, SettleOutcome } from './types';

const NOTHING_RECOVERED: RecoveredEvents = Object.freeze({ resend: [], expired: [], uncertain: [] });

/** The queue half of every store here: reads are served from memory, whatever backs the events. */
export abstract class QueueBackedStore {
  protected readonly queue = new MemoryEventStore();

  get size(): number {
    return this.queue.size;
  }

  shift(): QueuedEvent | undefined {
    return this.queue.shift();
  }

  take(max: number): QueuedEvent[] {
    return this.queue.take(max);
  }

  unshift(events: readonly QueuedEvent[]): void {
    this.queue.unshift(events);
  }

  drain(): QueuedEvent[] {
    return this.queue.drain();
  }
}

/**
 * Keeps events in process memory, so the reporter drives one interface whatever the store. Bounded
 * by the reporter's `maxQueueSize` only: `hasRoomFor()` is always true and `bytes` is 0. Its ledger
 * keeps each hour for `ledgerRetentionMs` (default 48 h) counted back from the newest hour it holds.
 */
export class MemoryDurableStore extends QueueBackedStore implements DurableEventStore {
  readonly durable = false;
  readonly bytes = 0;
  private readonly cells: MemoryLedger;

  constructor(options: { ledgerRetentionMs?: number } = {}) {
    super();
    this.cells = new MemoryLedger(options.ledgerRetentionMs);
  }

  push(event: QueuedEvent): void {
    this.queue.push(event);
    this.cells.add(event, 'accepted');
  }

  hasRoomFor(): boolean {
    return true;
  }

  // Nothing outlives the process, so there is no attempt to remember.
  markAttempted(): void {}

  settle(events: readonly QueuedEvent[], outcome: SettleOutcome): void {
    this.cells.addAll(events, outcome);
  }

  discard(events: readonly QueuedEvent[]): void {
    this.cells.addAll(events, 'accepted');
    this.cells.addAll(events, 'dropped');
  }

  recover(): RecoveredEvents {
    return NOTHING_RECOVERED;
  }

  commit(): void {}

  ledger(query: LedgerQuery): LedgerRow[] {
    return this.cells.query(query);
  }

  close(): void {}
}
