// Shared by the Redis tests: the skip switch, unique key prefixes cleaned up after, own redis-server children, events and waits.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import type { QueuedEvent } from '@metered/core';
import { decodeEntry } from '../src/codec';
import { closeClient } from '../src/keys';

// Real Redis round trips and own servers: longer than jest's 5 s default (testTimeout is not a project option).
jest.setTimeout(30_000);

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** `describe` when global-setup found Redis, `describe.skip` otherwise (global-setup said so, once). */
export const describeRedis = process.env.METERED_REDIS_AVAILABLE === '0' ? describe.skip : describe;

/** Whether a `redis-server` binary is on the PATH (what `ownRedis().start()` runs). */
export function hasRedisServer(): boolean {
  return (process.env.PATH ?? '').split(path.delimiter).some((dir) => {
    try {
      fs.accessSync(path.join(dir, 'redis-server'), fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

let serverSkipSaid = false;

/**
 * `it` for a test that starts its own `redis-server`; `it.skip` where the binary is missing, said in
 * one line per file. With METERED_REQUIRE_REDIS=1 (CI) it always runs: a missing binary fails there.
 */
export function itWithRedisServer(): jest.It {
  if (hasRedisServer() || process.env.METERED_REQUIRE_REDIS === '1') return it;
  if (!serverSkipSaid) {
    serverSkipSaid = true;
    console.warn('@metered/redis: no redis-server binary on the PATH; the tests that start their own Redis are skipped (METERED_REQUIRE_REDIS=1 fails them instead)');
  }
  return it.skip;
}

const prefixes: string[] = [];
const cleanups: (() => Promise<void>)[] = [];

/** A key prefix no other run shares; its keys are deleted after the file. */
export function uniquePrefix(): string {
  const prefix = `metered-test-${process.pid}-${randomBytes(4).toString('hex')}`;
  prefixes.push(prefix);
  return prefix;
}

/** Runs `fn` after the file, before the keys are deleted (closing what a test left open). */
export function onCleanup(fn: () => Promise<void>): void {
  cleanups.push(fn);
}

afterAll(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => undefined);
  if (prefixes.length === 0 || process.env.METERED_REDIS_AVAILABLE === '0') return;
  const client = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await client.connect();
    for (const prefix of prefixes.splice(0)) {
      for (const name of ['events', 'limiter', 'pause', 'count']) await client.del(`{${prefix}}:${name}`);
    }
  } finally {
    await closeClient(client);
  }
});

/** A raw client for a test's own look at Redis, closed after the file. */
export function rawClient(url = REDIS_URL): Redis {
  const client = new Redis(url, { maxRetriesPerRequest: 1 });
  client.on('error', () => undefined);
  onCleanup(() => closeClient(client));
  return client;
}

/** A free TCP port on 127.0.0.1 (nothing listens on it once this resolves). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export interface OwnRedis {
  readonly port: number;
  readonly url: string;
  /** Starts (or restarts) the server on the same port and directory; resolves once it answers PING. */
  start(): Promise<void>;
  /** Stops it with `signal` (SIGKILL: no chance to write anything more) and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** A redis-server child of this test on its own port and directory, AOF on (every write fsynced) unless `aof` is false. */
export async function ownRedis(aof = true): Promise<OwnRedis> {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'metered-redis-'));
  let child: ChildProcess | undefined;
  const url = `redis://127.0.0.1:${port}`;
  const handle: OwnRedis = {
    port,
    url,
    async start() {
      const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', aof ? 'yes' : 'no', '--appendfsync', 'always'];
      child = spawn('redis-server', args, { stdio: 'ignore' });
      // Ready once it answers PING (it binds within milliseconds; loading an AOF can take a little longer).
      await until(async () => {
        const client = new Redis(url, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
        client.on('error', () => undefined);
        try {
          await client.connect();
          return (await client.ping()) === 'PONG';
        } catch {
          return false;
        } finally {
          // A refused attempt leaves the client ended; disconnect() on it would arm a 2 s timer that holds jest open.
          await closeClient(client);
        }
      }, `redis-server on port ${port}`);
    },
    async stop(signal = 'SIGKILL') {
      const running = child;
      child = undefined;
      if (running === undefined || running.exitCode !== null) return;
      await new Promise<void>((resolve) => {
        running.once('exit', () => resolve());
        running.kill(signal);
      });
    },
  };
  onCleanup(async () => {
    await handle.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return handle;
}

/** An accepted event as the reporter would push it; `i` makes its identifier and value. */
export function event(i: number, overrides: Partial<QueuedEvent> = {}): QueuedEvent {
  return { eventName: 'api_requests', customerId: `cus_${i % 3}`, value: String(i + 1), timestamp: Date.now(), identifier: `evt_${i}`, seq: i + 1, ...overrides };
}

/** Resolves once `check()` holds, polling every 10 ms; rejects with `what` after `timeoutMs`. */
export async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Events (not entries: an entry carries up to 100) in the stream under `prefix`. */
export async function eventsIn(client: Redis, prefix: string): Promise<number> {
  const entries = (await client.call('XRANGE', `{${prefix}}:events`, '-', '+')) as [string, unknown][];
  return entries.reduce((sum, [, fields]) => sum + (decodeEntry(fields)?.length ?? 0), 0);
}
