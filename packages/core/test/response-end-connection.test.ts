// whenResponseDone on Node's HTTP server: the end of a response from Node's diagnostics channel and one listener per connection (keep-alive, clients leaving).
import { AsyncLocalStorage } from 'node:async_hooks';
import { EventEmitter, once } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { whenResponseDone } from '../src/response-end';

interface Seen {
  ended: boolean;
  store: string | undefined;
}

/** What each test server's handler does: watch the response in its request's async context (the URL), then answer. */
function watcher(): { seen: Seen[]; done: EventEmitter; watch: (url: string, res: ServerResponse, respond: () => void) => void } {
  const seen: Seen[] = [];
  const done = new EventEmitter();
  const storage = new AsyncLocalStorage<string>();
  const watch = (url: string, res: ServerResponse, respond: () => void): void =>
    storage.run(url, () => {
      whenResponseDone(res, () => {
        seen.push({ ended: res.writableEnded, store: storage.getStore() });
        done.emit('done');
      });
      respond();
    });
  return { seen, done, watch };
}

/** Listens on 127.0.0.1 at a free port; its base URL. */
async function listen(server: http.Server | http2.Http2Server): Promise<string> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** A server whose handler watches each response; `respond` decides what the handler does with it. */
async function startServer(respond: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ server: http.Server; url: string; seen: Seen[]; sockets: Set<Socket>; done: EventEmitter }> {
  const { seen, done, watch } = watcher();
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    sockets.add(req.socket);
    watch(req.url ?? '', res, () => respond(req, res));
  });
  return { server, url: await listen(server), seen, sockets, done };
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

/** Opens one connection to `url` and writes a GET for each of `paths` on it at once (HTTP/1.1 pipelining). */
async function pipeline(url: string, paths: readonly string[]): Promise<Socket> {
  const socket = net.connect(Number(new URL(url).port), '127.0.0.1');
  socket.on('error', () => undefined); // destroyed on purpose by some tests
  await once(socket, 'connect');
  socket.write(paths.map((path) => `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`).join(''));
  return socket;
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

  it('calls done once for each of several pipelined requests, the ones queued behind another included', async () => {
    let held: ServerResponse | undefined;
    const { server, url, seen, done } = await startServer((req, res) => {
      // /a answers only once /b has arrived behind it on the connection: /b's response then waits its turn.
      if (req.url === '/a') held = res;
      else if (req.url === '/b') {
        res.end('b');
        held!.end('a');
      } else res.end('c');
    });
    const socket = await pipeline(url, ['/a', '/b', '/c']);
    let answers = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (answers += chunk));
    try {
      await waitFor(() => seen.length >= 3, done);
      expect(seen).toEqual([
        { ended: true, store: '/a' },
        { ended: true, store: '/b' },
        { ended: true, store: '/c' },
      ]);
      // The client reads the three answers, in order, on the one connection.
      while ((answers.match(/HTTP\/1\.1 200/g) ?? []).length < 3 || !answers.endsWith('c')) await once(socket, 'data');
      expect(answers.match(/\r\n\r\n(a|b|c)/g)).toEqual(['\r\n\r\na', '\r\n\r\nb', '\r\n\r\nc']);
    } finally {
      socket.destroy();
      server.close();
    }
    // The connection closing after its responses finished calls nobody again.
    await once(server, 'close');
    expect(seen).toHaveLength(3);
  });
  it('calls done once for pipelined requests still queued when their connection goes (Node emits nothing on them)', async () => {
    let arrived = 0;
    const allArrived = new EventEmitter();
    const { server, url, seen, done } = await startServer((req, res) => {
      // /a never answers; /b and /c end at once and wait behind it, without a socket of their own.
      if (req.url !== '/a') res.end('queued');
      if ((arrived += 1) === 3) allArrived.emit('arrived');
    });
    const arrivals = once(allArrived, 'arrived');
    const socket = await pipeline(url, ['/a', '/b', '/c']);
    try {
      await arrivals;
      expect(seen).toEqual([]);
      socket.destroy();
      await waitFor(() => seen.length >= 3, done);
      expect(seen).toEqual([
        { ended: false, store: '/a' },
        { ended: true, store: '/b' },
        { ended: true, store: '/c' },
      ]);
    } finally {
      socket.destroy();
      server.close();
    }
    await once(server, 'close');
    expect(seen).toHaveLength(3);
  });
});

describe('whenResponseDone on a queued response watched late', () => {
  it('calls done for a pipelined response first watched after its connection went (Node has let go of its parser by then)', async () => {
    const { seen, done, watch } = watcher();
    const gone = new EventEmitter();
    const server = http.createServer((req, res) => {
      // /a never answers; /b, queued behind it, is watched only once the connection has closed, as after a slow async step.
      if (req.url === '/b') req.socket.once('close', () => setImmediate(() => watch('/b', res, () => gone.emit('watched'))));
    });
    const url = await listen(server);
    const arrived = new Promise<void>((resolve) => server.on('request', (req: IncomingMessage) => req.url === '/b' && resolve()));
    const socket = await pipeline(url, ['/a', '/b']);
    try {
      await arrived;
      socket.destroy();
      await once(gone, 'watched');
      await waitFor(() => seen.length >= 1, done);
      expect(seen).toEqual([{ ended: false, store: '/b' }]);
    } finally {
      socket.destroy();
      server.close();
    }
  });
});

describe('whenResponseDone on HTTP/2 (the compatibility API)', () => {
  async function startHttp2(respond: (res: http2.Http2ServerResponse) => void): Promise<{ server: http2.Http2Server; url: string; seen: Seen[]; done: EventEmitter }> {
    const { seen, done, watch } = watcher();
    // Not a ServerResponse: watched through its own 'close'.
    const server = http2.createServer((req, res) => watch(req.url, res as unknown as ServerResponse, () => respond(res)));
    return { server, url: await listen(server), seen, done };
  }

  it('calls done once per finished response, in its request context', async () => {
    const { server, url, seen, done } = await startHttp2((res) => res.end('ok'));
    const client = http2.connect(url);
    try {
      for (const path of ['/a', '/b']) {
        const stream = client.request({ ':path': path });
        stream.resume();
        await once(stream, 'close');
      }
      await waitFor(() => seen.length >= 2, done);
      expect(seen).toEqual([
        { ended: true, store: '/a' },
        { ended: true, store: '/b' },
      ]);
    } finally {
      client.close();
      server.close();
    }
    await once(server, 'close');
    expect(seen).toHaveLength(2);
  });

  it('calls done once when the client cancels its stream before the response ends', async () => {
    const started = await startHttp2((res) => {
      res.writeHead(200);
      res.write('first chunk');
    });
    await expectOneCancelled(started, '/slow', (stream) => once(stream, 'data'));
  });

  it('calls done once for a stream the client cancelled before the watch began (its response then has neither closed nor a socket)', async () => {
    const arrived = new EventEmitter();
    await expectOneCancelled(await startHttp2Deferred(arrived), '/gone', () => once(arrived, 'arrived'));
  });
});

/** Requests `path`, cancels the stream once `ready` resolves, and expects one call of done for it, its response not ended. */
async function expectOneCancelled(started: { server: http2.Http2Server; url: string; seen: Seen[]; done: EventEmitter }, path: string, ready: (stream: http2.ClientHttp2Stream) => Promise<unknown>): Promise<void> {
  const { server, url, seen, done } = started;
  const client = http2.connect(url);
  try {
    const stream = client.request({ ':path': path });
    stream.on('error', () => undefined);
    await ready(stream);
    stream.close(http2.constants.NGHTTP2_CANCEL);
    await waitFor(() => seen.length >= 1, done);
    expect(seen).toEqual([{ ended: false, store: path }]);
  } finally {
    client.close();
    server.close();
  }
  await once(server, 'close');
  expect(seen).toHaveLength(1);
}

/** An HTTP/2 server whose handler watches its response only once the client has cancelled the stream. */
async function startHttp2Deferred(events: EventEmitter): Promise<{ server: http2.Http2Server; url: string; seen: Seen[]; done: EventEmitter }> {
  const { seen, done, watch } = watcher();
  const server = http2.createServer((req, res) => {
    req.stream.once('close', () => watch(req.url, res as unknown as ServerResponse, () => undefined));
    events.emit('arrived');
  });
  return { server, url: await listen(server), seen, done };
}
