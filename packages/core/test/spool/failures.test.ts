// A damaged, read-only or full spool: coded errors, a memory fallback that keeps every accepted event, never a crash.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { MeterSpoolError } from '../../src/errors';
import { MemoryDurableStore } from '../../src/store/memory-store';
import { SpoolStore, openSpoolOrMemory } from '../../src/store/spool-store';
import { NOW, event, failWrites, runsAsRoot, startChild, tempDir } from './helpers';

jest.setTimeout(60_000);

function filledSpool(events = 2000): string {
  const file = path.join(tempDir(), 'meter.spool');
  const store = SpoolStore.open({ path: file });
  for (let i = 0; i < events; i += 1) store.push(event(i, { dimensions: { pad: 'x'.repeat(100) } }));
  store.close();
  return file;
}

function openError(file: string): MeterSpoolError {
  try {
    SpoolStore.open({ path: file }).close();
  } catch (error) {
    if (error instanceof MeterSpoolError) return error;
    throw error;
  }
  throw new Error('the spool opened');
}

// Root ignores file permissions; with every capability dropped it is held to them like anyone.
const asUnprivileged = runsAsRoot ? ['setpriv', '--bounding-set=-all', '--inh-caps=-all'] : [];

describe('a damaged spool file', () => {
  it('is refused as ERR_METER_SPOOL_CORRUPT when its header is overwritten', () => {
    const file = filledSpool();
    const fd = fs.openSync(file, 'r+');
    fs.writeSync(fd, Buffer.from('this is no longer an SQLite file'), 0, 32, 0);
    fs.closeSync(fd);
    expect(openError(file)).toMatchObject({ code: 'ERR_METER_SPOOL_CORRUPT', sqliteCode: 'SQLITE_NOTADB', path: file });
  });

  it('is refused as ERR_METER_SPOOL_CORRUPT when truncated', () => {
    const file = filledSpool();
    fs.truncateSync(file, Math.floor(fs.statSync(file).size / 2));
    expect(openError(file).code).toBe('ERR_METER_SPOOL_CORRUPT');
  });

  it('is refused when it is another application’s database, and left untouched', () => {
    const file = path.join(tempDir(), 'other.db');
    execFileSync(process.execPath, ['-e', `const D = require('better-sqlite3'); new D(${JSON.stringify(file)}).exec('CREATE TABLE mine (x)');`]);
    const before = fs.readFileSync(file);
    expect(openError(file)).toMatchObject({ code: 'ERR_METER_SPOOL_CORRUPT', message: expect.stringContaining('not a metered spool') });
    expect(fs.readFileSync(file).equals(before)).toBe(true);
  });

  it('is refused as ERR_METER_SPOOL_VERSION when written by a newer schema', () => {
    const file = filledSpool(1);
    execFileSync(process.execPath, ['-e', `const D = require('better-sqlite3'); new D(${JSON.stringify(file)}).pragma('user_version = 99');`]);
    expect(openError(file).code).toBe('ERR_METER_SPOOL_VERSION');
  });

  it('falls back to memory through openSpoolOrMemory, reporting the error once', () => {
    const file = filledSpool();
    fs.truncateSync(file, 1000);
    const errors: MeterSpoolError[] = [];
    const store = openSpoolOrMemory({ path: file, onError: (e) => errors.push(e) });
    expect(store).toBeInstanceOf(MemoryDurableStore);
    expect(errors.map((e) => e.code)).toEqual(['ERR_METER_SPOOL_CORRUPT']);
  });
});

describe('a read-only directory', () => {
  it('refuses both a new spool and an existing one as ERR_METER_SPOOL_READONLY, seen from an unprivileged process', async () => {
    const dir = tempDir();
    const existing = path.join(dir, 'meter.spool');
    SpoolStore.open({ path: existing }).close();
    fs.chmodSync(dir, 0o555);
    for (const file of [existing, path.join(dir, 'new.spool'), path.join(dir, 'sub', 'new.spool')]) {
      const run = await startChild('open', [file], asUnprivileged).done;
      expect({ file, ...JSON.parse(run.stdout) }).toMatchObject({ file, opened: false, code: 'ERR_METER_SPOOL_READONLY' });
    }
  });
});

describe('a full disk', () => {
  it('under a file-size limit: reports a coded error once, falls back to memory, keeps every accepted event, exits cleanly', async () => {
    const file = path.join(tempDir(), 'meter.spool');
    // ulimit -f counts 1024-byte blocks in bash: 256 KiB per file.
    const run = await startChild('fill-disk', [file], ['bash', '-c', 'ulimit -f 256 && exec "$@"', 'limited']).done;
    expect(run.code).toBe(0);
    const outcome = JSON.parse(run.stdout);
    // EFBIG past the limit surfaces as SQLite's write error; ENOSPC (a disk truly full) is SQLITE_FULL.
    expect(outcome).toEqual({ errors: [{ code: 'ERR_METER_SPOOL_IO', sqliteCode: 'SQLITE_IOERR_WRITE' }], durableAfterError: false, taken: 4000, distinct: 4000 });

    // What reached the file before the limit is intact, in order, and reopens without the limit.
    const store = SpoolStore.open({ path: file });
    const ids = store.recover(Date.now()).resend.map((e) => e.identifier);
    store.close();
    expect(ids.length).toBeGreaterThan(0);
    expect(ids.length).toBeLessThan(4000);
    expect(ids).toEqual(ids.map((_, i) => `full_${i + 1}`));
  });

  it('at the hard file cap: ERR_METER_SPOOL_FULL through onError, pushes go on in memory, nothing accepted is lost', () => {
    const errors: MeterSpoolError[] = [];
    const store = SpoolStore.open({ path: path.join(tempDir(), 'meter.spool'), maxBytes: 64 * 1024, onError: (e) => errors.push(e) });
    // Each event a new customer: event rows leave as they settle, the ledger grows until the file hits its cap.
    let pushed = 0;
    while (errors.length === 0 && pushed < 200_000) {
      for (let i = 0; i < 100; i += 1) store.push(event(pushed++, { customerId: `cus_${pushed}_${'c'.repeat(60)}` }));
      store.settle(store.take(90), 'delivered');
      store.commit();
    }
    expect(errors.map((e) => [e.code, e.sqliteCode])).toEqual([['ERR_METER_SPOOL_FULL', 'SQLITE_FULL']]);
    expect(store.durable).toBe(false);
    const queued = store.size;
    expect(() => store.push(event(pushed++))).not.toThrow();
    expect(store.size).toBe(queued + 1);
    // The ledger still answers, the writes that failed included.
    const accepted = store.ledger({ from: 0, to: Date.now() * 2 }).reduce((n, row) => n + row.accepted.count, 0);
    expect(accepted).toBe(pushed);
    expect(errors).toHaveLength(1);
    store.close();
  });
});

describe('a transient write failure', () => {
  afterEach(() => jest.useRealTimers());

  it('is reported once, and the writes held in memory reach the disk once a retry succeeds', () => {
    jest.useFakeTimers({ doNotFake: ['setImmediate'] });
    const errors: MeterSpoolError[] = [];
    const store = SpoolStore.open({ path: path.join(tempDir(), 'meter.spool'), durability: 'event', onError: (e) => errors.push(e) });
    // The disk fills for two commits: SQLite's own error, raised where the store's transaction runs.
    const internals = store as unknown as { writeAll: () => void };
    const write = internals.writeAll;
    let failures = 2;
    internals.writeAll = () => {
      if (failures > 0) {
        failures -= 1;
        throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
      }
      write();
    };
    store.push(event(0));
    store.push(event(1));
    expect(store.durable).toBe(false);
    jest.advanceTimersByTime(1000);
    expect(store.durable).toBe(false);
    jest.advanceTimersByTime(1000);
    expect(store.durable).toBe(true);
    expect(errors.map((e) => e.code)).toEqual(['ERR_METER_SPOOL_FULL']);
    store.close();
    const again = SpoolStore.open({ path: store.path });
    expect(again.recover(NOW).resend.map((e) => e.identifier)).toEqual(['evt_0', 'evt_1']);
    again.close();
  });

  it('holds no slot for events delivered while writes fail, and still writes the rest with their own ids', () => {
    jest.useFakeTimers({ doNotFake: ['setImmediate'] });
    const store = SpoolStore.open({ path: path.join(tempDir(), 'meter.spool'), durability: 'turn', onError: () => undefined });
    const internals = store as unknown as { pendingRows: unknown[] };
    const disk = failWrites(store);
    const events = Array.from({ length: 1000 }, (_, i) => event(i));
    for (const e of events) store.push(e);
    store.commit();
    expect(store.durable).toBe(false);
    // Delivered in push order while the disk is failing: the slots go with them.
    store.settle(events.slice(0, 600), 'delivered');
    expect(internals.pendingRows).toHaveLength(400);
    // Settled behind events still held: their slots keep the ids of the later pushes in place until the commit.
    store.settle(events.slice(900), 'delivered');
    expect(internals.pendingRows).toHaveLength(400);
    disk.heal();
    jest.advanceTimersByTime(1000);
    expect(store.durable).toBe(true);
    store.close();
    const again = SpoolStore.open({ path: store.path });
    expect(again.recover(NOW).resend.map((e) => e.identifier)).toEqual(events.slice(600, 900).map((e) => e.identifier));
    again.close();
    // Once every held event is settled, nothing is left.
    const drained = SpoolStore.open({ path: path.join(tempDir(), 'meter.spool'), durability: 'turn' });
    const more = [event(0), event(1)];
    for (const e of more) drained.push(e);
    drained.settle([more[1]!], 'delivered');
    expect((drained as unknown as { pendingRows: unknown[] }).pendingRows).toHaveLength(2);
    drained.settle([more[0]!], 'delivered');
    expect((drained as unknown as { pendingRows: unknown[] }).pendingRows).toHaveLength(0);
    drained.close();
  });

  it('keeps the attempt marks made while writes failed: the rows reach the disk with them', () => {
    jest.useFakeTimers({ doNotFake: ['setImmediate'] });
    const store = SpoolStore.open({ path: path.join(tempDir(), 'meter.spool') });
    const disk = failWrites(store);
    const events = [event(0), event(1), event(2)];
    for (const e of events) store.push(e);
    store.markAttempted(store.take(2), NOW - 5_000);
    disk.heal();
    jest.advanceTimersByTime(1000);
    expect(store.durable).toBe(true);
    store.close();
    const again = SpoolStore.open({ path: store.path });
    const { resend, uncertain } = again.recover(NOW + 23 * 3_600_000);
    expect(uncertain.map((u) => [u.event.identifier, u.firstAttemptAt])).toEqual([['evt_0', NOW - 5_000], ['evt_1', NOW - 5_000]]);
    expect(resend.map((e) => e.identifier)).toEqual(['evt_2']);
    again.close();
  });
});

describe('a missing better-sqlite3', () => {
  it('is ERR_METER_SPOOL_UNAVAILABLE naming the install command, also through openSpoolOrMemory', () => {
    jest.isolateModules(() => {
      jest.doMock('better-sqlite3', () => {
        throw new Error("Cannot find module 'better-sqlite3'");
      });
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- a fresh copy that sees the mock
      const isolated = require('../../src/store/spool-store') as typeof import('../../src/store/spool-store');
      const attempt = () => isolated.openSpoolOrMemory({ path: path.join(tempDir(), 'x.spool') });
      expect(attempt).toThrow(expect.objectContaining({ code: 'ERR_METER_SPOOL_UNAVAILABLE', message: expect.stringContaining('npm install better-sqlite3@12') }));
    });
  });
});
