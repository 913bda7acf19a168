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
 * The peers are what apps already run on every request, each with its defaults and its output
 * written to /dev/null: morgan, pino-http, express-prom-bundle and response-time on Express,
 * nestjs-pino on Nest.
 */
export type ServerVariant = 'bare' | 'metered' | 'naive' | 'noop-interceptor' | PeerVariant;

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
