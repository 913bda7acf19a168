// Child process: the Express app under load — bare, metered with meterUsage(), or naive (awaits Stripe in the handler).
import type { AddressInfo } from 'node:net';
import { MeterReporter } from '@metered/core';
import type { MeterStats } from '@metered/core';
import { meterUsage } from '@metered/express';
import { createWriteStream } from 'node:fs';
import express from 'express';
import type { RequestHandler } from 'express';
import promBundle from 'express-prom-bundle';
import morgan from 'morgan';
import pino from 'pino';
import pinoHttp from 'pino-http';
import responseTime from 'response-time';
import Stripe from 'stripe';
import { childConfig, serveParent } from '../lib/proc';
import { profilerHandlers } from '../lib/profiler';
import { BENCH_CUSTOMER, BENCH_EVENT, EXPRESS_PEERS, LOG_SINK, SERVER_HOST, cpuMs, isMeteredVariant, placeDeliveryWorker, reporterOptionsFor } from './shared';
import type { Delivery, ExpressPeer, ServerConfig, ServerReady } from './shared';
import type { SpoolServerSettings } from '../scenarios/spool';

const NAIVE_CUSTOMERS = Array.from({ length: 1000 }, (_, i) => `cus_bench_${String(i).padStart(4, '0')}`);

/** A peer's middleware, with its defaults (the loggers write to LOG_SINK). */
function peerMiddleware(peer: ExpressPeer): RequestHandler {
  switch (peer) {
    case 'morgan':
      return morgan('combined', { stream: createWriteStream(LOG_SINK) });
    case 'pino-http':
      return pinoHttp({ logger: pino(pino.destination({ dest: LOG_SINK, sync: false })) });
    case 'express-prom-bundle':
      return promBundle({ includeMethod: true, includePath: true });
    case 'response-time':
      return responseTime();
  }
}

function main(): void {
  // `spool` is set by scenario 8 only: the metered variant's reporter then runs over the on-disk spool.
  const { variant, fake, spool, workerCpus } = childConfig<ServerConfig & SpoolServerSettings>();
  if (variant === 'noop-interceptor' || variant === 'nestjs-pino') throw new Error(`${variant} is a Nest variant`);
  const app = express();
  let reporter: MeterReporter | undefined;
  let flush = (): Promise<void> => Promise.resolve();

  if (isMeteredVariant(variant)) {
    const options = reporterOptionsFor(variant, fake);
    reporter = new MeterReporter(spool === undefined ? options : { ...options, spool });
    const metering = meterUsage({ reporter, eventName: BENCH_EVENT, customer: () => BENCH_CUSTOMER });
    flush = () => metering.flush();
    app.use(metering);
  }

  if ((EXPRESS_PEERS as readonly string[]).includes(variant)) app.use(peerMiddleware(variant as ExpressPeer));

  if (variant === 'naive') {
    const origin = new URL(fake.url);
    const stripe = new Stripe(fake.apiKey, { host: origin.hostname, port: Number(origin.port), protocol: 'http' });
    let next = 0;
    app.get('/hello', async (_req, res) => {
      // What metering looks like without a reporter: the response waits for Stripe, once per request.
      // Customers rotate because Stripe (and the fake) answer 409 to a second concurrent call for one customer.
      const customer = NAIVE_CUSTOMERS[next++ % NAIVE_CUSTOMERS.length]!;
      await stripe.v2.billing.meterEvents.create({ event_name: BENCH_EVENT, payload: { stripe_customer_id: customer, value: '1' } });
      res.send('Hello World!');
    });
  } else {
    app.get('/hello', (_req, res) => {
      res.send('Hello World!');
    });
  }

  const serve = async (): Promise<void> => {
    // The spare-core case: the delivery worker moved off the server's core before the first round.
    if (variant === 'metered-worker-spare') await placeDeliveryWorker(workerCpus);
    const { port } = server.address() as AddressInfo;
    const ready: ServerReady = { url: `http://${SERVER_HOST}:${port}/hello` };
    serveParent(ready, {
      cpuMs,
      ...profilerHandlers(),
      flush: async (): Promise<Delivery> => {
        await flush();
        const stats: MeterStats | undefined = reporter?.stats();
        return { delivered: stats?.delivered ?? 0, dropped: stats?.dropped.total ?? 0, failed: stats?.failed ?? 0 };
      },
      close: async () => {
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
        await reporter?.close();
      },
    });
  };
  const server = app.listen(0, SERVER_HOST, () => void serve());
}

main();
