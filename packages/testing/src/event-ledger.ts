// What the fake has recorded: accepted events, the 24 h identifier window, async rejections, cancellations and aggregates.
import { DEDUP_WINDOW_MS } from './config';
import { FakeStripeError } from './errors';
import type {
  AdjustmentRecord,
  EventChannel,
  FakeMeter,
  MeterEventRecord,
  MeterFormula,
  MeterTotals,
  RejectedEventRecord,
  TotalsFilter,
} from './types';
import type { RuleViolation } from './validation';

// A class rather than object spreads: one hidden class for hundreds of thousands of events keeps the stream path fast.
class StoredEvent {
  cancelled = false;

  constructor(
    readonly eventName: string,
    readonly identifier: string,
    readonly customer: string,
    readonly value: string,
    readonly timestampMs: number,
    readonly payload: Readonly<Record<string, string>>,
    readonly via: EventChannel,
    readonly receivedAt: number,
    readonly meterId: string,
    readonly formula: MeterFormula,
    readonly account: string | undefined,
  ) {}
}

/**
 * Where an identifier is remembered: each connected account is its own Stripe account, with its own
 * 24 h identifier window, so the same identifier under two accounts names two events.
 */
function keyOf(account: string | undefined, identifier: string): string {
  return account === undefined ? identifier : `${account}\u0000${identifier}`;
}

// Module-level copy: hot paths should not go through a module binding per event.
const WINDOW_MS = DEDUP_WINDOW_MS;

interface Aggregate {
  formula: MeterFormula;
  sum: bigint;
  count: number;
  lastTimestamp: number;
  last: bigint;
}

function emptyAggregate(formula: MeterFormula): Aggregate {
  return { formula, sum: 0n, count: 0, lastTimestamp: Number.NEGATIVE_INFINITY, last: 0n };
}

function addTo(agg: Aggregate, event: StoredEvent): void {
  agg.count++;
  if (agg.formula === 'sum') agg.sum += BigInt(event.value);
  // Later timestamps win; among equal timestamps the later arrival wins (events are scanned in arrival order).
  else if (agg.formula === 'last' && event.timestampMs >= agg.lastTimestamp) {
    agg.lastTimestamp = event.timestampMs;
    agg.last = BigInt(event.value);
  }
}

function result(agg: Aggregate): bigint {
  return agg.formula === 'sum' ? agg.sum : agg.formula === 'count' ? BigInt(agg.count) : agg.last;
}

/** Exact totals as numbers; throws `ERR_FAKE_STRIPE_PRECISION` rather than round past `Number.MAX_SAFE_INTEGER`. */
export function numericTotals(exact: MeterTotals<bigint>): MeterTotals<number> {
  const out: MeterTotals<number> = {};
  for (const [customer, row] of Object.entries(exact)) {
    const numeric: Record<string, number> = {};
    for (const [eventName, total] of Object.entries(row)) {
      if (total > BigInt(Number.MAX_SAFE_INTEGER)) {
        throw new FakeStripeError(
          'ERR_FAKE_STRIPE_PRECISION',
          `The total of "${eventName}" for ${customer} (${total}) exceeds Number.MAX_SAFE_INTEGER; read it from exactTotals() instead.`,
        );
      }
      numeric[eventName] = Number(total);
    }
    out[customer] = numeric;
  }
  return out;
}

export class EventLedger {
  private stored: StoredEvent[] = [];
  // Insertion-ordered, so the oldest identifiers are always first and expiry stops at the first young one.
  private readonly byIdentifier = new Map<string, StoredEvent>();
  private sweptAt = Number.NEGATIVE_INFINITY;
  private rejectedEvents: RejectedEventRecord[] = [];
  private adjustmentRecords: AdjustmentRecord[] = [];
  private duplicates = 0;
  private cancelled = 0;

  /** True when the identifier was accepted within the last 24 h (cancelled events keep their identifier). */
  isDuplicate(identifier: string, now: number, account?: string): boolean {
    const seen = this.byIdentifier.get(keyOf(account, identifier));
    return seen !== undefined && now - seen.receivedAt < WINDOW_MS;
  }

  /** Drops identifiers older than the window; called once per request, not per event. */
  sweep(now: number): void {
    // Sweeping at most once per clock second keeps the iterator off the hot path.
    if (now - this.sweptAt < 1000 && now >= this.sweptAt) return;
    this.sweptAt = now;
    const cutoff = now - WINDOW_MS;
    for (const [identifier, event] of this.byIdentifier) {
      if (event.receivedAt > cutoff) break;
      this.byIdentifier.delete(identifier);
    }
  }

  countDuplicate(): void {
    this.duplicates++;
  }

  /** Records an accepted event; positional so the stream's hot path builds one object per event. */
  accept(
    eventName: string,
    identifier: string,
    customer: string,
    value: string,
    timestampMs: number,
    payload: Readonly<Record<string, string>>,
    via: EventChannel,
    receivedAt: number,
    meter: FakeMeter,
    account?: string,
  ): void {
    const event = new StoredEvent(eventName, identifier, customer, value, timestampMs, payload, via, receivedAt, meter.id, meter.formula, account);
    this.stored.push(event);
    const key = keyOf(account, identifier);
    // Re-inserting an expired identifier must move it to the end, or the sweep would stop early.
    if (this.byIdentifier.has(key)) this.byIdentifier.delete(key);
    this.byIdentifier.set(key, event);
  }

  reject(record: RejectedEventRecord): void {
    this.rejectedEvents.push(record);
  }

  rejectFromViolation(v: RuleViolation, event: Readonly<Record<string, unknown>>, eventName: string, identifier: string, receivedAt: number, account?: string): RejectedEventRecord {
    const record: RejectedEventRecord = Object.freeze({
      ...(account === undefined ? {} : { account }),
      code: v.asyncCode,
      syncCode: v.syncCode,
      report: v.asyncCode === 'no_meter' ? 'v1.billing.meter.no_meter_found' : 'v1.billing.meter.error_report_triggered',
      message: v.message,
      eventName,
      identifier,
      event,
      receivedAt,
    });
    this.reject(record);
    return record;
  }

  /** Applies a cancel adjustment at once (Stripe does it asynchronously) and records the outcome. */
  cancel(id: string, eventName: string, identifier: string, now: number, account?: string): AdjustmentRecord {
    let target = this.byIdentifier.get(keyOf(account, identifier));
    if (target === undefined) {
      // Expired from the window: find it anyway so the reason can say why.
      for (let i = this.stored.length - 1; i >= 0; i--) {
        if (this.stored[i]?.identifier === identifier && this.stored[i]?.account === account) {
          target = this.stored[i];
          break;
        }
      }
    }
    let reason: AdjustmentRecord['reason'] = null;
    if (target === undefined || target.eventName !== eventName) reason = 'not_found';
    else if (now - target.receivedAt >= WINDOW_MS) reason = 'outside_24h_window';
    else if (target.cancelled) reason = 'already_cancelled';
    if (reason === null && target !== undefined) {
      target.cancelled = true;
      this.cancelled++;
    }
    const record: AdjustmentRecord = Object.freeze({ id, eventName, identifier, applied: reason === null, reason, receivedAt: now, ...(account === undefined ? {} : { account }) });
    this.adjustmentRecords.push(record);
    return record;
  }

  events(): MeterEventRecord[] {
    const out: MeterEventRecord[] = [];
    for (const e of this.stored) {
      if (e.cancelled) continue;
      out.push(
        Object.freeze({
          eventName: e.eventName,
          identifier: e.identifier,
          customer: e.customer,
          value: e.value,
          numericValue: Number(e.value),
          timestamp: new Date(e.timestampMs).toISOString(),
          payload: e.payload,
          via: e.via,
          receivedAt: e.receivedAt,
          meterId: e.meterId,
          // Only on a connected account's events, so records of platform-only tests keep their shape.
          ...(e.account === undefined ? {} : { account: e.account }),
        }),
      );
    }
    return out;
  }

  rejected(): RejectedEventRecord[] {
    return [...this.rejectedEvents];
  }

  adjustments(): AdjustmentRecord[] {
    return [...this.adjustmentRecords];
  }

  counts(): { accepted: number; rejected: number; duplicates: number } {
    return { accepted: this.stored.length - this.cancelled, rejected: this.rejectedEvents.length, duplicates: this.duplicates };
  }

  /** Aggregate of one meter for one customer over event timestamps in [fromMs, toMs). */
  aggregate(meterId: string, formula: MeterFormula, customer: string, fromMs: number, toMs: number, account?: string): bigint {
    const agg = emptyAggregate(formula);
    for (const e of this.stored) {
      if (!e.cancelled && e.account === account && e.meterId === meterId && e.customer === customer && e.timestampMs >= fromMs && e.timestampMs < toMs) addTo(agg, e);
    }
    return result(agg);
  }

  /** One account's aggregates: the platform's own without a filter, as Stripe keeps each account's meters apart. */
  exactTotals(filter?: TotalsFilter): MeterTotals<bigint> {
    const account = filter?.account;
    const aggs = new Map<string, Map<string, Aggregate>>();
    for (const e of this.stored) {
      if (e.cancelled || e.account !== account) continue;
      let perCustomer = aggs.get(e.customer);
      if (perCustomer === undefined) aggs.set(e.customer, (perCustomer = new Map<string, Aggregate>()));
      let agg = perCustomer.get(e.eventName);
      if (agg === undefined) perCustomer.set(e.eventName, (agg = emptyAggregate(e.formula)));
      addTo(agg, e);
    }
    const out: MeterTotals<bigint> = {};
    for (const [customer, perCustomer] of aggs) {
      const row: Record<string, bigint> = {};
      for (const [eventName, agg] of perCustomer) row[eventName] = result(agg);
      out[customer] = row;
    }
    return out;
  }

  /** Totals as numbers; refuses to round silently. */
  totals(filter?: TotalsFilter): MeterTotals<number> {
    return numericTotals(this.exactTotals(filter));
  }

  clear(): void {
    this.stored = [];
    this.byIdentifier.clear();
    this.sweptAt = Number.NEGATIVE_INFINITY;
    this.rejectedEvents = [];
    this.adjustmentRecords = [];
    this.duplicates = 0;
    this.cancelled = 0;
  }
}
