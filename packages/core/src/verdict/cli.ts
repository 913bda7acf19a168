// `metered reconcile`: the ledger of a spool (or none) against Stripe's meter event summaries, as a table and an exit code.
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { MeterError, MeterSpoolError } from '../errors';
import { SpoolStore } from '../store/spool-store';
import type { LedgerQuery, LedgerRow } from '../store/types';
import { formatReconcileTable, reconcile } from './reconcile';

const USAGE = `Usage: metered reconcile --from <time> --to <time> [--spool <file>] [--event-name <name>]… [--customer <id>]… [--api-base-url <url>]

Compares the usage a reporter's spool says Stripe acknowledged with Stripe's meter event summaries,
per customer and event name, over [from, to) rounded to whole hours. Without --spool it lists Stripe's
totals for each --customer. Times are ISO 8601 (2025-01-31T00:00:00Z) or epoch milliseconds.
The secret key is read from STRIPE_SECRET_KEY. Exit status: 0 clean, 1 a difference, 2 a usage or runtime error.`;

/** Where the CLI writes; the process's streams unless a test gives its own. */
export interface CliIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  readonly env: Readonly<Record<string, string | undefined>>;
}

function time(value: string | undefined, flag: string): number {
  if (value === undefined) throw new UsageError(`--${flag} is required`);
  const ms = /^\d+$/.test(value) ? Number(value) : Date.parse(value);
  if (!Number.isFinite(ms)) throw new UsageError(`--${flag} must be an ISO 8601 time or epoch milliseconds, got ${JSON.stringify(value)}`);
  return ms;
}

class UsageError extends Error {}

/**
 * Reads the ledger of a spool no reporter holds. The spool is opened only to read its ledger and closed at once:
 * it is never recovered or delivered from here, so its queued events stay for the next reporter.
 */
function spoolLedger(file: string): (query: LedgerQuery) => LedgerRow[] {
  if (!fs.existsSync(file)) throw new UsageError(`--spool ${file}: no such file`);
  return (query) => {
    let store: SpoolStore;
    try {
      store = SpoolStore.open({ path: file });
    } catch (error) {
      if (error instanceof MeterSpoolError && error.code === 'ERR_METER_SPOOL_LOCKED') {
        throw new MeterSpoolError(
          'ERR_METER_SPOOL_LOCKED',
          file,
          `The spool ${file} is held by a running reporter (it keeps an exclusive lock while it runs); reconcile from that process with reporter.ledger(), or run this once the reporter has closed`,
          error.sqliteCode,
          error,
        );
      }
      throw error;
    }
    try {
      return store.ledger(query);
    } finally {
      store.close();
    }
  };
}

/** Runs the CLI with `argv` (without node and the script); resolves with the exit status. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  try {
    const { positionals, values } = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        from: { type: 'string' },
        to: { type: 'string' },
        spool: { type: 'string' },
        'event-name': { type: 'string', multiple: true },
        customer: { type: 'string', multiple: true },
        'api-base-url': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
    if (values.help === true) {
      io.stdout(`${USAGE}\n`);
      return 0;
    }
    if (positionals.length !== 1 || positionals[0] !== 'reconcile') throw new UsageError(positionals.length === 0 ? 'a command is required' : `unknown command ${JSON.stringify(positionals.join(' '))}`);
    const apiKey = io.env.STRIPE_SECRET_KEY;
    if (apiKey === undefined || apiKey.length === 0) throw new UsageError('STRIPE_SECRET_KEY is not set');
    const customers = values.customer;
    if (values.spool === undefined && customers === undefined) throw new UsageError("without --spool, give at least one --customer (Stripe's summaries are per customer)");
    const result = await reconcile({
      apiKey,
      apiBaseUrl: values['api-base-url'],
      from: time(values.from, 'from'),
      to: time(values.to, 'to'),
      ledger: values.spool === undefined ? undefined : spoolLedger(values.spool),
      eventNames: values['event-name'],
      customers,
    });
    io.stdout(`${formatReconcileTable(result)}\n`);
    return result.clean ? 0 : 1;
  } catch (error) {
    if (error instanceof UsageError || (error instanceof TypeError && (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') === true)) {
      io.stderr(`metered: ${error.message}\n\n${USAGE}\n`);
    } else if (error instanceof MeterError) {
      io.stderr(`metered: ${error.code}: ${error.message}\n`);
    } else {
      io.stderr(`metered: ${error instanceof Error ? error.message : String(error)}\n`);
    }
    return 2;
  }
}
