// Types of the event stores: the durable store interface the reporter drives, the spool's options and the usage ledger.
import type { MeterSpoolError } from '../errors';
import type { EventStore, QueuedEvent } from './queue';

/** How an event left the store: the ledger column it is counted in. */
export type SettleOutcome = 'delivered' | 'failed' | 'dropped' | 'uncertain';

/**
 * When `push()` makes an event durable.
 * - `'event'`: `push()` returns only after the event's row is committed to the spool's write-ahead
 *   log; a crash or SIGKILL at any instant afterwards loses no pushed event.
 * - `'turn'`: rows pushed during one turn of the event loop are committed together in that turn's
 *   check phase (`setImmediate`), and sooner when `markAttempted()`, `commit()`, `ledger()`, `close()`
 *   or process exit forces it; a crash or SIGKILL loses at most the events pushed since the last
 *   commit, all of them from the turn in progress.
 */
export type SpoolDurability = 'event' | 'turn';

/**
 * SQLite's `synchronous` setting in WAL mode: what a power loss or OS crash (not a process crash) costs.
 * - `'normal'`: commits are written to the OS and fsynced only every 128th commit and at
 *   checkpoints; a power loss can roll back the commits since the last fsync, at most 127 (the file
 *   stays consistent).
 * - `'full'`: every commit is fsynced before it returns; a power loss loses no committed row.
 */
export type SpoolSynchronous = 'normal' | 'full';

/** Options of `SpoolStore.open()`. */
export interface SpoolOptions {
  /** Path of the spool's SQLite file; missing directories are created. Required. */
  path: string;
  /**
   * When `push()` makes an event durable; see `SpoolDurability`.
   * @default 'turn'
   */
  durability?: SpoolDurability;
  /**
   * What a power loss can cost; see `SpoolSynchronous`.
   * @default 'normal'
   */
  synchronous?: SpoolSynchronous;
  /**
   * Most bytes of event rows the spool holds (queued, in flight, and recovered rows not yet settled);
   * past it `hasRoomFor()` is false and the reporter applies its overflow policy. The file itself is
   * capped at twice this plus 4 MiB (ledger, b-tree pages, write-ahead log).
   * @default 268435456 (256 MiB)
   */
  maxBytes?: number;
  /**
   * An event whose first attempt is older than this at `recover()` may already be billed, and
   * Stripe's duplicate detection (24 h) may have forgotten it: it is returned as uncertain, not resent.
   * @default 82800000 (23 h: Stripe's 24 h minus an hour for the resend's own queueing and retries)
   */
  resendWithinMs?: number;
  /**
   * Ledger rows for hours older than this are deleted when the spool opens.
   * @default 3456000000 (40 days: Stripe refuses events older than 35)
   */
  ledgerRetentionMs?: number;
  /**
   * Called when the spool cannot write (disk full, I/O error, corruption found while running); the
   * store then keeps every event in memory and retries the writes every second. Never throws into the store.
   * @default undefined (the error is not reported)
   */
  onError?: (error: MeterSpoolError) => void;
}

/** Counts and exact value sums of one ledger column. */
export interface LedgerTally {
  /** Events. */
  readonly count: number;
  /** Sum of their values, as an exact decimal string. */
  readonly value: string;
}

/** One customer × event name × hour of usage (the hour of the events' own timestamps). */
export interface LedgerRow {
  /** Start of the hour, in milliseconds since the epoch (UTC). */
  readonly hour: number;
  /** The events' Stripe customer id. */
  readonly customerId: string;
  /** The events' meter `event_name`. */
  readonly eventName: string;
  /** Accepted by `report()`. */
  readonly accepted: LedgerTally;
  /** Acknowledged by Stripe. */
  readonly delivered: LedgerTally;
  /** Refused by Stripe or out of retries. */
  readonly failed: LedgerTally;
  /** Dropped undelivered (overflow, shutdown, expired). */
  readonly dropped: LedgerTally;
  /** Left by a previous process with an attempt too old to resend safely: reconcile with Stripe. */
  readonly uncertain: LedgerTally;
}

/** Arguments of `ledger()`. */
export interface LedgerQuery {
  /** Rows whose hour ends after this instant (inclusive start of the range). */
  from: Date | number;
  /** Rows whose hour starts before this instant (exclusive end of the range). */
  to: Date | number;
  /** Only this customer's rows. */
  customerId?: string;
}

/** An event a previous process left whose first attempt is too old to resend. */
export interface UncertainEvent {
  /** The event as the spool kept it, identifier included. */
  readonly event: QueuedEvent;
  /** When a request carrying it was first attempted (ms since the epoch). */
  readonly firstAttemptAt: number;
}

/** What `recover()` found from a previous process. */
export interface RecoveredEvents {
  /** Events put back at the head of the queue, oldest first, with their identifiers; `seq` is 0. */
  readonly resend: readonly QueuedEvent[];
  /** Events older than Stripe's 35-day window: never queued; settle them as `'dropped'` once handed to `onDrop`. */
  readonly expired: readonly QueuedEvent[];
  /** Events possibly billed already: never queued; settle them as `'uncertain'` once reported. */
  readonly uncertain: readonly UncertainEvent[];
  /**
   * When each event of `resend` that a previous process had already sent was first attempted (ms since
   * the epoch): its retries stop where Stripe may no longer deduplicate it. Optional for a store of your own.
   */
  readonly firstAttempts?: ReadonlyMap<QueuedEvent, number>;
}

/**
 * An `EventStore` that can outlive the process, with a usage ledger. Rows leave it only through
 * `settle()`: `shift()`, `take()` and `drain()` hand events out (to a request, to a drop) but keep
 * their rows until the outcome is known, so a crash at any point leaves them to `recover()`.
 */
export interface DurableEventStore extends EventStore {
  /** Whether pushed events currently reach disk (false for the memory store, and while a spool has fallen back to memory). */
  readonly durable: boolean;
  /** Estimated bytes of the rows held (queued, handed out and not settled, recovered). */
  readonly bytes: number;
  /** Whether `push(event)` fits under `maxBytes`; when false the reporter applies its overflow policy first. */
  hasRoomFor(event: QueuedEvent): boolean;
  /**
   * Records that a request carrying `events` may reach Stripe from now on, keeping the first
   * attempt's time. Committed before it returns (with everything pushed before): call it right
   * before the request is sent, on every attempt.
   */
  markAttempted(events: readonly QueuedEvent[], at: number): void;
  /** Removes the events' rows (in batched commits) and counts them in the ledger under `outcome`. */
  settle(events: readonly QueuedEvent[], outcome: SettleOutcome): void;
  /** Counts events accepted but never pushed (`overflow: 'drop-newest'`) as accepted and dropped. */
  discard(events: readonly QueuedEvent[]): void;
  /**
   * Classifies what a previous process left (once; later calls find nothing): resendable events are
   * queued at the head, the rest returned. `now` is the current time in ms since the epoch.
   */
  recover(now: number): RecoveredEvents;
  /** Commits every buffered write now (pushes, settles, attempts, ledger). */
  commit(): void;
  /** Ledger rows overlapping `[from, to)`, ordered by hour, customer and event name. */
  ledger(query: LedgerQuery): LedgerRow[];
  /** Commits and releases the spool (its lock included); rows not settled stay for the next process. Idempotent. */
  close(): void;
}
