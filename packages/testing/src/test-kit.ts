// An in-memory MeterReporter for users' own test suites: core's real validation, nothing sent, everything recorded.
import { MeterClosedError, MeterConfigError, MeterReporter, validateCancellation, validateMeterEvent } from '@metered/core';
import type { CloseOptions, CloseResult, MeterError, MeterEvent, MeterEventAdjustment, MeterEventInput, MeterStats } from '@metered/core';

import { numericTotals } from './event-ledger';
import type { MeterTotals, RecordedMeteringError, TestReporterOptions } from './types';

// The base class needs a well-formed key; nothing is ever sent with it (every sending method is overridden).
const PLACEHOLDER_KEY = 'sk_test_metered_test_reporter';
const SILENT = { warn: () => undefined, error: () => undefined };

/**
 * A `MeterReporter` that keeps what it accepts in memory instead of sending it: `report()` runs
 * core's own checks (and throws the same `MeterValidationError`), a repeated identifier counts once as
 * it does at Stripe, and `handleError()` records what adapters report. It is a real subclass, so it
 * goes wherever a reporter does: `meterUsage({ reporter })`, `MeteringModule.forRoot({ reporter })`,
 * or your own services.
 */
export class TestReporter extends MeterReporter {
  readonly #options: TestReporterOptions;
  #accepted: MeterEvent[] = [];
  #duplicates: MeterEvent[] = [];
  #identifiers = new Set<string>();
  #cancelled = new Set<string>();
  #errors: RecordedMeteringError[] = [];
  #rejected = 0;
  #closed = false;

  constructor(options: TestReporterOptions = {}) {
    // The base checks payloadKeys like a real reporter's; its timer is unref'd and close() releases it.
    super({ apiKey: PLACEHOLDER_KEY, logger: SILENT, ...(options.payloadKeys === undefined ? {} : { payloadKeys: options.payloadKeys }) });
    this.#options = options;
  }

  /** Validates like `MeterReporter.report()` and records the event; returns its identifier. */
  override report(input: MeterEventInput): string {
    if (this.#closed) {
      this.#rejected += 1;
      throw new MeterClosedError();
    }
    let event: MeterEvent;
    try {
      event = validateMeterEvent(input, { payloadKeys: this.#options.payloadKeys, now: (this.#options.now ?? Date.now)() });
    } catch (error) {
      this.#rejected += 1;
      throw error;
    }
    if (this.#identifiers.has(event.identifier)) {
      this.#duplicates.push(event);
    } else {
      this.#identifiers.add(event.identifier);
      this.#accepted.push(event);
    }
    return event.identifier;
  }

  /** Records the error (and calls `onError` when one was given); never throws. */
  override handleError(error: MeterError, events: readonly MeterEvent[] = []): void {
    this.#errors.push(Object.freeze({ error, events }));
    try {
      this.#options.onError?.(error, events);
    } catch {
      // As with a real reporter, a throwing hook never reaches the adapter that reported the error.
    }
  }

  /** Cancels a recorded event the way Stripe's adjustment does: it no longer counts in `totals()`. */
  override cancel(input: { eventName: string; identifier: string }): Promise<MeterEventAdjustment> {
    // Through a promise chain: a closed reporter or a bad input rejects, as MeterReporter.cancel() does, rather than throwing.
    return Promise.resolve().then(() => this.#cancelNow(input));
  }

  #cancelNow(input: { eventName: string; identifier: string }): MeterEventAdjustment {
    if (this.#closed) throw new MeterClosedError();
    const checked = validateCancellation(input);
    const known = this.#accepted.some((event) => event.identifier === checked.identifier && event.eventName === checked.eventName);
    if (known) this.#cancelled.add(checked.identifier);
    return {
      id: `mtr_adj_test_${this.#cancelled.size}`,
      object: 'v2.billing.meter_event_adjustment',
      event_name: checked.eventName,
      status: 'pending',
      type: 'cancel',
      cancel: { identifier: checked.identifier },
      created: new Date((this.#options.now ?? Date.now)()).toISOString(),
      livemode: false,
    };
  }

  /**
   * Reads nothing from Stripe, so an adapter's start-up meter check (`verifyMeters`) never reaches api.stripe.com
   * from a test: it rejects, which the default `'warn'` passes over; with `'fail'`, use `'off'` in tests or a
   * reporter aimed at `startFakeStripe()`.
   */
  override readStripe(): Promise<unknown> {
    return Promise.reject(new MeterConfigError('reporter', "is a TestReporter, which reads nothing from Stripe: set verifyMeters: 'off', or check meters with a MeterReporter aimed at startFakeStripe()"));
  }

  /** Stops intake (`report()` then throws `MeterClosedError`, as a real reporter does); resolves at once. */
  override close(options?: CloseOptions): Promise<CloseResult> {
    this.#closed = true;
    return super.close(options);
  }

  /** A real reporter's counters: every accepted event counts as delivered at once. */
  override stats(): MeterStats {
    const accepted = this.#accepted.length + this.#duplicates.length;
    return { ...super.stats(), enqueued: accepted, delivered: accepted, rejected: this.#rejected };
  }

  /** Events accepted, oldest first; a repeated identifier appears once, cancelled events are left out. */
  events(): MeterEvent[] {
    return this.#accepted.filter((event) => !this.#cancelled.has(event.identifier));
  }

  /** Events reported again with an identifier already accepted (Stripe counts them once). */
  duplicates(): MeterEvent[] {
    return [...this.#duplicates];
  }

  /** What was handed to `handleError()`: adapter failures (a resolver that threw, an event `report()` refused). */
  errors(): RecordedMeteringError[] {
    return [...this.#errors];
  }

  /** Sums per customer and event name, exactly (bigints). */
  exactTotals(): MeterTotals<bigint> {
    const out: MeterTotals<bigint> = {};
    for (const event of this.events()) {
      const row = (out[event.customerId] ??= {});
      row[event.eventName] = (row[event.eventName] ?? 0n) + BigInt(event.value);
    }
    return out;
  }

  /**
   * `totals()[customer][eventName]`, summed as a `sum` meter does; throws `ERR_FAKE_STRIPE_PRECISION`
   * rather than round a total past `Number.MAX_SAFE_INTEGER` (read `exactTotals()` then).
   */
  totals(): MeterTotals<number> {
    return numericTotals(this.exactTotals());
  }

  /** Forgets every event, duplicate, cancellation and error (between tests); stays open. */
  reset(): void {
    this.#accepted = [];
    this.#duplicates = [];
    this.#identifiers = new Set();
    this.#cancelled = new Set();
    this.#errors = [];
    this.#rejected = 0;
  }
}

/**
 * An in-memory reporter for tests: pass it as `reporter` to `meterUsage()` or
 * `MeteringModule.forRoot()`, then assert on what it recorded.
 *
 * @example
 * const reporter = createTestReporter();
 * const metering = meterUsage({ reporter, customer: () => 'cus_123' });
 * await request(express().use(metering).get('/search', (_req, res) => res.json([]))).get('/search');
 * await metering.flush(); // the middleware reports after the response: wait for it
 * expectOnlyBilled(reporter, { cus_123: { api_requests: 1 } });
 */
export function createTestReporter(options: TestReporterOptions = {}): TestReporter {
  return new TestReporter(options);
}
