// Aborted requests: a response that had started is billed; one whose client left before it started is not (unless billAborted or abortGraceMs).
import http from 'node:http';
import net from 'node:net';
import type { Server } from 'node:http';
import { meterUsage, setRequestUsage } from '@metered/express';
import type { MeteringMiddleware, MeteringMiddlewareOptions } from '@metered/express';
import type { Request, Response } from 'express';
import onFinished from 'on-finished';
import { ALICE, EXPRESS_VERSIONS, billed, buildApp, deferred, portOf, useMeteringSuite } from './helpers';
import type { Deferred } from './helpers';

const CHUNKS = 10;
const chunk = (n: number): string => `chunk ${String(n).padStart(2, '0')}\n`;

describe.each(EXPRESS_VERSIONS)('aborted requests on %s', (_name, express) => {
  const suite = useMeteringSuite();
  let server: Server | undefined;

  afterEach(async () => {
    server?.closeAllConnections();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    server = undefined;
  });

  /** One request the test drives: the handler's steps wait on `release`, the client leaves on cue. */
  interface Scenario {
    readonly metering: MeteringMiddleware;
    /** Lets the handler go on after the client left. */
    readonly release: Deferred;
    /** Resolves once the server has seen the connection close (the middleware has decided by then). */
    readonly closed: Promise<void>;
  }

  /**
   * Mounts `handler` at /v1/work, sends one request and destroys the client's socket once `leaveWhen`
   * resolves (by default: as soon as the handler has the request).
   */
  async function clientLeaves(
    options: Partial<MeteringMiddlewareOptions>,
    handler: (req: Request, res: Response, release: Promise<void>) => void,
    leaveWhen: (response: Promise<http.IncomingMessage>, arrived: Promise<void>) => Promise<unknown> = (_response, arrived) => arrived,
  ): Promise<Scenario> {
    const metering = suite.meter(options);
    const arrived = deferred();
    const closed = deferred();
    const release = deferred();
    const app = buildApp(express, [metering], (a) =>
      a.get('/v1/work', (req, res) => {
        // Attached after the middleware's listener, so by the time it fires the middleware has decided.
        onFinished(res, () => closed.resolve());
        arrived.resolve();
        handler(req, res, release.promise);
      }),
    );
    server = app.listen(0, '127.0.0.1');
    await new Promise<void>((resolve) => server!.once('listening', () => resolve()));

    const client = http.request({ host: '127.0.0.1', port: portOf(server.address()), path: '/v1/work', headers: ALICE });
    client.on('error', () => undefined); // the socket is destroyed on purpose
    const response = new Promise<http.IncomingMessage>((resolve) => client.once('response', resolve));
    client.end();
    await leaveWhen(response, arrived.promise);
    client.destroy();
    await closed.promise;
    return { metering, release, closed: closed.promise };
  }

  /** A handler that answers only once released, after the client has gone. */
  const slowHandler = (value?: number) => (req: Request, res: Response, release: Promise<void>) => {
    void release.then(() => {
      if (value !== undefined) setRequestUsage(req, { value });
      res.json({ done: true });
    });
  };

  /** Streams 9 of 10 chunks, then waits for `release` to set `value` and end. */
  const streamingHandler = (value?: number) => (req: Request, res: Response, release: Promise<void>) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    for (let n = 1; n < CHUNKS; n += 1) res.write(chunk(n));
    void release.then(() => {
      if (value !== undefined) setRequestUsage(req, { value });
      res.end(chunk(CHUNKS));
    });
  };

  /** Leaves once the 9 chunks have arrived, before the 10th. */
  const afterNineChunks = async (response: Promise<http.IncomingMessage>): Promise<void> => {
    const res = await response;
    const expected = Array.from({ length: CHUNKS - 1 }, (_, i) => chunk(i + 1)).join('');
    let body = '';
    await new Promise<void>((resolve) => {
      res.on('data', (data: Buffer) => {
        body += data.toString();
        if (body === expected) resolve();
      });
    });
  };

  it('does not bill a request whose client disconnected before the response started', async () => {
    const { metering } = await clientLeaves({}, slowHandler());
    await metering.flush();
    expect(billed(suite.fake)).toEqual([]);
    expect(metering.stats()).toMatchObject({ seen: 1, metered: 0, skipped: { aborted: 1, total: 1 }, inProgress: 0 });
  });

  it('does not bill work finished after the client left, under the default (no abort grace)', async () => {
    const { metering, release } = await clientLeaves({}, slowHandler(5));
    await metering.flush();
    release.resolve();
    await metering.flush();
    expect(billed(suite.fake)).toEqual([]);
    expect(metering.stats().skipped.aborted).toBe(1);
  });

  it('keeps the claim of a request its client abandoned: a route-level mount reached afterwards does not bill it again', async () => {
    const appLevel = suite.meter({ billAborted: true });
    const routeLevel = meterUsage({ reporter: appLevel.reporter, eventName: 'exports' });
    const arrived = deferred();
    const closed = deferred();
    const release = deferred();
    const app = buildApp(express, [appLevel], (a) => {
      // Holds the request until its client has left and the app-level mount has billed it.
      a.use((_req, res, next) => {
        // Node emits the response's 'close' before the connection's other listeners (the mount's among them) run.
        res.once('close', () => setImmediate(() => closed.resolve()));
        arrived.resolve();
        void release.promise.then(() => next());
      });
      a.get('/v1/work', routeLevel, (_req, res) => res.json({ done: true }));
    });
    server = app.listen(0, '127.0.0.1');
    await new Promise<void>((resolve) => server!.once('listening', () => resolve()));
    const client = http.request({ host: '127.0.0.1', port: portOf(server.address()), path: '/v1/work', headers: ALICE });
    client.on('error', () => undefined); // the socket is destroyed on purpose
    client.end();
    await arrived.promise;
    client.destroy();
    await closed.promise;
    expect(appLevel.stats()).toMatchObject({ metered: 1, inProgress: 0 });
    release.resolve();
    await appLevel.flush();
    await routeLevel.flush();
    expect(billed(suite.fake)).toEqual([{ customer: 'cus_alice', eventName: 'api_requests', value: '1' }]);
    expect(routeLevel.stats()).toMatchObject({ seen: 1, metered: 0, skipped: { duplicate: 1 } });
  });

  it('bills an aborted request with billAborted: true', async () => {
    const { metering } = await clientLeaves({ billAborted: true }, slowHandler());
    await metering.flush();
    expect(billed(suite.fake)).toEqual([{ customer: 'cus_alice', eventName: 'api_requests', value: '1' }]);
    expect(metering.stats()).toMatchObject({ metered: 1, skipped: { aborted: 0 } });
  });

  it('settles pipelined requests still queued behind a slow one when the client leaves: each counted, nothing left in progress', async () => {
    const metering = suite.meter({});
    const release = deferred();
    let queuedEnded = 0;
    const bothEnded = deferred();
    const app = buildApp(express, [metering], (a) => {
      a.get('/v1/slow', (_req, res) => void release.promise.then(() => res.json({ done: true })));
      // Ended at once, but queued behind /v1/slow on the connection: never written, and Node emits nothing on it when the connection goes.
      a.get('/v1/quick', (_req, res) => {
        res.json({ quick: true });
        if ((queuedEnded += 1) === 2) bothEnded.resolve();
      });
    });
    server = app.listen(0, '127.0.0.1');
    await new Promise<void>((resolve) => server!.once('listening', () => resolve()));
    const serverSide = new Promise<net.Socket>((resolve) => server!.once('connection', resolve));
    const socket = net.connect(portOf(server.address()), '127.0.0.1');
    socket.on('error', () => undefined);
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    socket.write(['/v1/slow', '/v1/quick', '/v1/quick'].map((path) => `GET ${path} HTTP/1.1\r\nHost: x\r\nauthorization: ${ALICE.authorization}\r\n\r\n`).join(''));
    await bothEnded.promise;
    const connection = await serverSide;
    socket.destroy();
    await new Promise<void>((resolve) => connection.once('close', () => resolve()));
    await metering.flush();
    // The two the handler ended are billed, as any response ended before its client left; the slow one left unanswered is not.
    expect(billed(suite.fake)).toEqual([
      { customer: 'cus_alice', eventName: 'api_requests', value: '1' },
      { customer: 'cus_alice', eventName: 'api_requests', value: '1' },
    ]);
    expect(metering.stats()).toMatchObject({ seen: 3, metered: 2, skipped: { aborted: 1 }, inProgress: 0 });
    release.resolve();
  });

  it('with billAborted, billIf still decides', async () => {
    const { metering } = await clientLeaves({ billAborted: true, billIf: (_req, res) => res.headersSent }, slowHandler());
    await metering.flush();
    expect(billed(suite.fake)).toEqual([]);
    expect(metering.stats().skipped.notBillable).toBe(1);
  });

  it('bills a streamed response whose client left after 9 of 10 chunks (a started response is never free)', async () => {
    const { metering } = await clientLeaves({}, streamingHandler(), afterNineChunks);
    await metering.flush();
    expect(billed(suite.fake)).toEqual([{ customer: 'cus_alice', eventName: 'api_requests', value: '1' }]);
    expect(metering.stats()).toMatchObject({ metered: 1, skipped: { aborted: 0 }, inProgress: 0 });
  });

  it('lets billIf exclude a streamed response cut short, through res.writableEnded', async () => {
    const { metering } = await clientLeaves({ billIf: (_req, res) => res.writableEnded }, streamingHandler(), afterNineChunks);
    await metering.flush();
    expect(billed(suite.fake)).toEqual([]);
    expect(metering.stats().skipped.notBillable).toBe(1);
  });

  describe('with abortGraceMs', () => {
    it('bills the work a slow handler finishes after its client left, with the value it set then', async () => {
      const { metering, release } = await clientLeaves({ abortGraceMs: 10_000 }, slowHandler(7));
      expect(metering.stats().inProgress).toBe(1);
      release.resolve();
      await metering.flush();
      expect(billed(suite.fake)).toEqual([{ customer: 'cus_alice', eventName: 'api_requests', value: '7' }]);
      expect(metering.stats()).toMatchObject({ metered: 1, skipped: { aborted: 0 }, inProgress: 0 });
    });

    it('bills a cut-short stream with the usage its handler sets as it ends', async () => {
      const { metering, release } = await clientLeaves({ abortGraceMs: 10_000 }, streamingHandler(9), afterNineChunks);
      release.resolve();
      await metering.flush();
      expect(billed(suite.fake)).toEqual([{ customer: 'cus_alice', eventName: 'api_requests', value: '9' }]);
    });

    it('gives up on a handler that does not finish within the grace, and bills nothing for it', async () => {
      const { metering, release } = await clientLeaves({ abortGraceMs: 20 }, slowHandler(7));
      await metering.flush();
      expect(billed(suite.fake)).toEqual([]);
      expect(metering.stats()).toMatchObject({ metered: 0, skipped: { aborted: 1 }, inProgress: 0 });
      // Finishing late changes nothing, and the response's own end() is back in place.
      release.resolve();
      await metering.flush();
      expect(billed(suite.fake)).toEqual([]);
    });

    it('puts res.end back once the grace is over', async () => {
      let response: Response | undefined;
      const { metering } = await clientLeaves({ abortGraceMs: 20 }, (_req, res) => {
        response = res;
      });
      const own = Object.prototype.hasOwnProperty.call(response, 'end');
      await metering.flush();
      expect(own).toBe(true);
      expect(Object.prototype.hasOwnProperty.call(response, 'end')).toBe(false);
    });
  });
});
