// MeterReporter, the public face: wires intake, store, delivery and transport, and checks the arguments of its calls.
import { inspect } from 'node:util';
import { DEFAULT_CLOSE_TIMEOUT_MS, DEFAULT_FLUSH_TIMEOUT_MS, resolveConfig } from './config';
import type { ResolvedConfig } from './config';
import { Aggregator } from './aggregate/aggregator';
import { Counters } from './delivery/counters';
import { Delivery } from './delivery/delivery';
import { unwatchExit, watchExit } from './delivery/exit-hook';
import { Hooks } from './delivery/hooks';
import { isKeyRefused, isRetriable } from './delivery/retry';
import { MeterAdapterError, MeterClosedError, MeterConfigError, MeterDeliveryError, MeterError, MeterUnauthorizedError, MeterValidationError } from './errors';
import { isFoldIdentifier, newIdempotencyKey } from './identifier';
import { Intake } from './intake/intake';
import { checkEventName, checkIdentifier } from './intake/validate';
import { defaultLogger } from './logger';
import { ReporterMetrics } from './metrics/metrics';
import { GuardedStore } from './store/guarded-store';
import { MemoryDurableStore } from './store/memory-store';
import { openSpoolOrMemory } from './store/spool-store';
import type { DurableEventStore, LedgerQuery, LedgerRow } from './store/types';
import { DirectTransport } from './transport/direct-transport';
import { MAX_RESPONSE_BYTES, StripeHttp, agentOptions } from './transport/http';
import { StreamTransport } from './transport/stream-transport';
import type { Transport } from './transport/transport';
import { WorkerDispatcher } from './transport/worker-dispatcher';
import { RecentEvents } from './verdict/recent-events';
import { verifyMeters } from './verdict/verify-meters';
import type { RecentEvent, VerifyMetersOptions, VerifyMetersResult } from './verdict/types';
import type {
  CloseOptions,
  CloseResult,
  FlushOptions,
  FlushResult,
  MeterEvent,
  MeterEventAdjustment,
  MeterEventInput,
  MeterLogger,
  MeterReporterOptions,
  MeterStats,
} from './types';

const ADJUSTMENTS_PATH = '/v2/billing/meter_event_adjustments';

let productionTestKeyWarned = false;

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
  readonly #delivery: Delivery;
  readonly #intake: Intake;
  readonly #counters = new Counters();
  readonly #hooks: Hooks;
  readonly #store: DurableEventStore;
  /**
   * Whether the store writes rows that outlive the process (a spool, a store of the user's own), decided
   * once: a spool that is failing for now still commits the rows it holds once it recovers, so it refuses
   * what its rows cannot carry (an account) all along, not only while it is writing.
   */
  readonly #keepsRows: boolean;
  // Only once a meter error webhook is attached (rememberIdentifiers()): otherwise report() pays nothing for it.
  #recent: RecentEvents | undefined;
  readonly #aggregator: Aggregator | undefined;
  readonly #metrics: ReporterMetrics;
  // A turn's reports share one waitUntil promise: one flush per turn, not one per event.
  #waitUntilTurn = false;
  // An aggregating script that never calls close(): its open folds are queued and delivered before it exits.
  readonly #closeFoldsBeforeExit = (): void => {
    if ((this.#aggregator?.openCount ?? 0) === 0 || this.#delivery.closed) return;
    void this.flush();
  };

  constructor(options: MeterReporterOptions) {
    this.#config = resolveConfig(options);
    this.#hooks = new Hooks(this.#config, this.#config.logger ?? defaultLogger);
    const { spool, store } = this.#config;
    // A spool that cannot be opened is told to onError here and replaced by memory; only a missing
    // better-sqlite3 or a bad spool option throws, as a deployment mistake is not a condition to run through.
    const memory = { ledgerRetentionMs: this.#config.ledgerRetentionMs };
    // A store given in options is guarded: what it throws goes to onError, never into delivery's turns.
    this.#store = store !== undefined ? new GuardedStore(store, (error) => this.#hooks.error(error)) : spool ? openSpoolOrMemory({ ...spool, onError: (error) => this.#hooks.error(error) }, memory) : new MemoryDurableStore(memory);
    this.#keepsRows = !(this.#store instanceof MemoryDurableStore);
    this.#delivery = new Delivery({
      config: this.#config,
      store: this.#store,
      counters: this.#counters,
      hooks: this.#hooks,
      lastSeq: () => this.#intake.lastSeq,
      onBatchDelivered: (ms) => this.#metrics.recordDelivery(ms),
      closeTransport: async () => {
        this.#transport.dispose?.();
        await this.#http.close();
      },
    });
    const worker =
      this.#config.deliveryThread === 'worker'
        ? new WorkerDispatcher({ agent: agentOptions(this.#config.concurrency), maxResponseBytes: MAX_RESPONSE_BYTES, onLost: (error) => this.#hooks.error(error) })
        : undefined;
    this.#http = new StripeHttp(this.#config, this.#delivery.observer(), worker);
    this.#transport =
      this.#config.mode === 'stream'
        ? new StreamTransport(this.#config, this.#http, () => {
            this.#counters.sessionRefreshes += 1;
          })
        : new DirectTransport(this.#config, this.#http);
    this.#delivery.useTransport(this.#transport);
    this.#intake = new Intake(this.#config, this.#store, this.#delivery, this.#counters);
    const { aggregate } = this.#config;
    if (aggregate !== undefined) {
      this.#aggregator = new Aggregator({
        config: aggregate,
        customerKey: this.#config.customerKey,
        valueKey: this.#config.valueKey,
        emit: (event) => this.#intake.report(event),
        onEmitError: (error, event) => this.#hooks.error(error instanceof MeterError ? error : new MeterAdapterError(`A folded event of ${event.eventName} could not be queued`, error)),
      });
      watchExit(this.#closeFoldsBeforeExit);
    }
    this.#metrics = new ReporterMetrics(this.#config.metrics, { stats: () => this.stats(), openFolds: () => this.#aggregator?.openCount ?? 0 }, this.#config.mode);
    this.#delivery.recover();
    this.warnOnSuspiciousConfig();
  }

  /**
   * Validates one usage event and queues it for delivery. Synchronous and O(1): it never touches
   * the network. Returns the event's identifier (given or generated), fixed for every retry.
   * Throws `MeterValidationError` (bad input), `MeterQueueFullError` (`overflow: 'reject'`),
   * `MeterClosedError`, or `MeterStoreError` (a store of your own threw in `push()`); nothing is
   * enqueued then.
   */
  report(input: MeterEventInput): string {
    if (input?.account !== undefined && this.#keepsRows) {
      // The spool's rows have no account yet: an event resent after a restart would bill the platform.
      this.#counters.rejected += 1;
      throw new MeterValidationError('ERR_METER_INVALID_ACCOUNT', 'account', 'is not supported with a spool or a store of your own yet (its rows keep no account); use the memory store for connected accounts');
    }
    const aggregator = this.#aggregator;
    // A closed fold reported again (from onError or onDrop) already carries its events' sum: sent as it is.
    // One still open names usage already in it: the aggregator answers with it and adds nothing.
    const folds = aggregator !== undefined && aggregator.takes(input?.eventName) && (!isFoldIdentifier(input?.identifier) || aggregator.holds(input.identifier));
    const identifier = folds ? this.#fold(aggregator, input) : this.#intake.report(input);
    // Stripe's error reports name only identifiers; remembering who they billed lets the webhook say which customer.
    this.#recent?.remember(identifier, input.eventName, input.customerId);
    if (this.#config.waitUntil !== undefined) this.#handToWaitUntil(this.#config.waitUntil);
    return identifier;
  }

  /** report() for an event of an aggregated meter: validated alike, counted as rejected alike, folded instead of queued. */
  #fold(aggregator: Aggregator, input: MeterEventInput): string {
    if (this.#delivery.closed) {
      this.#counters.rejected += 1;
      throw new MeterClosedError();
    }
    try {
      return aggregator.add(input);
    } catch (error) {
      this.#counters.rejected += 1;
      throw error;
    }
  }

  /**
   * Hands the runtime's waitUntil one promise per turn of reports: it settles once they are delivered
   * (a flush on the next turn, so every report of the handler's synchronous part is in it), and never rejects.
   */
  #handToWaitUntil(waitUntil: (promise: Promise<unknown>) => void): void {
    if (this.#waitUntilTurn) return;
    this.#waitUntilTurn = true;
    const delivered = new Promise<void>((resolve) => setImmediate(resolve))
      .then(() => {
        this.#waitUntilTurn = false;
        return this.flush();
      })
      .then(
        () => undefined,
        () => undefined,
      );
    try {
      waitUntil(delivered);
    } catch (error) {
      this.#hooks.error(new MeterAdapterError('The waitUntil hook threw; delivery goes on on the reporter\'s timers', error));
    }
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
    // Open folds are what a flush means to deliver too: their windows close early.
    this.#aggregator?.closeAll();
    return this.#delivery.flush(timeoutMs);
  }

  /**
   * Stops intake, delivers what is pending for up to `timeoutMs`, then hands the rest to `onDrop`
   * with reason `shutdown` (identifiers kept: re-reporting them can never bill twice), or, with a
   * spool, leaves it on disk for the next start (`kept`, no `onDrop`), and closes the store. Idempotent.
   * A bad `timeoutMs` rejects with `MeterConfigError` and changes nothing: a later `close()` works.
   */
  close(options: CloseOptions = {}): Promise<CloseResult> {
    const timeoutMs = checkTimeout(options?.timeoutMs, DEFAULT_CLOSE_TIMEOUT_MS);
    if (timeoutMs instanceof MeterConfigError) return Promise.reject(timeoutMs);
    if (this.#aggregator !== undefined && !this.#delivery.closed) {
      unwatchExit(this.#closeFoldsBeforeExit);
      this.#aggregator.closeAll();
      this.#aggregator.dispose();
    }
    // Counters keep being exported until the close is over, so the last scrape sees its outcome.
    return this.#delivery.close(timeoutMs).finally(() => this.#metrics.shutdown());
  }

  /** Counters; `enqueued = delivered + failed + dropped.total + pending` holds at every moment. */
  stats(): MeterStats {
    const c = this.#counters;
    const queued = this.#delivery.queuedCount();
    const inFlight = this.#delivery.inFlightCount;
    return {
      enqueued: c.enqueued,
      delivered: c.delivered,
      failed: c.failed,
      dropped: { total: c.droppedTotal, ...c.dropped },
      kept: c.kept,
      pending: queued + inFlight,
      queued,
      inFlight,
      rejected: c.rejected,
      requests: c.requests,
      batchesSent: c.batchesSent,
      retries: c.retries,
      rateLimited: c.rateLimited,
      sessionRefreshes: c.sessionRefreshes,
    };
  }

  /**
   * Cancels a delivered event through `meter_event_adjustments` (within 24 h of Stripe receiving
   * it). Paced and retried like every request; rejects with the last error when it cannot succeed.
   */
  async cancel(input: { eventName: string; identifier: string }): Promise<MeterEventAdjustment> {
    if (this.#delivery.closed) throw new MeterClosedError();
    // With the key refused, a cancellation fails at once instead of waiting for the breaker's probes.
    if (this.#delivery.breaker.isOpen) throw new MeterUnauthorizedError(401, undefined);
    const body = { event_name: checkEventName(input?.eventName), type: 'cancel', cancel: { identifier: checkIdentifier(input?.identifier) } };
    const idempotencyKey = newIdempotencyKey();
    const outcome = await this.#delivery.retryLoop.run(async () => {
      try {
        return await this.#http.post(this.#config.apiOrigin, ADJUSTMENTS_PATH, { bearer: this.#config.apiKey, body, idempotencyKey, signal: this.#delivery.signal });
      } catch (error) {
        throw isKeyRefused(error) ? new MeterUnauthorizedError(error.status, error) : error;
      }
    }, false);
    if (outcome.ok) return outcome.value as MeterEventAdjustment;
    throw outcome.error instanceof MeterError ? outcome.error : new MeterDeliveryError(`The cancellation could not be sent after ${outcome.attempts} attempt(s)`, outcome.attempts, !isRetriable(outcome.error), outcome.error);
  }

  /**
   * The usage ledger: per customer × event name × hour (of the events' timestamps), what `report()`
   * accepted and what was delivered, failed, dropped or left uncertain. Kept in the spool across
   * restarts, in memory without one. Throws `MeterConfigError` for a bad query, and, with a spool,
   * `MeterClosedError` after `close()` and `MeterSpoolError` when the file cannot be read; with a store
   * of your own, `MeterStoreError` when its `ledger()` throws.
   *
   * @example
   * const rows = reporter.ledger({ from: Date.now() - 86_400_000, to: Date.now(), customerId: 'cus_123' });
   */
  ledger(query: LedgerQuery): LedgerRow[] {
    return this.#store.ledger(query);
  }

  /**
   * Reports a failure that belongs to no delivery (a framework adapter's customer resolver threw)
   * through `onError`, or the logger without one. Never throws.
   */
  handleError(error: MeterError, events: readonly MeterEvent[] = []): void {
    this.#hooks.error(error, events);
  }

  /**
   * Checks Stripe's meters against the events this app reports: each event name must have an active meter
   * whose customer and value payload keys are the reporter's `payloadKeys`. Resolves with every check and
   * its coded problems (`meter_missing`, `meter_inactive`, `customer_key_mismatch`, `value_key_mismatch`);
   * rejects with `StripeApiError` when the meters cannot be listed.
   */
  verifyMeters(options: VerifyMetersOptions): Promise<VerifyMetersResult> {
    const names: unknown = options?.eventNames;
    if (!Array.isArray(names)) return Promise.reject(new MeterConfigError('eventNames', 'must be an array of event names'));
    let checked: string[];
    try {
      checked = names.map((name) => checkEventName(name));
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    return verifyMeters((path) => this.readStripe(path), checked, { customer: this.#config.customerKey, value: this.#config.valueKey }).then((result) => {
      this.#refuseNonSumFolds(result);
      return result;
    });
  }

  // A meter the app declared as sum but Stripe aggregates otherwise (count, last) would be billed wrongly once folded.
  #refuseNonSumFolds(result: VerifyMetersResult): void {
    const aggregator = this.#aggregator;
    if (aggregator === undefined) return;
    for (const meter of result.meters) {
      if (!aggregator.takes(meter.eventName) || meter.formula === undefined || meter.formula === 'sum') continue;
      aggregator.refuse(meter.eventName);
      this.#hooks.error(
        new MeterConfigError(
          `aggregate.meters.${meter.eventName}`,
          `is declared 'sum' but Stripe's meter ${meter.meterId ?? ''} aggregates with '${meter.formula}': its events are no longer folded, and go to Stripe one by one`,
        ),
      );
    }
  }

  /**
   * GETs a Stripe API path with the reporter's key, paced with its requests (the meter error webhook fetches thin
   * events with it); `context`, a connected account's (`Stripe-Context`), for what belongs to that account.
   */
  readStripe(pathAndQuery: string, context?: string): Promise<unknown> {
    return this.#http.get(this.#config.apiOrigin, pathAndQuery, { bearer: this.#config.apiKey, signal: this.#delivery.signal, context });
  }

  /**
   * Starts remembering the last 50 000 identifiers with their customer and event name, so that a meter error
   * webhook can say whom a rejected event billed (Stripe's reports name only identifiers). The webhook handler
   * calls it when it is created; until then report() keeps nothing.
   */
  rememberIdentifiers(): void {
    this.#recent ??= new RecentEvents();
  }

  /** The event name and customer of an identifier this reporter reported recently (the last 50 000), if it remembers it. */
  lookupIdentifier(identifier: string): RecentEvent | undefined {
    return this.#recent?.lookup(identifier);
  }

  /** The reporter's logger (the one given, or the default), for adapters that log through it. */
  get log(): MeterLogger {
    return this.#hooks.logger;
  }

  /** What `console.log(reporter)` shows: the mode and the counters, never a key or a token. */
  [inspect.custom](): object {
    return { mode: this.#config.mode, closed: this.#delivery.closed, stats: this.stats() };
  }

  /** What `JSON.stringify(reporter)` writes: the same safe summary. */
  toJSON(): object {
    return this[inspect.custom]();
  }

  private warnOnSuspiciousConfig(): void {
    if (!this.#config.livemode && process.env.NODE_ENV === 'production' && !productionTestKeyWarned) {
      productionTestKeyWarned = true;
      this.#hooks.logger.warn({ code: 'WARN_METER_TEST_KEY_IN_PRODUCTION' }, 'A test-mode Stripe key is used with NODE_ENV=production: usage goes to the sandbox, not to live invoices');
    }
  }
}
