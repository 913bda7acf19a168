// Direct mode's key locks: at most one request in flight per customer + meter, the others waiting for their key.
import type { EventStore, QueuedEvent } from '../store/queue';

export class KeyLocks {
  private readonly busy = new Set<string>();
  private readonly waiting = new Map<string, QueuedEvent[]>();
  private waitingCount = 0;
  // Events whose key is reserved for them: the next of their customer and meter once the previous request ended.
  private readonly ready: QueuedEvent[] = [];

  constructor(private readonly keyOf: (event: QueuedEvent) => string) {}

  /** Events held here (waiting for their key or reserved), still queued as far as stats() goes. */
  get size(): number {
    return this.waitingCount + this.ready.length;
  }

  /** The next event whose key is free, taken from the reserved ones first, then from `store`; its key is locked. */
  next(store: EventStore): QueuedEvent | undefined {
    const reserved = this.ready.shift();
    if (reserved !== undefined) return reserved;
    for (let event = store.shift(); event !== undefined; event = store.shift()) {
      const key = this.keyOf(event);
      if (!this.busy.has(key)) {
        this.busy.add(key);
        return event;
      }
      const queue = this.waiting.get(key);
      if (queue) queue.push(event);
      else this.waiting.set(key, [event]);
      this.waitingCount += 1;
    }
    return undefined;
  }

  /** The request of `event`'s key ended: the key goes to the next event waiting for it, or is freed. */
  release(event: QueuedEvent): void {
    const key = this.keyOf(event);
    const queue = this.waiting.get(key);
    const next = queue?.shift();
    if (next === undefined) {
      this.busy.delete(key);
      return;
    }
    this.waitingCount -= 1;
    if (queue!.length === 0) this.waiting.delete(key);
    // The key stays busy, reserved for the next event of the same customer and meter.
    this.ready.push(next);
  }

  /**
   * Removes and returns the oldest event held here (the lowest sequence number among the reserved ones and
   * the first of each key's waiting line; a reserved one's key then goes to the next of its own): the overflow
   * policy's `drop-oldest` when the store itself is empty, as it is whenever one busy customer and meter
   * reports faster than its requests end (every pump moves its events here).
   */
  shiftOldest(): QueuedEvent | undefined {
    let oldestKey: string | undefined;
    let oldestSeq = Infinity;
    for (const [key, queue] of this.waiting) {
      const seq = queue[0]!.seq;
      if (seq < oldestSeq) {
        oldestSeq = seq;
        oldestKey = key;
      }
    }
    // A reserved event waited longest for its key: older than any still waiting, unless a lower sequence number says otherwise.
    let reservedAt = -1;
    for (let i = 0; i < this.ready.length; i += 1) {
      if (this.ready[i]!.seq <= oldestSeq) {
        oldestSeq = this.ready[i]!.seq;
        reservedAt = i;
      }
    }
    if (reservedAt !== -1) {
      const [reserved] = this.ready.splice(reservedAt, 1);
      this.release(reserved!);
      return reserved;
    }
    if (oldestKey === undefined) return undefined;
    const queue = this.waiting.get(oldestKey)!;
    const event = queue.shift()!;
    if (queue.length === 0) this.waiting.delete(oldestKey);
    this.waitingCount -= 1;
    return event;
  }

  /** Removes and returns every held event (shutdown). */
  drain(): QueuedEvent[] {
    const events = [...this.ready.splice(0), ...[...this.waiting.values()].flat()];
    this.waiting.clear();
    this.waitingCount = 0;
    return events;
  }
}
