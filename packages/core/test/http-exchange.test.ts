// StripeHttp's exchange over undici's dispatch handler: deadlines and aborts that end a request still waiting for a connection, answers read whole.
import { getEventListeners } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent } from 'undici';
import type { Dispatcher } from 'undici';
import { StripeApiError } from '@metered/core';
import { resolveConfig } from '../src/config';
import { RequestTimeoutError, StripeHttp } from '../src/transport/http';

const KEY = 'sk_test_httpexchange0123456789';
const NO_PACING = { beforeRequest: () => Promise.resolve(), afterResponse: () => undefined };

/** A server that holds every request until `release()`, answering each with `answer`. */
async function holdingServer(answer: { status: number; headers?: Record<string, string>; body: string }) {
  const held: http.ServerResponse[] = [];
  const seen: string[] = [];
  const server = http.createServer((req, res) => {
    seen.push(req.url ?? '');
    req.resume();
    held.push(res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const release = (): void => {
    for (const res of held.splice(0)) res.writeHead(answer.status, { 'content-type': 'application/json', ...answer.headers }).end(answer.body);
  };
  return {
    url,
    seen,
    release,
    waitForRequests: async (count: number): Promise<void> => {
      while (seen.length < count) await new Promise((resolve) => setImmediate(resolve));
    },
    close: async () => {
      release();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function clientFor(url: string, dispatcher: Dispatcher, requestTimeoutMs = 10_000): StripeHttp {
  return new StripeHttp(resolveConfig({ apiKey: KEY, apiBaseUrl: url, dispatcher, requestTimeoutMs }), NO_PACING);
}

it('a request still queued for a connection ends at its deadline, and is never sent', async () => {
  const server = await holdingServer({ status: 200, body: '{}' });
  // One connection: the second request waits behind the first, which the server holds.
  const agent = new Agent({ connections: 1 });
  const patient = clientFor(server.url, agent);
  const hurried = clientFor(server.url, agent, 300);
  try {
    const first = patient.post(server.url, '/first', { bearer: KEY, body: {} }).catch((error: unknown) => error);
    await server.waitForRequests(1);
    const started = Date.now();
    const second = await hurried.post(server.url, '/second', { bearer: KEY, body: {} }).catch((error: unknown) => error);
    expect(second).toBeInstanceOf(RequestTimeoutError);
    expect(Date.now() - started).toBeLessThan(3_000);
    // The connection frees up only now: the timed-out request behind it must not go out then.
    server.release();
    expect(await first).toEqual({});
    // A third request on the same connection: anything sent before it would be seen before it.
    const third = patient.post(server.url, '/third', { bearer: KEY, body: {} });
    await server.waitForRequests(2);
    server.release();
    await third;
    expect(server.seen).toEqual(['/first', '/third']);
  } finally {
    await agent.close();
    await server.close();
  }
});

it('an abort of the caller’s signal ends a queued request at once with the signal’s reason', async () => {
  const server = await holdingServer({ status: 200, body: '{}' });
  const agent = new Agent({ connections: 1 });
  const client = clientFor(server.url, agent);
  try {
    const first = client.post(server.url, '/first', { bearer: KEY, body: {} }).catch((error: unknown) => error);
    await server.waitForRequests(1);
    const controller = new AbortController();
    const second = client.post(server.url, '/second', { bearer: KEY, body: {}, signal: controller.signal }).catch((error: unknown) => error);
    const reason = new Error('shutting down');
    controller.abort(reason);
    expect(await second).toBe(reason);
    server.release();
    expect(await first).toEqual({});
    expect(server.seen).toEqual(['/first']);
  } finally {
    await agent.close();
    await server.close();
  }
});

it('exchanges on one signal share one abort listener: an abort ends those in flight, not those already answered', async () => {
  const server = await holdingServer({ status: 200, body: '{}' });
  const agent = new Agent({ connections: 4 });
  const client = clientFor(server.url, agent);
  const controller = new AbortController();
  const { signal } = controller;
  try {
    const answered = client.post(server.url, '/answered', { bearer: KEY, body: {}, signal });
    await server.waitForRequests(1);
    expect(getEventListeners(signal, 'abort')).toHaveLength(1);
    server.release();
    expect(await answered).toEqual({});
    const pending = ['/a', '/b', '/c'].map((path) => client.post(server.url, path, { bearer: KEY, body: {}, signal }).catch((error: unknown) => error));
    await server.waitForRequests(4);
    expect(getEventListeners(signal, 'abort')).toHaveLength(1);
    const reason = new Error('shutting down');
    controller.abort(reason);
    expect(await Promise.all(pending)).toEqual([reason, reason, reason]);
    // A signal already aborted ends a new exchange at once, before any dispatch.
    await expect(client.post(server.url, '/late', { bearer: KEY, body: {}, signal })).rejects.toBe(reason);
    expect(server.seen).toEqual(['/answered', '/a', '/b', '/c']);
  } finally {
    await agent.close();
    await server.close();
  }
});

it('reads an error answer whole: status, Stripe’s error fields and the headers it names', async () => {
  const body = JSON.stringify({ error: { type: 'invalid_request_error', code: 'parameter_invalid', message: 'bad' } });
  const server = await holdingServer({ status: 400, headers: { 'Request-Id': 'req_123', 'Stripe-Should-Retry': 'false', 'Retry-After': '2' }, body });
  const agent = new Agent();
  const client = clientFor(server.url, agent);
  try {
    const pending = client.post(server.url, '/v2/billing/meter_events', { bearer: KEY, json: Buffer.from('{}') }).catch((error: unknown) => error);
    await server.waitForRequests(1);
    server.release();
    const error = (await pending) as StripeApiError;
    expect(error).toBeInstanceOf(StripeApiError);
    expect({ status: error.status, type: error.stripeType, code: error.stripeCode, requestId: error.requestId, shouldRetry: error.shouldRetry, retryAfter: error.retryAfterSeconds }).toEqual({
      status: 400,
      type: 'invalid_request_error',
      code: 'parameter_invalid',
      requestId: 'req_123',
      shouldRetry: false,
      retryAfter: 2,
    });
  } finally {
    await agent.close();
    await server.close();
  }
});

it('a dispatcher that throws instead of calling onError rejects the request', async () => {
  const thrown = new Error('dispatcher refused');
  const dispatcher = {
    dispatch: () => {
      throw thrown;
    },
    close: () => Promise.resolve(),
  } as unknown as Dispatcher;
  const client = clientFor('http://127.0.0.1:9', dispatcher);
  await expect(client.post('http://127.0.0.1:9', '/x', { bearer: KEY, body: {} })).rejects.toBe(thrown);
});
