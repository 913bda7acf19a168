// The Redis keys and group of one prefix, and the client settings both the queue and the limiter rely on.
import os from 'node:os';
import { randomBytes } from 'node:crypto';
import { MeterConfigError } from '@metered/core';
import { Redis } from 'ioredis';
import type { RedisConnection } from './types';

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';
export const DEFAULT_KEY_PREFIX = 'metered';
export const GROUP = 'metered-delivery';

export interface Keys {
  readonly stream: string;
  readonly limiter: string;
  readonly pause: string;
  /** Events (not entries) in the stream, kept by the store's scripts: what maxLength bounds. */
  readonly count: string;
}

/** The keys under `prefix`; a hash tag keeps them on one Redis Cluster slot, as the limiter's script reads two. */
export function keysFor(prefix: unknown): Keys {
  if (prefix !== undefined && (typeof prefix !== 'string' || prefix.length === 0 || prefix.length > 200)) {
    throw new MeterConfigError('keyPrefix', 'must be a non-empty string of at most 200 characters');
  }
  const tag = `{${prefix ?? DEFAULT_KEY_PREFIX}}`;
  return { stream: `${tag}:events`, limiter: `${tag}:limiter`, pause: `${tag}:pause`, count: `${tag}:count` };
}

/** A consumer name no other process shares (a restarted process must not inherit a dead one's entries silently). */
export function newConsumerName(): string {
  return `${os.hostname()}-${process.pid}-${randomBytes(4).toString('hex')}`;
}

/**
 * A client for a URL, or the one given. Commands fail at once while disconnected (no offline queue)
 * and are never resent after a reconnect: the store keeps such events locally and decides itself.
 */
export function connect(redis: RedisConnection | undefined, commandTimeoutMs: number): { client: Redis; owned: boolean } {
  if (redis !== undefined && typeof redis !== 'string') {
    if (typeof redis !== 'object' || redis === null || typeof (redis as { pipeline?: unknown }).pipeline !== 'function') {
      throw new MeterConfigError('redis', 'must be a redis:// URL or an ioredis client');
    }
    return { client: redis, owned: false };
  }
  const url = redis ?? DEFAULT_REDIS_URL;
  if (!/^rediss?:\/\//.test(url)) throw new MeterConfigError('redis', `must be a redis:// or rediss:// URL, got a string starting ${JSON.stringify(url.slice(0, 8))}`);
  const client = new Redis(url, {
    enableOfflineQueue: false,
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: 0,
    commandTimeout: commandTimeoutMs,
    // Reconnect forever, at most every 2 s: an outage of any length ends with the events moving to Redis.
    retryStrategy: (times) => Math.min(100 * times, 2000),
    // disconnect() arms a ref'd timer of this length that only the socket's 'close' clears; during an
    // outage that socket has closed already, so any other value holds the process open after close().
    disconnectTimeout: 0,
  });
  return { client, owned: true };
}

/**
 * Closes a client this package opened: QUIT when connected (pending replies still arrive), else
 * drop the socket and any reconnect timer; a client already ended is left alone.
 */
export async function closeClient(client: Redis): Promise<void> {
  if (client.status === 'end') return;
  if (client.status === 'ready') {
    try {
      await client.quit();
      return;
    } catch {
      // The connection broke while quitting: dropping it below is all that is left to do.
    }
  }
  client.disconnect();
}
