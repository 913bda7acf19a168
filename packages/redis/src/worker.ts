// The delivery-only process: options from the environment, and startWorker(), which metered-worker runs.
import { MeterConfigError } from '@metered/core';
import { RedisMeterReporter } from './reporter';
import type { WorkerOptions } from './types';

/** The environment variables `workerOptionsFromEnv()` reads, and the option each sets. */
export const WORKER_ENV = {
  STRIPE_SECRET_KEY: 'apiKey',
  REDIS_URL: 'redis',
  METERED_KEY_PREFIX: 'keyPrefix',
  METERED_MODE: 'mode',
  METERED_MAX_REQUESTS_PER_SECOND: 'maxRequestsPerSecond',
  METERED_CONCURRENCY: 'concurrency',
  METERED_MAX_BATCH_SIZE: 'maxBatchSize',
  METERED_CLAIM_IDLE_MS: 'queue.claimIdleMs',
  METERED_API_BASE_URL: 'apiBaseUrl',
  METERED_METER_EVENTS_BASE_URL: 'meterEventsBaseUrl',
} as const;

function numberFrom(env: NodeJS.ProcessEnv, name: keyof typeof WORKER_ENV): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new MeterConfigError(name, `must be a number above 0, got ${JSON.stringify(raw)}`);
  return value;
}

/**
 * A worker's options from environment variables (see `WORKER_ENV`); `STRIPE_SECRET_KEY` is required.
 * Throws `MeterConfigError` naming the variable when one is malformed.
 */
export function workerOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): WorkerOptions {
  const apiKey = env.STRIPE_SECRET_KEY;
  if (apiKey === undefined || apiKey === '') throw new MeterConfigError('STRIPE_SECRET_KEY', 'is required (the secret key of the Stripe account the events go to)');
  const mode = env.METERED_MODE;
  if (mode !== undefined && mode !== '' && mode !== 'stream' && mode !== 'direct') throw new MeterConfigError('METERED_MODE', `must be stream or direct, got ${JSON.stringify(mode)}`);
  const claimIdleMs = numberFrom(env, 'METERED_CLAIM_IDLE_MS');
  const options: WorkerOptions = {
    apiKey,
    redis: env.REDIS_URL || undefined,
    keyPrefix: env.METERED_KEY_PREFIX || undefined,
    mode: mode === 'stream' || mode === 'direct' ? mode : undefined,
    maxRequestsPerSecond: numberFrom(env, 'METERED_MAX_REQUESTS_PER_SECOND'),
    concurrency: numberFrom(env, 'METERED_CONCURRENCY'),
    maxBatchSize: numberFrom(env, 'METERED_MAX_BATCH_SIZE'),
    apiBaseUrl: env.METERED_API_BASE_URL || undefined,
    meterEventsBaseUrl: env.METERED_METER_EVENTS_BASE_URL || undefined,
    queue: claimIdleMs === undefined ? undefined : { claimIdleMs },
  };
  // Unset variables leave the option out, so the reporter's own defaults (and its checks) apply.
  return Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)) as WorkerOptions;
}

/**
 * Starts a delivery-only reporter: it reads the shared queue and delivers to Stripe, and reports
 * nothing itself; API servers run `RedisMeterReporter` with `deliver: false` next to it. Close it on SIGTERM.
 *
 * @example
 * const worker = startWorker({ apiKey: process.env.STRIPE_SECRET_KEY!, redis: process.env.REDIS_URL });
 * process.once('SIGTERM', () => void worker.close().then(() => process.exit(0)));
 */
export function startWorker(options: WorkerOptions): RedisMeterReporter {
  return new RedisMeterReporter({ ...options, deliver: true });
}
