// The on-disk spool: accepted events in a SQLite file (WAL, one owning process) until their outcome is known, with the ledger.
import fs from 'node:fs';
import path from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import { MeterClosedError, MeterConfigError, MeterSpoolError } from '../errors';
import type { QueuedEvent } from './queue';
import { MAX_EVENT_AGE_MS } from '../intake/validate';
import { DEFAULT_LEDGER_RETENTION_MS, HOUR_MS, LEDGER_COLUMNS, LedgerCells, compareRows, queryBounds, toRow } from './ledger';
import type { LedgerCell } from './ledger';
import { MemoryDurableStore, QueueBackedStore } from './memory-store';
import type {
  DurableEventStore,
  LedgerQuery,
  LedgerRow,
  RecoveredEvents,
  SettleOutcome,
  SpoolDurability,
  SpoolOptions,
  SpoolSynchronous,
  UncertainEvent,
} from './types';

export const DEFAULT_SPOOL_DURABILITY: SpoolDurability = 'turn';
export const DEFAULT_SPOOL_SYNCHRONOUS: SpoolSynchronous = 'normal';
export const DEFAULT_SPOOL_MAX_BYTES = 256 * 1024 * 1024;
export const DEFAULT_RESEND_WITHIN_MS = 23 * HOUR_MS;
/** Stripe forgets identifiers after 24 h: resending later than that could bill twice. */
const DEDUP_WINDOW_MS = 24 * HOUR_MS;
const MIN_MAX_BYTES = 64 * 1024;
/**
 * Bumped when the tables or their meaning change; a spool written by a newer version is refused, never
 * rewritten. 2: the ledger table counts an event as accepted when its row leaves (settled), in the
 * same statement as its outcome, and a row still held counts as accepted through the events table
 * (so a push writes its row and nothing else). Version 1 counted it at push. 3: an event row holds its
 * strings in one encoded column (`encodeEvent`) beside its timestamp, where 1 and 2 had a column each.
 * Versions 1 and 2 are migrated on open, in one transaction.
 */
const SCHEMA_VERSION = 3;
/** Marks the file as a metered spool ('metr'), so a path pointing at another database is refused. */
const APPLICATION_ID = 0x6d657472;
/** While writes fail, they are retried this often (not every turn: a failing write still costs its rows). */
const WRITE_RETRY_MS = 1000;
/** Per-row cost beyond its strings in the estimate behind `maxBytes` (rowid, header, b-tree cell). */
const ROW_OVERHEAD_BYTES = 48;
/** Free pages that trigger an incremental vacuum, so a drained backlog gives its disk space back. */
const VACUUM_FREE_PAGES = 256;
/**
 * Page size of a new spool, by the durability it is created with. A commit writes whole pages to the
 * log: a commit of one event (`'event'`) changes one page, and 1 KiB writes and checksums a quarter of
 * SQLite's default (~1.2 µs less CPU per report() measured); a turn's rows fill their pages either
 * way, and fewer, larger pages cost fewer writes (4 KiB: ~0.5 µs less per report() than 1 KiB).
 */
const PAGE_SIZE: Readonly<Record<SpoolDurability, number>> = { event: 1024, turn: 4096 };
/**
 * With `synchronous: 'normal'` SQLite fsyncs the log only at a checkpoint, so the commits since the
 * last fsync are what a power loss can cost: every this-many-th commit runs with `synchronous = FULL`,
 * which fsyncs the log (and with it every commit before) once, where a checkpoint costs two fsyncs and
 * the copy (the bound the README states: raw SQLite, one event a commit, ~45–57 → 27–30 µs wall)…
 */
const SYNC_COMMITS = 128;
/** …and a checkpoint runs once the log holds this much (SQLite's autocheckpoint, in pages of the file's size)… */
const WAL_CHECKPOINT_BYTES = 1024 * 1024;
/** …and the log is truncated to this afterwards. */
const WAL_LIMIT_BYTES = 1024 * 1024;
/** Headroom of the hard file cap over `maxBytes`: the ledger, b-tree slack, the log. */
const FILE_CAP_SLACK_BYTES = 4 * 1024 * 1024;
/**
 * Value sums are kept as two integers, `hi * 10^9 + lo`, so that SQLite adds them exactly in one
 * upsert: with values below 10^15 each column stays under 2^63 for billions of events per cell.
 */
const VALUE_SPLIT = 1_000_000_000n;
/**
 * Rows per multi-row INSERT: each statement run costs a native call and a VM program start, so a
 * turn's rows go in a few statements instead of one each (64 × 18 parameters stays far below SQLite's 32,766).
 */
const ROWS_PER_STATEMENT = 64;

type Database = BetterSqlite3.Database;
type Statement = BetterSqlite3.Statement;

interface ResolvedSpoolOptions {
  readonly path: string;
  readonly durability: SpoolDurability;
  readonly synchronous: SpoolSynchronous;
  readonly maxBytes: number;
  readonly resendWithinMs: number;
  readonly ledgerRetentionMs: number;
  readonly onError: ((error: MeterSpoolError) => void) | undefined;
}

/** An event row as schema 3 stores it. */
interface EventRow {
  id: number;
  event: string;
  timestamp: number;
  first_attempt_at: number | null;
}

/** An event row as schemas 1 and 2 stored it: a column per field. */
interface LegacyEventRow {
  id: number;
  identifier: string;
  event_name: string;
  customer_id: string;
  value: string;
  timestamp: number;
  dimensions: string | null;
  first_attempt_at: number | null;
}

/** An event a previous process left in the file, with its row id. */
interface StoredEvent {
  readonly id: number;
  readonly event: QueuedEvent;
  readonly firstAttemptAt: number | null;
}

interface Leftover {
  readonly event: QueuedEvent;
  readonly firstAttemptAt: number | null;
}

const EVENTS_TABLE = `
CREATE TABLE events (
  id INTEGER PRIMARY KEY,
  event TEXT NOT NULL,
  timestamp INTEGER NOT NULL,
  first_attempt_at INTEGER
);`;

const SCHEMA = `${EVENTS_TABLE}
CREATE TABLE ledger (
  hour INTEGER NOT NULL,
  customer_id TEXT NOT NULL,
  event_name TEXT NOT NULL,
  ${LEDGER_COLUMNS.map((c) => `${c}_count INTEGER NOT NULL, ${c}_hi INTEGER NOT NULL, ${c}_lo INTEGER NOT NULL`).join(',\n  ')},
  PRIMARY KEY (hour, customer_id, event_name)
) WITHOUT ROWID;
`;

const CELL_PLACEHOLDERS = `(?, ?, ?, ${LEDGER_COLUMNS.map(() => '?, ?, ?').join(', ')})`;

/** The SQL inserting `rows` rows of `columns` into `events`, for a statement per row count. */
function insertEventRows(columns: readonly string[]): (rows: number) => string {
  const row = `(${columns.map(() => '?').join(', ')})`;
  return (rows) => `INSERT INTO events (${columns.join(', ')}) VALUES ${Array.from({ length: rows }, () => row).join(', ')}`;
}

const insertEvents = insertEventRows(['id', 'event', 'timestamp']);
/** Rows with their attempt marks, as a migration copies them. */
const insertStoredEvents = insertEventRows(['id', 'event', 'timestamp', 'first_attempt_at']);

/**
 * An event's strings as one column (schema 3): the lengths of its identifier, event name and customer
 * id as one character each (validated to at most 255 characters, far below the surrogates), then those
 * three strings, then the value (digits only), then the dimensions as JSON (starting with `{`) when
 * there are any. One bound string a row instead of six: each bind and UTF-8 conversion is a native
 * step (raw SQLite, 100 rows a commit: ~0.24 µs less CPU per row), and any character may appear in a
 * string since none is a separator.
 */
export function encodeEvent(event: QueuedEvent): string {
  const head = String.fromCharCode(event.identifier.length, event.eventName.length, event.customerId.length);
  const text = head + event.identifier + event.eventName + event.customerId + event.value;
  return event.dimensions === undefined ? text : text + JSON.stringify(event.dimensions);
}

const DIGITS = /^[0-9]+$/;

/** The event `encodeEvent` wrote; `undefined` when the text is not one (a damaged row). */
export function decodeEvent(text: string, timestamp: number): QueuedEvent | undefined {
  if (text.length < 3) return undefined;
  const identifierEnd = 3 + text.charCodeAt(0);
  const eventNameEnd = identifierEnd + text.charCodeAt(1);
  const customerIdEnd = eventNameEnd + text.charCodeAt(2);
  if (customerIdEnd > text.length) return undefined;
  const brace = text.indexOf('{', customerIdEnd);
  const valueEnd = brace === -1 ? text.length : brace;
  const value = text.slice(customerIdEnd, valueEnd);
  // Only digits were written (a validated value): anything else is a damaged row, not a value to send.
  if (!DIGITS.test(value)) return undefined;
  let dimensions: Record<string, string> | undefined;
  if (brace !== -1) {
    try {
      dimensions = JSON.parse(text.slice(brace)) as Record<string, string>;
    } catch {
      return undefined;
    }
  }
  return {
    eventName: text.slice(identifierEnd, eventNameEnd),
    customerId: text.slice(eventNameEnd, customerIdEnd),
    value,
    timestamp,
    identifier: text.slice(3, identifierEnd),
    dimensions,
    // Reported before this process started: every flush() of this process waits for it.
    seq: 0,
  };
}

function upsertCells(rows: number): string {
  return `INSERT INTO ledger VALUES ${Array.from({ length: rows }, () => CELL_PLACEHOLDERS).join(', ')}
ON CONFLICT (hour, customer_id, event_name) DO UPDATE SET
${LEDGER_COLUMNS.map((c) => `${c}_count = ${c}_count + excluded.${c}_count, ${c}_hi = ${c}_hi + excluded.${c}_hi, ${c}_lo = ${c}_lo + excluded.${c}_lo`).join(',\n')}`;
}

type RowParam = number | string | bigint | null;

/** Appends the parameters of one `CELL_PLACEHOLDERS` row: the cell's key, then count, hi, lo per column, times `sign`. */
function cellArgs(out: RowParam[], cell: LedgerCell, sign: 1n | -1n): void {
  out.push(cell.hour, cell.customerId, cell.eventName);
  for (let i = 0; i < LEDGER_COLUMNS.length; i += 1) {
    const sum = sign === 1n ? cell.sums[i]! : -cell.sums[i]!;
    const count = sign === 1n ? cell.counts[i]! : -cell.counts[i]!;
    // Most sums fit in the low part: a number binds cheaper than a BigInt and needs no division.
    if (sum >= 0n && sum < VALUE_SPLIT) out.push(count, 0, Number(sum));
    else out.push(count, sum / VALUE_SPLIT, sum % VALUE_SPLIT);
  }
}

/** Calls `each` once per run of consecutive ids (sorts `ids` in place). */
function forEachRun(ids: number[], each: (start: number, end: number) => void): void {
  ids.sort((a, b) => a - b);
  let start = ids[0]!;
  let end = start;
  for (let i = 1; i <= ids.length; i += 1) {
    const id = ids[i];
    if (id === end + 1) {
      end = id;
      continue;
    }
    each(start, end);
    if (id !== undefined) start = end = id;
  }
}

/** The estimate `maxBytes` bounds: the row's strings plus a fixed overhead. */
function rowBytes(event: QueuedEvent): number {
  let bytes = ROW_OVERHEAD_BYTES + event.identifier.length + event.eventName.length + event.customerId.length + event.value.length;
  if (event.dimensions !== undefined) for (const key in event.dimensions) bytes += key.length + event.dimensions[key]!.length + 6;
  return bytes;
}

function resolveSpoolOptions(options: SpoolOptions): ResolvedSpoolOptions {
  if (options === null || typeof options !== 'object') throw new MeterConfigError('spool', 'must be an object with a path');
  const { durability = DEFAULT_SPOOL_DURABILITY, synchronous = DEFAULT_SPOOL_SYNCHRONOUS } = options;
  if (typeof options.path !== 'string' || options.path.trim() === '') throw new MeterConfigError('spool.path', 'must be a non-empty file path');
  if (durability !== 'event' && durability !== 'turn') throw new MeterConfigError('spool.durability', `must be 'event' or 'turn', got ${String(durability)}`);
  if (synchronous !== 'normal' && synchronous !== 'full') throw new MeterConfigError('spool.synchronous', `must be 'normal' or 'full', got ${String(synchronous)}`);
  const maxBytes = options.maxBytes ?? DEFAULT_SPOOL_MAX_BYTES;
  if (!Number.isSafeInteger(maxBytes) || maxBytes < MIN_MAX_BYTES) throw new MeterConfigError('spool.maxBytes', `must be an integer of at least ${MIN_MAX_BYTES}, got ${String(maxBytes)}`);
  const resendWithinMs = options.resendWithinMs ?? DEFAULT_RESEND_WITHIN_MS;
  if (typeof resendWithinMs !== 'number' || !(resendWithinMs > 0 && resendWithinMs <= DEDUP_WINDOW_MS)) {
    throw new MeterConfigError('spool.resendWithinMs', `must be more than 0 and at most ${DEDUP_WINDOW_MS} (Stripe's 24 h duplicate window), got ${String(resendWithinMs)}`);
  }
  const ledgerRetentionMs = options.ledgerRetentionMs ?? DEFAULT_LEDGER_RETENTION_MS;
  if (typeof ledgerRetentionMs !== 'number' || !(ledgerRetentionMs > 0)) throw new MeterConfigError('spool.ledgerRetentionMs', `must be a positive number of milliseconds, got ${String(ledgerRetentionMs)}`);
  if (options.onError !== undefined && typeof options.onError !== 'function') throw new MeterConfigError('spool.onError', 'must be a function');
  return Object.freeze({ path: path.resolve(options.path), durability, synchronous, maxBytes, resendWithinMs, ledgerRetentionMs, onError: options.onError });
}

/** better-sqlite3 is an optional peer: required only when a spool opens, so the memory store costs nothing. */
function loadDriver(file: string): typeof BetterSqlite3 {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- an optional peer, loaded lazily on purpose
    return require('better-sqlite3') as typeof BetterSqlite3;
  } catch (error) {
    const reason = error instanceof Error ? error.message.split('\n')[0] : String(error);
    throw new MeterSpoolError('ERR_METER_SPOOL_UNAVAILABLE', file, `The spool needs the optional peer dependency better-sqlite3 (npm install better-sqlite3@12): ${reason}`, undefined, error);
  }
}

/** A failure as the coded spool error that says what to do about it. */
export function toSpoolError(error: unknown, file: string, doing: string): MeterSpoolError {
  if (error instanceof MeterSpoolError) return error;
  const raw = (error as { code?: unknown } | null)?.code;
  const code = typeof raw === 'string' ? raw : undefined;
  const sqliteCode = code?.startsWith('SQLITE_') ? code : undefined;
  const detail = error instanceof Error ? error.message : String(error);
  if (code === undefined) return new MeterSpoolError('ERR_METER_SPOOL_IO', file, `${doing} the spool failed: ${detail}`, undefined, error);
  if (/^SQLITE_(BUSY|LOCKED)/.test(code)) {
    return new MeterSpoolError('ERR_METER_SPOOL_LOCKED', file, `The spool is owned by another process or another store in this one (${detail}); give each process its own spool path`, sqliteCode, error);
  }
  if (/^SQLITE_(CORRUPT|NOTADB)/.test(code)) {
    return new MeterSpoolError('ERR_METER_SPOOL_CORRUPT', file, `The spool file is damaged (${detail}); move it aside to start a new spool (sqlite3's .recover can salvage its rows)`, sqliteCode, error);
  }
  if (/^SQLITE_READONLY/.test(code) || code === 'EACCES' || code === 'EROFS' || code === 'EPERM') {
    return new MeterSpoolError('ERR_METER_SPOOL_READONLY', file, `The spool cannot be written (${detail}); give the process a writable directory`, sqliteCode, error);
  }
  if (code === 'SQLITE_FULL' || code === 'ENOSPC') {
    return new MeterSpoolError('ERR_METER_SPOOL_FULL', file, `The disk holding the spool is full (${detail})`, sqliteCode, error);
  }
  return new MeterSpoolError('ERR_METER_SPOOL_IO', file, `${doing} the spool failed (${detail})`, sqliteCode, error);
}

/**
 * Accepted events in a SQLite file until the reporter knows their outcome. Reads never touch the
 * disk (a mirror of the queue stays in memory, and `shift`/`take`/`drain` keep rows until settled); writes are buffered and committed per turn of the
 * event loop, or per event with `durability: 'event'`. One process owns a spool at a time: SQLite's
 * exclusive locking mode holds an OS lock on the file for as long as the store is open, and the
 * kernel drops it when the owner dies, SIGKILL included.
 *
 * @example
 * const store = SpoolStore.open({ path: '/var/lib/app/meter.spool', onError: (e) => log.error(e) });
 * const { resend, expired, uncertain } = store.recover(Date.now());
 */
export class SpoolStore extends QueueBackedStore implements DurableEventStore {
  /**
   * Row id of every event held (queued, handed out, recovered), by identity: the reporter passes back
   * the objects it took. A Map, not a WeakMap: every row leaves through `settle()` (or stays on disk at
   * `close()`), and a WeakMap keyed by new objects costs report() its ephemeron write barrier and every
   * scavenge a pass over the held keys.
   */
  private readonly ids = new Map<QueuedEvent, number>();
  private readonly attempted = new Set<QueuedEvent>();
  private liveBytes = 0;
  private leftovers: Leftover[];

  // Writes not committed yet. An event settled before its insert was committed is never written.
  /**
   * Rows to insert: the events of ids `pendingFrom`, `pendingFrom + 1`… (ids are handed out in push
   * order, so the uncommitted ones are consecutive), a slot emptied when its event is settled first.
   * An array, not a Map by id: a push appends, with no hash-table entry to add.
   */
  private pendingRows: (QueuedEvent | undefined)[] = [];
  private pendingFrom = 0;
  /** The events in `pendingRows`, emptied slots not counted. */
  private pendingCount = 0;
  private readonly pendingAttempts = new Map<number, number>();
  private pendingDeletes: number[] = [];
  private readonly pendingCells = new LedgerCells();
  /** The `accepted` of every row held (on disk or pending): the ledger table counts an event only once it is settled. */
  private readonly held = new LedgerCells();
  /** Rows a previous process left whose hour is past `ledgerRetentionMs`: their acceptance is forgotten, as their hour's cells are. */
  private readonly forgotten = new Set<QueuedEvent>();

  private commitScheduled = false;
  /** Commits since the log was last fsynced by this store (checkpoints by log size are not counted: one more fsync is harmless). */
  private commitsSinceSync = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private failing = false;
  private closed = false;

  /** Multi-row statements by row count, prepared on first use: a turn's sizes repeat. */
  private readonly inserts = new Map<number, Statement>();
  private readonly upserts = new Map<number, Statement>();
  private readonly markRange: Statement;
  private readonly deleteRange: Statement;
  private readonly selectCells: Statement;
  private readonly writeAll: () => void;
  private readonly onExit = (): void => this.close();

  private constructor(
    private readonly db: Database,
    private readonly config: ResolvedSpoolOptions,
    private nextId: number,
    stored: StoredEvent[],
    retainFrom: number,
    version: number,
  ) {
    super();
    this.markRange = db.prepare('UPDATE events SET first_attempt_at = ? WHERE id BETWEEN ? AND ? AND first_attempt_at IS NULL');
    this.deleteRange = db.prepare('DELETE FROM events WHERE id BETWEEN ? AND ?');
    this.selectCells = db.prepare('SELECT * FROM ledger WHERE hour >= @from AND hour < @to AND (@customer IS NULL OR customer_id = @customer)');
    const inTransaction = db.transaction(() => this.writePending());
    // One pushed event and nothing else ('event' mode's usual commit) is one statement: its own transaction.
    this.writeAll = () => {
      if (this.pendingCount === 1 && this.pendingAttempts.size === 0 && this.pendingDeletes.length === 0 && this.pendingCells.size === 0) this.writePending();
      else inTransaction();
    };
    this.leftovers = stored.map(({ id, event, firstAttemptAt }) => {
      this.ids.set(event, id);
      if (firstAttemptAt !== null) this.attempted.add(event);
      if (event.timestamp - (event.timestamp % HOUR_MS) < retainFrom) this.forgotten.add(event);
      else this.held.add(event, 'accepted');
      this.liveBytes += rowBytes(event);
      return { event, firstAttemptAt };
    });
    if (version < SCHEMA_VERSION) this.migrate(version, stored);
    process.on('exit', this.onExit);
  }

  /**
   * Opens (or creates) the spool at `options.path` and takes its lock. Throws `MeterConfigError`
   * for bad options and `MeterSpoolError` when the spool cannot be used: `ERR_METER_SPOOL_UNAVAILABLE`
   * (better-sqlite3 missing), `_LOCKED` (another owner), `_CORRUPT` (damaged, or not a spool),
   * `_VERSION` (written by a newer metered), `_READONLY`, `_FULL`, `_IO`.
   */
  static open(options: SpoolOptions): SpoolStore {
    const config = resolveSpoolOptions(options);
    const Driver = loadDriver(config.path);
    try {
      const dir = path.dirname(config.path);
      fs.mkdirSync(dir, { recursive: true });
      // SQLite needs to create the log beside the file; asking first gives a clear error instead of SQLITE_CANTOPEN.
      fs.accessSync(dir, fs.constants.W_OK);
      if (fs.existsSync(config.path)) fs.accessSync(config.path, fs.constants.R_OK | fs.constants.W_OK);
    } catch (error) {
      throw toSpoolError(error, config.path, 'Opening');
    }
    let db: Database | undefined;
    try {
      db = new Driver(config.path, { timeout: 0 });
      const opened = db;
      // Exclusive before WAL: the log index then lives in heap memory, and the lock is held until close.
      opened.pragma('locking_mode = EXCLUSIVE');
      // Identified before anything is written, so a path pointing at another database leaves it untouched.
      const version = SpoolStore.identify(opened, config.path);
      const fresh = version === 0;
      if (fresh) {
        opened.pragma(`page_size = ${PAGE_SIZE[config.durability]}`);
        opened.pragma('auto_vacuum = INCREMENTAL');
      }
      if (opened.pragma('journal_mode = WAL', { simple: true }) !== 'wal') throw new MeterSpoolError('ERR_METER_SPOOL_IO', config.path, 'SQLite refused WAL mode for the spool');
      opened.exec('BEGIN EXCLUSIVE; COMMIT');
      const check = opened.pragma('quick_check', { simple: true });
      if (check !== 'ok') throw new MeterSpoolError('ERR_METER_SPOOL_CORRUPT', config.path, `The spool file is damaged (${String(check)}); move it aside to start a new spool`);
      if (fresh) opened.exec(`BEGIN; ${SCHEMA} PRAGMA application_id = ${APPLICATION_ID}; PRAGMA user_version = ${SCHEMA_VERSION}; COMMIT;`);
      opened.pragma(`synchronous = ${config.synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
      const pageSize = opened.pragma('page_size', { simple: true }) as number;
      opened.pragma(`wal_autocheckpoint = ${Math.ceil(WAL_CHECKPOINT_BYTES / pageSize)}`);
      opened.pragma(`journal_size_limit = ${WAL_LIMIT_BYTES}`);
      opened.pragma(`max_page_count = ${Math.ceil((2 * config.maxBytes + FILE_CAP_SLACK_BYTES) / pageSize)}`);
      const retainFrom = Date.now() - config.ledgerRetentionMs;
      opened.prepare('DELETE FROM ledger WHERE hour < ?').run(retainFrom);
      const stored = SpoolStore.readEvents(opened, config.path, fresh ? SCHEMA_VERSION : version);
      return new SpoolStore(opened, config, stored.length === 0 ? 0 : stored[stored.length - 1]!.id, stored, retainFrom, fresh ? SCHEMA_VERSION : version);
    } catch (error) {
      try {
        db?.close();
      } catch {
        // The open already failed; that error is the one worth reporting.
      }
      throw toSpoolError(error, config.path, 'Opening');
    }
  }

  /** The spool's schema version, 0 for a new file (no tables yet); throws unless it is a spool this version can read. */
  private static identify(db: Database, file: string): number {
    const appId = db.pragma('application_id', { simple: true }) as number;
    const tables = (db.prepare("SELECT count(*) AS n FROM sqlite_schema WHERE type = 'table'").get() as { n: number }).n;
    if (appId === 0 && tables === 0) return 0;
    if (appId !== APPLICATION_ID) throw new MeterSpoolError('ERR_METER_SPOOL_CORRUPT', file, 'The file is an SQLite database but not a metered spool; point the spool at its own file');
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version > SCHEMA_VERSION) {
      throw new MeterSpoolError('ERR_METER_SPOOL_VERSION', file, `The spool was written by a newer metered (schema ${version}, this one reads ${SCHEMA_VERSION}); upgrade, or give this version its own spool path`);
    }
    return version;
  }

  /** The events a previous process left, oldest first, from a file of schema `version`. */
  private static readEvents(db: Database, file: string, version: number): StoredEvent[] {
    if (version < 3) {
      const rows = db.prepare('SELECT * FROM events ORDER BY id').all() as LegacyEventRow[];
      return rows.map((row) => ({
        id: row.id,
        event: {
          eventName: row.event_name,
          customerId: row.customer_id,
          value: row.value,
          timestamp: row.timestamp,
          identifier: row.identifier,
          dimensions: row.dimensions === null ? undefined : (JSON.parse(row.dimensions) as Record<string, string>),
          seq: 0,
        },
        firstAttemptAt: row.first_attempt_at,
      }));
    }
    const rows = db.prepare('SELECT id, event, timestamp, first_attempt_at FROM events ORDER BY id').all() as EventRow[];
    return rows.map((row) => {
      const event = typeof row.event === 'string' ? decodeEvent(row.event, row.timestamp) : undefined;
      if (event === undefined) throw new MeterSpoolError('ERR_METER_SPOOL_CORRUPT', file, `The spool's event row ${row.id} is damaged; move the file aside to start a new spool`);
      return { id: row.id, event, firstAttemptAt: row.first_attempt_at };
    });
  }

  /**
   * Rewrites a version-1 or -2 spool as version 3, in one transaction (a failure leaves the file as it
   * was): the event rows in the encoded column, with the same ids and attempt marks. Version 1 counted
   * a row as accepted when it was pushed: the rows it left are also taken out of the ledger table,
   * which counts them when they leave since version 2.
   */
  private migrate(version: number, stored: readonly StoredEvent[]): void {
    this.db.transaction(() => {
      this.db.exec(`DROP TABLE events; ${EVENTS_TABLE}`);
      const statements = new Map<number, Statement>();
      const rows: RowParam[] = [];
      let count = 0;
      for (const { id, event, firstAttemptAt } of stored) {
        rows.push(id, encodeEvent(event), event.timestamp, firstAttemptAt);
        count += 1;
        if (count === ROWS_PER_STATEMENT) {
          this.runRows(statements, insertStoredEvents, count, rows);
          rows.length = count = 0;
        }
      }
      if (count > 0) this.runRows(statements, insertStoredEvents, count, rows);
      if (version === 1) {
        const cells: RowParam[] = [];
        for (const cell of this.held.cells.values()) {
          cells.length = 0;
          cellArgs(cells, cell, -1n);
          this.runRows(this.upserts, upsertCells, 1, cells);
        }
      }
      this.db.pragma(`user_version = ${SCHEMA_VERSION}`);
    })();
  }

  get bytes(): number {
    return this.liveBytes;
  }

  get durable(): boolean {
    return !this.failing && !this.closed;
  }

  /** The spool file's absolute path. */
  get path(): string {
    return this.config.path;
  }

  /** Throws `MeterClosedError` after `close()`; nothing else (a failed write falls back to memory and goes to `onError`). */
  push(event: QueuedEvent): void {
    if (this.closed) throw new MeterClosedError();
    this.nextId += 1;
    this.ids.set(event, this.nextId);
    this.queue.push(event);
    this.liveBytes += rowBytes(event);
    if (this.pendingRows.length === 0) this.pendingFrom = this.nextId;
    this.pendingRows.push(event);
    this.pendingCount += 1;
    this.held.add(event, 'accepted');
    if (this.config.durability === 'event' && !this.failing) this.commit();
    else this.scheduleCommit();
  }

  hasRoomFor(event: QueuedEvent): boolean {
    return this.liveBytes + rowBytes(event) <= this.config.maxBytes;
  }

  markAttempted(events: readonly QueuedEvent[], at: number): void {
    let marked = false;
    for (const event of events) {
      if (this.attempted.has(event)) continue;
      const id = this.ids.get(event);
      if (id === undefined) continue;
      this.attempted.add(event);
      this.pendingAttempts.set(id, at);
      marked = true;
    }
    // While writes fail the retry timer carries the mark; retrying here would rewrite the whole backlog per batch.
    if (marked && !this.failing) this.commit();
  }

  /** Events the store does not hold (already settled, never pushed) are ignored, so nothing is counted twice. */
  settle(events: readonly QueuedEvent[], outcome: SettleOutcome): void {
    if (this.closed) return;
    for (const event of events) {
      const id = this.ids.get(event);
      if (id === undefined) continue;
      this.ids.delete(event);
      this.attempted.delete(event);
      this.liveBytes -= rowBytes(event);
      this.pendingAttempts.delete(id);
      const slot = id - this.pendingFrom;
      if (slot >= 0 && slot < this.pendingRows.length) {
        this.pendingRows[slot] = undefined;
        this.pendingCount -= 1;
      } else {
        this.pendingDeletes.push(id);
      }
      // Its acceptance moves from the row to the ledger table, in the commit that deletes the row.
      if (this.forgotten.size > 0 && this.forgotten.delete(event)) {
        this.pendingCells.add(event, outcome);
      } else {
        this.held.remove(event, 'accepted');
        this.pendingCells.addSettled(event, outcome);
      }
    }
    this.dropSettledSlots();
    this.scheduleCommit();
  }

  /**
   * Lets go of the emptied slots at the front of `pendingRows` (all of them once none holds an event):
   * only a commit clears the array otherwise, and while writes fail delivery goes on settling events,
   * which would leave one slot per event pushed since the failure began.
   */
  private dropSettledSlots(): void {
    const rows = this.pendingRows;
    if (this.pendingCount === 0) {
      if (rows.length > 0) this.pendingRows = [];
      return;
    }
    let settled = 0;
    while (rows[settled] === undefined) settled += 1;
    if (settled === 0) return;
    rows.splice(0, settled);
    this.pendingFrom += settled;
  }

  discard(events: readonly QueuedEvent[]): void {
    if (this.closed) return;
    for (const event of events) this.pendingCells.addSettled(event, 'dropped');
    this.scheduleCommit();
  }

  /**
   * Uncertain first: an event attempted more than `resendWithinMs` ago may be billed and may no longer
   * be deduplicated. Then expired: older than Stripe's 35 days. The rest is queued to resend.
   */
  recover(now: number): RecoveredEvents {
    const leftovers = this.leftovers;
    this.leftovers = [];
    const resend: QueuedEvent[] = [];
    const expired: QueuedEvent[] = [];
    const uncertain: UncertainEvent[] = [];
    const firstAttempts = new Map<QueuedEvent, number>();
    const attemptedBefore = now - this.config.resendWithinMs;
    const timestampBefore = now - MAX_EVENT_AGE_MS;
    for (const { event, firstAttemptAt } of leftovers) {
      if (firstAttemptAt !== null && firstAttemptAt < attemptedBefore) uncertain.push({ event, firstAttemptAt });
      else if (event.timestamp < timestampBefore) expired.push(event);
      else {
        resend.push(event);
        if (firstAttemptAt !== null) firstAttempts.set(event, firstAttemptAt);
      }
    }
    this.queue.unshift(resend);
    return { resend, expired, uncertain, firstAttempts };
  }

  /** Commits buffered writes. A failure goes to `onError` once, and the writes are retried every second until one succeeds. */
  commit(): void {
    if (this.closed || (this.pendingCount === 0 && this.pendingAttempts.size === 0 && this.pendingDeletes.length === 0 && this.pendingCells.size === 0)) return;
    const sync = this.config.synchronous === 'normal' && this.commitsSinceSync + 1 >= SYNC_COMMITS;
    try {
      // Executed, not prepared once: SQLite applies this pragma when it compiles the statement.
      if (sync) this.db.exec('PRAGMA synchronous = FULL');
      try {
        this.writeAll();
      } finally {
        if (sync) this.db.exec('PRAGMA synchronous = NORMAL');
      }
    } catch (error) {
      this.writeFailed(error);
      return;
    }
    this.commitsSinceSync = sync ? 0 : this.commitsSinceSync + 1;
    const deleted = this.pendingDeletes.length > 0;
    this.pendingRows = [];
    this.pendingCount = 0;
    this.pendingAttempts.clear();
    this.pendingDeletes = [];
    this.pendingCells.clear();
    if (this.failing) {
      this.failing = false;
      clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
    }
    if (deleted) this.vacuumIfSparse();
  }

  /** Throws `MeterClosedError` after `close()`, or `MeterSpoolError` when the file cannot be read. */
  ledger(query: LedgerQuery): LedgerRow[] {
    if (this.closed) throw new MeterClosedError();
    const { fromHour, to, customerId } = queryBounds(query);
    this.commit();
    let stored: Record<string, number | string>[];
    try {
      stored = this.selectCells.all({ from: fromHour, to, customer: customerId ?? null }) as Record<string, number | string>[];
    } catch (error) {
      throw toSpoolError(error, this.config.path, 'Reading');
    }
    const cells = new LedgerCells();
    for (const row of stored) {
      cells.merge({
        hour: row.hour as number,
        customerId: row.customer_id as string,
        eventName: row.event_name as string,
        counts: LEDGER_COLUMNS.map((c) => row[`${c}_count`] as number),
        sums: LEDGER_COLUMNS.map((c) => BigInt(row[`${c}_hi`]!) * VALUE_SPLIT + BigInt(row[`${c}_lo`]!)),
      });
    }
    // Rows held count as accepted, and writes that could not be committed (the store fell back to memory) still count.
    for (const pending of [this.held, this.pendingCells]) {
      for (const cell of pending.cells.values()) {
        if (cell.hour >= fromHour && cell.hour < to && (customerId === undefined || cell.customerId === customerId)) cells.merge(cell);
      }
    }
    return [...cells.cells.values()].map(toRow).sort(compareRows);
  }

  close(): void {
    if (this.closed) return;
    this.commit();
    this.closed = true;
    clearTimeout(this.retryTimer);
    process.removeListener('exit', this.onExit);
    try {
      this.db.close();
    } catch (error) {
      this.report(toSpoolError(error, this.config.path, 'Closing'));
    }
  }

  // ---- writing ----

  private writePending(): void {
    // Gathered into multi-row statements inline, here and for the cells below (as the migration does):
    // this runs once per turn in 'turn' mode, on report()'s path; a shared helper object was tried and
    // its A/B stayed inside this machine's noise, so the measured code stays (bench/NOTES.md).
    const rows: RowParam[] = [];
    let count = 0;
    const pending = this.pendingRows;
    for (let slot = 0; slot < pending.length; slot += 1) {
      const event = pending[slot];
      if (event === undefined) continue;
      rows.push(this.pendingFrom + slot, encodeEvent(event), event.timestamp);
      count += 1;
      if (count === ROWS_PER_STATEMENT) {
        this.runRows(this.inserts, insertEvents, count, rows);
        rows.length = count = 0;
      }
    }
    if (count > 0) this.runRows(this.inserts, insertEvents, count, rows);
    // A batch is marked at one instant and its ids are mostly consecutive: one range update per run and
    // instant, rows inserted above included (an attempt is committed at once, so those are rare: only
    // while writes fail).
    if (this.pendingAttempts.size > 0) {
      const marks = new Map<number, number[]>();
      for (const [id, at] of this.pendingAttempts) {
        let ids = marks.get(at);
        if (ids === undefined) marks.set(at, (ids = []));
        ids.push(id);
      }
      for (const [at, ids] of marks) forEachRun(ids, (start, end) => this.markRange.run(at, start, end));
    }
    // Settled rows are mostly consecutive ids: one range delete per run.
    if (this.pendingDeletes.length > 0) forEachRun(this.pendingDeletes, (start, end) => this.deleteRange.run(start, end));
    const cells: RowParam[] = [];
    count = 0;
    for (const cell of this.pendingCells.cells.values()) {
      cellArgs(cells, cell, 1n);
      count += 1;
      if (count === ROWS_PER_STATEMENT) {
        this.runRows(this.upserts, upsertCells, count, cells);
        cells.length = count = 0;
      }
    }
    if (count > 0) this.runRows(this.upserts, upsertCells, count, cells);
  }

  private runRows(cache: Map<number, Statement>, sql: (rows: number) => string, rows: number, args: readonly unknown[]): void {
    let statement = cache.get(rows);
    if (statement === undefined) {
      statement = this.db.prepare(sql(rows));
      cache.set(rows, statement);
    }
    statement.run(...args);
  }

  private scheduleCommit(): void {
    if (this.failing) {
      this.retryTimer ??= setTimeout(() => this.retryWrites(), WRITE_RETRY_MS).unref();
      return;
    }
    if (this.commitScheduled) return;
    this.commitScheduled = true;
    // The check phase ends the loop iteration that ran these pushes: every I/O callback of the turn
    // (many requests under load) shares one commit, and no later turn starts before it is on disk.
    setImmediate(() => {
      this.commitScheduled = false;
      this.commit();
    });
  }

  private retryWrites(): void {
    this.retryTimer = undefined;
    this.commit();
    if (this.failing) this.scheduleCommit();
  }

  private writeFailed(error: unknown): void {
    if (!this.failing) {
      this.failing = true;
      this.report(toSpoolError(error, this.config.path, 'Writing to'));
    }
    this.scheduleCommit();
  }

  private vacuumIfSparse(): void {
    try {
      if ((this.db.pragma('freelist_count', { simple: true }) as number) < VACUUM_FREE_PAGES) return;
      this.db.pragma('incremental_vacuum');
      // The file shrinks only when a checkpoint copies the vacuumed pages back; TRUNCATE also empties the log.
      this.db.pragma('wal_checkpoint(TRUNCATE)');
      this.commitsSinceSync = 0;
    } catch (error) {
      this.writeFailed(error);
    }
  }

  private report(error: MeterSpoolError): void {
    try {
      this.config.onError?.(error);
    } catch {
      // The reporter routes this to its own onError, which guards hooks; a store has no logger to tell.
    }
  }
}

/**
 * Opens a spool, or falls back to memory when the spool cannot be used (locked, damaged, read-only,
 * full): the error goes to `options.onError` and the memory store keeps every event for this
 * process's lifetime. Throws only for bad options and `ERR_METER_SPOOL_UNAVAILABLE` (a missing
 * dependency is a deployment mistake, not a condition to run through).
 */
export function openSpoolOrMemory(options: SpoolOptions, memory: { ledgerRetentionMs?: number } = {}): DurableEventStore {
  try {
    return SpoolStore.open(options);
  } catch (error) {
    if (!(error instanceof MeterSpoolError) || error.code === 'ERR_METER_SPOOL_UNAVAILABLE') throw error;
    try {
      options.onError?.(error);
    } catch {
      // As in SpoolStore.report: the hook's own failure has nowhere better to go.
    }
    return new MemoryDurableStore(memory);
  }
}
