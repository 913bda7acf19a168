// Reconciliation: what the local ledger says Stripe acknowledged, against Stripe's own meter event summaries.
// Summaries: https://docs.stripe.com/api/billing/meter-event-summary/list (per meter and customer; start_time
// inclusive, end_time exclusive, aligned to minutes, or to hours with value_grouping_window=hour; eventually consistent).
import { MeterConfigError } from '../errors';
import { HOUR_MS } from '../store/ledger';
import type { LedgerRow } from '../store/types';
import { listAll, openStripeReader } from './stripe-reader';
import { listMeters, metersByEventName } from './verify-meters';
import type { StripeMeter } from './verify-meters';
import type { ReconcileOptions, ReconcileResult, ReconcileRow, StripeReader } from './types';

function instant(value: unknown, option: string): number {
  const ms = value instanceof Date ? value.getTime() : value;
  if (typeof ms !== 'number' || !Number.isFinite(ms)) throw new MeterConfigError(option, 'must be a Date or milliseconds since the epoch');
  return ms;
}

function names(value: unknown, option: string): readonly string[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || value.some((v) => typeof v !== 'string' || v.length === 0)) throw new MeterConfigError(option, 'must be an array of non-empty strings');
  return value as string[];
}

/** Stripe writes aggregates as JSON numbers; integers are compared exactly, anything else as written. */
function exact(value: unknown): string {
  if (typeof value === 'number' && Number.isSafeInteger(value)) return String(value);
  if (typeof value === 'bigint') return value.toString();
  return typeof value === 'number' ? String(value) : '0';
}

async function stripeTotal(read: StripeReader, meterId: string, customerId: string, from: number, to: number): Promise<string> {
  const summaries = await listAll<{ id: string; aggregated_value?: unknown }>(read, `/v1/billing/meters/${encodeURIComponent(meterId)}/event_summaries`, {
    customer: customerId,
    start_time: String(from / 1000),
    end_time: String(to / 1000),
  });
  // Without value_grouping_window Stripe returns one summary for the whole range.
  let total = 0n;
  let inexact: string | undefined;
  for (const summary of summaries) {
    const value = exact(summary.aggregated_value);
    if (/^-?\d+$/.test(value)) total += BigInt(value);
    else inexact = value;
  }
  return inexact ?? total.toString();
}

/** Sums the ledger's delivered column per customer × event name over the window (count for `count` meters). */
function expectedTotals(rows: readonly LedgerRow[]): Map<string, { customerId: string; eventName: string; sum: bigint; count: number; uncertain: number }> {
  const totals = new Map<string, { customerId: string; eventName: string; sum: bigint; count: number; uncertain: number }>();
  for (const row of rows) {
    const key = `${row.customerId.length}:${row.customerId}${row.eventName}`;
    let total = totals.get(key);
    if (total === undefined) totals.set(key, (total = { customerId: row.customerId, eventName: row.eventName, sum: 0n, count: 0, uncertain: 0 }));
    total.sum += BigInt(row.delivered.value);
    total.count += row.delivered.count;
    total.uncertain += row.uncertain.count;
  }
  return totals;
}

/**
 * Compares the ledger's delivered usage with Stripe's meter event summaries per customer and event name over
 * `[from, to)` (hour-aligned). Without a ledger, lists Stripe's totals for `customers`.
 *
 * @example
 * const result = await reconcile({ apiKey, from: Date.now() - 86_400_000, to: Date.now(), ledger: (q) => reporter.ledger(q) });
 * if (!result.clean) console.log(formatReconcileTable(result));
 */
export async function reconcile(options: ReconcileOptions): Promise<ReconcileResult> {
  if (options === null || typeof options !== 'object') throw new MeterConfigError('reconcile', 'expects { apiKey, from, to, ledger? }');
  const from = Math.floor(instant(options.from, 'from') / HOUR_MS) * HOUR_MS;
  const to = Math.ceil(instant(options.to, 'to') / HOUR_MS) * HOUR_MS;
  if (to <= from) throw new MeterConfigError('to', 'must be after from');
  const eventNames = names(options.eventNames, 'eventNames');
  const customers = names(options.customers, 'customers');
  const { ledger } = options;
  if (ledger !== undefined && typeof ledger !== 'function' && !Array.isArray(ledger)) throw new MeterConfigError('ledger', 'must be ledger rows or a function ({ from, to, customerId? }) => rows');
  if (ledger === undefined && customers === undefined) {
    throw new MeterConfigError('customers', "is required without a ledger: Stripe's event summaries are per customer");
  }
  const reader = openStripeReader(options);
  try {
    const all: readonly LedgerRow[] = ledger === undefined ? [] : typeof ledger === 'function' ? await ledger({ from, to }) : ledger;
    const rows = all.filter(
      (r) => r.hour >= from && r.hour < to && (eventNames === undefined || eventNames.includes(r.eventName)) && (customers === undefined || customers.includes(r.customerId)),
    );
    const meters = await listMeters(reader.read);
    const byName = metersByEventName(meters);
    const expected = expectedTotals(rows);
    // Pairs Stripe is asked about: the ledger's, plus every named customer × event name (zero expected).
    const pairCustomers = customers ?? [];
    const pairEvents = eventNames ?? (ledger === undefined ? meters.filter((m) => m.status === 'active').map((m) => m.event_name!) : []);
    for (const customerId of pairCustomers) {
      for (const eventName of pairEvents) {
        const key = `${customerId.length}:${customerId}${eventName}`;
        if (!expected.has(key)) expected.set(key, { customerId, eventName, sum: 0n, count: 0, uncertain: 0 });
      }
    }
    const out: ReconcileRow[] = [];
    for (const total of [...expected.values()].sort((a, b) => (a.customerId === b.customerId ? (a.eventName < b.eventName ? -1 : 1) : a.customerId < b.customerId ? -1 : 1))) {
      const meter: StripeMeter | undefined = byName.get(total.eventName);
      const formula = meter?.default_aggregation?.formula;
      const stripe = meter === undefined ? '0' : await stripeTotal(reader.read, meter.id, total.customerId, from, to);
      let expectedValue: string | undefined;
      if (ledger !== undefined) expectedValue = formula === 'count' ? String(total.count) : total.sum.toString();
      let difference: string | undefined;
      if (expectedValue !== undefined && formula !== 'last' && /^-?\d+$/.test(stripe)) difference = (BigInt(stripe) - BigInt(expectedValue)).toString();
      out.push(Object.freeze({ customerId: total.customerId, eventName: total.eventName, meterId: meter?.id, formula, expected: expectedValue, stripe, difference, uncertain: total.uncertain }));
    }
    const clean = out.every((row) => row.difference === undefined || row.difference === '0');
    return Object.freeze({ from, to, withLedger: ledger !== undefined, rows: Object.freeze(out), clean });
  } finally {
    await reader.close();
  }
}

/** The result as a plain-text table: customer, event name, expected, Stripe, difference. */
export function formatReconcileTable(result: ReconcileResult): string {
  const header = result.withLedger ? ['customer', 'event name', 'expected', 'Stripe', 'difference'] : ['customer', 'event name', 'Stripe'];
  const lines = result.rows.map((row) => {
    const note = row.meterId === undefined ? ' (no meter)' : row.formula === 'last' ? ' (last: not comparable)' : row.uncertain > 0 ? ` (${row.uncertain} uncertain)` : '';
    const cells = result.withLedger
      ? [row.customerId, row.eventName, row.expected ?? '', row.stripe, `${row.difference === undefined ? '-' : row.difference.startsWith('-') || row.difference === '0' ? row.difference : `+${row.difference}`}${note}`]
      : [row.customerId, row.eventName, `${row.stripe}${note}`];
    return cells;
  });
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((cells) => cells[i]!.length)));
  const format = (cells: readonly string[]): string => cells.map((c, i) => (i >= 2 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  const window = `${new Date(result.from).toISOString()} – ${new Date(result.to).toISOString()}`;
  const verdict = !result.withLedger ? "Stripe's totals (no ledger given)" : result.clean ? 'clean: Stripe matches the ledger' : 'DIFFERENCE: Stripe does not match the ledger';
  return [`Reconciliation ${window}`, format(header), format(widths.map((w) => '-'.repeat(w))), ...lines.map(format), verdict].join('\n');
}
