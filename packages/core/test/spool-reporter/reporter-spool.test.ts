// The reporter over a spool against the fake: restarts under faults, recovery of expired and uncertain events, lock and corruption fallbacks, the ledger.
import fs from 'node:fs';
import path from 'node:path';
import { MeterConfigError, MeterSpoolError, MeterUncertainError } from '@metered/core';
import type { LedgerRow, MeterReporterOptions } from '@metered/core';
import { startFakeStripe } from '@metered/testing';
import type { FakeStripe } from '@metered/testing';
import { SpoolStore } from '../../src/store/spool-store';
import { MemoryDurableStore } from '../../src/store/memory-store';
import { MAX_EVENT_AGE_MS } from '../../src/intake/validate';
import { closeReporters, expectedTotals, reporterFor, totalsFor, until } from '../helpers';
import { failWrites, tempDir } from '../spool/helpers';

jest.setTimeout(30_000);
const HOUR = 3_600_000;

let fake: FakeStripe;
beforeAll(async () => {
  fake = await startFakeStripe({ seed: 7 });
});
afterEach(async () => {
  await closeReporters();
  fake.faults.clear();
  fake.reset();
});
afterAll(async () => {
  await fake.close();
});

function spooled(file: string, options: Partial<MeterReporterOptions> = {}) {
  return reporterFor(fake, { spool: { path: file }, ...options });
}

/** Count per identifier at the fake. */
function fakeCounts(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const event of fake.events()) counts.set(event.identifier, (counts.get(event.identifier) ?? 0) + 1);
  return counts;
}

function sumRows(rows: readonly LedgerRow[], column: 'accepted' | 'delivered' | 'failed' | 'dropped' | 'uncertain'): number {
  return rows.reduce((sum, row) => sum + row[column].count, 0);
}

describe('a restart during delivery with faults on', () => {
  it('delivers exact totals across the restart: what close() left on disk is resent by the next reporter, none twice', async () => {
    const file = path.join(tempDir(), 'meter.spool');
    const faults = [
      fake.faults.fail({ endpoint: 'meter_event_stream', fraction: 0.2, status: 500 }),
      fake.faults.resetConnection({ endpoint: 'meter_event_stream', fraction: 0.1, afterProcessing: true }),
      fake.faults.fail({ endpoint: 'meter_event_stream', fraction: 0.1, status: 503, afterProcessing: true }),
    ];
    const expiring = setInterval(() => fake.faults.expireSessions(), 20);
    const first = spooled(file, { concurrency: 2 });
    const reports: { customerId: string; value: number }[] = [];
    for (let i = 0; i < 3000; i += 1) {
      const report = { customerId: `cus_${i % 5}`, value: (i % 4) + 1 };
      reports.push(report);
      first.reporter.report({ eventName: 'api_requests', ...report, identifier: `restart_${i}` });
    }
    // Restarted mid-delivery: some batches acknowledged, some in flight (aborted), the rest queued.
    await until(() => first.reporter.stats().delivered >= 500, 'the first reporter delivering');
    const closed = await first.reporter.close({ timeoutMs: 0 });
    expect(closed.kept).toBeGreaterThan(0);
    expect(closed.dropped).toBe(0);
    expect(first.recorded.drops).toEqual([]);

    const second = spooled(file);
    expect((await second.reporter.flush({ timeoutMs: 20_000 })).settled).toBe(true);
    clearInterval(expiring);
    expect(faults.map((f) => f.triggered > 0)).toEqual([true, true, true]);
    expect(first.reporter.stats().sessionRefreshes + second.reporter.stats().sessionRefreshes).toBeGreaterThan(2);
    expect(second.reporter.stats()).toMatchObject({ enqueued: closed.kept, delivered: closed.kept, failed: 0 });
    expect(totalsFor(fake, 'api_requests')).toEqual(expectedTotals(reports));
    expect([...fakeCounts().values()].every((n) => n === 1)).toBe(true);
    expect([...first.recorded.errors, ...second.recorded.errors]).toEqual([]);
    // The ledger lives in the file: the second reporter sees the first one's intake and both deliveries.
    const rows = second.reporter.ledger({ from: 0, to: Date.now() + HOUR });
    expect(sumRows(rows, 'accepted')).toBe(3000);
    expect(sumRows(rows, 'delivered')).toBe(3000);
  });
});

describe('recovery at start', () => {
  it('hands expired events to onDrop and uncertain ones to onError with their identifiers, resends the rest, and sends neither', async () => {
    const file = path.join(tempDir(), 'meter.spool');
    const now = Date.now();
    const store = SpoolStore.open({ path: file });
    const base = { eventName: 'api_requests', customerId: 'cus_r', value: '2' };
    const fresh = { ...base, timestamp: now - HOUR, identifier: 'rec_fresh', seq: 1 };
    const expired = { ...base, timestamp: now - MAX_EVENT_AGE_MS - HOUR, identifier: 'rec_expired', seq: 2 };
    const uncertain = { ...base, timestamp: now - 30 * HOUR, identifier: 'rec_uncertain', seq: 3 };
    const retried = { ...base, timestamp: now - 2 * HOUR, identifier: 'rec_retried', seq: 4 };
    for (const event of [fresh, expired, uncertain, retried]) store.push(event);
    // A previous process sent these: one 25 h ago (Stripe may have forgotten it), one an hour ago.
    store.markAttempted([uncertain], now - 25 * HOUR);
    store.markAttempted([retried], now - HOUR);
    store.close();

    const { reporter, recorded } = spooled(file);
    expect(recorded.drops).toEqual([{ events: [expect.objectContaining({ identifier: 'rec_expired' })], reason: 'expired' }]);
    expect(recorded.errors).toHaveLength(1);
    const { error, events } = recorded.errors[0]!;
    expect(error).toBeInstanceOf(MeterUncertainError);
    expect(error).toMatchObject({ code: 'ERR_METER_DELIVERY_UNCERTAIN', deliveries: [{ identifier: 'rec_uncertain', firstAttemptAt: now - 25 * HOUR }] });
    expect(events.map((e) => e.identifier)).toEqual(['rec_uncertain']);

    expect((await reporter.flush()).settled).toBe(true);
    expect([...fakeCounts().keys()].sort()).toEqual(['rec_fresh', 'rec_retried']);
    expect(reporter.stats()).toMatchObject({ enqueued: 3, delivered: 2, dropped: { expired: 1 }, pending: 0 });
    const rows = reporter.ledger({ from: now - MAX_EVENT_AGE_MS - 2 * HOUR, to: now + HOUR });
    expect({ delivered: sumRows(rows, 'delivered'), dropped: sumRows(rows, 'dropped'), uncertain: sumRows(rows, 'uncertain') }).toEqual({ delivered: 2, dropped: 1, uncertain: 1 });

    // Settled once: a restart finds nothing left, and reports nothing again.
    await reporter.close();
    const again = spooled(file);
    expect(again.recorded.errors).toEqual([]);
    expect(again.reporter.stats().enqueued).toBe(0);
  });
});

describe('a resend that outlives Stripe\'s window', () => {
  it('calls only the events first sent too long ago uncertain; the rest of their batch is delivered', async () => {
    const file = path.join(tempDir(), 'meter.spool');
    const now = Date.now();
    const store = SpoolStore.open({ path: file });
    const base = { eventName: 'api_requests', customerId: 'cus_w', value: '1', timestamp: now - HOUR };
    const old = { ...base, identifier: 'win_old', seq: 1 };
    const never = { ...base, identifier: 'win_never', seq: 2 };
    store.push(old);
    store.push(never);
    // A previous process sent one of them 22.5 h ago, within resendWithinMs (23 h): it is resent.
    store.markAttempted([old], now - 22.5 * HOUR);
    store.close();
    // The resend fails, and the retry comes due an hour later: past 23 h for one of the two events only.
    let offset = 0;
    const realNow = Date.now.bind(Date);
    jest.spyOn(Date, 'now').mockImplementation(() => realNow() + offset);
    try {
      fake.faults.fail({ endpoint: 'meter_event_stream', status: 500, count: 1 });
      // The retry waits 300 ms: the clock moves on well before it.
      const { reporter, recorded } = spooled(file, { retry: { initialDelayMs: 300, maxDelayMs: 300, maxElapsedMs: 24 * HOUR } });
      await until(() => fake.requests().some((r) => r.endpoint === 'meter_event_stream' && r.status === 500), 'the failed resend');
      offset = HOUR;
      expect((await reporter.flush()).settled).toBe(true);
      expect(recorded.errors.map((e) => [e.error.code, e.events.map((event) => event.identifier)])).toEqual([['ERR_METER_DELIVERY_UNCERTAIN', ['win_old']]]);
      expect([...fakeCounts().keys()]).toEqual(['win_never']);
      expect(reporter.stats()).toMatchObject({ enqueued: 2, delivered: 1, failed: 1, pending: 0 });
    } finally {
      jest.restoreAllMocks();
    }
  });
});

describe('a key refused at the session', () => {
  it('marks nothing attempted: a restart past resendWithinMs resends every event instead of calling them uncertain', async () => {
    const file = path.join(tempDir(), 'meter.spool');
    const { reporter, recorded } = spooled(file, { apiKey: 'sk_test_wrongkey0000000000' });
    for (let i = 0; i < 10; i += 1) reporter.report({ eventName: 'api_requests', customerId: 'cus_k', identifier: `refused_${i}` });
    await until(() => recorded.errors.length > 0, 'the breaker to open');
    expect(await reporter.close({ timeoutMs: 0 })).toMatchObject({ kept: 10 });
    const startedAfter = Date.now();
    while (Date.now() === startedAfter) await new Promise((resolve) => setImmediate(resolve));
    // Were they marked, a 1 ms window would make every one of them uncertain.
    const store = SpoolStore.open({ path: file, resendWithinMs: 1 });
    try {
      const recovered = store.recover(Date.now());
      expect({ resend: recovered.resend.length, uncertain: recovered.uncertain.length }).toEqual({ resend: 10, uncertain: 0 });
    } finally {
      store.close();
    }
  });
});

describe('a spool that cannot be used', () => {
  it('a second reporter on the same path gets ERR_METER_SPOOL_LOCKED through onError and runs in memory, never sending the first one\'s events', async () => {
    const file = path.join(tempDir(), 'meter.spool');
    const first = spooled(file);
    for (let i = 0; i < 50; i += 1) first.reporter.report({ eventName: 'api_requests', customerId: 'cus_a', identifier: `lock_a${i}` });
    const second = spooled(file);
    expect(second.recorded.errors.map((r) => r.error)).toEqual([expect.objectContaining({ code: 'ERR_METER_SPOOL_LOCKED', path: file })]);
    expect(second.recorded.errors[0]!.error).toBeInstanceOf(MeterSpoolError);
    for (let i = 0; i < 30; i += 1) second.reporter.report({ eventName: 'api_requests', customerId: 'cus_b', identifier: `lock_b${i}` });
    await Promise.all([first.reporter.flush(), second.reporter.flush()]);
    expect(totalsFor(fake, 'api_requests')).toEqual({ cus_a: 50, cus_b: 30 });
    expect(fake.stats().duplicateEvents).toBe(0);
    // The memory fallback keeps nothing for later: its close() drops what is left instead of keeping it.
    // Held at the fake, so the event cannot be delivered in the instant before close's 0 ms timeout.
    const held = fake.faults.hold({ endpoint: 'meter_event_stream' });
    second.reporter.report({ eventName: 'api_requests', customerId: 'cus_b', identifier: 'lock_b_last' });
    expect(await second.reporter.close({ timeoutMs: 0 })).toMatchObject({ kept: 0, dropped: 1 });
    held.release();
  });

  it.each([
    ['a corrupt file', (file: string) => fs.writeFileSync(file, Buffer.alloc(8192, 0x5a))],
    ['a truncated file', (file: string) => {
      const store = SpoolStore.open({ path: file });
      for (let i = 0; i < 2000; i += 1) store.push({ eventName: 'api_requests', customerId: 'cus_t', value: '1', timestamp: Date.now(), identifier: `t${i}`, seq: i + 1 });
      store.close();
      fs.truncateSync(file, Math.floor(fs.statSync(file).size / 3));
    }],
  ])('%s is ERR_METER_SPOOL_CORRUPT through onError; the reporter runs in memory and report() never throws', async (_name, damage) => {
    const file = path.join(tempDir(), 'meter.spool');
    damage(file);
    const { reporter, recorded } = spooled(file);
    expect(recorded.errors.map((r) => r.error.code)).toEqual(['ERR_METER_SPOOL_CORRUPT']);
    for (let i = 0; i < 20; i += 1) expect(() => reporter.report({ eventName: 'api_requests', customerId: 'cus_c' })).not.toThrow();
    await reporter.flush();
    expect(totalsFor(fake, 'api_requests')).toEqual({ cus_c: 20 });
  });
});

describe('reporter.ledger()', () => {
  it('counts accepted, delivered, failed and dropped per customer × event × hour after a run with a refusal and an overflow', async () => {
    const file = path.join(tempDir(), 'meter.spool');
    const now = Date.now();
    const hour = now - (now % HOUR);
    // The first request of the run is refused outright: its 3 events (direct mode: one each) fail.
    fake.faults.fail({ endpoint: 'meter_events', status: 400, code: 'parameter_invalid', count: 3 });
    const { reporter } = spooled(file, { mode: 'direct', maxQueueSize: 10, overflow: 'drop-newest', concurrency: 1 });
    for (let i = 0; i < 12; i += 1) reporter.report({ eventName: 'api_requests', customerId: `cus_${i % 2}`, value: 2, timestamp: now });
    reporter.report({ eventName: 'searches', customerId: 'cus_0', value: 5, timestamp: now - HOUR });
    await reporter.flush();
    const stats = reporter.stats();
    expect(stats).toMatchObject({ enqueued: 13, failed: 3, dropped: { overflow: 3 } });

    const rows = reporter.ledger({ from: now - 2 * HOUR, to: now + HOUR });
    expect(rows.map((r) => [r.hour, r.customerId, r.eventName])).toEqual([
      [hour - HOUR, 'cus_0', 'searches'],
      [hour, 'cus_0', 'api_requests'],
      [hour, 'cus_1', 'api_requests'],
    ]);
    for (const column of ['accepted', 'delivered', 'failed', 'dropped'] as const) {
      const expected = column === 'accepted' ? 13 : column === 'delivered' ? stats.delivered : column === 'failed' ? 3 : 3;
      expect(sumRows(rows, column)).toBe(expected);
    }
    expect(rows[0]).toMatchObject({ accepted: { count: 1, value: '5' } });
    // The overflow dropped the last two api_requests and the search (drop-newest; 10 queued, none sent yet).
    expect(rows[0]!.dropped.count + rows[1]!.dropped.count + rows[2]!.dropped.count).toBe(3);
    expect(reporter.ledger({ from: now - 2 * HOUR, to: now + HOUR, customerId: 'cus_1' }).map((r) => r.customerId)).toEqual(['cus_1']);
  });
});

describe('a spool at maxBytes', () => {
  it("drops the oldest queued events (overflow: 'drop-oldest') until the new one fits, and the ledger counts them dropped", async () => {
    const file = path.join(tempDir(), 'meter.spool');
    fake.faults.outage(true);
    const { reporter, recorded } = spooled(file, { spool: { path: file, maxBytes: 64 * 1024 }, concurrency: 1 });
    for (let i = 0; i < 2000; i += 1) reporter.report({ eventName: 'api_requests', customerId: 'cus_m', identifier: `bytes_${String(i).padStart(4, '0')}` });
    await until(() => recorded.drops.length > 0, 'the overflow drops');
    const dropped = recorded.drops.flatMap((d) => (d.reason === 'overflow' ? d.events.map((e) => e.identifier) : []));
    expect(dropped.length).toBeGreaterThan(500);
    // Oldest first (the identifiers sort as they were reported), and never the newest event.
    expect(dropped).toEqual([...dropped].sort());
    expect(dropped).not.toContain('bytes_1999');
    expect(reporter.stats().dropped.overflow).toBe(dropped.length);
    const rows = reporter.ledger({ from: 0, to: Date.now() + HOUR });
    expect(sumRows(rows, 'dropped')).toBe(dropped.length);
    fake.faults.outage(false);
    expect((await reporter.flush()).settled).toBe(true);
    expect(fake.events()).toHaveLength(2000 - dropped.length);
    expect(fake.events().some((e) => e.identifier === 'bytes_1999')).toBe(true);
  });
});

describe('the spool and store options', () => {
  it('refuse unknown spool keys, a store with spool, and something that is not a store, naming the option', () => {
    const file = path.join(tempDir(), 'meter.spool');
    expect(() => spooled(file, { spool: { path: file, durabilty: 'event' } as never })).toThrow(expect.objectContaining({ code: 'ERR_METER_INVALID_OPTION', option: 'spool.durabilty' }));
    expect(() => spooled(file, { spool: { path: file }, store: new MemoryDurableStore() })).toThrow(/"store": cannot be given together with spool/);
    expect(() => reporterFor(fake, { store: {} as never })).toThrow(/"store": must be a DurableEventStore/);
    expect(() => spooled(file, { spool: { path: file, durability: 'always' as never } })).toThrow(expect.objectContaining({ option: 'spool.durability' }));
    expect(() => spooled(file, { spool: file as never })).toThrow(MeterConfigError);
  });

  it('take a store of your own, and close it with the reporter', async () => {
    const store = new MemoryDurableStore();
    const close = jest.spyOn(store, 'close');
    const { reporter } = reporterFor(fake, { store });
    reporter.report({ eventName: 'api_requests', customerId: 'cus_s' });
    await reporter.close();
    expect(close).toHaveBeenCalledTimes(1);
    expect(store.ledger({ from: 0, to: Date.now() + HOUR })).toEqual([expect.objectContaining({ customerId: 'cus_s', delivered: { count: 1, value: '1' } })]);
  });
});

describe('connected accounts over a spool', () => {
  it('refuses an event for an account while the spool writes and while its writes fail: the rows it commits later carry no account', async () => {
    const open = jest.spyOn(SpoolStore, 'open');
    const { reporter, recorded } = spooled(path.join(tempDir(), 'meter.spool'));
    const store = open.mock.results[0]!.value as SpoolStore;
    open.mockRestore();
    const account = { eventName: 'api_requests', customerId: 'cus_acct', account: 'acct_1A' };
    expect(() => reporter.report(account)).toThrow(expect.objectContaining({ code: 'ERR_METER_INVALID_ACCOUNT', field: 'account' }));
    // The disk fails: the spool keeps its rows in memory and commits them once it can write again.
    const disk = failWrites(store);
    reporter.report({ eventName: 'api_requests', customerId: 'cus_plain' });
    await until(() => !store.durable, 'the spool to fail');
    expect(() => reporter.report(account)).toThrow(expect.objectContaining({ code: 'ERR_METER_INVALID_ACCOUNT', field: 'account' }));
    disk.heal();
    await reporter.flush();
    expect(fake.events().map((e) => [e.customer, e.account])).toEqual([['cus_plain', undefined]]);
    expect(reporter.stats()).toMatchObject({ rejected: 2, delivered: 1 });
    expect(recorded.errors.map((e) => (e.error as { code?: string }).code)).toContain('ERR_METER_SPOOL_IO');
  });
});
