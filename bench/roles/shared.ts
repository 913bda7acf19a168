// What every server role shares: the billed customer and meter, the reporter's options, and CPU accounting.
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
 * bare Nest app with a global interceptor that does nothing, the price of any interceptor (Nest only).
 */
export type ServerVariant = 'bare' | 'metered' | 'naive' | 'noop-interceptor';

/** What a server role reads with `childConfig()`. */
export interface ServerConfig {
  kind: ServerKind;
  variant: ServerVariant;
  fake: FakeReady;
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

/** CPU time this process has used, milliseconds (user + system). */
export function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}
