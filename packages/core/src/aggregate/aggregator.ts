// Pre-aggregation for sum meters: events folded per account × customer × meter × dimensions × window into one event.
import { deriveFoldIdentifier, generateIdentifier } from '../identifier';
import { checkEvent } from '../intake/validate-event';
import { MAX_SIGNIFICANT_DIGITS } from '../intake/validate';
import { MeterConfigError } from '../errors';
import type { QueuedEvent } from '../store/queue';
import type { MeterEventInput } from '../types';

/** A meter's aggregation formula as Stripe names it; only `sum` meters may be folded. */
export type AggregateFormula = 'sum';

/** Resolved `aggregate` options. */
export interface ResolvedAggregate {
  readonly windowMs: number;
  readonly graceMs: number;
  readonly meters: ReadonlySet<string>;
  readonly instanceId: string;
}

/** One open fold: the sum so far of one key's events in one window. */
interface Bucket {
  readonly key: string;
  readonly windowStart: number;
  readonly first: QueuedEvent;
  sum: bigint;
  earliest: number;
  readonly identifier: string;
}

const MAX_SUM = 10n ** BigInt(MAX_SIGNIFICANT_DIGITS);

/** How long a caller's identifier is remembered: Stripe's own duplicate window. */
export const GIVEN_IDENTIFIER_MS = 24 * 3_600_000;
/** The most caller identifiers remembered at once (the oldest go first): a bound on the memory it takes. */
export const GIVEN_IDENTIFIERS_MAX = 50_000;

/** Significant digits of a positive integer: trailing zeros are not significant to Stripe. */
function significantDigits(value: bigint): number {
  return value.toString().replace(/0+$/, '').length;
}

/** Whether `sum` can be sent as one event (Stripe takes at most 15 significant digits). */
function fits(sum: bigint): boolean {
  return sum < MAX_SUM || significantDigits(sum) <= MAX_SIGNIFICANT_DIGITS;
}

function dimensionsKey(dimensions: Readonly<Record<string, string>> | undefined): string {
  if (dimensions === undefined) return '';
  return JSON.stringify(Object.keys(dimensions).sort().map((key) => [key, dimensions[key]]));
}

export interface AggregatorParts {
  readonly config: ResolvedAggregate;
  readonly customerKey: string;
  readonly valueKey: string;
  /** Hands a folded event to the reporter's queue (its `report()` past validation). */
  readonly emit: (event: MeterEventInput) => void;
  /** Where a fold that could not be queued goes (the reporter's onError). */
  readonly onEmitError: (error: unknown, event: MeterEventInput) => void;
  readonly now?: () => number;
}

/**
 * Folds the events of the configured sum meters: `add()` validates an event exactly as `report()`
 * does and adds its value to its bucket; a bucket becomes one event when its window ends (plus a
 * grace for late reports), on `closeAll()` (flush, close), or when one more value would take the sum
 * past 15 significant digits (the bucket is split). A fold's identifier is derived from the instance,
 * this reporter's start, the window, account, customer, meter, dimensions and the fold's number, so it
 * is fixed for every retry, and a restart never reuses the identifier of a fold already delivered.
 */
export class Aggregator {
  private readonly buckets = new Map<string, Bucket>();
  /** The identifiers of the open buckets: a report naming one is a retry of usage already folded into it. */
  private readonly openIdentifiers = new Set<string>();
  /**
   * Folds this reporter has opened: each fold's number, part of its identifier. One count for every key
   * rather than one per key and window (a split, a flush mid-window, a late report open another fold of
   * the same key): nothing is kept per window once its folds are closed.
   */
  private opened = 0;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Number.POSITIVE_INFINITY;
  private readonly now: () => number;
  // A reporter started again in the same window must not derive the identifiers of the folds its
  // previous run delivered (Stripe would drop the new usage as a duplicate).
  private readonly epoch = generateIdentifier();
  private readonly refused = new Set<string>();
  /**
   * The identifiers callers gave (per connected account), each with the fold it went into and when: a retry
   * of a report is folded once, as Stripe would take a repeated identifier once, in its fold or after it closed.
   */
  private readonly given = new Map<string, { readonly identifier: string; readonly at: number }>();
  /** Events folded into buckets so far, and folds handed to the queue. */
  folded = 0;
  emitted = 0;

  constructor(private readonly parts: AggregatorParts) {
    this.now = parts.now ?? Date.now;
  }

  /** Whether events of `eventName` are folded. */
  takes(eventName: unknown): boolean {
    return typeof eventName === 'string' && this.parts.config.meters.has(eventName) && !this.refused.has(eventName);
  }

  /** Whether `identifier` is an open fold's (`report()` returned it): its usage is in the fold, to be sent when it closes. */
  holds(identifier: unknown): boolean {
    return typeof identifier === 'string' && this.openIdentifiers.has(identifier);
  }

  /** Buckets open now (each will be one event). */
  get openCount(): number {
    return this.buckets.size;
  }

  /** Validates and folds one event; returns the identifier of the fold it went into. Throws `MeterValidationError` as report() does. */
  add(input: MeterEventInput): string {
    const now = this.now();
    const event = checkEvent(input, this.parts.customerKey, this.parts.valueKey, now, 0);
    const { windowMs } = this.parts.config;
    const windowStart = Math.floor(event.timestamp / windowMs) * windowMs;
    const key = `${windowStart}\u0000${event.account ?? ''}\u0000${event.customerId}\u0000${event.eventName}\u0000${dimensionsKey(event.dimensions)}`;
    // A retry naming the open fold its first report went into: that usage is already in it.
    if (this.openIdentifiers.has(event.identifier)) return event.identifier;
    const given = input.identifier === undefined ? undefined : `${event.account ?? ''}\u0000${event.identifier}`;
    if (given !== undefined) {
      const earlier = this.given.get(given);
      if (earlier !== undefined && now - earlier.at < GIVEN_IDENTIFIER_MS) return earlier.identifier;
    }
    let bucket = this.buckets.get(key);
    const value = BigInt(event.value);
    if (bucket !== undefined && !fits(bucket.sum + value)) {
      // Split: the bucket so far goes out as it is, and this value opens the key's next fold.
      this.close(bucket);
      bucket = undefined;
    }
    if (bucket === undefined) {
      bucket = this.open(key, windowStart, event);
    }
    bucket.sum += value;
    if (event.timestamp < bucket.earliest) bucket.earliest = event.timestamp;
    if (given !== undefined) this.remember(given, bucket.identifier, now);
    this.folded += 1;
    return bucket.identifier;
  }

  /** Remembers a caller's identifier, forgetting those past Stripe's window and the oldest past the bound. */
  private remember(given: string, identifier: string, now: number): void {
    this.given.delete(given);
    this.given.set(given, { identifier, at: now });
    for (const [oldest, entry] of this.given) {
      if (this.given.size <= GIVEN_IDENTIFIERS_MAX && now - entry.at < GIVEN_IDENTIFIER_MS) break;
      this.given.delete(oldest);
    }
  }

  /** Turns every open bucket into its event now (flush, close). */
  closeAll(): void {
    for (const bucket of [...this.buckets.values()]) this.close(bucket);
    this.clearTimer();
  }

  /**
   * Stops folding `eventName` (the meter check found a formula other than sum) after closing its open
   * buckets; its later events go to the queue one by one.
   */
  refuse(eventName: string): void {
    this.refused.add(eventName);
    for (const bucket of [...this.buckets.values()]) if (bucket.first.eventName === eventName) this.close(bucket);
  }

  /** Stops the window timer (close). */
  dispose(): void {
    this.clearTimer();
  }

  private open(key: string, windowStart: number, event: QueuedEvent): Bucket {
    const fold = this.opened;
    this.opened += 1;
    const identifier = deriveFoldIdentifier('aggregate', this.parts.config.instanceId, this.epoch, String(windowStart), event.account ?? '', event.customerId, event.eventName, dimensionsKey(event.dimensions), String(fold));
    const bucket: Bucket = { key, windowStart, first: event, sum: 0n, earliest: event.timestamp, identifier };
    this.buckets.set(key, bucket);
    this.openIdentifiers.add(identifier);
    this.schedule(windowStart + this.parts.config.windowMs + this.parts.config.graceMs);
    return bucket;
  }

  private close(bucket: Bucket): void {
    this.buckets.delete(bucket.key);
    this.openIdentifiers.delete(bucket.identifier);
    const { first } = bucket;
    const event: MeterEventInput = {
      eventName: first.eventName,
      customerId: first.customerId,
      value: bucket.sum.toString(),
      // The earliest folded event's time: inside the window, and never older than any usage it carries.
      timestamp: bucket.earliest,
      identifier: bucket.identifier,
    };
    if (first.dimensions !== undefined) event.dimensions = first.dimensions;
    if (first.account !== undefined) event.account = first.account;
    this.emitted += 1;
    try {
      this.parts.emit(event);
    } catch (error) {
      this.parts.onEmitError(error, event);
    }
  }

  // One timer, at the earliest deadline of an open window; unref'd: flush() and close() close windows too.
  private schedule(deadline: number): void {
    if (deadline >= this.timerAt) return;
    this.clearTimer();
    this.timerAt = deadline;
    this.timer = setTimeout(() => this.onTimer(), Math.max(0, deadline - this.now()));
    this.timer.unref();
  }

  private onTimer(): void {
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
    const now = this.now();
    const { windowMs, graceMs } = this.parts.config;
    let next = Number.POSITIVE_INFINITY;
    for (const bucket of [...this.buckets.values()]) {
      const deadline = bucket.windowStart + windowMs + graceMs;
      if (deadline <= now) this.close(bucket);
      else if (deadline < next) next = deadline;
    }
    if (next !== Number.POSITIVE_INFINITY) this.schedule(next);
  }

  private clearTimer(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
  }
}

/** The `formula` check: only sum meters can be folded without changing what Stripe bills. */
export function checkAggregateFormula(option: string, formula: unknown): AggregateFormula {
  if (formula !== 'sum') {
    throw new MeterConfigError(
      option,
      `must be 'sum': only a sum meter bills the same for one folded event as for the events it folds (a count meter would count one, a last meter keep one), got ${typeof formula === 'string' ? `'${formula}'` : typeof formula}`,
    );
  }
  return formula;
}
