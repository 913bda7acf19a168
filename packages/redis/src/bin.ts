#!/usr/bin/env node
// metered-worker: delivers what API servers enqueue in Redis; configured by environment variables, stopped by SIGTERM or SIGINT.
import type { MeterLogger } from '@metered/core';
import { MeterConfigError } from '@metered/core';
import { startWorker, workerOptionsFromEnv } from './worker';

const DEFAULT_CLOSE_TIMEOUT_MS = 10_000;

// One JSON object a line on stdout, the shape log collectors read; never the key (the reporter redacts it in messages).
function line(level: string, obj: object, msg?: string): void {
  process.stdout.write(`${JSON.stringify({ level, time: new Date().toISOString(), msg, ...obj })}\n`);
}

const logger: MeterLogger = {
  debug: () => undefined,
  info: (obj, msg) => line('info', obj, msg),
  warn: (obj, msg) => line('warn', obj, msg),
  error: (obj, msg) => line('error', obj, msg),
};

function main(): void {
  let options;
  try {
    options = workerOptionsFromEnv(process.env);
  } catch (error) {
    process.stderr.write(`metered-worker: ${error instanceof MeterConfigError ? error.message : String(error)}\n`);
    process.exit(2);
  }
  const closeTimeoutMs = Number(process.env.METERED_CLOSE_TIMEOUT_MS ?? DEFAULT_CLOSE_TIMEOUT_MS);
  const worker = startWorker({ ...options, logger, onError: (error, events) => line('error', { code: error.code, events: events.length }, error.message) });
  line('info', { code: 'METER_WORKER_STARTED', consumer: worker.queue.consumer }, 'metered-worker delivering');
  const stop = (signal: string): void => {
    line('info', { code: 'METER_WORKER_STOPPING', signal }, 'metered-worker stopping');
    void worker.close({ timeoutMs: Number.isFinite(closeTimeoutMs) && closeTimeoutMs >= 0 ? closeTimeoutMs : DEFAULT_CLOSE_TIMEOUT_MS }).then((result) => {
      line('info', { code: 'METER_WORKER_STOPPED', ...result, stats: worker.stats() }, 'metered-worker stopped');
      process.exit(0);
    });
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

main();
