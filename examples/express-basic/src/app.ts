// The example API: API-key authentication, a few priced routes, and one line of metering.
import { meterRoute, setRequestUsage, skipMetering } from '@metered/express';
import type { MeteringMiddleware } from '@metered/express';
import express from 'express';
import type { Express, NextFunction, Request, Response } from 'express';

/** The meters the API bills on (both must exist in Stripe, or in the fake). */
export const METERS = { requests: 'api_requests', tokens: 'llm_tokens' } as const;
/** An export is priced as this many requests. */
export const EXPORT_UNITS = 10;

export interface ExampleAppOptions {
  /** The metering middleware (from `meterUsage()`). */
  metering: MeteringMiddleware;
  /** API key → Stripe customer, kept server-side. */
  apiKeys: Readonly<Record<string, string>>;
}

/** What `/v1/generate` answers; `usage.total_tokens` is what the customer is billed. */
export interface GenerateResponse {
  text: string;
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
}

/** Builds the API. Metering is mounted first, before authentication: it resolves the customer after the response. */
export function createApp({ metering, apiKeys }: ExampleAppOptions): Express {
  const app = express();
  app.disable('x-powered-by');
  app.use(metering);

  // The authenticated customer goes to res.locals.stripeCustomerId, where metering looks by default.
  app.use(function authenticate(req: Request, res: Response, next: NextFunction) {
    const match = /^Bearer (\S+)$/.exec(req.get('authorization') ?? '');
    const customer = match ? apiKeys[match[1]!] : undefined;
    if (customer !== undefined) res.locals.stripeCustomerId = customer;
    next();
  });

  app.get('/health', skipMetering(), (_req, res) => {
    res.json({ status: 'ok' });
  });

  app.use('/v1', function requireCustomer(_req: Request, res: Response, next: NextFunction) {
    if (typeof res.locals.stripeCustomerId !== 'string') {
      res.status(401).json({ error: { message: 'Missing or unknown API key' } });
      return;
    }
    next();
  });

  // 1 api_requests per call (the middleware's defaults).
  app.get('/v1/search', (req, res) => {
    const q = typeof req.query.q === 'string' ? req.query.q : '';
    res.json({ query: q, results: q ? [`${q} one`, `${q} two`] : [] });
  });

  // Priced per route: an export counts as EXPORT_UNITS requests.
  app.get('/v1/export', meterRoute({ value: EXPORT_UNITS }), (_req, res) => {
    res.type('text/csv').send('id,name\n1,a\n2,b\n');
  });

  // Billed in tokens on its own meter; the amount is known only once the work is done.
  app.post('/v1/generate', meterRoute({ eventName: METERS.tokens }), express.json(), (req: Request, res: Response) => {
    const prompt = (req.body as { prompt?: unknown } | undefined)?.prompt;
    if (typeof prompt !== 'string' || prompt.trim() === '') {
      res.status(400).json({ error: { message: 'prompt is required' } });
      return;
    }
    const promptTokens = prompt.trim().split(/\s+/).length;
    const completionTokens = promptTokens * 2;
    const body: GenerateResponse = {
      text: prompt.split('').reverse().join(''),
      usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens },
    };
    setRequestUsage(req, { value: body.usage.total_tokens });
    res.json(body);
  });

  // A dependency that is down: a 500 is never billed.
  app.get('/v1/unstable', () => {
    throw new Error('upstream unavailable');
  });

  app.use((_req: Request, res: Response) => {
    res.status(404).json({ error: { message: 'Not found' } });
  });
  app.use((_error: unknown, _req: Request, res: Response, _next: NextFunction) => {
    res.status(500).json({ error: { message: 'Internal error' } });
  });
  return app;
}
