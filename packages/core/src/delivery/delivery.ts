// Delivery: batches from the store to the transport, paced and retried, with flush waiters, the exit hook and shutdown.
import { setMaxListeners } from 'node:events';
import { DEFAULT_CLOSE_TIMEOUT_MS } from '../config';
import type { ResolvedConfig } from '../config';
import { MeterDeliveryError, MeterError, MeterUncertainError, StripeApiError } from '../errors';
import { newIdempotencyKey } from '../identifier';
import { EXPIRY_MARGIN_MS, MAX_EVENT_AGE_MS } from '../intake/validate';
import type { QueuedEvent } from '../store/queue';
import type { DurableEventStore } from '../store/types';
import type { HttpObserver } from '../transport/http-observer';
import type { Transport } from '../transport/transport';
import type { CloseResult, DropReason, FlushResult, RequestLimiter } from '../types';
import { CredentialBreaker } from './breaker';
import type { Counters } from './counters';
import { unwatchExit, watchExit } from './exit-hook';
import { FlushWaiters } from './flush-waiters';
import type { Hooks } from './hooks';
import { KeyLocks } from './key-locks';
import { Pacer } from './pacer';
import { classifyFailure, isRetriable, retryAfterMs } from './retry';
import { RetryLoop } from './retry-loop';

/** Stripe refused a whole request without naming an event: worth resending in halves. */
function refusesWholeBatch(error: unknown): boolean {
  return error instanceof StripeApiError && (error.status === 400 || error.status === 413) && classifyFailure(error) === 'final';
}

/** What delivery is given by the reporter that wires it. */
export interface DeliveryParts {
  readonly config: ResolvedConfig;
  readonly store: DurableEventStore;
  readonly counters: Counters;
  readonly hooks: Hooks;
  /** The intake sequence number of the last accepted event: what a flush waits for. */
  readonly lastSeq: () => number;
  /** Closes what the transport holds (sessions, the HTTP pool) once nothing is in flight. */
  readonly closeTransport: () => Promise<void>;
  /** Told of each batch Stripe acknowledged, with the time from its first attempt (the latency metric). */
  readonly onBatchDelivered?: (ms: number) => void;
}

/**
 * Takes events out of the store in batches (or, in direct mode, one per free customer + meter key),
 * sends them at most `concurrency` at a time, retries them under the retry policy, and settles each
 * event exactly once: delivered, failed (to `onError`) or dropped (to `onDrop`), in the counters,
 * the flush waiters and the store (whose ledger counts it) alike; or, at shutdown with a durable
 * store, kept there for the next process.
 */
export class Delivery {
  readonly breaker = new CredentialBreaker();
  readonly pacer: RequestLimiter;
  readonly retryLoop: RetryLoop;
  private readonly abortController = new AbortController();
  private readonly config: ResolvedConfig;
  private readonly store: DurableEventStore;
  private readonly counters: Counters;
  private readonly hooks: Hooks;
  private transport: Transport | undefined;
  private locks: KeyLocks | undefined;
  /** When a previous process first sent each recovered event it had sent: their retries stop before Stripe's duplicate window does. */
  private readonly firstAttempts = new WeakMap<QueuedEvent, number>();
  private readonly waiters = new FlushWaiters();
  private readonly flushTimer: NodeJS.Timeout;

  private inFlight = 0;
  private readonly deliveries = new Set<Promise<void>>();
  private drainRequested = false;
  private pumpScheduled = false;
  private closing: Promise<CloseResult> | undefined;
  // Overflow drops of one turn, handed to onDrop in one call.
  private overflowed: QueuedEvent[] = [];
  private exitFlush: Promise<void> | undefined;
  private readonly beforeExit = (): void => this.flushBeforeExit();

  constructor(private readonly parts: DeliveryParts) {
    ({ config: this.config, store: this.store, counters: this.counters, hooks: this.hooks } = parts);
    // Every request and every wait listens to this one signal: concurrency × (pacing + request + backoff).
    setMaxListeners(0, this.abortController.signal);
    // A limiter given in the options (one shared by every instance) replaces this process's own bucket.
    this.pacer = this.config.rateLimiter ?? new Pacer(this.config.maxRequestsPerSecond);
    this.retryLoop = new RetryLoop(this.config, this.breaker, this.counters, this.hooks, this.hooks.logger, this.abortController.signal);
    this.flushTimer = setInterval(() => this.onFlushInterval(), this.config.flushIntervalMs);
    this.flushTimer.unref();
    watchExit(this.beforeExit);
  }

  /** The HTTP observer that paces every request and honours an account-wide 429 with Retry-After. */
  observer(): HttpObserver {
    return {
      beforeRequest: async (signal) => {
        await this.pacer.acquire(signal);
        this.counters.requests += 1;
      },
      afterResponse: (status, retryAfterSeconds) => {
        if (status !== 429) return;
        this.counters.rateLimited += 1;
        // Stripe's limits are account-wide: one 429 with Retry-After holds every request, not just this one.
        const pause = retryAfterMs(retryAfterSeconds);
        if (pause !== undefined) this.pacer.pauseUntil(Date.now() + pause);
      },
    };
  }

  /** Set once, right after construction: the transport needs the observer, so it is built after delivery. */
  useTransport(transport: Transport): void {
    this.transport = transport;
    if (transport.exclusiveKey) this.locks = new KeyLocks(transport.exclusiveKey.bind(transport));
  }

  /**
   * Takes over what a previous process left in the store: resendable events are already queued at
   * its head (same identifiers, so Stripe deduplicates any that arrived) and go out at once; expired
   * ones go to `onDrop`; uncertain ones (first sent too long ago to resend safely) go to `onError`
   * as `MeterUncertainError`, never resent. All of them count as enqueued, so stats() adds up.
   */
  recover(): void {
    const { resend, expired, uncertain, firstAttempts } = this.store.recover(Date.now());
    if (firstAttempts !== undefined) for (const [event, at] of firstAttempts) this.firstAttempts.set(event, at);
    this.counters.enqueued += resend.length + expired.length;
    if (expired.length > 0) this.drop(expired, 'expired');
    if (uncertain.length > 0) {
      const events = uncertain.map((u) => u.event);
      this.store.settle(events, 'uncertain');
      this.hooks.error(new MeterUncertainError(uncertain.map((u) => ({ identifier: u.event.identifier, firstAttemptAt: u.firstAttemptAt }))), events);
    }
    if (resend.length > 0) {
      this.hooks.logger.info?.({ code: 'METER_SPOOL_RECOVERED', resend: resend.length, expired: expired.length, uncertain: uncertain.length }, 'meter events recovered from the spool');
      this.drainRequested = true;
      this.schedulePump();
    }
  }

  /** The signal every request and wait of this reporter listens to; aborted at shutdown. */
  get signal(): AbortSignal {
    return this.abortController.signal;
  }

  get closed(): boolean {
    return this.closing !== undefined;
  }

  /** Events waiting for a request (in the store or held for their key). */
  queuedCount(): number {
    return this.store.size + (this.locks?.size ?? 0);
  }

  get inFlightCount(): number {
    return this.inFlight;
  }

  pendingCount(): number {
    return this.queuedCount() + this.inFlight;
  }

  /** The store reached a full batch: a request starts on the next turn, outside report()'s stack. */
  schedulePump(): void {
    if (this.pumpScheduled || this.deliveries.size >= this.config.concurrency) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    }).unref();
  }

  /** Resolves once every event accepted so far has settled, or after `timeoutMs`. */
  flush(timeoutMs: number): Promise<FlushResult> {
    const remaining = this.pendingCount();
    if (remaining === 0) return Promise.resolve({ settled: true, pending: 0 });
    const done = this.waiters.wait(this.parts.lastSeq(), remaining, timeoutMs);
    this.drainRequested = true;
    this.pump();
    return done;
  }

  /** Stops delivery after up to `timeoutMs` of it (once; later calls get the same result). */
  close(timeoutMs: number): Promise<CloseResult> {
    this.closing ??= this.shutdown(timeoutMs);
    return this.closing;
  }

  /**
   * The oldest queued event outside the store (direct mode's events waiting for their customer and
   * meter), taken out for the overflow policy; undefined when none is held.
   */
  shiftHeld(): QueuedEvent | undefined {
    return this.locks?.shiftOldest();
  }

  // Counted at once (stats() adds up), told to onDrop once per turn: an outage overflowing a full
  // queue drops an event per report() call, and one hook call each was 899,600 calls in one run.
  dropOverflow(event: QueuedEvent, stored: boolean): void {
    this.counters.dropped.overflow += 1;
    // An event never pushed is counted in the ledger as accepted and dropped at once.
    if (stored) this.store.settle([event], 'dropped');
    else this.store.discard([event]);
    this.waiters.settle([event]);
    this.overflowed.push(event);
    if (this.overflowed.length === 1) queueMicrotask(() => this.notifyOverflow());
  }

  private notifyOverflow(): void {
    if (this.overflowed.length === 0) return;
    const events = this.overflowed;
    this.overflowed = [];
    this.hooks.drop(events, 'overflow');
  }

  private drop(events: readonly QueuedEvent[], reason: DropReason): void {
    this.counters.dropped[reason] += events.length;
    this.store.settle(events, 'dropped');
    this.waiters.settle(events);
    // Overflow drops of this turn go first, so onDrop sees drops in the order they happened.
    this.notifyOverflow();
    this.hooks.drop(events, reason);
  }

  /**
   * Shutdown with a durable store: the events' rows stay for the next process, which resends them
   * with their identifiers, so they are neither dropped nor told to onDrop. Otherwise they are
   * dropped as `shutdown`.
   */
  private keepOrDrop(events: readonly QueuedEvent[]): void {
    if (!this.store.durable) {
      this.drop(events, 'shutdown');
      return;
    }
    this.counters.kept += events.length;
    this.waiters.settle(events);
  }

  private fail(events: readonly QueuedEvent[], cause: unknown, attempts: number): void {
    this.counters.failed += events.length;
    this.store.settle(events, 'failed');
    this.waiters.settle(events);
    const permanent = !isRetriable(cause);
    const reason = cause instanceof Error ? cause.message : String(cause);
    const error = new MeterDeliveryError(
      `${events.length} meter event(s) not delivered after ${attempts} attempt(s)${permanent ? ' (refused by Stripe)' : ''}: ${reason}`,
      attempts,
      permanent,
      cause,
    );
    this.hooks.error(error, events);
  }

  /**
   * Events not sent again because a request that may have reached Stripe carried them too long ago
   * (a hold at the credential breaker outlasted Stripe's duplicate window): billed or not, nobody knows.
   */
  private failUncertain(events: readonly QueuedEvent[], here: number | undefined): void {
    if (events.length === 0) return;
    this.counters.failed += events.length;
    this.store.settle(events, 'uncertain');
    this.waiters.settle(events);
    const deliveries = events.map((event) => ({ identifier: event.identifier, firstAttemptAt: this.firstAttempts.get(event) ?? here ?? 0 }));
    this.hooks.error(new MeterUncertainError(deliveries, "were first sent longer ago than Stripe's duplicate window allows resending"), events);
  }

  // ---- scheduling ----

  private onFlushInterval(): void {
    if (this.queuedCount() === 0) return;
    this.drainRequested = true;
    this.pump();
  }

  private pump(): void {
    while (this.deliveries.size < this.config.concurrency && !this.abortController.signal.aborted) {
      const batch = this.nextBatch();
      if (batch === undefined) break;
      this.inFlight += batch.length;
      const delivery = this.deliver(batch).finally(() => {
        this.deliveries.delete(delivery);
        this.locks?.release(batch[0]!);
        this.pump();
      });
      this.deliveries.add(delivery);
    }
  }

  private nextBatch(): QueuedEvent[] | undefined {
    if (this.locks) {
      const event = this.locks.next(this.store);
      return event === undefined ? undefined : [event];
    }
    const size = this.store.size;
    if (size === 0) {
      this.drainRequested = false;
      return undefined;
    }
    if (size < this.config.maxBatchSize && !this.drainRequested) return undefined;
    const taken = this.store.take(this.config.maxBatchSize);
    // A store of the user's own that failed hands out nothing (GuardedStore): the next flush interval asks again.
    return taken.length === 0 ? undefined : this.oneAccount(taken);
  }

  /**
   * A batch of one account only: events of other connected accounts go back to the head of the
   * store, in order, for the next batches (one account's session and Stripe-Context per request).
   */
  private oneAccount(batch: QueuedEvent[]): QueuedEvent[] {
    const account = batch[0]?.account;
    if (batch.every((event) => event.account === account)) return batch;
    const now = batch.filter((event) => event.account === account);
    this.store.unshift(batch.filter((event) => event.account !== account));
    return now;
  }

  // ---- sending ----

  /** `sentSince`: when a request of this process that may have reached Stripe first carried these events (a stale batch's remainder). */
  private async deliver(batch: QueuedEvent[], sentSince?: number): Promise<void> {
    const idempotencyKey = newIdempotencyKey();
    const startedAt = Date.now();
    let live = batch;
    let sentAt = sentSince;
    for (const event of batch) {
      const at = this.firstAttempts.get(event);
      if (at !== undefined && (sentAt === undefined || at < sentAt)) sentAt = at;
    }
    const outcome = await this.retryLoop.run(async () => {
      live = this.withoutExpired(live);
      if (live.length === 0) return;
      const attempting = live;
      // On disk before the request that carries them can reach Stripe: a later process knows the outcome may be unknown.
      await this.transport!.send(attempting, idempotencyKey, this.abortController.signal, () => this.store.markAttempted(attempting, Date.now()));
    }, true, sentAt);
    if (live.length === 0) return;
    if (!outcome.ok && outcome.stale !== undefined) {
      // Only events whose own first send is too old are uncertain: a batch also carries recovered events
      // never sent, or sent lately, and events reported since; those go again, with the time this run first sent them.
      const here = outcome.stale.here ?? sentSince;
      const tooOld = Date.now() - this.retryLoop.resendLimitMs;
      const stale: QueuedEvent[] = [];
      const rest: QueuedEvent[] = [];
      for (const event of live) ((this.firstAttempts.get(event) ?? here ?? Infinity) <= tooOld ? stale : rest).push(event);
      this.inFlight -= stale.length;
      this.failUncertain(stale, here);
      if (rest.length > 0) await this.deliver(rest, here);
      return;
    }
    if (!outcome.ok && !outcome.aborted && live.length > 1 && refusesWholeBatch(outcome.error)) {
      // Stripe refused the whole request without naming an event (a body over its size limit, one
      // malformed event): each half goes again with the same identifiers, under its own
      // Idempotency-Key as its body differs, until the refused events are alone and the rest delivered.
      const middle = Math.ceil(live.length / 2);
      this.hooks.logger.debug?.({ code: 'METER_BATCH_SPLIT', events: live.length }, 'Stripe refused a whole batch; resending it in halves');
      await this.deliver(live.slice(0, middle));
      await this.deliver(live.slice(middle));
      return;
    }
    // Counted out of flight before settling, so stats() adds up even for a flush() that resolves right here.
    this.inFlight -= live.length;
    if (outcome.ok) {
      this.counters.delivered += live.length;
      this.counters.batchesSent += 1;
      this.parts.onBatchDelivered?.(Date.now() - startedAt);
      this.store.settle(live, 'delivered');
      this.waiters.settle(live);
    } else if (outcome.aborted) {
      this.keepOrDrop(live);
    } else {
      this.fail(live, outcome.error, outcome.attempts);
    }
  }

  private withoutExpired(batch: QueuedEvent[]): QueuedEvent[] {
    const oldest = Date.now() - MAX_EVENT_AGE_MS + EXPIRY_MARGIN_MS;
    if (batch.every((event) => event.timestamp >= oldest)) return batch;
    const expired = batch.filter((event) => event.timestamp < oldest);
    this.inFlight -= expired.length;
    this.drop(expired, 'expired');
    return batch.filter((event) => event.timestamp >= oldest);
  }

  // ---- lifecycle ----

  // A script that ends without close(): its event loop empties and 'beforeExit' fires. A bounded
  // flush holds the process for delivery; what is still pending after it goes through close():
  // to onDrop as 'shutdown', or, with a durable store, left on disk for the next start. Nothing
  // pending, nothing done, so the process exits on the next turn.
  private flushBeforeExit(): void {
    if (this.closed || this.exitFlush !== undefined || this.pendingCount() === 0) return;
    this.exitFlush = this.flush(DEFAULT_CLOSE_TIMEOUT_MS)
      .then(async ({ settled }) => {
        if (!settled) await this.close(0);
      })
      .finally(() => {
        this.exitFlush = undefined;
      });
  }

  private async shutdown(timeoutMs: number): Promise<CloseResult> {
    unwatchExit(this.beforeExit);
    const counters = this.counters;
    const before = { delivered: counters.delivered, failed: counters.failed, shutdown: counters.dropped.shutdown, kept: counters.kept };
    await this.flush(timeoutMs);

    // Whatever is left is stopped: in-flight requests are aborted, queued events dropped (or kept on disk).
    this.abortController.abort();
    const leftovers = [...this.store.drain(), ...(this.locks?.drain() ?? [])];
    if (leftovers.length > 0) this.keepOrDrop(leftovers);
    await Promise.allSettled([...this.deliveries]);
    this.notifyOverflow();
    // Everything is settled by now; any flush still waiting (one that raced the timeout) resolves with it.
    this.waiters.finishAll();
    clearInterval(this.flushTimer);
    await this.parts.closeTransport();
    this.closeStore();
    const result: CloseResult = {
      delivered: counters.delivered - before.delivered,
      failed: counters.failed - before.failed,
      dropped: counters.dropped.shutdown - before.shutdown,
      kept: counters.kept - before.kept,
    };
    this.hooks.logger.info?.({ code: 'METER_CLOSED', ...result }, 'meter reporter closed');
    return result;
  }

  // A store of the user's own may throw; close() still resolves, and the failure goes to onError.
  private closeStore(): void {
    try {
      this.store.close();
    } catch (error) {
      this.hooks.error(error instanceof MeterError ? error : new MeterDeliveryError('The event store could not be closed', 0, false, error));
    }
  }
}
