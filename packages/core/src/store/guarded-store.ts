// A store of the user's own (`store` option) behind a guard: what it throws never escapes into delivery.
import { MeterStoreError } from '../errors';
import type { QueuedEvent } from './queue';
import type { DurableEventStore, LedgerQuery, LedgerRow, RecoveredEvents, SettleOutcome } from './types';

const NOTHING_RECOVERED: RecoveredEvents = { resend: [], expired: [], uncertain: [] };

/**
 * Delivery calls its store from timers, `setImmediate` turns and promise chains: a store of the user's
 * own that throws there would be an uncaught exception or an unhandled rejection, which ends a Node
 * process, and a throwing `settle()` would skip the flush waiters of events already delivered. Behind
 * this guard every failure becomes a `MeterStoreError` (`ERR_METER_STORE_FAILED`, naming the method)
 * and the reporter goes on with what it knows:
 *
 * - `push()` throws it to `report()`'s caller, which does not count the event as accepted;
 * - `markAttempted()` tells `onError` and throws it into the attempt, which is then not sent and is
 *   retried as a transient failure (an attempt the store has not recorded must not reach Stripe: a later
 *   process would resend it as never sent, past Stripe's duplicate window too);
 * - `ledger()` throws it to its caller;
 * - the getters answer their last good reading;
 * - every other method tells `onError` and answers as an empty store would (`take()` nothing,
 *   `hasRoomFor()` true, `recover()` nothing): the events stay wherever the store keeps them, and
 *   delivery asks again at its next flush interval (what `recover()` or `unshift()` could not hand
 *   back waits in a durable store for the next process). `onError` hears of a failing method once
 *   until that method succeeds again.
 *
 * Every store given as `store` is wrapped, `@metered/redis`'s too (which handles its own failures, so
 * the guard never answers for it); the memory store and the spool are not.
 */
export class GuardedStore implements DurableEventStore {
  /** Methods whose last call failed: reported once, until one succeeds. */
  private readonly failing = new Set<string>();

  // The getters answer their last good reading when they throw: a size of 0 would let flush() resolve
  // with events still held, and durable false would drop at shutdown rows the store keeps for the next
  // process (never read: true, the side that keeps them).
  private lastSize = 0;
  private lastDurable = true;
  private lastBytes = 0;

  constructor(
    private readonly inner: DurableEventStore,
    private readonly onError: (error: MeterStoreError) => void,
  ) {}

  get size(): number {
    return (this.lastSize = this.quietly('size', () => this.inner.size, this.lastSize));
  }

  get durable(): boolean {
    return (this.lastDurable = this.quietly('durable', () => this.inner.durable, this.lastDurable));
  }

  get bytes(): number {
    return (this.lastBytes = this.quietly('bytes', () => this.inner.bytes, this.lastBytes));
  }

  push(event: QueuedEvent): void {
    this.loudly('push', () => this.inner.push(event));
  }

  shift(): QueuedEvent | undefined {
    return this.quietly('shift', () => this.inner.shift(), undefined);
  }

  take(max: number): QueuedEvent[] {
    return this.quietly('take', () => this.inner.take(max), []);
  }

  unshift(events: readonly QueuedEvent[]): void {
    this.quietly('unshift', () => this.inner.unshift(events), undefined);
  }

  drain(): QueuedEvent[] {
    return this.quietly('drain', () => this.inner.drain(), []);
  }

  hasRoomFor(event: QueuedEvent): boolean {
    return this.quietly('hasRoomFor', () => this.inner.hasRoomFor(event), true);
  }

  markAttempted(events: readonly QueuedEvent[], at: number): void {
    // Thrown into the attempt (retried), and told to onError as well: a retry budget can last an hour.
    this.quietly('markAttempted', () => this.inner.markAttempted(events, at), undefined, true);
  }

  settle(events: readonly QueuedEvent[], outcome: SettleOutcome): void {
    this.quietly('settle', () => this.inner.settle(events, outcome), undefined);
  }

  discard(events: readonly QueuedEvent[]): void {
    this.quietly('discard', () => this.inner.discard(events), undefined);
  }

  recover(now: number): RecoveredEvents {
    return this.quietly('recover', () => this.inner.recover(now), NOTHING_RECOVERED);
  }

  commit(): void {
    this.quietly('commit', () => this.inner.commit(), undefined);
  }

  ledger(query: LedgerQuery): LedgerRow[] {
    return this.loudly('ledger', () => this.inner.ledger(query));
  }

  close(): void {
    this.quietly('close', () => this.inner.close(), undefined);
  }

  /**
   * Runs `call`; a failure goes to onError (once while it lasts) and `fallback` is the answer, or with
   * `rethrow` the failure is thrown on as well.
   */
  private quietly<T>(method: string, call: () => T, fallback: T, rethrow = false): T {
    try {
      const result = call();
      if (this.failing.size !== 0) this.failing.delete(method);
      return result;
    } catch (error) {
      const failure = new MeterStoreError(method, error);
      if (!this.failing.has(method)) {
        this.failing.add(method);
        this.onError(failure);
      }
      if (rethrow) throw failure;
      return fallback;
    }
  }

  /** Runs `call`; a failure is thrown to the caller as a `MeterStoreError`. */
  private loudly<T>(method: string, call: () => T): T {
    try {
      return call();
    } catch (error) {
      throw new MeterStoreError(method, error);
    }
  }
}
