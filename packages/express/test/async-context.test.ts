// Resolvers run after the response, in the request's async context (AsyncLocalStorage), for finished and aborted requests; no listener per response.
import { AsyncLocalStorage } from 'node:async_hooks';
import http from 'node:http';
import type { Server } from 'node:http';
import type { MeteringMiddleware, MeteringMiddlewareOptions } from '@metered/express';
import type { Express, NextFunction, Request, Response } from 'express';
import onFinished from 'on-finished';
import { EXPRESS_VERSIONS, billed, deferred, portOf, useMeteringSuite } from './helpers';

describe.each(EXPRESS_VERSIONS)('the async context of metering on %s', (_name, express) => {
  const suite = useMeteringSuite();
  const tenant = new AsyncLocalStorage<string>();
  let server: Server | undefined;

  afterEach(async () => {
    server?.closeAllConnections();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    server = undefined;
  });

  /** Each request runs in its tenant's context (from a header); the customer resolver reads it back after the response. */
  function tenantApp(options: Partial<MeteringMiddlewareOptions>, handler: (req: Request, res: Response) => void, metered = true): { app: Express; metering: MeteringMiddleware } {
    const metering = suite.meter({ customer: () => (tenant.getStore() === undefined ? undefined : `cus_${tenant.getStore()}`), ...options });
    const app = express();
    app.use((req: Request, _res: Response, next: NextFunction) => tenant.run(String(req.headers['x-tenant']), next));
    if (metered) app.use(metering);
    app.get('/work', handler);
    return { app, metering };
  }

  async function listen(app: Express): Promise<number> {
    server = app.listen(0, '127.0.0.1');
    await new Promise<void>((resolve) => server!.once('listening', () => resolve()));
    return portOf(server.address());
  }

  /** GETs /work once per tenant, one after the other on one keep-alive connection; resolves with the bodies. */
  async function getEach(port: number, tenants: readonly string[]): Promise<string[]> {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const bodies: string[] = [];
    try {
      for (const name of tenants) {
        bodies.push(
          await new Promise<string>((resolve, reject) => {
            http
              .get({ host: '127.0.0.1', port, path: '/work', agent, headers: { 'x-tenant': name } }, (res) => {
                let body = '';
                res.setEncoding('utf8');
                res.on('data', (data: string) => (body += data));
                res.on('end', () => resolve(body));
              })
              .on('error', reject);
          }),
        );
      }
    } finally {
      agent.destroy();
    }
    return bodies;
  }

  /** Answers from a later turn of the event loop, so the context has to be carried there. */
  const later = (_req: Request, res: Response): void => {
    setImmediate(() => res.send(String(res.listenerCount('close'))));
  };

  it("bills each finished response of a keep-alive connection in its own request's context", async () => {
    const { app, metering } = tenantApp({}, later);
    await getEach(await listen(app), ['t1', 't2', 't3']);
    await metering.flush();
    expect(billed(suite.fake).map((event) => event.customer).sort()).toEqual(['cus_t1', 'cus_t2', 'cus_t3']);
    expect(metering.stats()).toMatchObject({ seen: 3, metered: 3, inProgress: 0 });
  });

  it("bills a request whose client left before the response in that request's context (billAborted)", async () => {
    const arrived = deferred();
    const closed = deferred();
    const { app, metering } = tenantApp({ billAborted: true }, (_req, res) => {
      // Attached after the middleware's watch, so by the time it fires the middleware has decided.
      onFinished(res, () => closed.resolve());
      arrived.resolve();
    });
    const port = await listen(app);
    const client = http.request({ host: '127.0.0.1', port, path: '/work', headers: { 'x-tenant': 'gone' } });
    client.on('error', () => undefined); // the socket is destroyed on purpose
    client.end();
    await arrived.promise;
    client.destroy();
    await closed.promise;
    await metering.flush();
    expect(billed(suite.fake)).toEqual([{ customer: 'cus_gone', eventName: 'api_requests', value: '1' }]);
    expect(metering.stats()).toMatchObject({ metered: 1, inProgress: 0 });
  });

  it("adds no 'close' listener to a response of Node's HTTP server", async () => {
    const plain = tenantApp({}, later, false);
    const [withoutMetering] = await getEach(await listen(plain.app), ['t1']);
    server!.closeAllConnections();
    await new Promise<void>((resolve) => server!.close(() => resolve()));
    const { app, metering } = tenantApp({}, later);
    const [withMetering] = await getEach(await listen(app), ['t1']);
    expect(withMetering).toBe(withoutMetering);
    await metering.flush();
    expect(billed(suite.fake)).toEqual([{ customer: 'cus_t1', eventName: 'api_requests', value: '1' }]);
  });
});
