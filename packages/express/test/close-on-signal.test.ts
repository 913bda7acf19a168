// closeOnSignal(): SIGTERM closes the server first, then metering, and the process exits by itself with every billed request delivered.
import { spawn } from 'node:child_process';
import http from 'node:http';
import type { Server } from 'node:http';
import path from 'node:path';
import { MeterConfigError } from '@metered/core';
import { closeOnSignal } from '@metered/express';
import type { CloseOnSignalOptions, MeteringMiddleware } from '@metered/express';
import express from 'express';
import { ALICE, buildApp, deferred, portOf, useMeteringSuite } from './helpers';

const ROOT = path.resolve(__dirname, '../../..');
const CHILD = path.join(__dirname, 'children/shutdown-app.ts');
// Generous for a loaded 2-core machine; a working shutdown of this app takes well under a second.
const EXIT_BOUND_MS = 8000;

jest.setTimeout(30_000);

/** Listens on 127.0.0.1:0 and resolves with the port. */
async function listen(server: Server): Promise<number> {
  if (!server.listening) await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  return portOf(server.address());
}

/** GET `path`, resolving with the status code, or the error's code when the request fails. */
function get(port: number, requestPath: string, agent?: http.Agent): Promise<number | string> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: requestPath, headers: ALICE, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
    });
    req.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
  });
}

describe('closeOnSignal in a child process', () => {
  const suite = useMeteringSuite();

  it('on SIGTERM under load, exits by itself within a bound, and every billed request reaches Stripe', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD], {
      cwd: ROOT,
      env: { ...process.env, FAKE_API_KEY: suite.fake.apiKey, FAKE_URL: suite.fake.url, FAKE_EVENTS_URL: suite.fake.meterEventsUrl },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    const listening = deferred<number>();
    child.stdout.on('data', (data: Buffer) => {
      stdout += data.toString();
      const match = /^listening (\d+)$/m.exec(stdout);
      if (match) listening.resolve(Number(match[1]));
    });
    child.stderr.on('data', (data: Buffer) => {
      stderr += data.toString();
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    const port = await Promise.race([listening.promise, exited.then(() => Promise.reject(new Error(`child ended early: ${stderr}`)))]);

    // Eight clients on keep-alive connections, each sending its next request as soon as one ends.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    const outcomes: Array<number | string> = [];
    const enoughServed = deferred();
    let stopping = false;
    async function client(): Promise<void> {
      for (;;) {
        const outcome = await get(port, '/work', agent);
        outcomes.push(outcome);
        if (outcomes.filter((o) => o === 200).length >= 40) enoughServed.resolve();
        // Once the server has stopped accepting, a refused or reset request ends this client.
        if (outcome !== 200 && stopping) return;
        if (outcome !== 200) throw new Error(`request failed before the shutdown: ${String(outcome)}`);
      }
    }
    const clients = Array.from({ length: 8 }, () => client());
    await enoughServed.promise;
    const signalledAt = Date.now();
    stopping = true;
    child.kill('SIGTERM');
    const { code, signal } = await exited;
    const exitMs = Date.now() - signalledAt;
    await Promise.all(clients);
    agent.destroy();

    expect(stderr).toBe('');
    // Exited by itself (code 0), not killed by the signal.
    expect({ code, signal }).toEqual({ code: 0, signal: null });
    expect(exitMs).toBeLessThan(EXIT_BOUND_MS);
    const served = outcomes.filter((o) => o === 200).length;
    const report = JSON.parse(/^shutdown (.*)$/m.exec(stdout)![1]!) as { signal: string; drained: boolean; metering: { delivered: number; dropped: number; failed: number }; stats: { metered: number; inProgress: number } };
    expect(report).toMatchObject({ signal: 'SIGTERM', drained: true, metering: { delivered: served, dropped: 0, failed: 0 }, stats: { metered: served, inProgress: 0 } });
    // Every request a client got its answer to is billed once, and nothing else is.
    expect(suite.fake.events()).toHaveLength(served);
    expect(suite.fake.totals()).toEqual({ cus_load: { api_requests: served } });
    expect(stdout.trimEnd().split('\n').at(-1)).toBe('exit');
  });
});

describe('closeOnSignal', () => {
  const suite = useMeteringSuite();
  let server: Server | undefined;
  const handles: Array<{ remove(): void }> = [];

  afterEach(async () => {
    for (const handle of handles.splice(0)) handle.remove();
    // listen() binds after a lookup: a test that ends at once must still find its server and close it.
    await bound;
    if (server?.listening) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server!.close(() => resolve()));
    }
    server = undefined;
  });

  let bound: Promise<unknown> = Promise.resolve();

  function start(metering: MeteringMiddleware, extra?: Parameters<typeof buildApp>[2]): Server {
    const started = buildApp(express, [metering], extra).listen(0, '127.0.0.1');
    bound = new Promise((resolve) => started.once('listening', resolve));
    server = started;
    return started;
  }

  it.each<[string, CloseOnSignalOptions]>([
    ['an uncatchable signal', { signals: ['SIGKILL'] }],
    ['no signals', { signals: [] }],
    ['an unknown signal', { signals: ['SIGNOPE' as NodeJS.Signals] }],
    ['a zero drainTimeoutMs', { drainTimeoutMs: 0 }],
    ['a drainTimeoutMs a timer cannot hold', { drainTimeoutMs: 2 ** 31 }],
    ['a non-boolean exit', { exit: 'yes' as unknown as boolean }],
    ['an unknown option', { timeoutMs: 5 } as CloseOnSignalOptions],
  ])('rejects %s with a MeterConfigError, listening for nothing', (_case, options) => {
    const metering = suite.meter();
    const before = process.listenerCount('SIGTERM');
    expect(() => closeOnSignal(start(metering), metering, options)).toThrow(MeterConfigError);
    expect(process.listenerCount('SIGTERM')).toBe(before);
  });

  it('closes the server before metering, and listens for its signals only until the shutdown starts', async () => {
    const metering = suite.meter();
    const before = { term: process.listenerCount('SIGTERM'), int: process.listenerCount('SIGINT') };
    const port = await listen(start(metering));
    const order: string[] = [];
    server!.on('close', () => order.push('server closed'));
    const close = metering.close.bind(metering);
    metering.close = (options) => {
      order.push('metering closing');
      return close(options);
    };
    const handle = closeOnSignal(server!, metering);
    handles.push(handle);
    expect(process.listenerCount('SIGTERM')).toBe(before.term + 1);
    expect(process.listenerCount('SIGINT')).toBe(before.int + 1);

    expect(await get(port, '/v1/search')).toBe(200);
    const result = await handle.shutdown();
    expect(order).toEqual(['server closed', 'metering closing']);
    expect(result).toEqual({ signal: undefined, drained: true, metering: { delivered: 1, failed: 0, dropped: 0, kept: 0 } });
    expect(suite.fake.events()).toHaveLength(1);
    expect({ term: process.listenerCount('SIGTERM'), int: process.listenerCount('SIGINT') }).toEqual(before);
    // Called again, it is the same shutdown.
    await expect(handle.shutdown()).resolves.toBe(result);
  });

  it('lets a request in flight finish, and does not wait for an idle keep-alive connection to time out', async () => {
    const metering = suite.meter();
    const release = deferred();
    const arrived = deferred();
    const port = await listen(
      start(metering, (a) =>
        a.get('/v1/slow', (_req, res) => {
          arrived.resolve();
          void release.promise.then(() => res.send('done'));
        }),
      ),
    );
    // Far longer than the test may take: only closing idle connections ends the shutdown in time.
    server!.keepAliveTimeout = 60_000;
    const agent = new http.Agent({ keepAlive: true });
    try {
      expect(await get(port, '/v1/search', agent)).toBe(200); // leaves one idle keep-alive connection
      const handle = closeOnSignal(server!, metering);
      const slow = get(port, '/v1/slow', agent);
      await arrived.promise;
      const shutdown = handle.shutdown();
      release.resolve();
      expect(await slow).toBe(200);
      await expect(shutdown).resolves.toMatchObject({ drained: true, metering: { failed: 0, dropped: 0 } });
      expect(server!.listening).toBe(false);
      expect(suite.fake.events()).toHaveLength(2);
    } finally {
      agent.destroy();
    }
  });

  it('closes the connections of requests still running after drainTimeoutMs, and bills the started ones before closing metering', async () => {
    const metering = suite.meter();
    const arrived = deferred();
    const port = await listen(
      start(metering, (a) =>
        a.get('/v1/stuck', (_req, res) => {
          res.writeHead(200, { 'content-type': 'text/plain' }).write('partial');
          arrived.resolve();
        }),
      ),
    );
    const handle = closeOnSignal(server!, metering, { drainTimeoutMs: 50 });
    const stuck = get(port, '/v1/stuck');
    await arrived.promise;
    const result = await handle.shutdown();
    expect(result).toMatchObject({ drained: false, metering: { failed: 0, dropped: 0 } });
    expect(await stuck).toBe('ECONNRESET');
    expect(metering.stats()).toMatchObject({ metered: 1, errors: 0, inProgress: 0 });
    expect(suite.fake.events()).toHaveLength(1);
  });

  it('ends the process only when asked to (exit: true)', async () => {
    const metering = suite.meter();
    await listen(start(metering));
    const exit = jest.spyOn(process, 'exit').mockImplementation((() => undefined) as () => never);
    try {
      await closeOnSignal(server!, metering).shutdown();
      expect(exit).not.toHaveBeenCalled();
      const other = suite.meter();
      server = buildApp(express, [other]).listen(0, '127.0.0.1');
      await listen(server);
      await closeOnSignal(server, other, { exit: true }).shutdown();
      expect(exit).toHaveBeenCalledTimes(1);
    } finally {
      exit.mockRestore();
    }
  });

  it('hands a failure to close metering to onError, and still resolves', async () => {
    const metering = suite.meter();
    await listen(start(metering));
    const failure = new Error('close broke');
    metering.close = () => Promise.reject(failure);
    const errors: unknown[] = [];
    jest.spyOn(metering.reporter, 'handleError').mockImplementation((error) => {
      errors.push(error);
    });
    await expect(closeOnSignal(server!, metering).shutdown()).resolves.toMatchObject({ drained: true, metering: undefined });
    expect(errors).toEqual([expect.objectContaining({ code: 'ERR_METER_ADAPTER', cause: failure })]);
  });
});
