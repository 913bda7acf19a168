// RedisEventStore against a real Redis: push without waiting, reads with the same identifiers, acknowledgement only at settle, claims, bounds and outages.
import { RedisEventStore } from '@metered/redis';
import type { MeterRedisError, RedisEventStoreOptions } from '@metered/redis';
import type { QueuedEvent } from '@metered/core';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { Redis } from 'ioredis';
import { closeClient } from '../src/keys';
import { describeRedis, event, itWithRedisServer, eventsIn, freePort, onCleanup, ownRedis, rawClient, REDIS_URL, uniquePrefix, until } from './helpers';

function storeOf(prefix: string, options: RedisEventStoreOptions = {}): { store: RedisEventStore; errors: MeterRedisError[] } {
  const errors: MeterRedisError[] = [];
  const store = new RedisEventStore({ redis: REDIS_URL, keyPrefix: prefix, pollIntervalMs: 10, onError: (e) => errors.push(e), ...options });
  onCleanup(async () => {
    store.close();
    await store.closed();
  });
  return { store, errors };
}

async function takeAll(store: RedisEventStore, n: number) {
  const taken: QueuedEvent[] = [];
  await until(() => {
    taken.push(...store.take(1000));
    return taken.length >= n;
  }, `${n} events in the read-ahead`);
  return taken;
}

describeRedis('RedisEventStore', () => {
  it('push() returns before Redis is asked: the events move on a later turn, 100 to an entry (not one command per event)', async () => {
    const prefix = uniquePrefix();
    const { store } = storeOf(prefix, { deliver: false });
    const raw = rawClient();
    await until(() => raw.status === 'ready', 'the raw client');
    for (let i = 0; i < 1000; i += 1) store.push(event(i));
    // Still in this turn: nothing has been written yet, everything waits locally.
    expect(store.localCount).toBe(1000);
    // The stream can show all 1000 before this store has its reply: wait for both.
    await until(async () => store.localCount === 0 && (await eventsIn(raw, prefix)) === 1000, 'the events in the stream, none left locally');
    expect(await raw.xlen(`{${prefix}}:events`)).toBe(10);
  });

  it('another instance reads the events with every field and the same identifiers', async () => {
    const prefix = uniquePrefix();
    const { store: writer } = storeOf(prefix, { deliver: false });
    const { store: reader } = storeOf(prefix);
    const sent = [event(1, { dimensions: { region: 'eu' } }), event(2, { value: '12345678901234567890' }), { ...event(3), account: 'acct_123' } as ReturnType<typeof event>];
    for (const e of sent) writer.push(e);
    const taken = await takeAll(reader, 3);
    expect(taken).toEqual(sent.map((e) => ({ ...e, seq: 0 })));
  });

  it('an entry is acknowledged and deleted only when every event in it is settled, not when read', async () => {
    const prefix = uniquePrefix();
    const { store } = storeOf(prefix);
    const raw = rawClient();
    const pendingEntries = async (): Promise<number> => ((await raw.call('XPENDING', `{${prefix}}:events`, 'metered-delivery')) as [number])[0];
    for (let i = 0; i < 5; i += 1) store.push(event(i));
    const taken = await takeAll(store, 5);
    expect(await pendingEntries()).toBe(1);
    store.settle(taken.slice(0, 2), 'delivered');
    store.settle(taken.slice(2, 4), 'failed');
    // A write would leave on the turn after settle(), on the store's own connection: a PING sent after that turn answers after it.
    await new Promise((resolve) => setImmediate(resolve));
    await (store as unknown as { redis: Redis }).redis.ping();
    expect(await pendingEntries()).toBe(1);
    expect(await eventsIn(raw, prefix)).toBe(5);
    store.settle(taken.slice(4), 'delivered');
    await until(async () => (await raw.xlen(`{${prefix}}:events`)) === 0, 'the entry deleted');
    expect(await pendingEntries()).toBe(0);
    expect(await raw.get(`{${prefix}}:count`)).toBe('0');
  });

  it("a dead consumer's pending entries are claimed by another instance with the same identifiers", async () => {
    const prefix = uniquePrefix();
    // The first instance gets a client of the test's own, so the test can cut it off as a crash would.
    const doomed = new Redis(REDIS_URL, { enableOfflineQueue: false, autoResendUnfulfilledCommands: false, maxRetriesPerRequest: 0 });
    doomed.on('error', () => undefined);
    const { store: first } = storeOf(prefix, { redis: doomed, claimIdleMs: 300 });
    for (let i = 0; i < 20; i += 1) first.push(event(i));
    const held = await takeAll(first, 20);
    doomed.disconnect();
    const { store: second } = storeOf(prefix, { claimIdleMs: 300 });
    const claimed = await takeAll(second, 20);
    expect(claimed.map((e) => e.identifier).sort()).toEqual(held.map((e) => e.identifier).sort());
  });

  it('a live consumer keeps what it holds: its heartbeat stops another instance from claiming it', async () => {
    const prefix = uniquePrefix();
    const { store: first } = storeOf(prefix, { claimIdleMs: 300 });
    for (let i = 0; i < 10; i += 1) first.push(event(i));
    await takeAll(first, 10);
    const { store: second } = storeOf(prefix, { claimIdleMs: 300 });
    // Three claim windows pass; the holder refreshed its entries every 100 ms, so none moved.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(second.take(100)).toEqual([]);
  });

  it('close() hands held entries back: another instance takes them at once, not after claimIdleMs', async () => {
    const prefix = uniquePrefix();
    const { store: first } = storeOf(prefix, { claimIdleMs: 60_000 });
    for (let i = 0; i < 10; i += 1) first.push(event(i));
    await takeAll(first, 10);
    first.close();
    await first.closed();
    const { store: second } = storeOf(prefix, { claimIdleMs: 60_000 });
    const started = Date.now();
    const claimed = await takeAll(second, 10);
    expect(claimed).toHaveLength(10);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('a read whose answer was lost (Redis ran it, the connection died) is recovered from its own pending list at once, not after claimIdleMs, and nothing held is taken twice', async () => {
    const prefix = uniquePrefix();
    const { store: writer } = storeOf(prefix, { deliver: false });
    // The reader's client runs every command, but throws away the answer of one chosen read.
    const client = new Redis(REDIS_URL, { enableOfflineQueue: false, autoResendUnfulfilledCommands: false, maxRetriesPerRequest: 0 });
    client.on('error', () => undefined);
    onCleanup(() => closeClient(client));
    const call = client.call.bind(client) as (...args: (string | number)[]) => Promise<unknown>;
    let loseNext = false;
    let lost = 0;
    (client as unknown as { call: typeof call }).call = async (...args) => {
      const reply = await call(...args);
      if (loseNext && args[0] === 'XREADGROUP' && args[args.length - 1] === '>' && Array.isArray(reply)) {
        loseNext = false;
        lost += 1;
        throw new Error('Connection is closed.');
      }
      return reply;
    };
    const { store: reader } = storeOf(prefix, { redis: client, claimIdleMs: 60_000, retryIntervalMs: 50 });
    for (let i = 0; i < 5; i += 1) writer.push(event(i));
    const first = await takeAll(reader, 5);
    loseNext = true;
    for (let i = 5; i < 10; i += 1) writer.push(event(i));
    await until(() => lost === 1, 'the lost answer');
    // Before the fix these stayed pending on the reader until an XAUTOCLAIM found them idle for 60 s.
    const second = await takeAll(reader, 5);
    expect([...first, ...second].map((e) => e.identifier).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `evt_${i}`).sort());
    // The first five, still held when the reader re-read its pending list, were not handed out again.
    await (reader as unknown as { redis: Redis }).redis.ping();
    expect(reader.take(100)).toEqual([]);
    reader.settle([...first, ...second], 'delivered');
    const raw = rawClient();
    await until(async () => (await raw.xlen(`{${prefix}}:events`)) === 0, 'both entries acknowledged and deleted');
    expect(((await raw.call('XPENDING', `{${prefix}}:events`, 'metered-delivery')) as [number])[0]).toBe(0);
  });

  it('close() removes its consumer from the group when nothing is pending on it; one that hands entries back stays until they are claimed', async () => {
    const prefix = uniquePrefix();
    const raw = rawClient();
    const consumers = async (): Promise<Map<string, number>> => {
      const rows = (await raw.call('XINFO', 'CONSUMERS', `{${prefix}}:events`, 'metered-delivery')) as unknown[][];
      return new Map(rows.map((row) => [String(row[row.indexOf('name') + 1]), Number(row[row.indexOf('pending') + 1])]));
    };
    const { store: done } = storeOf(prefix, { claimIdleMs: 60_000 });
    for (let i = 0; i < 5; i += 1) done.push(event(i));
    done.settle(await takeAll(done, 5), 'delivered');
    await until(async () => (await raw.xlen(`{${prefix}}:events`)) === 0, 'the entry acknowledged');
    expect([...(await consumers()).entries()]).toEqual([[done.consumer, 0]]);
    done.close();
    await done.closed();
    expect(await consumers()).toEqual(new Map());
    // A second reader (a consumer from its first entry on), fed by an enqueue-only writer: the only reader of these.
    const { store: holding } = storeOf(prefix, { claimIdleMs: 60_000 });
    const { store: writer } = storeOf(prefix, { deliver: false });
    for (let i = 5; i < 10; i += 1) writer.push(event(i));
    await takeAll(holding, 5);
    holding.close();
    await holding.closed();
    // The one holding an entry keeps it (DELCONSUMER would drop it from the pending list: lost).
    expect([...(await consumers()).entries()]).toEqual([[holding.consumer, 1]]);
    const { store: next } = storeOf(prefix, { claimIdleMs: 60_000 });
    expect((await takeAll(next, 5)).map((e) => e.identifier)).toEqual(['evt_5', 'evt_6', 'evt_7', 'evt_8', 'evt_9']);
  });

  it('maxLength bounds the shared stream: hasRoomFor() turns false, and true again once entries settle', async () => {
    const prefix = uniquePrefix();
    const { store } = storeOf(prefix, { maxLength: 10 });
    for (let i = 0; i < 10; i += 1) store.push(event(i));
    expect(store.hasRoomFor(event(10))).toBe(false);
    const taken = await takeAll(store, 10);
    expect(store.hasRoomFor(event(10))).toBe(false);
    store.settle(taken, 'delivered');
    expect(store.hasRoomFor(event(10))).toBe(true);
  });

  it('an entry it did not write is removed and reported as ERR_METER_REDIS_BAD_ENTRY', async () => {
    const prefix = uniquePrefix();
    const raw = rawClient();
    await raw.xadd(`{${prefix}}:events`, '*', 'e', '{not json');
    const { store, errors } = storeOf(prefix);
    store.push(event(1));
    await takeAll(store, 1);
    await until(() => errors.some((e) => e.code === 'ERR_METER_REDIS_BAD_ENTRY'), 'the bad entry reported');
    await until(async () => (await raw.xlen(`{${prefix}}:events`)) === 1, 'the bad entry deleted');
  });

  itWithRedisServer()('Redis down at start: push() never throws, one ERR_METER_REDIS_UNAVAILABLE, the events move when Redis comes up', async () => {
    const server = await ownRedis(false);
    const prefix = uniquePrefix();
    const { store, errors } = storeOf(prefix, { redis: server.url, deliver: false, retryIntervalMs: 50 });
    for (let i = 0; i < 100; i += 1) store.push(event(i));
    await until(() => errors.length > 0, 'the outage reported');
    expect(store.localCount).toBe(100);
    await server.start();
    const raw = rawClient(server.url);
    await until(async () => raw.status === 'ready' && (await eventsIn(raw, prefix)) === 100, 'the events in Redis', 15_000);
    expect(errors.map((e) => e.code)).toEqual(['ERR_METER_REDIS_UNAVAILABLE']);
  });

  it('close() with Redis unreachable reports what only memory held as ERR_METER_REDIS_UNFLUSHED, with the events', async () => {
    const server = await ownRedis(false);
    const { store, errors } = storeOf(uniquePrefix(), { redis: server.url });
    store.push(event(1));
    store.push(event(2));
    store.close();
    await store.closed();
    const unflushed = errors.find((e) => e.code === 'ERR_METER_REDIS_UNFLUSHED');
    expect(unflushed?.events.map((e) => e.identifier)).toEqual(['evt_1', 'evt_2']);
  });

  it('close() during an outage leaves nothing holding the process open (no ioredis disconnect timer)', async () => {
    const port = await freePort();
    const script = path.join(__dirname, 'children', 'close-in-outage.ts');
    const child = spawn(process.execPath, ['--import', 'tsx', script], { cwd: path.resolve(__dirname, '../../..'), env: { ...process.env, REDIS_URL: `redis://127.0.0.1:${port}` }, stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise<number>((resolve) => child.once('exit', () => resolve(Date.now())));
    onCleanup(async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    });
    let closedAt = 0;
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      if (chunk.includes('closed')) closedAt = Date.now();
    });
    const exitedAt = await exited;
    expect(closedAt).toBeGreaterThan(0);
    // A leftover ref'd 2 s timer (what ioredis arms on disconnect() of a dead socket) would keep it alive that long.
    expect(exitedAt - closedAt).toBeLessThan(1000);
  });
});
