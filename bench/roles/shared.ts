// What every server role shares: the billed customer and meter, the reporter's options, and CPU accounting.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import type { Worker } from 'node:worker_threads';
import type { MeterReporterOptions } from '@metered/core';
import type { FakeReady } from './fake-stripe';

export const SERVER_HOST = '127.0.0.1';
export const BENCH_EVENT = 'api_requests';
export const BENCH_CUSTOMER = 'cus_bench_0001';
/** Stripe's live limit for meter_event_stream; the test-mode default (20 requests/s) would cap a run at 2,000 events/s. */
export const LIVE_STREAM_RPS = 10_000;

export type ServerKind = 'express' | 'nest-express' | 'nest-fastify';
/**
 * `naive` awaits Stripe in the handler, once per request (Express only); `noop-interceptor` is a
 * bare Nest app with a global interceptor that does nothing, the price of any interceptor (Nest only);
 * `metered-no-http` is `metered` with a dispatcher that answers without a socket (`nullDispatcher()`),
 * for breakdowns: what the HTTP exchange with Stripe costs, apart from everything else metering does.
 * `metered-worker` is `metered` with `deliveryThread: 'worker'`, the worker on the server's own core;
 * `metered-worker-spare` the same with the worker moved to the tools' CPUs (`ServerConfig.workerCpus`),
 * the spare-core case (`placeDeliveryWorker()`).
 * The peers are what apps already run on every request, each with its defaults and its output
 * written to /dev/null: morgan, pino-http, express-prom-bundle and response-time on Express,
 * nestjs-pino on Nest.
 */
export type ServerVariant = 'bare' | MeteredVariant | 'naive' | 'noop-interceptor' | PeerVariant;
export type MeteredVariant = 'metered' | 'metered-no-http' | 'metered-worker' | 'metered-worker-spare';
const METERED_VARIANTS: readonly string[] = ['metered', 'metered-no-http', 'metered-worker', 'metered-worker-spare'] satisfies MeteredVariant[];

/** Whether the variant runs the real reporter (with or without its HTTP exchange, on either thread). */
export function isMeteredVariant(variant: string): variant is MeteredVariant {
  return METERED_VARIANTS.includes(variant);
}

export type PeerVariant = ExpressPeer | NestPeer;
export type ExpressPeer = 'morgan' | 'pino-http' | 'express-prom-bundle' | 'response-time';
export type NestPeer = 'nestjs-pino' | 'noop-interceptor';
export const EXPRESS_PEERS: readonly ExpressPeer[] = ['morgan', 'pino-http', 'express-prom-bundle', 'response-time'];
export const NEST_PEERS: readonly NestPeer[] = ['nestjs-pino', 'noop-interceptor'];

/** Where the loggers among the peers write: a file, as in production, that costs no disk. */
export const LOG_SINK = '/dev/null';

/** What a server role reads with `childConfig()`. */
export interface ServerConfig {
  kind: ServerKind;
  variant: ServerVariant;
  fake: FakeReady;
  /** `metered-worker-spare`: the CPUs its delivery worker is moved to (the tools'); unset where nothing is pinned. */
  workerCpus?: string;
}

export interface ServerReady {
  url: string;
}

/** What the server's reporter has done with its events so far. */
export interface Delivery {
  delivered: number;
  dropped: number;
  failed: number;
}

/** The reporter of a metered server: every default, but paced at the live limit and pointed at the fake. */
export function reporterOptions(fake: FakeReady): MeterReporterOptions {
  return { apiKey: fake.apiKey, apiBaseUrl: fake.url, meterEventsBaseUrl: fake.meterEventsUrl, maxRequestsPerSecond: LIVE_STREAM_RPS };
}

/** `reporterOptions()` as the metered variant runs them: answered without HTTP, or delivered from a worker thread. */
export function reporterOptionsFor(variant: string, fake: FakeReady): MeterReporterOptions {
  if (variant === 'metered-no-http') return { ...reporterOptions(fake), dispatcher: nullDispatcher() };
  if (variant === 'metered-worker' || variant === 'metered-worker-spare') return { ...reporterOptions(fake), deliveryThread: 'worker' };
  return reporterOptions(fake);
}

/**
 * The delivery worker of this process. Not part of the package's API: read from the built file the
 * package itself loads (same path, so the same module instance), for the bench only.
 */
function deliveryWorker(): Worker | undefined {
  const file = path.join(path.dirname(require.resolve('@metered/core')), 'transport', 'worker-dispatcher.js');
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- a built file outside the package's exports, found at run time
  const { deliveryWorkers } = require(file) as { deliveryWorkers: Set<Worker> };
  return [...deliveryWorkers][0];
}

/** The worker's Linux thread id, as it reads it from /proc/thread-self. */
function workerTid(worker: Worker): Promise<string> {
  return new Promise((resolve) => {
    const onMessage = (message: { tid?: string }): void => {
      if (message.tid === undefined) return;
      worker.off('message', onMessage);
      resolve(message.tid);
    };
    worker.on('message', onMessage);
    worker.postMessage({ tid: true });
  });
}

/**
 * Finds this process's delivery worker (if any) and, when given CPUs, moves it there with `taskset -pc`:
 * the spare-core case (threads are born with the process's pinning). Its thread id, or undefined.
 */
export async function placeDeliveryWorker(cpus: string | undefined): Promise<string | undefined> {
  const worker = deliveryWorker();
  if (worker === undefined) return undefined;
  const tid = await workerTid(worker);
  if (cpus !== undefined) execFileSync('taskset', ['-p', '-c', cpus, tid], { stdio: 'ignore' });
  return tid;
}

/** CPU time this process has used, milliseconds (user + system). */
export function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

/** What the null dispatcher answers each path with: a session, the bench's meter, or the stream's `{}`. */
function nullAnswer(path: string): string {
  if (path.includes('meter_event_session')) {
    const now = Date.now();
    return JSON.stringify({ id: 'mes_null', object: 'v2.billing.meter_event_session', authentication_token: 'tok_null', created: new Date(now).toISOString(), expires_at: new Date(now + 15 * 60_000).toISOString(), livemode: false });
  }
  if (path.startsWith('/v1/billing/meters')) {
    const meter = { id: 'mtr_null', event_name: BENCH_EVENT, status: 'active', customer_mapping: { event_payload_key: 'stripe_customer_id' }, value_settings: { event_payload_key: 'value' }, default_aggregation: { formula: 'sum' } };
    return JSON.stringify({ object: 'list', data: [meter], has_more: false });
  }
  return '{}';
}

interface NullHandler {
  onConnect(abort: () => void): void;
  onHeaders(status: number, rawHeaders: Buffer[], resume: () => void): boolean;
  onData(chunk: Buffer): boolean;
  onComplete(trailers: Buffer[]): void;
}

const JSON_HEADERS = [Buffer.from('content-type'), Buffer.from('application/json')];

/**
 * Answers every exchange on the next turn, without a socket (undici's original handler interface,
 * which core's exchanges implement): the `metered-no-http` variants, i.e. the reporter's intake,
 * batching and encoding without the HTTP exchange, so that a breakdown can price the exchange alone.
 */
class NullDispatcher {
  dispatch(options: { path: string }, handler: NullHandler): boolean {
    const body = Buffer.from(nullAnswer(options.path));
    setImmediate(() => {
      handler.onConnect(() => undefined);
      handler.onHeaders(200, JSON_HEADERS, () => undefined);
      handler.onData(body);
      handler.onComplete([]);
    });
    return true;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** A reporter dispatcher that answers without HTTP (see `NullDispatcher`). */
export function nullDispatcher(): NonNullable<MeterReporterOptions['dispatcher']> {
  return new NullDispatcher() as unknown as NonNullable<MeterReporterOptions['dispatcher']>;
}
