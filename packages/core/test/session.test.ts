// Session lifecycle: renewed before Stripe's expires_at, never two at once, and a stale 401 never discards a fresh token.
import { setMaxListeners } from 'node:events';
import { startFakeStripe } from '@metered/testing';
import type { FakeStripe } from '@metered/testing';
import { resolveConfig } from '../src/config';
import { StripeHttp } from '../src/transport/http';
import { StreamTransport } from '../src/transport/stream-transport';
import type { QueuedEvent } from '../src/store/queue';

let fake: FakeStripe;
let clock: number;

beforeEach(async () => {
  clock = Date.now();
  // The fake and the transport read the same hand-driven clock.
  fake = await startFakeStripe({ now: () => clock });
});

// Closed after each test, so one that fails before its own close() leaves no agent behind.
const opened: StripeHttp[] = [];

afterEach(async () => {
  await Promise.allSettled(opened.splice(0).map((http) => http.close()));
  await fake.close();
});

function track(http: StripeHttp): StripeHttp {
  opened.push(http);
  return http;
}

function transport(): { stream: StreamTransport; http: StripeHttp; created: () => number } {
  const config = resolveConfig({ apiKey: fake.apiKey, apiBaseUrl: fake.url, meterEventsBaseUrl: fake.meterEventsUrl });
  const http = track(new StripeHttp(config, { beforeRequest: () => Promise.resolve(), afterResponse: () => undefined }));
  let sessions = 0;
  const stream = new StreamTransport(config, http, () => (sessions += 1), () => clock);
  return { stream, http, created: () => sessions };
}

let n = 0;
function event(): QueuedEvent {
  n += 1;
  return { eventName: 'api_requests', customerId: 'cus_1', value: '1', timestamp: clock, identifier: `s${n}`, dimensions: undefined, seq: n };
}

const signal = new AbortController().signal;
// Every send adds an abort listener to this one signal (10 concurrent sends below), as the reporter's
// own signal gets; the reporter lifts the limit the same way, so Node's leak warning would be noise.
setMaxListeners(0, signal);
/** What the reporter passes as `sending`: here it only counts the requests that carried events. */
let carried = 0;
const noteSending = (): void => {
  carried += 1;
};

it('renews the session before it expires, so no request meets an expired token', async () => {
  const { stream, http, created } = transport();
  await stream.send([event()], 'k1', signal, noteSending);
  clock += 13 * 60_000; // 2 minutes left: still used
  await stream.send([event()], 'k2', signal, noteSending);
  expect(created()).toBe(1);
  clock += 90_000; // 30 s left: inside the refresh margin
  await stream.send([event()], 'k3', signal, noteSending);
  expect(created()).toBe(2);
  expect(fake.requests().filter((r) => r.status === 401)).toEqual([]);
  expect(fake.events()).toHaveLength(3);
  await http.close();
});

it('creates a single session for concurrent sends', async () => {
  const { stream, http, created } = transport();
  await Promise.all(Array.from({ length: 10 }, (_, i) => stream.send([event()], `c${i}`, signal, noteSending)));
  expect(created()).toBe(1);
  expect(fake.requests().filter((r) => r.endpoint === 'meter_event_session')).toHaveLength(1);
  await http.close();
});

it('after an expiry, concurrent batches share one new session', async () => {
  const { stream, http, created } = transport();
  await stream.send([event()], 'first', signal, noteSending);
  fake.faults.expireSessions();
  await Promise.all(Array.from({ length: 6 }, (_, i) => stream.send([event()], `x${i}`, signal, noteSending)));
  expect(created()).toBe(2);
  expect(fake.events()).toHaveLength(7);
  await http.close();
});

it('fails after repeated expiries instead of looping', async () => {
  // Sessions live 1 ms on the fake, and every response moves its clock 5 ms: each token is dead on arrival.
  await fake.close();
  fake = await startFakeStripe({ now: () => clock, sessionTtlMs: 1 });
  const config = resolveConfig({ apiKey: fake.apiKey, apiBaseUrl: fake.url, meterEventsBaseUrl: fake.meterEventsUrl });
  const http = track(new StripeHttp(config, { beforeRequest: () => Promise.resolve(), afterResponse: () => void (clock += 5) }));
  const stream = new StreamTransport(config, http, () => undefined, () => 0);
  await expect(stream.send([event()], 'loop', signal, noteSending)).rejects.toMatchObject({ status: 401, stripeCode: 'billing_meter_event_session_expired' });
  // The first session, then two renewals: bounded.
  expect(fake.requests().filter((r) => r.endpoint === 'meter_event_session')).toHaveLength(3);
  await http.close();
});

it('calls sending only once a session lets the events go: a refused session marks nothing attempted', async () => {
  const { stream } = transport();
  carried = 0;
  fake.faults.fail({ endpoint: 'meter_event_session', status: 401, count: 1 });
  await expect(stream.send([event()], 'refused', signal, noteSending)).rejects.toMatchObject({ code: 'ERR_METER_UNAUTHORIZED' });
  expect(carried).toBe(0);
  await stream.send([event()], 'accepted', signal, noteSending);
  expect(carried).toBe(1);
});

it('replaces a token the stream refuses without the expiry code, and hands a refusal that outlives fresh sessions to the breaker', async () => {
  const { stream, created } = transport();
  // A token Stripe no longer takes, with an error of another kind than temporary_session_expired.
  fake.faults.fail({ endpoint: 'meter_event_stream', status: 401, type: 'invalid_request_error', code: 'api_key_expired', count: 1 });
  await stream.send([event()], 'revoked-1', signal, noteSending);
  expect(created()).toBe(2);
  expect(fake.events().map((e) => e.identifier)).toEqual([`s${n}`]);
  // Refused however often the session is renewed: the key's doing, so the reporter's breaker holds the events.
  fake.faults.fail({ endpoint: 'meter_event_stream', status: 403, type: 'invalid_request_error', count: 3 });
  await expect(stream.send([event()], 'revoked-2', signal, noteSending)).rejects.toMatchObject({ code: 'ERR_METER_UNAUTHORIZED', status: 403 });
});
