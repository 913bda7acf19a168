// RedisRateLimiter against a real Redis: several tokens per trip when busy, never more than the shared bucket allows.
import { RedisRateLimiter } from '@metered/redis';
import { Redis } from 'ioredis';
import { closeClient } from '../src/keys';
import { ALLOWANCE_MS } from '../src/rate-limiter';
import { describeRedis, onCleanup, REDIS_URL, uniquePrefix, until } from './helpers';

/** A client of the test's own that counts the limiter's trips to its bucket (the take script). */
function countingClient(): { client: Redis; trips: () => number } {
  const client = new Redis(REDIS_URL, { enableOfflineQueue: false, autoResendUnfulfilledCommands: false, maxRetriesPerRequest: 0 });
  client.on('error', () => undefined);
  onCleanup(() => closeClient(client));
  let trips = 0;
  // Scripts of defineCommand reach the server through sendCommand as EVALSHA (EVAL the first time on a server without them).
  const send = client.sendCommand.bind(client) as (command: { name: string }, ...rest: unknown[]) => unknown;
  (client as unknown as { sendCommand: typeof send }).sendCommand = (command, ...rest) => {
    if (command.name === 'evalsha' || command.name === 'eval') trips += 1;
    return send(command, ...rest);
  };
  return { client, trips: () => trips };
}

describeRedis('RedisRateLimiter', () => {
  it('below the rate, a busy instance takes several tokens per trip to Redis', async () => {
    const { client, trips } = countingClient();
    await until(() => client.status === 'ready', 'the client');
    // Live stream mode's default: the account allows far more than four requests of ~1 ms each can use.
    const rate = 10_000;
    const limiter = new RedisRateLimiter({ redis: client, keyPrefix: uniquePrefix(), requestsPerSecond: rate, timeoutMs: 2000 });
    onCleanup(() => limiter.close());
    let started = 0;
    const from = Date.now();
    const until_ = from + 1000;
    // Four requests at a time, as the reporter's default concurrency: each takes a token, then lasts ~1 ms (a timer stands for the request).
    await Promise.all(
      [0, 1, 2, 3].map(async () => {
        while (Date.now() < until_) {
          await limiter.acquire();
          started += 1;
          await new Promise((resolve) => setTimeout(resolve, 1));
        }
      }),
    );
    expect(limiter.local).toBe(false);
    expect(started).toBeGreaterThan(100);
    // One trip per request before; now one per allowance of up to ALLOWANCE_MS of the rate.
    expect(trips()).toBeLessThan(started / 3);
  });

  it('where the rate binds (requests always waiting on two instances of one account), together they start at most rate × (t + ALLOWANCE_MS) + burst', async () => {
    const { client, trips } = countingClient();
    await until(() => client.status === 'ready', 'the client');
    const rate = 20;
    const prefix = uniquePrefix();
    // Two instances of one account, two requests waiting on each.
    const limiters = [0, 1].map(() => new RedisRateLimiter({ redis: client, keyPrefix: prefix, requestsPerSecond: rate, timeoutMs: 2000 }));
    for (const limiter of limiters) onCleanup(() => limiter.close());
    let started = 0;
    const from = Date.now();
    const until_ = from + 1500;
    await Promise.all(
      limiters.flatMap((limiter) =>
        [0, 1].map(async () => {
          while (Date.now() < until_) {
            await limiter.acquire();
            started += 1;
          }
        }),
      ),
    );
    const seconds = (Date.now() - from) / 1000;
    expect(started).toBeLessThanOrEqual(Math.ceil(rate * (seconds + ALLOWANCE_MS / 1000) + limiters[0]!.burst));
    expect(started).toBeGreaterThan(0.5 * rate * seconds);
    // Here each trip finds about one token (the bucket, not the trips, sets the pace): no fewer trips than half the starts.
    expect(trips()).toBeGreaterThanOrEqual(0.5 * started);
  });
});
