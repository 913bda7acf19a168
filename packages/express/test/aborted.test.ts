// Aborted requests: a client that disconnects before the response is complete is not billed (unless billAborted).
import http from 'node:http';
import type { Server } from 'node:http';
import type { MeteringMiddleware, MeterUsageOptions } from '@metered/express';
import onFinished from 'on-finished';
import { ALICE, EXPRESS_VERSIONS, billed, buildApp, deferred, portOf, useMeteringSuite } from './helpers';

describe.each(EXPRESS_VERSIONS)('aborted requests on %s', (_name, express) => {
  const suite = useMeteringSuite();
  let server: Server | undefined;

  afterEach(async () => {
    server?.closeAllConnections();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    server = undefined;
  });

  /**
   * Sends a request to a handler that does not answer, destroys the client's socket once the handler
   * has it, and resolves when the server has seen the connection close.
   */
  async function abortSlowRequest(options: Partial<MeterUsageOptions>): Promise<MeteringMiddleware> {
    const metering = suite.meter(options);
    const arrived = deferred();
    const closed = deferred();
    const app = buildApp(express, [metering], (a) =>
      a.get('/v1/slow', (_req, res) => {
        // Attached after the middleware's listener, so by the time it fires the middleware has decided.
        onFinished(res, () => closed.resolve());
        arrived.resolve();
      }),
    );
    server = app.listen(0, '127.0.0.1');
    await new Promise<void>((resolve) => server!.once('listening', () => resolve()));

    const client = http.request({ host: '127.0.0.1', port: portOf(server.address()), path: '/v1/slow', headers: ALICE });
    client.on('error', () => undefined); // the socket is destroyed on purpose
    client.end();
    await arrived.promise;
    client.destroy();
    await closed.promise;
    await metering.flush();
    return metering;
  }

  it('does not bill a request whose client disconnected before the response', async () => {
    const mw = await abortSlowRequest({});
    expect(billed(suite.fake)).toEqual([]);
    expect(mw.stats()).toMatchObject({ seen: 1, metered: 0, skipped: { aborted: 1, total: 1 }, inProgress: 0 });
  });

  it('bills an aborted request with billAborted: true', async () => {
    const mw = await abortSlowRequest({ billAborted: true });
    expect(billed(suite.fake)).toEqual([{ customer: 'cus_alice', eventName: 'api_requests', value: '1' }]);
    expect(mw.stats()).toMatchObject({ metered: 1, skipped: { aborted: 0 } });
  });

  it('with billAborted, billIf still decides', async () => {
    const mw = await abortSlowRequest({ billAborted: true, billIf: (_req, res) => res.headersSent });
    expect(billed(suite.fake)).toEqual([]);
    expect(mw.stats().skipped.notBillable).toBe(1);
  });
});
