// A serverless function that bills each invocation and loses nothing when the runtime freezes right after its response.
import { AsyncLocalStorage } from 'node:async_hooks';
import { MeterReporter } from '@metered/core';
import type { MeterReporterOptions } from '@metered/core';

/** What Vercel, Cloudflare Workers and Netlify hand an invocation: a way to keep working after the response. */
export interface InvocationContext {
  waitUntil(promise: Promise<unknown>): void;
}

/** How the function makes sure its events reach Stripe before the runtime may freeze it. */
export type DeliveryRecipe = 'waitUntil' | 'flush';

export interface BilledRequest {
  readonly customerId: string;
  readonly units: number;
}

/**
 * One reporter per function instance (created at module scope, reused by warm invocations) and a
 * handler that bills each invocation. `'waitUntil'`: the response goes out at once and the runtime
 * keeps the instance alive until delivery settles. `'flush'`: the handler awaits delivery before it
 * answers, for runtimes without waitUntil (AWS Lambda), at the cost of that latency per response.
 */
export function createBilledFunction(options: MeterReporterOptions, recipe: DeliveryRecipe): {
  reporter: MeterReporter;
  handle(request: BilledRequest, context: InvocationContext): Promise<{ status: number; body: string }>;
} {
  // Each invocation's own context: concurrent invocations on one instance each keep their own waitUntil.
  const invocation = new AsyncLocalStorage<InvocationContext>();
  const reporter = new MeterReporter({
    ...options,
    ...(recipe === 'waitUntil' ? { waitUntil: (promise: Promise<unknown>) => invocation.getStore()?.waitUntil(promise) } : {}),
  });
  return {
    reporter,
    handle: (request, context) =>
      invocation.run(context, async () => {
        reporter.report({ eventName: 'api_requests', customerId: request.customerId, value: request.units });
        if (recipe === 'flush') await reporter.flush({ timeoutMs: 5000 });
        return { status: 200, body: 'ok' };
      }),
  };
}
