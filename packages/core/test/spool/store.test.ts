// SpoolStore as an EventStore: round trips with every field, rows kept until settled, commits per turn, options.
import path from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { MeterClosedError, MeterConfigError } from '../../src/errors';
import { MemoryDurableStore } from '../../src/store/memory-store';
import { SpoolStore } from '../../src/store/spool-store';
import type { SpoolOptions } from '../../src/store/types';
import { NOW, event, tempDir } from './helpers';

function open(options: Partial<SpoolOptions> = {}): SpoolStore {
  return SpoolStore.open({ path: path.join(tempDir(), 'meter.spool'), ...options });
}

describe('SpoolStore as an event store', () => {
  it('returns events in push order with every field intact, in memory and after a reopen', () => {
    const store = open();
    const events = Array.from({ length: 10 }, (_, i) => event(i));
    for (const e of events) store.push(e);
    expect(store.size).toBe(10);
    expect(store.shift()).toBe(events[0]);
    expect(store.take(3)).toEqual(events.slice(1, 4));
    store.unshift(events.slice(1, 4));
    expect(store.drain()).toEqual(events.slice(1));
    expect(store.size).toBe(0);
    store.close();

    // Nothing was settled: every row, the shifted and drained ones too, waits for the next process.
    const again = SpoolStore.open({ path: store.path });
    const { resend } = again.recover(NOW);
    expect(resend).toEqual(events.map((e) => ({ ...e, seq: 0 })));
    expect(resend[1]!.dimensions).toEqual({ region: 'eu', plan: 'p1' });
    expect(resend[0]!.dimensions).toBeUndefined();
    expect(again.size).toBe(10);
    again.close();
  });

  it('removes settled rows only, whatever the outcome', () => {
    const store = open();
    const events = Array.from({ length: 8 }, (_, i) => event(i));
    for (const e of events) store.push(e);
    const batch = store.take(8);
    store.settle(batch.slice(0, 2), 'delivered');
    store.settle(batch.slice(2, 3), 'failed');
    store.settle(batch.slice(3, 4), 'dropped');
    store.settle([batch[5]!], 'uncertain');
    store.close();
    const again = SpoolStore.open({ path: store.path });
    expect(again.recover(NOW).resend.map((e) => e.identifier)).toEqual(['evt_4', 'evt_6', 'evt_7']);
    again.close();
  });

  it('counts an event settled twice once (settle of an event it no longer holds is ignored)', () => {
    const store = open();
    const e = event(1);
    store.push(e);
    store.take(1);
    store.settle([e], 'delivered');
    store.settle([e], 'failed');
    const [row] = store.ledger({ from: NOW - 3_600_000, to: NOW + 3_600_000 });
    expect(row!.delivered).toEqual({ count: 1, value: '2' });
    expect(row!.failed).toEqual({ count: 0, value: '0' });
    store.close();
  });

  it("commits a turn's pushes in the turn's check phase, before the next turn runs", async () => {
    const store = open();
    store.push(event(1));
    store.push(event(2));
    // Seen through the store's own file: nothing is written before the turn ends…
    expect(rowCount(store)).toBe(0);
    await nextTurn();
    // …and both rows after it.
    expect(rowCount(store)).toBe(2);
    store.close();
  });

  it('never writes the row of an event settled in the turn it was pushed; the others keep their order', async () => {
    const store = open();
    const [a, b, c, d] = [event(1), event(2), event(3), event(4)];
    store.push(a);
    store.push(b);
    store.push(c);
    store.settle([store.take(2)[1]!], 'delivered');
    store.push(d);
    await nextTurn();
    expect(rowCount(store)).toBe(3);
    const [row] = store.ledger({ from: NOW - 3_600_000, to: NOW + 3_600_000 }).filter((r) => r.customerId === b.customerId);
    expect([row!.accepted.count, row!.delivered]).toEqual([1, { count: 1, value: b.value }]);
    store.close();
    const again = SpoolStore.open({ path: store.path });
    expect(again.recover(NOW).resend).toEqual([a, c, d].map((e) => ({ ...e, seq: 0 })));
    again.close();
  });

  it("commits each push before it returns with durability 'event'", () => {
    const store = open({ durability: 'event', synchronous: 'full' });
    store.push(event(1));
    expect(rowCount(store)).toBe(1);
    store.push(event(2));
    expect(rowCount(store)).toBe(2);
    store.close();
  });

  it('commits buffered pushes before an attempt is recorded, so the mark always has its row', () => {
    const store = open();
    const e = event(1);
    store.push(e);
    store.markAttempted(store.take(1), NOW);
    expect(rowCount(store)).toBe(1);
    store.close();
    const again = SpoolStore.open({ path: store.path });
    expect(again.recover(NOW + 23 * 3_600_000 + 1).uncertain).toEqual([{ event: { ...e, seq: 0 }, firstAttemptAt: NOW }]);
    again.close();
  });

  it('keeps every row, attempt mark and ledger cell of a turn larger than one multi-row statement', () => {
    const store = open();
    // 150 customers: more rows and more cells than one statement carries, with runs of ids broken by settles.
    const events = Array.from({ length: 150 }, (_, i) => event(i, { customerId: `cus_${i}` }));
    for (const e of events) store.push(e);
    store.commit();
    const held = store.drain();
    const marked = held.filter((_, i) => i % 3 !== 0);
    store.markAttempted(marked.slice(0, 70), NOW - 1_000);
    store.markAttempted(marked.slice(70), NOW - 2_000);
    store.settle(held.filter((_, i) => i % 5 === 0), 'delivered');
    store.close();

    // NOW is a fixed date: a retention longer than its distance from today keeps its ledger cells.
    const keep = 10 * 365 * 24 * 3_600_000;
    const again = SpoolStore.open({ path: store.path, ledgerRetentionMs: keep });
    const { resend } = again.recover(NOW);
    const left = events.filter((_, i) => i % 5 !== 0);
    expect(resend.map((e) => e.identifier)).toEqual(left.map((e) => e.identifier));
    again.close();
    const later = SpoolStore.open({ path: store.path, ledgerRetentionMs: keep });
    const { uncertain } = later.recover(NOW + 23 * 3_600_000);
    const expected = events.flatMap((e, i) => {
      if (i % 5 === 0 || i % 3 === 0) return [];
      return [{ identifier: e.identifier, firstAttemptAt: marked.indexOf(held[i]!) < 70 ? NOW - 1_000 : NOW - 2_000 }];
    });
    expect(uncertain.map((u) => ({ identifier: u.event.identifier, firstAttemptAt: u.firstAttemptAt }))).toEqual(expected);
    const rows = later.ledger({ from: NOW - 3_600_000, to: NOW + 10 });
    expect(rows).toHaveLength(150);
    for (const [i, e] of events.entries()) {
      const row = rows.find((r) => r.customerId === e.customerId)!;
      expect(row.accepted).toEqual({ count: 1, value: e.value });
      expect(row.delivered).toEqual(i % 5 === 0 ? { count: 1, value: e.value } : { count: 0, value: '0' });
    }
    later.close();
  });

  it('writes nothing for an event pushed and settled within one turn, yet counts it in the ledger', async () => {
    const store = open();
    const e = event(4);
    store.push(e);
    store.settle(store.take(1), 'delivered');
    await nextTurn();
    expect(rowCount(store)).toBe(0);
    expect(store.ledger({ from: NOW - 10, to: NOW + 10 })[0]!.delivered).toEqual({ count: 1, value: '5' });
    store.close();
  });

  it.each(['event', 'turn'] as const)("fsyncs the log at every 128th commit ('%s'): with synchronous 'normal' a power loss costs at most the commits since", (durability) => {
    // One event a commit, the smallest commit there is.
    const levels = syncLevels(open({ durability }), 300);
    expect(levels).toHaveLength(300);
    expect(levels.flatMap((level, i) => (level === 2 ? [i + 1] : []))).toEqual([128, 256]);
    expect(levels.filter((level) => level !== 1 && level !== 2)).toEqual([]);
    // 'full' fsyncs every commit already: nothing to add.
    expect(new Set(syncLevels(open({ durability, synchronous: 'full' }), 130))).toEqual(new Set([2]));
  });

  it('reports full by estimated row bytes against maxBytes, and has room again once rows settle', () => {
    const store = open({ maxBytes: 64 * 1024 });
    let pushed = 0;
    while (store.hasRoomFor(event(pushed))) store.push(event(pushed++));
    expect(pushed).toBeGreaterThan(100);
    expect(store.bytes).toBeLessThanOrEqual(64 * 1024);
    expect(store.bytes + 200).toBeGreaterThan(64 * 1024);
    store.settle(store.take(1), 'dropped');
    expect(store.hasRoomFor(event(pushed))).toBe(true);
    store.close();
  });

  it('throws MeterClosedError from push() after close(), and close() twice is harmless', () => {
    const store = open();
    store.close();
    store.close();
    expect(() => store.push(event(1))).toThrow(MeterClosedError);
    expect(() => store.ledger({ from: 0, to: 1 })).toThrow(MeterClosedError);
  });

  it.each([
    [{ path: '' }, 'spool.path'],
    [{ durability: 'batch' }, 'spool.durability'],
    [{ synchronous: 'OFF' }, 'spool.synchronous'],
    [{ maxBytes: 1000 }, 'spool.maxBytes'],
    [{ resendWithinMs: 25 * 3_600_000 }, 'spool.resendWithinMs'],
    [{ ledgerRetentionMs: 0 }, 'spool.ledgerRetentionMs'],
    [{ onError: 'log' }, 'spool.onError'],
  ])('refuses the bad option %j naming %s', (bad, option) => {
    const attempt = () => SpoolStore.open({ path: path.join(tempDir(), 'x.spool'), ...(bad as object) });
    expect(attempt).toThrow(MeterConfigError);
    expect(attempt).toThrow(expect.objectContaining({ option, code: 'ERR_METER_INVALID_OPTION' }));
  });
});

describe('MemoryDurableStore', () => {
  it('is the same queue with a ledger and nothing to recover', () => {
    const store = new MemoryDurableStore();
    const events = [event(0), event(1), event(2)];
    for (const e of events) store.push(e);
    expect(store.take(2)).toEqual(events.slice(0, 2));
    expect(store.recover()).toEqual({ resend: [], expired: [], uncertain: [] });
    expect(store.durable).toBe(false);
    expect(store.hasRoomFor()).toBe(true);
  });
});

/** Rows committed to the spool, read through its own connection (a second one would be locked out). */
function rowCount(store: SpoolStore): number {
  return ((store as unknown as { db: { prepare(sql: string): { get(): { n: number } } } }).db.prepare('SELECT count(*) AS n FROM events').get()).n;
}

/** SQLite's synchronous level (1 NORMAL, 2 FULL: the log fsynced) inside each of `commits` one-event commits, read through the store's own connection; closes the store. */
function syncLevels(store: SpoolStore, commits: number): number[] {
  const internals = store as unknown as { writeAll: () => void; db: { pragma(sql: string, options: { simple: true }): number } };
  const write = internals.writeAll;
  const levels: number[] = [];
  internals.writeAll = () => {
    levels.push(internals.db.pragma('synchronous', { simple: true }));
    write();
  };
  for (let i = 0; i < commits; i += 1) {
    store.push(event(i, { identifier: `evt_${i}` }));
    store.commit();
  }
  store.close();
  return levels;
}
