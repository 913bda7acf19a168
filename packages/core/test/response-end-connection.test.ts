// whenResponseDone on Node's HTTP server: the end of a response from Node's diagnostics channel and one listener per connection (keep-alive, clients leaving).
import { AsyncLocalStorage } from 'node:async_hooks';
import { EventEmitter, once } from 'node:events';
import http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { whenResponseDone } from '../src/response-end';

interface Seen {
  ended: boolean;
  store: string | undefined;
}

/** A server whose handler watches each response; `respond` decides what the handler does with it. */
async function startServer(respond: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ server: http.Server; url: string; seen: Seen[]; sockets: Set<Socket>; done: EventEmitter }> {
  const seen: Seen[] = [];
  const sockets = new Set<Socket>();
  const done = new EventEmitter();
  const storage = new AsyncLocalStorage<string>();
  const server = http.createServer((req, res) => {
    sockets.add(req.socket);
    storage.run(req.url ?? '', () => {
      whenResponseDone(res, () => {
        seen.push({ ended: res.writableEnded, store: storage.getStore() });
        done.emit('done');
      });
      respond(req, res);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, sockets, done };
}

function get(url: string, agent: http.Agent): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
}

async function waitFor(condition: () => boolean, done: EventEmitter): Promise<void> {
  while (!condition()) await once(done, 'done');
}

describe('whenResponseDone on a connection', () => {
  it('calls done once per finished response, in its request context, with one close listener per keep-alive connection', async () => {
    const { server, url, seen, sockets, done } = await startServer((_req, res) => res.end('ok'));
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      for (const path of ['/a', '/b', '/c']) expect(await get(`${url}${path}`, agent)).toBe('ok');
      await waitFor(() => seen.length >= 3, done);
      expect(seen).toEqual([
        { ended: true, store: '/a' },
        { ended: true, store: '/b' },
        { ended: true, store: '/c' },
      ]);
      expect(sockets.size).toBe(1);
      const [socket] = [...sockets];
      // Ours, once for the connection (Node adds its own too): not one per request.
      const before = socket!.listenerCount('close');
      expect(await get(`${url}/d`, agent)).toBe('ok');
      await waitFor(() => seen.length >= 4, done);
      expect(socket!.listenerCount('close')).toBe(before);
    } finally {
      agent.destroy();
      server.close();
    }
    // The connection closing after its responses finished calls nobody again.
    await once(server, 'close');
    expect(seen).toHaveLength(4);
  });

  it('calls done when the connection closes before the response ends, with the response not ended', async () => {
    const { server, url, seen, done } = await startServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first chunk');
    });
    const agent = new http.Agent({ keepAlive: true });
    try {
      await new Promise<void>((resolve, reject) => {
        http
          .get(url + '/slow', { agent }, (res) => {
            res.once('data', () => {
              res.destroy();
              resolve();
            });
          })
          .on('error', reject);
      });
      await waitFor(() => seen.length >= 1, done);
      expect(seen).toEqual([{ ended: false, store: '/slow' }]);
    } finally {
      agent.destroy();
      server.closeAllConnections();
      server.close();
    }
  });
});
