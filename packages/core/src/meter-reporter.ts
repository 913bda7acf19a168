// MeterReporter: takes usage events synchronously and delivers them to Stripe in the background.
import { setMaxListeners } from 'node:events';
import { inspect } from 'node:util';
import { CredentialBreaker } from './breaker';
import { DEFAULT_CLOSE_TIMEOUT_MS, DEFAULT_FLUSH_TIMEOUT_MS, MAX_RETRY_ELAPSED_MS, resolveConfig } from './config';
import type { ResolvedConfig } from './config';
import { DirectTransport } from './direct-transport';
import { MeterClosedError, MeterConfigError, MeterDeliveryError, MeterError, MeterQueueFullError, MeterUnauthorizedError, MeterValidationError, StripeApiError } from './errors';
import { unwatchExit, watchExit } from './exit-hook';
import { StripeHttp } from './http';
import type { HttpObserver } from './http-observer';
import { generateIdentifier, newIdempotencyKey } from './identifier';
import { defaultLogger } from './logger';
import { Pacer } from './pacer';
import { MemoryEventStore } from './queue';
import type { EventStore, QueuedEvent } from './queue';
import { backoffDelay, classifyFailure, isKeyRefused, isRetriable, retryAfterMs } from './retry';
import { StreamTransport } from './stream-transport';
import { cancellableSleep, sleep } from './timers';
import type { Transport } from './transport';
import type {
  CloseOptions,
  CloseResult,
  DropReason,
  FlushOptions,
  FlushResult,
  MeterEvent,
  MeterEventAdjustment,
  MeterEventInput,
  MeterLogger,
  MeterReporterOptions,
  MeterStats,
} from './types';
import { MAX_EVENT_AGE_MS, checkCustomerId, checkDimensions, checkEventName, checkIdentifier, normalizeTimestamp, normalizeValue } from './validate';

const ADJUSTMENTS_PATH = '/v2/billing/meter_event_adjustments';
/** An event closer than this to Stripe's 35-day limit is dropped as expired rather than sent to be refused. */
const EXPIRY_MARGIN_MS = 60_000;
/** Drop warnings are logged at most this often (an outage can drop many events a second). */
const DROP_LOG_INTERVAL_MS = 10_000;
/**
 * A batch answered 429 is retried at least this long: a rate limit means Stripe is up and taking
 * events, so giving up would turn throttling into lost usage. An hour short of Stripe's 24 h
 * deduplication window, so every retry is still deduplicated.
 */
const RATE_LIMITED_RETRY_MS = MAX_RETRY_ELAPSED_MS - 3_600_000;

interface FlushWaiter {
  /** The last intake sequence number the flush waits for. */
  readonly target: number;
  /** Events with `seq <= target` not yet settled. */
  remaining: number;
  /** Settles the flush: `true` when every event it waited for settled. */
  readonly finish: (settled: boolean) => void;
}

type Outcome<T> = { ok: true; value: T } | { ok: false; error: unknown; attempts: number; aborted: boolean };

let productionTestKeyWarned = false;

/** Stripe refused a whole request without naming an event: worth resending in halves. */
function refusesWholeBatch(error: unknown): boolean {
  return error instanceof StripeApiError && (error.status === 400 || error.status === 413) && classifyFailure(error) === 'final';
}

/** A `timeoutMs` option of `flush()` or `close()`: milliseconds of 0 or more, any length; the error to reject with otherwise. */
function checkTimeout(value: unknown, fallback: number): number | MeterConfigError {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    return new MeterConfigError('timeoutMs', `must be a number of milliseconds of 0 or more, got ${typeof value === 'number' ? String(value) : typeof value}`);
  }
  return value;
}

/**
 * Delivers usage events to Stripe's V2 billing meter event API. `report()` is synchronous and never
 * touches the network; events are batched, paced under Stripe's rate limit, retried with the same
 * identifiers, and handed to `onError`/`onDrop` when they cannot be delivered.
 *
 * @example
 * const reporter = new MeterReporter({ apiKey: process.env.STRIPE_SECRET_KEY! });
 * reporter.report({ eventName: 'api_requests', customerId: 'cus_123' });
 * await reporter.close();
 */
export class MeterReporter {
  // Private fields: the API key and the session token are out of reach of util.inspect, console.log and JSON.
  readonly #config: ResolvedConfig;
  readonly #http: StripeHttp;
  readonly #transport: Transport;
  readonly #streamTransport: StreamTransport | undefined;
  private readonly logger: MeterLogger;
  private readonly store: EventStore = new MemoryEventStore();
  private readonly pacer: Pacer;
  private readonly breaker = new CredentialBreaker();
  private readonly abortController = new AbortController();
  private readonly flushTimer: NodeJS.Timeout;

  // Counters behind stats().
  private enqueued = 0;
  private delivered = 0;
  private failed = 0;
  private readonly dropped: Record<DropReason, number> = { overflow: 0, shutdown: 0, expired: 0 };
  private rejected = 0;
  private requests = 0;
  private batchesSent = 0;
  private retries = 0;
  private rateLimited = 0;
  private sessionRefreshes = 0;

  private seq = 0;
  private inFlight = 0;
  private readonly deliveries = new Set<Promise<void>>();
  // Direct mode: keys with a request in flight, events waiting for their key, events whose key is reserved for them.
  private readonly busyKeys = new Set<string>();
  private readonly waiting = new Map<string, QueuedEvent[]>();
  private waitingCount = 0;
  private readonly ready: QueuedEvent[] = [];

  private drainRequested = false;
  private pumpScheduled = false;
  private readonly flushWaiters: FlushWaiter[] = [];
  private keepAlive: NodeJS.Timeout | undefined;
  private closed = false;
  private closing: Promise<CloseResult> | undefined;
  private lastDropLog = 0;
  private dropsSinceLog = 0;
  // Overflow drops of one turn, handed to onDrop in one call.
  private overflowed: QueuedEvent[] = [];
  private exitFlush: Promise<void> | undefined;
  private readonly beforeExit = (): void => this.flushBeforeExit();

  constructor(options: MeterReporterOptions) {
    this.#config = resolveConfig(options);
    // Every request and every wait listens to this one signal: concurrency × (pacing + request + backoff).
    setMaxListeners(0, this.abortController.signal);
    this.logger = this.#config.logger ?? defaultLogger;
    this.pacer = new Pacer(this.#config.maxRequestsPerSecond);
    const observer: HttpObserver = {
      beforeRequest: async (signal) => {
        await this.pacer.acquire(signal);
        this.requests += 1;
      },
      afterResponse: (status, retryAfterSeconds) => {
        if (status !== 429) return;
        this.rateLimited += 1;
        // Stripe's limits are account-wide: one 429 with Retry-After holds every request, not just this one.
        const pause = retryAfterMs(retryAfterSeconds);
        if (pause !== undefined) this.pacer.pauseUntil(Date.now() + pause);
      },
    };
    this.#http = new StripeHttp(this.#config, observer);
    if (this.#config.mode === 'stream') {
      this.#streamTransport = new StreamTransport(this.#config, this.#http, () => {
        this.sessionRefreshes += 1;
      });
      this.#transport = this.#streamTransport;
    } else {
      this.#transport = new DirectTransport(this.#config, this.#http);
    }
    this.flushTimer = setInterval(() => this.onFlushInterval(), this.#config.flushIntervalMs);
    this.flushTimer.unref();
    watchExit(this.beforeExit);
    this.warnOnSuspiciousConfig();
  }

  /**
   * Validates one usage event and queues it for delivery. Synchronous and O(1): it never touches
   * the network. Returns the event's identifier (given or generated), fixed for every retry.
   * Throws `MeterValidationError` (bad input), `MeterQueueFullError` (`overflow: 'reject'`) or
   * `MeterClosedError`; nothing is enqueued then.
   */
  report(input: MeterEventInput): string {
    if (this.closed) {
      this.rejected += 1;
      throw new MeterClosedError();
    }
    let event: QueuedEvent;
    try {
      if (input === null || typeof input !== 'object') {
        throw new MeterValidationError('ERR_METER_INVALID_EVENT', 'event', 'must be an object with eventName and customerId');
      }
      event = {
        eventName: checkEventName(input.eventName),
        customerId: checkCustomerId(input.customerId),
        value: normalizeValue(input.value),
        timestamp: normalizeTimestamp(input.timestamp, Date.now()),
        identifier: input.identifier === undefined ? generateIdentifier() : checkIdentifier(input.identifier),
        dimensions: checkDimensions(input.dimensions, this.#config.customerKey, this.#config.valueKey),
        seq: this.seq + 1,
      };
    } catch (error) {
      this.rejected += 1;
      throw error;
    }

    if (this.queuedCount() >= this.#config.maxQueueSize) {
      if (this.#config.overflow === 'reject') {
        this.rejected += 1;
        throw new MeterQueueFullError(this.#config.maxQueueSize);
      }
      this.seq += 1;
      this.enqueued += 1;
      if (this.#config.overflow === 'drop-newest') {
        this.dropOverflow(event);
        return event.identifier;
      }
      const oldest = this.store.shift();
      if (oldest !== undefined) this.dropOverflow(oldest);
    } else {
      this.seq += 1;
      this.enqueued += 1;
    }
    this.store.push(event);
    if (this.store.size >= this.#config.maxBatchSize) this.schedulePump();
    return event.identifier;
  }

  /**
   * Resolves once every event reported before this call is delivered, failed or dropped, or once
   * `timeoutMs` (default 60 s) has passed: `settled` says which, `pending` how many of those events
   * are left. Events left pending stay queued and keep being retried; nothing is dropped. While
   * awaited, it keeps the process alive. Rejects with `MeterConfigError` for a bad `timeoutMs`.
   */
  flush(options: FlushOptions = {}): Promise<FlushResult> {
    const timeoutMs = checkTimeout(options?.timeoutMs, DEFAULT_FLUSH_TIMEOUT_MS);
    if (timeoutMs instanceof MeterConfigError) return Promise.reject(timeoutMs);
    const remaining = this.pendingCount();
    if (remaining === 0) return Promise.resolve({ settled: true, pending: 0 });
    return new Promise<FlushResult>((resolve) => {
      const timer = cancellableSleep(timeoutMs);
      let done = false;
      const waiter: FlushWaiter = {
        target: this.seq,
        remaining,
        finish: (settled) => {
          if (done) return;
          done = true;
          timer.cancel();
          resolve({ settled, pending: settled ? 0 : waiter.remaining });
        },
      };
      void timer.done.then(() => {
        if (done) return;
        const index = this.flushWaiters.indexOf(waiter);
        if (index >= 0) this.flushWaiters.splice(index, 1);
        waiter.finish(false);
        this.releaseProcess();
      });
      this.flushWaiters.push(waiter);
      this.holdProcessOpen();
      this.drainRequested = true;
      this.pump();
    });
  }

  /**
   * Stops intake, delivers what is pending for up to `timeoutMs`, then hands the rest to `onDrop`
   * with reason `shutdown` (identifiers kept: re-reporting them can never bill twice). Idempotent.
   * A bad `timeoutMs` rejects with `MeterConfigError` and changes nothing: a later `close()` works.
   */
  close(options: CloseOptions = {}): Promise<CloseResult> {
    const timeoutMs = checkTimeout(options?.timeoutMs, DEFAULT_CLOSE_TIMEOUT_MS);
    if (timeoutMs instanceof MeterConfigError) return Promise.reject(timeoutMs);
    this.closing ??= this.shutdown(timeoutMs);
    return this.closing;
  }

  /** Counters; `enqueued = delivered + failed + dropped.total + pending` holds at every moment. */
  stats(): MeterStats {
    const queued = this.queuedCount();
    return {
      enqueued: this.enqueued,
      delivered: this.delivered,
      failed: this.failed,
      dropped: { total: this.dropped.overflow + this.dropped.shutdown + this.dropped.expired, ...this.dropped },
      pending: queued + this.inFlight,
      queued,
      inFlight: this.inFlight,
      rejected: this.rejected,
      requests: this.requests,
      batchesSent: this.batchesSent,
      retries: this.retries,
      rateLimited: this.rateLimited,
      sessionRefreshes: this.sessionRefreshes,
    };
  }

  /**
   * Cancels a delivered event through `meter_event_adjustments` (within 24 h of Stripe receiving
   * it). Paced and retried like every request; rejects with the last error when it cannot succeed.
   */
  async cancel(input: { eventName: string; identifier: string }): Promise<MeterEventAdjustment> {
    if (this.closed) throw new MeterClosedError();
    // With the key refused, a cancellation fails at once instead of waiting for the breaker's probes.
    if (this.breaker.isOpen) throw new MeterUnauthorizedError(401, undefined);
    const body = { event_name: checkEventName(input?.eventName), type: 'cancel', cancel: { identifier: checkIdentifier(input?.identifier) } };
    const idempotencyKey = newIdempotencyKey();
    const outcome = await this.withRetries(async () => {
      try {
        return await this.#http.post(this.#config.apiOrigin, ADJUSTMENTS_PATH, { bearer: this.#config.apiKey, body, idempotencyKey, signal: this.abortController.signal });
      } catch (error) {
        throw isKeyRefused(error) ? new MeterUnauthorizedError(error.status, error) : error;
      }
    }, false);
    if (outcome.ok) return outcome.value as MeterEventAdjustment;
    throw outcome.error instanceof MeterError ? outcome.error : new MeterDeliveryError(`The cancellation could not be sent after ${outcome.attempts} attempt(s)`, outcome.attempts, !isRetriable(outcome.error), outcome.error);
  }

  /**
   * Reports a failure that belongs to no delivery (a framework adapter's customer resolver threw)
   * through `onError`, or the logger without one. Never throws.
   */
  handleError(error: MeterError, events: readonly MeterEvent[] = []): void {
    this.callHook('onError', () => {
      if (this.#config.onError) this.#config.onError(error, events);
      else this.logger.error({ code: error.code, events: events.length, err: { name: error.name, message: error.message } }, error.message);
    });
  }

  /** The reporter's logger (the one given, or the default), for adapters that log through it. */
  get log(): MeterLogger {
    return this.logger;
  }

  /** What `console.log(reporter)` shows: the mode and the counters, never a key or a token. */
  [inspect.custom](): object {
    return { mode: this.#config.mode, closed: this.closed, stats: this.stats() };
  }

  /** What `JSON.stringify(reporter)` writes: the same safe summary. */
  toJSON(): object {
    return this[inspect.custom]();
  }

  // ---- intake bookkeeping ----

  private queuedCount(): number {
    return this.store.size + this.waitingCount + this.ready.length;
  }

  private pendingCount(): number {
    return this.queuedCount() + this.inFlight;
  }

  /** Settles events for every flush waiting on them. */
  private settle(events: readonly QueuedEvent[]): void {
    if (this.flushWaiters.length === 0) return;
    for (let i = this.flushWaiters.length - 1; i >= 0; i -= 1) {
      const waiter = this.flushWaiters[i]!;
      for (const event of events) if (event.seq <= waiter.target) waiter.remaining -= 1;
      if (waiter.remaining <= 0) {
        this.flushWaiters.splice(i, 1);
        waiter.finish(true);
      }
    }
    if (this.flushWaiters.length === 0) this.releaseProcess();
  }

  // Counted at once (stats() adds up), told to onDrop once per turn: an outage overflowing a full
  // queue drops an event per report() call, and one hook call each was 899,600 calls in one run.
  private dropOverflow(event: QueuedEvent): void {
    this.dropped.overflow += 1;
    this.settle([event]);
    this.overflowed.push(event);
    if (this.overflowed.length === 1) queueMicrotask(() => this.notifyOverflow());
  }

  private notifyOverflow(): void {
    if (this.overflowed.length === 0) return;
    const events = this.overflowed;
    this.overflowed = [];
    this.notifyDrop(events, 'overflow');
  }

  private drop(events: readonly QueuedEvent[], reason: DropReason): void {
    this.dropped[reason] += events.length;
    this.settle(events);
    // Overflow drops of this turn go first, so onDrop sees drops in the order they happened.
    this.notifyOverflow();
    this.notifyDrop(events, reason);
  }

  private notifyDrop(events: readonly QueuedEvent[], reason: DropReason): void {
    this.callHook('onDrop', () => {
      if (this.#config.onDrop) {
        this.#config.onDrop(events, reason);
        return;
      }
      this.dropsSinceLog += events.length;
      const now = Date.now();
      if (reason === 'overflow' && now - this.lastDropLog < DROP_LOG_INTERVAL_MS) return;
      this.logger.warn({ code: 'WARN_METER_EVENTS_DROPPED', reason, count: this.dropsSinceLog }, `${this.dropsSinceLog} meter event(s) dropped undelivered (${reason})`);
      this.lastDropLog = now;
      this.dropsSinceLog = 0;
    });
  }

  // A user's hook that throws must not break delivery; its failure is logged instead.
  private callHook(name: string, fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.logger.error({ code: 'ERR_METER_HOOK_THREW', hook: name, err: error instanceof Error ? { name: error.name, message: error.message } : String(error) }, `${name} threw`);
    }
  }

  // ---- scheduling ----

  private onFlushInterval(): void {
    if (this.queuedCount() === 0) return;
    this.drainRequested = true;
    this.pump();
  }

  // report() only schedules: the first request of a batch starts outside the caller's stack.
  private schedulePump(): void {
    if (this.pumpScheduled || this.inFlightRequests() >= this.#config.concurrency) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    }).unref();
  }

  private inFlightRequests(): number {
    return this.deliveries.size;
  }

  private pump(): void {
    while (this.deliveries.size < this.#config.concurrency && !this.abortController.signal.aborted) {
      const batch = this.nextBatch();
      if (batch === undefined) break;
      this.inFlight += batch.length;
      const delivery = this.deliver(batch).finally(() => {
        this.deliveries.delete(delivery);
        if (this.#transport.exclusiveKey) this.releaseKey(this.#transport.exclusiveKey(batch[0]!));
        this.pump();
      });
      this.deliveries.add(delivery);
    }
  }

  private nextBatch(): QueuedEvent[] | undefined {
    if (this.#transport.exclusiveKey) return this.nextExclusive(this.#transport.exclusiveKey.bind(this.#transport));
    const size = this.store.size;
    if (size === 0) {
      this.drainRequested = false;
      return undefined;
    }
    if (size < this.#config.maxBatchSize && !this.drainRequested) return undefined;
    return this.store.take(this.#config.maxBatchSize);
  }

  // Direct mode: the next event whose customer+meter has nothing in flight; others wait for their key.
  private nextExclusive(keyOf: (event: QueuedEvent) => string): QueuedEvent[] | undefined {
    const reserved = this.ready.shift();
    if (reserved !== undefined) return [reserved];
    for (let event = this.store.shift(); event !== undefined; event = this.store.shift()) {
      const key = keyOf(event);
      if (!this.busyKeys.has(key)) {
        this.busyKeys.add(key);
        return [event];
      }
      const queue = this.waiting.get(key);
      if (queue) queue.push(event);
      else this.waiting.set(key, [event]);
      this.waitingCount += 1;
    }
    return undefined;
  }

  private releaseKey(key: string): void {
    const queue = this.waiting.get(key);
    const next = queue?.shift();
    if (next === undefined) {
      this.busyKeys.delete(key);
      return;
    }
    this.waitingCount -= 1;
    if (queue!.length === 0) this.waiting.delete(key);
    // The key stays busy, reserved for the next event of the same customer and meter.
    this.ready.push(next);
  }

  // ---- delivery ----

  private async deliver(batch: QueuedEvent[]): Promise<void> {
    const idempotencyKey = newIdempotencyKey();
    let live = batch;
    const outcome = await this.withRetries(async () => {
      live = this.withoutExpired(live);
      if (live.length > 0) await this.#transport.send(live, idempotencyKey, this.abortController.signal);
    });
    if (live.length === 0) return;
    if (!outcome.ok && !outcome.aborted && live.length > 1 && refusesWholeBatch(outcome.error)) {
      // Stripe refused the whole request without naming an event (a body over its size limit, one
      // malformed event): each half goes again with the same identifiers, under its own
      // Idempotency-Key as its body differs, until the refused events are alone and the rest delivered.
      const middle = Math.ceil(live.length / 2);
      this.logger.debug?.({ code: 'METER_BATCH_SPLIT', events: live.length }, 'Stripe refused a whole batch; resending it in halves');
      await this.deliver(live.slice(0, middle));
      await this.deliver(live.slice(middle));
      return;
    }
    // Counted out of flight before settling, so stats() adds up even for a flush() that resolves right here.
    this.inFlight -= live.length;
    if (outcome.ok) {
      this.delivered += live.length;
      this.batchesSent += 1;
      this.settle(live);
    } else if (outcome.aborted) {
      this.drop(live, 'shutdown');
    } else {
      this.fail(live, outcome.error, outcome.attempts);
    }
  }

  /**
   * Runs `attempt` under the retry policy: transient failures are retried for as long as the time
   * budget allows (a count of attempts would turn a short outage into dead letters), only answers
   * retriable by Stripe's say-so count against `maxAttempts`, Retry-After is honoured up to its cap,
   * and a refused key holds the attempt at the credential breaker (`holdOnRefusedKey`) or ends it.
   */
  private async withRetries<T>(attempt: () => Promise<T>, holdOnRefusedKey = true): Promise<Outcome<T>> {
    const { maxAttempts, initialDelayMs, maxDelayMs, maxElapsedMs } = this.#config.retry;
    const signal = this.abortController.signal;
    const started = Date.now();
    let backoffs = 0;
    let counted = 0;
    for (let attempts = 1; ; attempts += 1) {
      let probe = false;
      try {
        if (this.breaker.isOpen) probe = await this.breaker.turn(signal);
        const value = await attempt();
        this.breaker.succeeded();
        return { ok: true, value };
      } catch (error) {
        if (signal.aborted) return { ok: false, error, attempts, aborted: true };
        const kind = classifyFailure(error);
        if (kind === 'unauthorized') {
          // onError hears of it once per opening, with no events: they stay queued for when the key works.
          if (this.breaker.refused(probe)) this.handleError(error as MeterUnauthorizedError);
          if (!holdOnRefusedKey) return { ok: false, error, attempts, aborted: false };
          this.retries += 1;
          continue;
        }
        if (probe) this.breaker.probeFailed();
        if (kind === 'final') return { ok: false, error, attempts, aborted: false };
        if (kind === 'retriable' && (counted += 1) >= maxAttempts) return { ok: false, error, attempts, aborted: false };
        backoffs += 1;
        let wait = backoffDelay(backoffs, initialDelayMs, maxDelayMs);
        const rateLimited = error instanceof StripeApiError && error.status === 429;
        const asked = error instanceof StripeApiError ? retryAfterMs(error.retryAfterSeconds) : undefined;
        if (asked !== undefined) wait = Math.max(wait, asked);
        const budget = rateLimited ? Math.max(maxElapsedMs, RATE_LIMITED_RETRY_MS) : maxElapsedMs;
        if (Date.now() - started + wait >= budget) return { ok: false, error, attempts, aborted: false };
        this.retries += 1;
        this.logger.debug?.({ code: 'METER_RETRY', attempt: attempts, waitMs: wait, status: error instanceof StripeApiError ? error.status : undefined }, 'retrying a request to Stripe');
        try {
          await sleep(wait, signal);
        } catch {
          return { ok: false, error, attempts, aborted: true };
        }
      }
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

  private fail(events: readonly QueuedEvent[], cause: unknown, attempts: number): void {
    this.failed += events.length;
    this.settle(events);
    const permanent = !isRetriable(cause);
    const reason = cause instanceof Error ? cause.message : String(cause);
    const error = new MeterDeliveryError(
      `${events.length} meter event(s) not delivered after ${attempts} attempt(s)${permanent ? ' (refused by Stripe)' : ''}: ${reason}`,
      attempts,
      permanent,
      cause,
    );
    this.handleError(error, events);
  }

  // ---- lifecycle ----

  // Timers are unref'd so an idle reporter never keeps a process alive; while someone awaits a
  // flush or close, one ref'd handle keeps the process up until the promise settles.
  private holdProcessOpen(): void {
    this.keepAlive ??= setInterval(() => undefined, 1 << 30);
  }

  private releaseProcess(): void {
    if (this.keepAlive !== undefined && this.flushWaiters.length === 0) {
      clearInterval(this.keepAlive);
      this.keepAlive = undefined;
    }
  }

  // A script that ends without close(): its event loop empties and 'beforeExit' fires. A bounded
  // flush holds the process for delivery; what is still pending after it goes to onDrop as
  // 'shutdown' through close(). Nothing pending, nothing done, so the process exits on the next turn.
  private flushBeforeExit(): void {
    if (this.closed || this.exitFlush !== undefined || this.pendingCount() === 0) return;
    this.exitFlush = this.flush({ timeoutMs: DEFAULT_CLOSE_TIMEOUT_MS })
      .then(async ({ settled }) => {
        if (!settled) await this.close({ timeoutMs: 0 });
      })
      .finally(() => {
        this.exitFlush = undefined;
      });
  }

  private async shutdown(timeoutMs: number): Promise<CloseResult> {
    this.closed = true;
    unwatchExit(this.beforeExit);
    const before = { delivered: this.delivered, failed: this.failed, shutdown: this.dropped.shutdown };
    await this.flush({ timeoutMs });

    // Whatever is left is stopped: in-flight requests are aborted, queued events dropped.
    this.abortController.abort();
    const leftovers = [...this.store.drain(), ...this.ready.splice(0), ...[...this.waiting.values()].flat()];
    this.waiting.clear();
    this.waitingCount = 0;
    if (leftovers.length > 0) this.drop(leftovers, 'shutdown');
    await Promise.allSettled([...this.deliveries]);
    this.notifyOverflow();
    // Everything is settled by now; any flush still waiting (one that raced the timeout) resolves with it.
    for (const waiter of this.flushWaiters.splice(0)) waiter.finish(true);
    clearInterval(this.flushTimer);
    this.#streamTransport?.dispose();
    await this.#http.close();
    this.releaseProcess();
    const result: CloseResult = {
      delivered: this.delivered - before.delivered,
      failed: this.failed - before.failed,
      dropped: this.dropped.shutdown - before.shutdown,
    };
    this.logger.info?.({ code: 'METER_CLOSED', ...result }, 'meter reporter closed');
    return result;
  }

  private warnOnSuspiciousConfig(): void {
    if (!this.#config.livemode && process.env.NODE_ENV === 'production' && !productionTestKeyWarned) {
      productionTestKeyWarned = true;
      this.logger.warn({ code: 'WARN_METER_TEST_KEY_IN_PRODUCTION' }, 'A test-mode Stripe key is used with NODE_ENV=production: usage goes to the sandbox, not to live invoices');
    }
  }
}
