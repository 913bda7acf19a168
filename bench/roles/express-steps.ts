// Child process: Express hello-world with metering built up step by step, to see what each step of meterUsage costs.
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { MeterReporter, claimRequest, whenResponseDone } from '@metered/core';
import { meterUsage } from '@metered/express';
import express from 'express';
import type { RequestHandler } from 'express';
import { childConfig, serveParent } from '../lib/proc';
import type { FakeReady } from './fake-stripe';
import { BENCH_CUSTOMER, BENCH_EVENT, SERVER_HOST, cpuMs, reporterOptions } from './shared';

/**
 * Each step adds to the one before: `layer` an app-level middleware that only calls next(); `watch`
 * what meterUsage does before the handler (claim the request, note the arrival, watch for the end
 * of the response in the request's async context with core's `whenResponseDone`); `report` a
 * report() per response, delivered; `meterUsage` the real middleware (resolvers, outcome counters,
 * flush tracking).
 */
export type Step = 'bare' | 'layer' | 'watch' | 'report' | 'meterUsage';
export const STEPS: readonly Step[] = ['bare', 'layer', 'watch', 'report', 'meterUsage'];

/**
 * meterUsage as built elsewhere (`expressFrom`: a directory whose node_modules holds another build of
 * @metered/core and @metered/express, e.g. the committed code before a change), so that a change is
 * measured against what it replaces in the same session; the reporter stays this build's.
 */
function meterUsageFrom(expressFrom: string | undefined): typeof meterUsage {
  if (expressFrom === undefined) return meterUsage;
  const other = createRequire(path.join(path.resolve(expressFrom), 'index.js'))('@metered/express') as { meterUsage: typeof meterUsage };
  return other.meterUsage;
}

function stepMiddleware(step: Step, reporter: MeterReporter | undefined, expressFrom: string | undefined): RequestHandler | undefined {
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
        // Core's watch, as meterUsage uses it: Node's finish channel plus one listener per connection.
        whenResponseDone(res, () => {
          reporter?.report({ eventName: BENCH_EVENT, customerId: BENCH_CUSTOMER, value: 1, timestamp: arrivedAt, identifier: undefined });
        });
        next();
      };
    case 'meterUsage':
      return meterUsageFrom(expressFrom)({ reporter: reporter!, eventName: BENCH_EVENT, customer: () => BENCH_CUSTOMER });
  }
}

function main(): void {
  const { step, fake, expressFrom } = childConfig<{ step: Step; fake: FakeReady; expressFrom?: string }>();
  const reporter = step === 'report' || step === 'meterUsage' ? new MeterReporter(reporterOptions(fake)) : undefined;
  const app = express();
  const middleware = stepMiddleware(step, reporter, expressFrom);
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

// Only as a role: breakdown.ts imports STEPS from here, and a server started in the harness kept it from exiting.
if (require.main === module) main();
