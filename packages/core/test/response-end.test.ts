// whenResponseDone() on its own: once per response, in the async context it was called in, on Node's HTTP server and off it.
import { AsyncLocalStorage } from 'node:async_hooks';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Socket } from 'node:net';
import { whenResponseDone } from '@metered/core';

const context = new AsyncLocalStorage<string>();

describe('whenResponseDone', () => {
  it("falls back to the response's 'close' for a response no Node server manages, once, in its context", async () => {
    const res = new http.ServerResponse(new http.IncomingMessage(new Socket()));
    const seen: Array<string | undefined> = [];
    const done = new Promise<void>((resolve) => {
      context.run('injected', () =>
        whenResponseDone(res, () => {
          seen.push(context.getStore());
          resolve();
        }),
      );
    });
    expect(res.listenerCount('close')).toBe(1);
    res.emit('close');
    res.emit('close');
    await done;
    expect(seen).toEqual(['injected']);
  });

  it('calls back on the next turn for a response whose connection is already gone', async () => {
    const socket = new Socket();
    socket.destroy();
    const req = new http.IncomingMessage(socket);
    const res = new http.ServerResponse(req);
    res.assignSocket(socket);
    const seen = await new Promise<string | undefined>((resolve) => context.run('late', () => whenResponseDone(res, () => resolve(context.getStore()))));
    expect(seen).toBe('late');
  });

  it("calls back once per response of Node's HTTP server, after its 'finish' listeners, with no listener on the response", async () => {
    const order: string[] = [];
    const server = http.createServer((req, res) => {
      const name = req.url!.slice(1);
      context.run(name, () => whenResponseDone(res, () => order.push(`done ${name} in ${context.getStore()}`)));
      order.push(`close listeners ${res.listenerCount('close')}`);
      res.on('finish', () => order.push(`finish ${name}`));
      res.end(name);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      for (const name of ['a', 'b']) {
        await new Promise<void>((resolve, reject) => {
          http.get({ host: '127.0.0.1', port, path: `/${name}`, agent }, (res) => res.resume().on('end', resolve)).on('error', reject);
        });
      }
    } finally {
      agent.destroy();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
    expect(order).toEqual(['close listeners 0', 'finish a', 'done a in a', 'close listeners 0', 'finish b', 'done b in b']);
  });
});
