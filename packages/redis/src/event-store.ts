// RedisEventStore: the reporter's store on a Redis Stream shared by every instance, with a local store while Redis is away.
import { MemoryDurableStore, MemoryLedger, MeterConfigError, openSpoolOrMemory, optionalBoolean, optionalFunction, optionalMilliseconds } from '@metered/core';
import type { DurableEventStore, LedgerQuery, LedgerRow, QueuedEvent, RecoveredEvents, SettleOutcome } from '@metered/core';
import type { Redis, Result } from 'ioredis';
import { COLUMNS_FIELD, decodeEntry, encodeEvents } from './codec';
import { MeterRedisError } from './errors';
import { closeClient, connect, GROUP, keysFor, newConsumerName } from './keys';
import type { RedisEventStoreOptions } from './types';

export const DEFAULT_MAX_LENGTH = 1_000_000;
export const DEFAULT_MAX_LOCAL_EVENTS = 100_000;
export const DEFAULT_PREFETCH = 1000;
export const DEFAULT_CLAIM_IDLE_MS = 30_000;
export const DEFAULT_POLL_INTERVAL_MS = 50;
export const DEFAULT_RETRY_INTERVAL_MS = 1000;
export const DEFAULT_COMMAND_TIMEOUT_MS = 5000;
// One pipeline moves at most this many events: a long outage's backlog goes up in slices, not one huge write.
const MOVE_SLICE = 5000;
// Events per stream entry: a stream request's worth. One command per event cost more than the rest of delivery together.
const EVENTS_PER_ENTRY = 100;
// Most stream entries flush() counts for the `pending` it returns at its deadline.
const PENDING_COUNT_LIMIT = 1000;
// Entries per read of this consumer's own pending list (after a read whose answer was lost).
const OWN_PENDING_PAGE = 100;

// ARGV: the number of events, then one JSON array per entry. Adds the entries and counts their events
// in one step, so the count the bound reads never misses an entry; returns the ids, then the count.
const APPEND_SCRIPT = `
local ids = {}
for i = 3, #ARGV do ids[#ids + 1] = redis.call('XADD', KEYS[1], '*', ARGV[1], ARGV[i]) end
ids[#ids + 1] = redis.call('INCRBY', KEYS[2], ARGV[2])
return ids`;

// ARGV: the group, then pairs of entry id and its number of events. Only the instance whose XDEL
// removed an entry takes its events off the count (an entry acknowledged twice counts once); an
// empty stream resets the count, so a stream trimmed by hand cannot leave it stuck high.
const ACK_SCRIPT = `
local gone = 0
for i = 2, #ARGV, 2 do
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[i])
  if redis.call('XDEL', KEYS[1], ARGV[i]) == 1 then gone = gone + tonumber(ARGV[i + 1]) end
end
if redis.call('XLEN', KEYS[1]) == 0 then redis.call('SET', KEYS[2], 0) return 0 end
local left = redis.call('DECRBY', KEYS[2], gone)
if left < 0 then redis.call('SET', KEYS[2], 0) return 0 end
return left`;

// ARGV: the group, then the consumer. Removes the consumer from the group only when nothing is pending
// on it (DELCONSUMER would drop its pending entries: in the stream, behind the group's last id, never
// read again); 1 when removed, 0 when it did not exist (or the group is gone), -1 when it holds entries.
const RETIRE_SCRIPT = `
local pending = redis.pcall('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if type(pending) ~= 'table' or pending['err'] then return 0 end
if #pending > 0 then return -1 end
return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])`;

declare module 'ioredis' {
  interface RedisCommander<Context> {
    meteredAppend(stream: string, count: string, field: string, events: number, ...entries: string[]): Result<(string | number)[], Context>;
    meteredAck(stream: string, count: string, group: string, ...idsAndSizes: (string | number)[]): Result<number, Context>;
    meteredRetire(stream: string, group: string, consumer: string): Result<number, Context>;
  }
}

const NOTHING: RecoveredEvents = Object.freeze({ resend: [], expired: [], uncertain: [] });

function positiveInt(option: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) throw new MeterConfigError(option, `must be an integer of 1 or more, got ${typeof value === 'number' ? value : typeof value}`);
  return value;
}

/**
 * The entries of a one-stream XREADGROUP reply: RESP2 gives `[[key, entries]]`, while ioredis 6
 * unwraps a single stream to `[key, entries]`; null when nothing is new.
 */
function streamEntries(reply: unknown): RawEntry[] {
  if (!Array.isArray(reply) || reply.length === 0) return [];
  const stream: unknown = Array.isArray(reply[0]) ? reply[0] : reply;
  const entries: unknown = Array.isArray(stream) ? stream[1] : undefined;
  return Array.isArray(entries) ? (entries as RawEntry[]) : [];
}

/**
 * Runs `work` on the next microtask and calls `done` when it ends: a run that finds nothing to do must
 * not clear its "running" field before the field has even been set to it.
 */
function once(work: () => Promise<void>, done: () => void): Promise<void> {
  return Promise.resolve()
    .then(work)
    .finally(done);
}

/** An entry as XREADGROUP and XAUTOCLAIM return it: its id and its field list (null once deleted). */
type RawEntry = [id: string, fields: unknown];

/**
 * A `DurableEventStore` on a Redis Stream with one consumer group shared by every instance.
 * `push()` never waits for Redis: events go to a local store (memory, or a spool) and move to the
 * stream in one pipeline per turn of the event loop, or when Redis is back. Entries are read ahead
 * into memory, where the synchronous `take()` serves them, and acknowledged (XACK, XDEL) only once
 * the reporter settles them, so an instance's death leaves them pending for another one to claim
 * (XAUTOCLAIM) and send with the same identifiers, which Stripe deduplicates.
 *
 * @example
 * const store = new RedisEventStore({ redis: process.env.REDIS_URL, onError: (e) => log.error(e) });
 * const reporter = new MeterReporter({ apiKey: process.env.STRIPE_SECRET_KEY!, store });
 */
export class RedisEventStore implements DurableEventStore {
  /** Events in Redis or on their way there are kept at shutdown for another instance. */
  readonly durable = true;
  /** This process's consumer name in the group. */
  readonly consumer: string;
  private readonly redis: Redis;
  private readonly ownsClient: boolean;
  private readonly keys: ReturnType<typeof keysFor>;
  private readonly local: DurableEventStore;
  private readonly ledgerCells = new MemoryLedger();
  private readonly deliver: boolean;
  private readonly maxLength: number;
  private readonly maxLocalEvents: number;
  private readonly prefetchSize: number;
  private readonly claimIdleMs: number;
  private readonly pollIntervalMs: number;
  private readonly retryIntervalMs: number;
  private readonly onError: ((error: MeterRedisError) => void) | undefined;

  // Read ahead and not yet taken; and the entry id of every event this process holds (read, not settled).
  private prefetched: QueuedEvent[] = [];
  private readonly entryIds = new Map<QueuedEvent, string>();
  // Events of each held entry not settled yet, and how many the entry carries: it is acknowledged when the first reaches 0.
  private readonly entryLeft = new Map<string, number>();
  private readonly entrySize = new Map<string, number>();
  // Events a spool left from a previous process that the reporter settles through this store.
  private readonly fromLocal = new WeakSet<QueuedEvent>();
  // Entry ids with their number of events, for the acknowledging script; and every id queued there or
  // in a pipeline not answered yet (still pending on this consumer, already settled: never read again).
  private toAck: (string | number)[] = [];
  private readonly acking = new Set<string>();
  private toTouch = new Set<string>();
  private streamLength = 0;
  // Events taken from the local store for a pipeline that has not answered yet.
  private inTransit = 0;
  private lastAddedId: string | undefined;

  private ready = false;
  private groupChecked = false;
  private outage = false;
  private moving: Promise<void> | undefined;
  private moveScheduled = false;
  private writing: Promise<void> | undefined;
  private writeScheduled = false;
  private reading = false;
  private readingStopped = false;
  // A read failed after it may have reached Redis: its entries may be pending on this consumer with
  // the answer lost. The next read takes this consumer's own pending list first, instead of leaving
  // those entries until an XAUTOCLAIM finds them idle past claimIdleMs (issue 13).
  private ownPendingUnknown = false;
  private claimCursor = '0-0';
  private nextClaimAt = 0;
  private readTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly heartbeat: NodeJS.Timeout;
  private closing: Promise<void> | undefined;
  private readonly availableListeners = new Set<() => void>();

  constructor(options: RedisEventStoreOptions = {}) {
    this.keys = keysFor(options.keyPrefix);
    this.deliver = optionalBoolean('deliver', options.deliver, true);
    this.maxLength = positiveInt('maxLength', options.maxLength, DEFAULT_MAX_LENGTH);
    this.maxLocalEvents = positiveInt('maxLocalEvents', options.maxLocalEvents, DEFAULT_MAX_LOCAL_EVENTS);
    this.prefetchSize = positiveInt('prefetch', options.prefetch, DEFAULT_PREFETCH);
    this.claimIdleMs = optionalMilliseconds('claimIdleMs', options.claimIdleMs, DEFAULT_CLAIM_IDLE_MS);
    this.pollIntervalMs = optionalMilliseconds('pollIntervalMs', options.pollIntervalMs, DEFAULT_POLL_INTERVAL_MS);
    this.retryIntervalMs = optionalMilliseconds('retryIntervalMs', options.retryIntervalMs, DEFAULT_RETRY_INTERVAL_MS);
    const commandTimeoutMs = optionalMilliseconds('commandTimeoutMs', options.commandTimeoutMs, DEFAULT_COMMAND_TIMEOUT_MS);
    this.onError = optionalFunction<RedisEventStoreOptions['onError']>('onError', options.onError, undefined);
    if (options.consumer !== undefined && (typeof options.consumer !== 'string' || options.consumer.length === 0)) {
      throw new MeterConfigError('consumer', 'must be a non-empty string');
    }
    this.consumer = options.consumer ?? newConsumerName();
    this.local = options.spool ? openSpoolOrMemory({ ...options.spool, onError: (error) => this.report(new MeterRedisError('ERR_METER_REDIS_UNAVAILABLE', `The local spool failed (${error.code}); waiting events are kept in memory`, [], error)) }) : new MemoryDurableStore();
    ({ client: this.redis, owned: this.ownsClient } = connect(options.redis, commandTimeoutMs));
    if (typeof (this.redis as Partial<Redis>).meteredAppend !== 'function') {
      this.redis.defineCommand('meteredAppend', { numberOfKeys: 2, lua: APPEND_SCRIPT });
      this.redis.defineCommand('meteredAck', { numberOfKeys: 2, lua: ACK_SCRIPT });
      this.redis.defineCommand('meteredRetire', { numberOfKeys: 1, lua: RETIRE_SCRIPT });
    }

    this.redis.on('ready', this.onReady);
    this.redis.on('error', this.onClientError);
    this.redis.on('close', this.onClientClose);
    if (this.redis.status === 'ready') queueMicrotask(this.onReady);
    // Held entries are refreshed well inside claimIdleMs, so a live instance's entries are never claimed.
    this.heartbeat = setInterval(() => this.touchHeld(), Math.max(1, Math.floor(this.claimIdleMs / 3)));
    this.heartbeat.unref();
  }

  // ---- DurableEventStore ----

  /** Events read ahead and ready for a request (what the reporter can take now). */
  get size(): number {
    return this.prefetched.length;
  }

  /** Bytes of the events waiting in the local store (0 with memory). */
  get bytes(): number {
    return this.local.bytes;
  }

  /** Events waiting in this process for Redis (an outage, or the current turn). */
  get localCount(): number {
    return this.local.size + this.inTransit;
  }

  push(event: QueuedEvent): void {
    this.ledgerCells.add(event, 'accepted');
    this.local.push(event);
    this.scheduleMove();
  }

  hasRoomFor(event: QueuedEvent): boolean {
    return this.local.size < this.maxLocalEvents && this.streamLength + this.local.size < this.maxLength && this.local.hasRoomFor(event);
  }

  shift(): QueuedEvent | undefined {
    const event = this.prefetched.shift();
    this.readSoon();
    return event;
  }

  take(max: number): QueuedEvent[] {
    const out = this.prefetched.length <= max ? this.prefetched : this.prefetched.slice(0, max);
    this.prefetched = this.prefetched.length <= max ? [] : this.prefetched.slice(max);
    this.readSoon();
    return out;
  }

  unshift(events: readonly QueuedEvent[]): void {
    this.prefetched = [...events, ...this.prefetched];
  }

  drain(): QueuedEvent[] {
    return this.take(this.prefetched.length);
  }

  // Nothing to write per request: the heartbeat refreshes every held entry (attempted or not) every
  // claimIdleMs / 3, so no other instance can claim one while a request carrying it is in flight.
  markAttempted(): void {}

  settle(events: readonly QueuedEvent[], outcome: SettleOutcome): void {
    this.ledgerCells.addAll(events, outcome);
    const local: QueuedEvent[] = [];
    for (const event of events) {
      const id = this.entryIds.get(event);
      if (id !== undefined) {
        this.entryIds.delete(event);
        this.streamLength = Math.max(0, this.streamLength - 1);
        const left = (this.entryLeft.get(id) ?? 1) - 1;
        if (left > 0) {
          this.entryLeft.set(id, left);
          continue;
        }
        // Settled in full: acknowledged now. An entry handed back or claimed with some of its events
        // settled is sent again in full, with the same identifiers, which Stripe deduplicates.
        this.entryLeft.delete(id);
        this.queueAck(id, this.entrySize.get(id) ?? 0);
        this.entrySize.delete(id);
      } else if (this.fromLocal.has(event)) {
        local.push(event);
      }
    }
    if (local.length > 0) this.local.settle(local, outcome);
    this.scheduleWrite();
  }

  discard(events: readonly QueuedEvent[]): void {
    this.ledgerCells.addAll(events, 'accepted');
    this.ledgerCells.addAll(events, 'dropped');
  }

  /**
   * What a spool left: resendable events move to the stream like new ones (so they are not returned
   * here); expired and uncertain ones are returned for the reporter to drop or report.
   */
  recover(now: number): RecoveredEvents {
    const { expired, uncertain } = this.local.recover(now);
    if (this.local.size > 0) this.scheduleMove();
    if (expired.length === 0 && uncertain.length === 0) return NOTHING;
    for (const event of expired) this.fromLocal.add(event);
    for (const { event } of uncertain) this.fromLocal.add(event);
    return { resend: [], expired, uncertain };
  }

  commit(): void {
    this.local.commit();
    this.scheduleMove();
    this.scheduleWrite();
  }

  /** This instance's ledger (what it accepted and what it settled, whoever reported it), kept in memory. */
  ledger(query: LedgerQuery): LedgerRow[] {
    return this.ledgerCells.query(query);
  }

  /**
   * Stops reading, hands the entries this instance holds back to the group (claimable at once), moves
   * what waits locally to Redis, then closes the connection it opened. Returns at once; `closed()`
   * resolves when those writes have ended. Idempotent.
   */
  close(): void {
    this.closing ??= this.shutdown();
  }

  // ---- beyond the interface ----

  /** Resolves once `close()`'s last writes have ended (at once if `close()` was never called). */
  closed(): Promise<void> {
    return this.closing ?? Promise.resolve();
  }

  /** Calls `listener` whenever entries arrive in the read-ahead, so a reporter can start a request at once. */
  onAvailable(listener: () => void): () => void {
    this.availableListeners.add(listener);
    return () => this.availableListeners.delete(listener);
  }

  /** Stops reading new entries (shutdown begins: what is held is delivered or handed back). */
  stopReading(): void {
    this.readingStopped = true;
    clearTimeout(this.readTimer);
  }

  /**
   * Resolves once everything pushed so far is in the stream and has left it (delivered, failed or
   * dropped by whichever instance held it), with every older entry; or after `timeoutMs`.
   */
  async waitUntilSettled(timeoutMs: number, sleep: (ms: number) => Promise<void>): Promise<{ settled: boolean; pending: number }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      // Each poll only asks whether anything is left (one entry at most): the count is read once, at the deadline.
      if ((await this.pendingUpTo(1)) === 0) return { settled: true, pending: 0 };
      if (Date.now() >= deadline) {
        const pending = await this.pendingUpTo(PENDING_COUNT_LIMIT);
        return pending === 0 ? { settled: true, pending: 0 } : { settled: false, pending };
      }
      await sleep(Math.min(20, Math.max(1, deadline - Date.now())));
    }
  }

  // Local events, plus (as far as Redis can say right now, up to `limit`) stream entries up to the last one this instance added.
  private async pendingUpTo(limit: number): Promise<number> {
    this.scheduleMove();
    const local = this.local.size + this.inTransit;
    if (!this.ready || this.lastAddedId === undefined) return local + (this.ready ? 0 : this.prefetched.length + this.entryIds.size);
    try {
      const older = (await this.redis.call('XRANGE', this.keys.stream, '-', this.lastAddedId, 'COUNT', limit)) as unknown[];
      return local + older.length;
    } catch {
      return local + 1;
    }
  }

  // ---- connection ----

  private readonly onReady = (): void => {
    this.ready = true;
    this.groupChecked = false;
    void this.ensureGroup().then((ok) => {
      if (!ok) return;
      if (this.outage) this.outage = false;
      this.scheduleMove();
      this.scheduleWrite();
      this.readSoon();
    });
  };

  private readonly onClientError = (error: Error): void => {
    this.unavailable(error);
  };

  private readonly onClientClose = (): void => {
    this.ready = false;
  };

  // The group is created with the stream (MKSTREAM) from its first entry, so events pushed before any reader are read.
  private async ensureGroup(): Promise<boolean> {
    if (this.groupChecked) return true;
    try {
      await this.redis.call('XGROUP', 'CREATE', this.keys.stream, GROUP, '0', 'MKSTREAM');
    } catch (error) {
      if (!(error instanceof Error && error.message.startsWith('BUSYGROUP'))) {
        this.unavailable(error);
        return false;
      }
    }
    this.groupChecked = true;
    return true;
  }

  private unavailable(cause: unknown): void {
    if (cause instanceof Error && cause.message.startsWith('NOGROUP')) this.groupChecked = false;
    if (this.outage) return;
    this.outage = true;
    const reason = cause instanceof Error ? cause.message : String(cause);
    this.report(
      new MeterRedisError(
        'ERR_METER_REDIS_UNAVAILABLE',
        `Redis cannot be used (${reason}); events wait in the local store (${this.local.size} now) and move to Redis when it is back`,
        [],
        cause,
      ),
    );
  }

  private report(error: MeterRedisError): void {
    try {
      this.onError?.(error);
    } catch {
      // The hook's own failure has nowhere better to go; the store carries on.
    }
  }

  private retryLater(): void {
    if (this.retryTimer !== undefined || this.closing !== undefined) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.scheduleMove();
      this.scheduleWrite();
      this.readSoon();
    }, this.retryIntervalMs);
    this.retryTimer.unref();
  }

  // ---- local store → stream ----

  private scheduleMove(): void {
    if (this.moveScheduled) return;
    this.moveScheduled = true;
    setImmediate(() => {
      this.moveScheduled = false;
      void this.move();
    });
  }

  /** Moves what waits locally to the stream, a slice per pipeline, until nothing waits or Redis fails. */
  private move(): Promise<void> {
    this.moving ??= once(
      async () => {
        while (this.local.size > 0 && this.ready && this.groupChecked) {
          if (!(await this.moveSlice())) {
            this.retryLater();
            break;
          }
        }
      },
      () => {
        this.moving = undefined;
      },
    );
    return this.moving;
  }

  private async moveSlice(): Promise<boolean> {
    const events = this.local.take(MOVE_SLICE);
    const entries: string[] = [];
    for (let at = 0; at < events.length; at += EVENTS_PER_ENTRY) entries.push(encodeEvents(events.slice(at, at + EVENTS_PER_ENTRY)));
    let reply: (string | number)[];
    this.inTransit += events.length;
    try {
      reply = await this.redis.meteredAppend(this.keys.stream, this.keys.count, COLUMNS_FIELD, events.length, ...entries);
    } catch (error) {
      // Kept locally and moved again later. A script whose answer was lost may have added them too;
      // sent twice, their copies carry the same identifiers, which Stripe deduplicates.
      this.local.unshift(events);
      this.unavailable(error);
      return false;
    } finally {
      this.inTransit -= events.length;
    }
    // In the stream now: the local copy (a spool row) can go.
    this.local.settle(events, 'delivered');
    const lastId = reply[entries.length - 1];
    if (typeof lastId === 'string') this.lastAddedId = lastId;
    const length = reply[entries.length];
    if (typeof length === 'number') this.streamLength = length;
    this.outage = false;
    this.readSoon();
    return true;
  }

  // ---- acknowledgements and heartbeats ----

  private scheduleWrite(): void {
    if (this.writeScheduled || (this.toAck.length === 0 && this.toTouch.size === 0)) return;
    this.writeScheduled = true;
    setImmediate(() => {
      this.writeScheduled = false;
      void this.write();
    });
  }

  /** Acknowledges and deletes settled entries, and refreshes attempted ones, in one pipeline. */
  private write(): Promise<void> {
    this.writing ??= once(async () => {
      while ((this.toAck.length > 0 || this.toTouch.size > 0) && this.ready) {
        const acks = this.toAck;
        const touches = [...this.toTouch];
        this.toAck = [];
        this.toTouch.clear();
        const pipeline = this.redis.pipeline();
        if (acks.length > 0) pipeline.meteredAck(this.keys.stream, this.keys.count, GROUP, ...acks);
        if (touches.length > 0) pipeline.call('XCLAIM', this.keys.stream, GROUP, this.consumer, 0, ...touches, 'JUSTID');
        let failure: unknown;
        try {
          const results = await pipeline.exec();
          failure = results?.find(([error]) => error !== null)?.[0] ?? undefined;
          const left = acks.length > 0 ? results?.[0]?.[1] : undefined;
          if (failure === undefined && typeof left === 'number') this.streamLength = left;
        } catch (error) {
          failure = error;
        }
        if (failure !== undefined) {
          // Unacknowledged entries stay pending: acknowledged later, or claimed and resent (deduplicated) if this process dies first.
          this.toAck = acks.concat(this.toAck);
          for (const id of touches) this.toTouch.add(id);
          this.unavailable(failure);
          this.retryLater();
          break;
        }
        for (let at = 0; at < acks.length; at += 2) this.acking.delete(acks[at] as string);
      }
    }, () => {
      this.writing = undefined;
    });
    return this.writing;
  }

  /** Queues the acknowledgement (XACK, XDEL) of an entry carrying `events` events. */
  private queueAck(id: string, events: number): void {
    this.toAck.push(id, events);
    this.acking.add(id);
  }

  private touchHeld(): void {
    if (this.entryLeft.size === 0) return;
    for (const id of this.entryLeft.keys()) this.toTouch.add(id);
    this.scheduleWrite();
  }

  // ---- stream → read-ahead ----

  private readSoon(): void {
    if (!this.deliver || this.reading || this.readingStopped || this.closing !== undefined || this.prefetched.length > this.prefetchSize / 2) return;
    clearTimeout(this.readTimer);
    this.readTimer = undefined;
    this.reading = true;
    setImmediate(() => void this.read());
  }

  private async read(): Promise<void> {
    let full = false;
    let failed = false;
    try {
      if (!this.ready || !(await this.ensureGroup())) return;
      const room = this.prefetchSize - this.prefetched.length;
      if (room <= 0) return;
      if (this.ownPendingUnknown) {
        this.accept(await this.ownPending());
        this.ownPendingUnknown = false;
      }
      // Entries, not events: an entry carries up to EVENTS_PER_ENTRY (fewer when traffic is light).
      const wanted = Math.ceil(room / EVENTS_PER_ENTRY);
      // Each answer is taken in as it arrives: a claim's entries are this consumer's as soon as Redis ran it.
      const claimed = Date.now() >= this.nextClaimAt ? this.accept(await this.claim(wanted)) : 0;
      if (claimed < wanted) {
        const reply = await this.redis.call('XREADGROUP', 'GROUP', GROUP, this.consumer, 'COUNT', wanted - claimed, 'STREAMS', this.keys.stream, '>');
        const fresh = streamEntries(reply);
        full = fresh.length === wanted - claimed;
        this.accept(fresh);
      } else {
        full = true;
      }
    } catch (error) {
      failed = true;
      // Redis may have run the read and lost only its answer (a connection that died, a command timeout).
      this.ownPendingUnknown = true;
      this.unavailable(error);
    } finally {
      this.reading = false;
      if (failed) this.retryLater();
      else if (full) this.readSoon();
      else this.pollLater();
    }
  }

  /** Entries idle past `claimIdleMs` in any consumer's hands (a dead instance's), scanned in slices. */
  private async claim(count: number): Promise<RawEntry[]> {
    const reply = (await this.redis.call('XAUTOCLAIM', this.keys.stream, GROUP, this.consumer, this.claimIdleMs, this.claimCursor, 'COUNT', count)) as [string, RawEntry[], string[]?];
    const [cursor, entries, deleted = []] = reply;
    this.claimCursor = cursor;
    // A full scan of the pending list ends at 0-0: the next one starts a while later, not on every read.
    if (cursor === '0-0') this.nextClaimAt = Date.now() + Math.max(this.pollIntervalMs, Math.floor(this.claimIdleMs / 4));
    // Entries deleted while pending (trimmed by hand) are acknowledged so they leave the pending list.
    if (deleted.length > 0) {
      for (const id of deleted) this.queueAck(id, 0);
      this.scheduleWrite();
    }
    return entries;
  }

  /**
   * This consumer's own pending list, page by page (XREADGROUP from id 0 returns it, and refreshes
   * each entry's idle time): entries a lost answer left here. accept() skips those this process holds.
   */
  private async ownPending(): Promise<RawEntry[]> {
    const found: RawEntry[] = [];
    let after = '0-0';
    for (;;) {
      const page = streamEntries(await this.redis.call('XREADGROUP', 'GROUP', GROUP, this.consumer, 'COUNT', OWN_PENDING_PAGE, 'STREAMS', this.keys.stream, after));
      found.push(...page);
      if (page.length < OWN_PENDING_PAGE) return found;
      after = page[page.length - 1]![0];
    }
  }

  /** Takes entries into the read-ahead; returns how many were new to this process. */
  private accept(entries: RawEntry[]): number {
    if (entries.length === 0) return 0;
    const bad: string[] = [];
    let taken = 0;
    for (const [id, fields] of entries) {
      // Held already, or settled and being acknowledged: an XAUTOCLAIM of its own stale entry, or a re-read of its own pending list.
      if (this.entryLeft.has(id) || this.acking.has(id)) continue;
      taken += 1;
      // Deleted while pending (trimmed by hand): nothing to deliver, only to acknowledge.
      if (fields === null) {
        this.queueAck(id, 0);
        this.scheduleWrite();
        continue;
      }
      const events = decodeEntry(fields);
      if (events === undefined) {
        bad.push(id);
        continue;
      }
      for (const event of events) {
        this.entryIds.set(event, id);
        this.prefetched.push(event);
      }
      this.entryLeft.set(id, events.length);
      this.entrySize.set(id, events.length);
    }
    if (bad.length > 0) {
      for (const id of bad) this.queueAck(id, 0);
      this.scheduleWrite();
      this.report(new MeterRedisError('ERR_METER_REDIS_BAD_ENTRY', `${bad.length} stream entr${bad.length === 1 ? 'y is' : 'ies are'} not meter events written by @metered/redis (ids ${bad.slice(0, 5).join(', ')}); removed from the queue`));
    }
    if (this.prefetched.length > 0) for (const listener of this.availableListeners) listener();
    return taken;
  }

  private pollLater(): void {
    if (!this.deliver || this.readingStopped || this.closing !== undefined || this.readTimer !== undefined) return;
    this.readTimer = setTimeout(() => {
      this.readTimer = undefined;
      this.readSoon();
    }, this.pollIntervalMs);
    this.readTimer.unref();
  }

  // ---- shutdown ----

  private async shutdown(): Promise<void> {
    this.stopReading();
    clearInterval(this.heartbeat);
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    // Entries read and not settled go back to the group with an idle time past claimIdleMs: the next
    // XAUTOCLAIM of any instance takes them, instead of waiting for them to go stale.
    const held = [...this.entryLeft.keys()];
    this.entryIds.clear();
    this.entryLeft.clear();
    this.entrySize.clear();
    this.prefetched = [];
    await this.moving;
    await this.move();
    await this.writing;
    await this.write();
    if (held.length > 0 && this.ready) {
      try {
        await this.redis.call('XCLAIM', this.keys.stream, GROUP, this.consumer, 0, ...held, 'IDLE', this.claimIdleMs, 'JUSTID');
      } catch (error) {
        this.unavailable(error);
      }
    }
    // A consumer left in the group forever is one more name in every XINFO and XPENDING; it goes when it
    // holds nothing (what it handed back above stays pending on it until another instance claims it).
    if (this.deliver && this.ready) {
      try {
        await this.redis.meteredRetire(this.keys.stream, GROUP, this.consumer);
      } catch (error) {
        this.unavailable(error);
      }
    }
    const left = this.local.drain();
    if (left.length > 0) {
      const kept = this.local.durable;
      this.report(
        new MeterRedisError(
          'ERR_METER_REDIS_UNFLUSHED',
          kept
            ? `${left.length} meter event(s) could not reach Redis before close; they stay in the local spool and move to Redis at the next start`
            : `${left.length} meter event(s) could not reach Redis before close and were only in memory: they are lost unless re-reported (identifiers kept)`,
          left,
        ),
      );
    }
    this.local.close();
    this.redis.off('ready', this.onReady);
    this.redis.off('close', this.onClientClose);
    if (this.ownsClient) {
      await closeClient(this.redis);
    } else {
      // A client of ours keeps the listener: an error event without one would crash the process.
      this.redis.off('error', this.onClientError);
    }
  }
}
