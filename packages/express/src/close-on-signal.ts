// closeOnSignal(): a graceful shutdown in one line: the HTTP server first, then metering, then the process may exit.
import { MeterAdapterError, MeterConfigError, optionalBoolean, optionalMilliseconds } from '@metered/core';
import type { CloseResult } from '@metered/core';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import { constants } from 'node:os';
import type { CloseOnSignalOptions, GracefulShutdown, MeteringMiddleware, ShutdownResult } from './types';

export const DEFAULT_SHUTDOWN_SIGNALS: readonly NodeJS.Signals[] = Object.freeze(['SIGTERM', 'SIGINT']);
export const DEFAULT_DRAIN_TIMEOUT_MS = 10_000;
export const DEFAULT_SHUTDOWN_CLOSE_TIMEOUT_MS = 10_000;

// Node fires a timer of 2^31 ms or more after 1 ms: a drain that long would end at once.
const MAX_DRAIN_TIMEOUT_MS = 2 ** 31 - 1;
// How often idle keep-alive connections are closed while requests drain. Node emits nothing when a
// kept-alive connection's last response ends, and leaves such a connection open until its
// keepAliveTimeout (5 s by default, per connection) after server.close().
const IDLE_SWEEP_MS = 50;
// The process cannot listen for these: Node throws when asked to.
const UNCATCHABLE = new Set(['SIGKILL', 'SIGSTOP']);
const KNOWN_OPTIONS = new Set(['signals', 'drainTimeoutMs', 'closeTimeoutMs', 'exit']);

/** An HTTP or HTTPS server, as `app.listen()` or `http.createServer(app)` returns it. */
type ClosableServer = Server | HttpsServer;

interface ResolvedShutdownOptions {
  readonly signals: readonly NodeJS.Signals[];
  readonly drainTimeoutMs: number;
  readonly closeTimeoutMs: number;
  readonly exit: boolean;
}

function resolveShutdownOptions(options: CloseOnSignalOptions): ResolvedShutdownOptions {
  if (options === null || typeof options !== 'object') throw new MeterConfigError('options', 'closeOnSignal options must be an object');
  for (const key of Object.keys(options)) {
    if (!KNOWN_OPTIONS.has(key)) throw new MeterConfigError(key, `is not an option of closeOnSignal (known: ${[...KNOWN_OPTIONS].join(', ')})`);
  }
  const signals: unknown = options.signals ?? DEFAULT_SHUTDOWN_SIGNALS;
  const valid = (signal: unknown): boolean => typeof signal === 'string' && Object.hasOwn(constants.signals, signal) && !UNCATCHABLE.has(signal);
  if (!Array.isArray(signals) || signals.length === 0 || !signals.every(valid)) {
    throw new MeterConfigError('signals', 'must be a non-empty array of signal names the process can listen for, such as SIGTERM (not SIGKILL or SIGSTOP)');
  }
  const drainTimeoutMs = optionalMilliseconds('drainTimeoutMs', options.drainTimeoutMs, DEFAULT_DRAIN_TIMEOUT_MS);
  if (drainTimeoutMs > MAX_DRAIN_TIMEOUT_MS) throw new MeterConfigError('drainTimeoutMs', `must be at most ${MAX_DRAIN_TIMEOUT_MS}`);
  return Object.freeze({
    signals: Object.freeze([...(signals as NodeJS.Signals[])]),
    drainTimeoutMs,
    closeTimeoutMs: optionalMilliseconds('closeTimeoutMs', options.closeTimeoutMs, DEFAULT_SHUTDOWN_CLOSE_TIMEOUT_MS),
    exit: optionalBoolean('exit', options.exit, false),
  });
}

/**
 * The server's open connections. The server reports itself closed as soon as it has destroyed the
 * last one, before those sockets (and so their responses) emit 'close'; metering must see every
 * response end before it closes, so shutdown waits for these.
 */
function trackConnections(server: ClosableServer): { open: () => Promise<void>; stop: () => void } {
  const sockets = new Set<Socket>();
  const track = (socket: Socket): void => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  };
  server.on('connection', track);
  return {
    open: () => Promise.all([...sockets].map((socket) => new Promise<void>((resolve) => socket.once('close', () => resolve())))).then(() => undefined),
    stop: () => server.off('connection', track),
  };
}

/**
 * Stops accepting connections, lets requests in flight finish (closing each keep-alive connection
 * as it goes idle, and telling clients of requests that arrive meanwhile not to reuse theirs), and
 * after `timeoutMs` closes what is left. Resolves true if nothing had to be cut.
 */
function closeServer(server: ClosableServer, timeoutMs: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    let drained = true;
    const noKeepAlive = (_req: IncomingMessage, res: ServerResponse): void => {
      if (!res.headersSent) res.setHeader('connection', 'close');
    };
    // Before the app's own listener, which may answer synchronously.
    server.prependListener('request', noKeepAlive);
    const sweep = setInterval(() => server.closeIdleConnections(), IDLE_SWEEP_MS).unref();
    const deadline = setTimeout(() => {
      drained = false;
      server.closeAllConnections();
    }, timeoutMs).unref();
    // An error here means the server was not listening: closed already, which is what was asked.
    server.close(() => {
      clearInterval(sweep);
      clearTimeout(deadline);
      server.off('request', noKeepAlive);
      resolve(drained);
    });
  });
}

/**
 * On SIGTERM or SIGINT (or `signals`), shuts down in order: the server stops accepting
 * connections and lets requests in flight finish, then metering delivers what those requests and
 * the others queued (the reporter is closed, whether the middleware created it or was given it),
 * then the process is left to exit by itself: nothing here keeps it alive, and `process.exit()` is
 * called only with `exit: true`. Never rejects; a failure to close metering goes to `onError`.
 *
 * @example
 * const server = app.listen(3000);
 * closeOnSignal(server, metering);
 */
export function closeOnSignal(server: ClosableServer, metering: MeteringMiddleware, options: CloseOnSignalOptions = {}): GracefulShutdown {
  const config = resolveShutdownOptions(options);
  const connections = trackConnections(server);
  let running: Promise<ShutdownResult> | undefined;

  const onSignal = (signal: NodeJS.Signals): void => {
    void run(signal);
  };
  function remove(): void {
    for (const signal of config.signals) process.off(signal, onSignal);
    connections.stop();
  }

  async function closeMetering(): Promise<CloseResult | undefined> {
    const closeOptions = { timeoutMs: config.closeTimeoutMs };
    try {
      await metering.close(closeOptions);
      // The process is going: a reporter passed in is closed too (close() is idempotent, and its
      // owner calling it again gets the same result).
      return await metering.reporter.close(closeOptions);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      try {
        metering.reporter.handleError(new MeterAdapterError(`Could not close metering on shutdown: ${reason}`, error));
      } catch {
        // Nowhere is left to tell; the shutdown goes on.
      }
      return undefined;
    }
  }

  function run(signal: NodeJS.Signals | undefined): Promise<ShutdownResult> {
    running ??= (async () => {
      // A second signal now gets Node's default handling: an operator can still end a stuck shutdown.
      for (const signal of config.signals) process.off(signal, onSignal);
      const drained = await closeServer(server, config.drainTimeoutMs);
      await connections.open();
      connections.stop();
      const result: ShutdownResult = Object.freeze({ signal, drained, metering: await closeMetering() });
      if (config.exit) process.exit();
      return result;
    })();
    return running;
  }

  for (const signal of config.signals) process.on(signal, onSignal);
  return { shutdown: () => run(undefined), remove };
}
