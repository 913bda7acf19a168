// Runs once per jest run: is Redis reachable? The answer reaches every test file through the environment, and a missing Redis is said once.
import net from 'node:net';

const DEFAULT_URL = 'redis://127.0.0.1:6379';

function ping(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect({ host: hostname, port: Number(port || 6379) });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1500, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (data) => done(data.toString().startsWith('+PONG')));
  });
}

export default async function globalSetup(): Promise<void> {
  const url = process.env.REDIS_URL ?? DEFAULT_URL;
  const ok = await ping(url);
  process.env.METERED_REDIS_AVAILABLE = ok ? '1' : '0';
  if (ok) return;
  if (process.env.METERED_REQUIRE_REDIS === '1') {
    throw new Error(`@metered/redis tests: Redis is unreachable at ${url} and METERED_REQUIRE_REDIS=1 requires it`);
  }
  console.warn(`@metered/redis: Redis is unreachable at ${url}; its tests are skipped (set REDIS_URL, or METERED_REQUIRE_REDIS=1 to fail instead)`);
}
