// Clients for the fake: raw HTTP (fetch, for what SDKs refuse to send) and the official stripe-node package.
import Stripe from 'stripe';

import type { FakeStripe, HostKind } from '../../src';

export const STRIPE_VERSION = '2026-09-30.endive';

export interface RawResponse {
  status: number;
  headers: Headers;
  // Tests probe arbitrary Stripe JSON (res.json.error.code); typing every shape would only restate the assertions.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json: any;
  text: string;
}

export interface RawRequest {
  host?: HostKind;
  method?: string;
  /** Sent as JSON unless a string. */
  body?: unknown;
  /** Bearer credential; null sends no Authorization header. */
  auth?: string | null;
  /** Stripe-Version; null sends none. */
  version?: string | null;
  headers?: Record<string, string>;
}

/** One request to the fake, defaults: POST on the API host with the secret key. */
export async function call(fake: FakeStripe, path: string, request: RawRequest = {}): Promise<RawResponse> {
  const base = (request.host ?? 'api') === 'api' ? fake.url : fake.meterEventsUrl;
  const headers: Record<string, string> = { ...request.headers };
  const auth = request.auth === undefined ? fake.apiKey : request.auth;
  if (auth !== null) headers.authorization = `Bearer ${auth}`;
  const version = request.version === undefined ? STRIPE_VERSION : request.version;
  if (version !== null) headers['stripe-version'] = version;
  let body: string | undefined;
  if (request.body !== undefined) {
    body = typeof request.body === 'string' ? request.body : JSON.stringify(request.body);
    headers['content-type'] ??= 'application/json';
  }
  const res = await fetch(`${base}${path}`, { method: request.method ?? 'POST', headers, body });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, json, text };
}

/** POST /v2/billing/meter_events with the secret key. */
export function sendDirect(fake: FakeStripe, event: unknown, request: RawRequest = {}): Promise<RawResponse> {
  return call(fake, '/v2/billing/meter_events', { body: event, ...request });
}

/** POST /v2/billing/meter_event_stream on the meter-events host with a fresh session token. */
export function sendStream(fake: FakeStripe, events: unknown[], request: RawRequest = {}): Promise<RawResponse> {
  return call(fake, '/v2/billing/meter_event_stream', {
    host: 'meter_events',
    auth: fake.createSession().authentication_token,
    body: { events },
    ...request,
  });
}

/** stripe-node configured with host/port: every call, the stream included, goes to that one listener. */
export function stripeAt(fake: FakeStripe, key: string, host: HostKind = 'api'): Stripe {
  return new Stripe(key, {
    host: '127.0.0.1',
    port: host === 'api' ? fake.port : fake.meterEventsPort,
    protocol: 'http',
    maxNetworkRetries: 0,
    telemetry: false,
  });
}

/**
 * Leaves stripe-node's hosts at their defaults and maps api.stripe.com and meter-events.stripe.com onto the fake,
 * so the SDK's own routing (the stream's `apiBase: 'meter_events'`) is what the test exercises.
 */
class FakeRoutingHttpClient extends Stripe.HttpClient {
  private readonly inner = Stripe.createNodeHttpClient();

  constructor(private readonly fake: FakeStripe) {
    super();
  }

  override getClientName(): string {
    return 'fake-routing';
  }

  override makeRequest(...args: Parameters<Stripe.HttpClient['makeRequest']>): ReturnType<Stripe.HttpClient['makeRequest']> {
    const [host, , path, method, headers, body, , timeout] = args;
    const port = host === 'api.stripe.com' ? this.fake.port : host === 'meter-events.stripe.com' ? this.fake.meterEventsPort : null;
    if (port === null) return Promise.reject(new Error(`stripe-node tried to reach ${host}, which the fake does not stand for`));
    return this.inner.makeRequest('127.0.0.1', String(port), path, method, headers, body, 'http', timeout);
  }
}

export function stripeRouted(fake: FakeStripe, key: string): Stripe {
  return new Stripe(key, { httpClient: new FakeRoutingHttpClient(fake), maxNetworkRetries: 0, telemetry: false });
}

/** The rejection of a promise that must fail; `any` so tests can read SDK error fields directly. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function rejectionOf(promise: Promise<unknown>): Promise<any> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected the promise to reject');
}
