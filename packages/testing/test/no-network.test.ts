// The test processes' network guard (jest.no-network.js): only this machine can be reached from a test.
import net from 'node:net';
import { startFakeStripe } from '../src';

it('refuses a connection to another host at once, naming it', async () => {
  const error = await new Promise<Error>((resolve) => {
    const socket = net.connect({ host: 'stripe-host.invalid', port: 443 });
    socket.on('error', resolve);
  });
  expect(error.message).toMatch(/tried to connect to stripe-host\.invalid/);
  expect((error as NodeJS.ErrnoException).code).toBe('ECONNREFUSED');
});

it('lets a connection to 127.0.0.1 through', async () => {
  const fake = await startFakeStripe();
  try {
    const response = await fetch(`${fake.url}/v1/billing/meters`, { headers: { authorization: `Bearer ${fake.apiKey}` } });
    expect(response.status).toBe(200);
  } finally {
    await fake.close();
  }
});
