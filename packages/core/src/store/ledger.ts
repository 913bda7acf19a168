// The usage ledger's arithmetic: hourly cells per customer × event name, exact sums, and the in-memory ledger.
import { MeterConfigError } from '../errors';
import type { MeterEvent } from '../types';
import type { LedgerQuery, LedgerRow } from './types';

export const HOUR_MS = 3_600_000;

/** The ledger's columns, in storage order. */
export const LEDGER_COLUMNS = ['accepted', 'delivered', 'failed', 'dropped', 'uncertain'] as const;
export type LedgerColumn = (typeof LEDGER_COLUMNS)[number];

/** Counts and exact sums of one cell, indexed like `LEDGER_COLUMNS`. */
export interface LedgerCell {
  readonly hour: number;
  readonly customerId: string;
  readonly eventName: string;
  readonly counts: number[];
  readonly sums: bigint[];
}

const COLUMN_INDEX: Readonly<Record<LedgerColumn, number>> = { accepted: 0, delivered: 1, failed: 2, dropped: 3, uncertain: 4 };

/** Length-prefixed so that no customer id or event name can make two cells share a key. */
function cellKey(hour: number, customerId: string, eventName: string): string {
  return `${hour}:${customerId.length}:${customerId}${eventName}`;
}

/** Ledger cells keyed by hour, customer and event name; adding is O(1) and exact. */
export class LedgerCells {
  readonly cells = new Map<string, LedgerCell>();
  // report() adds a cell per event. The current cell of each customer × event name is found through two
  // lookups by the strings the event already holds (no key string built, nothing allocated); only a new
  // hour goes through the keyed map. A run of one value skips the BigInt parse.
  private readonly current = new Map<string, Map<string, LedgerCell>>();
  private lastValue = '';
  private lastValueBig = 0n;
  /** The cell the last event went to: a run of one customer × event name × hour needs no lookup. */
  private lastCell: LedgerCell | undefined;

  add(event: MeterEvent, column: LedgerColumn): void {
    const cell = this.cellFor(event);
    const i = COLUMN_INDEX[column];
    cell.counts[i]! += 1;
    cell.sums[i]! += this.lastValueBig;
  }

  /** Counts an event as accepted and under `outcome` in one step (a spool writes both when the event leaves it). */
  addSettled(event: MeterEvent, outcome: LedgerColumn): void {
    const cell = this.cellFor(event);
    const i = COLUMN_INDEX[outcome];
    cell.counts[0]! += 1;
    cell.sums[0]! += this.lastValueBig;
    cell.counts[i]! += 1;
    cell.sums[i]! += this.lastValueBig;
  }

  /** Takes back one `add(event, column)`; a cell left with no count at all is forgotten, so a long-lived set stays small. */
  remove(event: MeterEvent, column: LedgerColumn): void {
    const cell = this.cellFor(event);
    const i = COLUMN_INDEX[column];
    cell.counts[i]! -= 1;
    cell.sums[i]! -= this.lastValueBig;
    if (cell.counts.some((count) => count !== 0)) return;
    this.cells.delete(cellKey(cell.hour, cell.customerId, cell.eventName));
    if (this.lastCell === cell) this.lastCell = undefined;
    const byEvent = this.current.get(cell.customerId);
    if (byEvent?.get(cell.eventName) !== cell) return;
    byEvent.delete(cell.eventName);
    if (byEvent.size === 0) this.current.delete(cell.customerId);
  }

  /** The event's cell (created when new), with its value parsed into `lastValueBig`. */
  private cellFor(event: MeterEvent): LedgerCell {
    const hour = event.timestamp - (event.timestamp % HOUR_MS);
    let cell = this.lastCell;
    if (cell === undefined || cell.hour !== hour || cell.customerId !== event.customerId || cell.eventName !== event.eventName) {
      cell = this.currentCell(event, hour);
      this.lastCell = cell;
    }
    if (event.value !== this.lastValue) {
      this.lastValueBig = BigInt(event.value);
      this.lastValue = event.value;
    }
    return cell;
  }

  private currentCell(event: MeterEvent, hour: number): LedgerCell {
    let byEvent = this.current.get(event.customerId);
    if (byEvent === undefined) {
      byEvent = new Map();
      this.current.set(event.customerId, byEvent);
    }
    let cell = byEvent.get(event.eventName);
    if (cell === undefined || cell.hour !== hour) {
      cell = this.cellOf(hour, event.customerId, event.eventName);
      // A new cell may have made the memory ledger forget old hours, and with them this customer's map.
      if (this.current.get(event.customerId) !== byEvent) this.current.set(event.customerId, byEvent);
      // Events of an earlier hour (a late timestamp) do not displace the current one.
      const shown = byEvent.get(event.eventName);
      if (shown === undefined || shown.hour < hour) byEvent.set(event.eventName, cell);
    }
    return cell;
  }

  /** Adds another cell's counts and sums to this set's cell of the same key. */
  merge(other: LedgerCell): void {
    const cell = this.cellOf(other.hour, other.customerId, other.eventName);
    for (let i = 0; i < LEDGER_COLUMNS.length; i += 1) {
      cell.counts[i]! += other.counts[i]!;
      cell.sums[i]! += other.sums[i]!;
    }
  }

  private cellOf(hour: number, customerId: string, eventName: string): LedgerCell {
    const key = cellKey(hour, customerId, eventName);
    let cell = this.cells.get(key);
    if (cell === undefined) {
      cell = { hour, customerId, eventName, counts: [0, 0, 0, 0, 0], sums: [0n, 0n, 0n, 0n, 0n] };
      this.cells.set(key, cell);
      this.created(hour, key);
    }
    return cell;
  }

  /** Told of every new cell, by hour and key (the memory ledger forgets old hours from there). */
  protected created(_hour: number, _key: string): void {}

  /** Forgets the cells under `keys` (those still there), and the shortcuts that lead to them. */
  protected forget(keys: readonly string[]): void {
    for (const key of keys) {
      const cell = this.cells.get(key);
      if (cell === undefined) continue;
      this.cells.delete(key);
      if (this.lastCell === cell) this.lastCell = undefined;
      const byEvent = this.current.get(cell.customerId);
      if (byEvent?.get(cell.eventName) !== cell) continue;
      byEvent.delete(cell.eventName);
      if (byEvent.size === 0) this.current.delete(cell.customerId);
    }
  }

  addAll(events: readonly MeterEvent[], column: LedgerColumn): void {
    for (const event of events) this.add(event, column);
  }

  get size(): number {
    return this.cells.size;
  }

  clear(): void {
    this.cells.clear();
    this.current.clear();
    this.lastCell = undefined;
  }
}

/** The bounds of a query as hour starts: cells with `fromHour <= hour < to`. */
export function queryBounds(query: LedgerQuery): { fromHour: number; to: number; customerId: string | undefined } {
  if (query === null || typeof query !== 'object') throw new MeterConfigError('ledger', 'expects { from, to, customerId? }');
  const from = instant(query.from, 'ledger.from');
  const to = instant(query.to, 'ledger.to');
  if (query.customerId !== undefined && typeof query.customerId !== 'string') {
    throw new MeterConfigError('ledger.customerId', `must be a string, got ${typeof query.customerId}`);
  }
  // The hour holding `from` overlaps the range, so it starts the selection.
  return { fromHour: from - (((from % HOUR_MS) + HOUR_MS) % HOUR_MS), to, customerId: query.customerId };
}

function instant(value: Date | number, option: string): number {
  const ms = value instanceof Date ? value.getTime() : value;
  if (typeof ms !== 'number' || !Number.isFinite(ms)) throw new MeterConfigError(option, 'must be a Date or milliseconds since the epoch');
  return ms;
}

/** A cell as the public row shape. */
export function toRow(cell: LedgerCell): LedgerRow {
  const tally = (i: number) => ({ count: cell.counts[i]!, value: cell.sums[i]!.toString() });
  return { hour: cell.hour, customerId: cell.customerId, eventName: cell.eventName, accepted: tally(0), delivered: tally(1), failed: tally(2), dropped: tally(3), uncertain: tally(4) };
}

/** Orders rows by hour, then customer, then event name (code-unit order). */
export function compareRows(a: LedgerRow, b: LedgerRow): number {
  if (a.hour !== b.hour) return a.hour - b.hour;
  if (a.customerId !== b.customerId) return a.customerId < b.customerId ? -1 : 1;
  if (a.eventName !== b.eventName) return a.eventName < b.eventName ? -1 : 1;
  return 0;
}

/** How long the memory ledger keeps an hour by default (`ledgerRetentionMs`): yesterday's reconciliation still finds it. */
export const DEFAULT_MEMORY_LEDGER_RETENTION_MS = 48 * HOUR_MS;
/** The spool's ledger retention by default (`spool.ledgerRetentionMs`), and the most the memory ledger may keep: Stripe refuses events older than 35 days. */
export const DEFAULT_LEDGER_RETENTION_MS = 40 * 24 * HOUR_MS;

/**
 * The memory store's ledger: its cells in a map, each hour kept for `retentionMs` counted back from the
 * newest hour it holds, so that a process running for months with many customers stays bounded (a cell
 * per customer × event name × hour). Old hours are forgotten when the first cell of a newer hour comes,
 * and an event of a forgotten hour (a late timestamp, a settlement) is not counted into it again.
 */
export class MemoryLedger extends LedgerCells {
  private newestHour = Number.NEGATIVE_INFINITY;
  /** The start of the oldest hour kept: an event before it (its hour forgotten) is not counted again. */
  private keepFrom = Number.NEGATIVE_INFINITY;
  /** Each kept hour's cell keys: forgetting an hour visits its own cells only, never the whole ledger. */
  private readonly hours = new Map<number, string[]>();

  constructor(private readonly retentionMs: number = DEFAULT_MEMORY_LEDGER_RETENTION_MS) {
    super();
  }

  override add(event: MeterEvent, column: LedgerColumn): void {
    if (event.timestamp >= this.keepFrom) super.add(event, column);
  }

  override addSettled(event: MeterEvent, outcome: LedgerColumn): void {
    if (event.timestamp >= this.keepFrom) super.addSettled(event, outcome);
  }

  override remove(event: MeterEvent, column: LedgerColumn): void {
    if (event.timestamp >= this.keepFrom) super.remove(event, column);
  }

  protected override created(hour: number, key: string): void {
    let keys = this.hours.get(hour);
    if (keys === undefined) {
      keys = [];
      this.hours.set(hour, keys);
    }
    keys.push(key);
    if (hour <= this.newestHour) return;
    this.newestHour = hour;
    this.keepFrom = hour - Math.ceil(this.retentionMs / HOUR_MS) * HOUR_MS;
    for (const [kept, hourKeys] of this.hours) {
      if (kept >= this.keepFrom) continue;
      this.forget(hourKeys);
      this.hours.delete(kept);
    }
  }

  override clear(): void {
    super.clear();
    this.hours.clear();
    this.newestHour = Number.NEGATIVE_INFINITY;
    this.keepFrom = Number.NEGATIVE_INFINITY;
  }

  query(query: LedgerQuery): LedgerRow[] {
    const { fromHour, to, customerId } = queryBounds(query);
    const rows: LedgerRow[] = [];
    for (const cell of this.cells.values()) {
      if (cell.hour >= fromHour && cell.hour < to && (customerId === undefined || cell.customerId === customerId)) rows.push(toRow(cell));
    }
    return rows.sort(compareRows);
  }
}
