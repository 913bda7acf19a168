// Child process: Express hello-world with metering built up step by step, to see what each step of meterUsage costs.
import { AsyncResource } from 'node:async_hooks';
import type { AddressInfo } from 'node:net';
import { MeterReporter, claimRequest } from '@metered/core';
import { meterUsage } from '@metered/express';
import express from 'express';
import type { RequestHandler } from 'express';
import { childConfig, serveParent } from '../lib/proc';
import type { FakeReady } from './fake-stripe';
import { BENCH_CUSTOMER, BENCH_EVENT, SERVER_HOST, cpuMs, reporterOptions } from './shared';

/**
 * Each step adds to the one before: `layer` an app-level middleware that only calls next(); `watch`
 * what meterUsage does before the handler (claim the request, note the arrival, listen for the end
 * of the response in the request's async context); `report` a report() per response, delivered;
 * `meterUsage` the real middleware (resolvers, outcome counters, flush tracking).
 */
export type Step = 'bare' | 'layer' | 'watch' | 'report' | 'meterUsage';
export const STEPS: readonly Step[] = ['bare', 'layer', 'watch', 'report', 'meterUsage'];

function stepMiddleware(step: Step, reporter: MeterReporter | undefined): RequestHandler | undefined {
  switch (step) {
    case 'bare':
      return undefined;
    case 'layer':
      return (_req, _res, next) => next();
    case 'watch':
    case 'report':
      return (req, res, next) => {
        claimRequest(req);
        const arrivedAt = Date.now();
        const context = new AsyncResource('bench.response');
        const done = (): void => {
          reporter?.report({ eventName: BENCH_EVENT, customerId: BENCH_CUSTOMER, value: 1, timestamp: arrivedAt, identifier: undefined });
        };
        res.once('close', () => context.runInAsyncScope(done));
        next();
      };
    case 'meterUsage':
      return meterUsage({ reporter: reporter!, eventName: BENCH_EVENT, customer: () => BENCH_CUSTOMER });
  }
}

function main(): void {
  const { step, fake } = childConfig<{ step: Step; fake: FakeReady }>();
  const reporter = step === 'report' || step === 'meterUsage' ? new MeterReporter(reporterOptions(fake)) : undefined;
  const app = express();
  const middleware = stepMiddleware(step, reporter);
  if (middleware !== undefined) app.use(middleware);
  app.get('/hello', (_req, res) => {
    res.send('Hello World!');
  });
  const server = app.listen(0, SERVER_HOST, () => {
    const { port } = server.address() as AddressInfo;
    serveParent(
      { url: `http://${SERVER_HOST}:${port}/hello` },
      {
        cpuMs,
        flush: () => reporter?.flush(),
        close: async () => {
          server.closeAllConnections();
          await new Promise((resolve) => server.close(resolve));
          await reporter?.close();
        },
      },
    );
  });
}

main();
